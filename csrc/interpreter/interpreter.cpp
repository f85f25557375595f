// See interpreter.hpp. All float arithmetic happens in kernels.cpp; this file plans,
// binds registers to storage and sequences the instructions.
#pragma GCC optimize("fp-contract=off")

#include "interpreter/interpreter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "interpreter/kernels.hpp"

namespace evozero::interp {

namespace {

constexpr std::size_t kAlign = 16;  // floats: 64 bytes, one cache line / AVX-512 vector

// Objective workspace slots before the registers' own.
constexpr int kSlotRatio = 0, kSlotOnes = 1, kSlotPartials = 2, kObjectiveFixedSlots = 5;

// The inputs structs (interpreter.hpp) have one field per input of the vocabulary but
// progress (and the objective's ratio, which is computed): a new input needs a field there.
static_assert(kNumInputs[kScan] == 8 && kNumInputs[kPost] == 5 && kNumInputs[kObjective] == 9,
              "the vocabulary's inputs changed: update ScanInputs, PostInputs, ObjectiveInputs");
// mean, std and normalize are the reductions run_instr computes.
static_assert(kNumBatchOps == 3, "a new batch op needs its reduction in Interpreter::run_instr");

void copy_or_fill(std::size_t n, float* out, const float* src, bool scalar) {
  if (scalar) {
    kernels::fill(n, out, src[0]);
  } else if (out != src) {
    std::memmove(out, src, n * sizeof(float));
  }
}

}  // namespace

Interpreter::Interpreter(CompiledProgram program) : program_(std::move(program)) {
  program_.validate();
  const Component* comps[kNumKinds] = {&program_.scan, &program_.post, &program_.objective};
  std::size_t max_regs = 0;
  for (int k = 0; k < kNumKinds; ++k) {
    plan_component(*comps[k], plans_[k]);
    max_regs = std::max(max_regs, std::size_t(comps[k]->num_regs()));
  }
  ptr_.assign(max_regs, nullptr);
  tptr_.assign(max_regs, {nullptr, nullptr, nullptr});
}

void Interpreter::plan_component(const Component& c, Plan& p) {
  const int nr = c.num_regs(), ni = kNumInputs[c.kind], base = c.first_temp();
  p.scalar.assign(nr, 0);
  p.slot.assign(nr, -1);
  p.sval.assign(nr, 0.0f);
  p.mode.assign(c.code.size(), 0);
  p.tmask.assign(nr, 0);
  p.tslot.assign(nr, {-1, -1, -1});
  p.num_slots = c.kind == kObjective ? kObjectiveFixedSlots : 0;
  p.scalar[kProgressSlot[c.kind]] = 1;
  for (int r = c.first_const(); r < base; ++r) {
    p.scalar[r] = 1;
    p.sval[r] = c.consts[r - c.first_const()];
  }
  for (int r = ni; r < c.first_const(); ++r) p.slot[r] = p.num_slots++;  // carries from t+1
  if (c.kind == kObjective) {
    p.slot[kObjectiveRatio] = kSlotRatio;
    p.tmask[kObjectiveLogp] = p.tmask[kObjectiveRatio] = 1;
    p.tmask[kObjectiveV] = 2;
    p.tmask[kObjectiveEntropy] = 4;
  }
  // Scalar-ness and tangent masks flow forward.
  for (std::size_t i = 0; i < c.code.size(); ++i) {
    const Instr& in = c.code[i];
    const int arity = kOps[in.op].arity;
    bool all_scalar = true;
    unsigned mode = 0, tmask = 0;
    for (int j = 0; j < arity; ++j) {
      const bool s = p.scalar[in.src[j]] != 0;
      all_scalar &= s;
      mode |= unsigned(s) << j;
      tmask |= p.tmask[in.src[j]];
    }
    // mean and std reduce to one number; normalize keeps its argument's shape.
    const bool scalar = all_scalar || in.op == kMean || in.op == kStd;
    p.scalar[in.dst] = scalar;
    p.mode[i] = uint8_t(mode);
    if (scalar) continue;
    p.slot[in.dst] = p.num_slots++;
    if (c.kind == kObjective) {
      p.tmask[in.dst] = uint8_t(tmask);
      for (int k = 0; k < 3; ++k)
        if (tmask & (1u << k)) p.tslot[in.dst][k] = p.num_slots++;
    }
  }
  p.order.clear();
  p.step.clear();
  p.after.clear();
  if (c.kind != kScan) {
    for (std::size_t i = 0; i < c.code.size(); ++i) p.order.push_back(int32_t(i));
    p.reads_ratio = c.kind == kObjective &&
                    (c.outputs[0] == kObjectiveRatio ||
                     std::any_of(c.code.begin(), c.code.end(), [](const Instr& in) {
                       return in.src[0] == kObjectiveRatio || in.src[1] == kObjectiveRatio ||
                              in.src[2] == kObjectiveRatio;
                     }));
    return;
  }
  // Scan phases: scalars, then what does not depend on a carry (whole batch), the
  // recurrence (per step), and what only reads carries (whole batch, afterwards).
  std::vector<uint8_t> dep(nr, 0), need(nr, 0);
  for (int r = ni; r < c.first_const(); ++r) dep[r] = 1;
  for (const Instr& in : c.code)
    for (int j = 0; j < kOps[in.op].arity; ++j) dep[in.dst] |= dep[in.src[j]];
  for (int k = 0; k < c.num_carries(); ++k) need[c.outputs[kNumFixedOutputs[kScan] + k]] = 1;
  for (std::size_t i = c.code.size(); i-- > 0;) {
    const Instr& in = c.code[i];
    if (!need[in.dst] || !dep[in.dst]) continue;
    for (int j = 0; j < kOps[in.op].arity; ++j) need[in.src[j]] = 1;
  }
  for (std::size_t i = 0; i < c.code.size(); ++i)
    if (p.scalar[c.code[i].dst]) p.order.push_back(int32_t(i));
  for (std::size_t i = 0; i < c.code.size(); ++i) {
    const int32_t d = c.code[i].dst;
    if (p.scalar[d]) continue;
    (!dep[d] ? p.order : need[d] ? p.step : p.after).push_back(int32_t(i));
  }
}

void Interpreter::bind(const Component& c, Plan& p, std::size_t n, const float* const* inputs,
                       float progress) {
  stride_ = std::max<std::size_t>((n + kAlign - 1) / kAlign * kAlign, kAlign);
  const std::size_t need = std::size_t(p.num_slots) * stride_ + kAlign;
  if (workspace_.size() < need) workspace_.resize(need);  // the only allocation
  const auto addr = reinterpret_cast<std::uintptr_t>(workspace_.data());
  const std::size_t mis = (addr / sizeof(float)) % kAlign;
  base_ = workspace_.data() + (mis ? kAlign - mis : 0);
  const int ni = kNumInputs[c.kind];
  p.sval[kProgressSlot[c.kind]] = progress;
  for (int r = 0; r < c.num_regs(); ++r) {
    if (p.scalar[r])
      ptr_[r] = &p.sval[r];
    else if (r < ni && p.slot[r] < 0)
      ptr_[r] = inputs[r];
    else
      ptr_[r] = slot_ptr(p.slot[r]);
  }
}

void Interpreter::run_instr(const Component& c, Plan& p, int32_t i, std::size_t n,
                            std::size_t offset) {
  const Instr& in = c.code[i];
  const int arity = kOps[in.op].arity;
  const float* a[3] = {nullptr, nullptr, nullptr};
  for (int j = 0; j < arity; ++j) a[j] = ptr_[in.src[j]] + (p.scalar[in.src[j]] ? 0 : offset);
  if (kOps[in.op].batch) {  // post only, whole batch (offset 0)
    float* out = p.scalar[in.dst] ? &p.sval[in.dst] : slot_ptr(p.slot[in.dst]);
    if (p.scalar[in.src[0]]) {
      // The batch statistics of a broadcast scalar s: mean s, std 0 (NaN unless s is
      // finite), normalize (s - s) / (std + 1e-8).
      const float s = a[0][0];
      const float sd = std::isfinite(s) ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      if (in.op == kMean) *out = s;
      else if (in.op == kStd) *out = sd;
      else kernels::normalize(1, out, a[0], s, sd);
      return;
    }
    const double m = kernels::mean64(n, a[0]);
    if (in.op == kMean) {
      *out = float(m);
    } else {
      const float sd = kernels::std32(n, a[0], m);
      if (in.op == kStd) *out = sd;
      else kernels::normalize(n, out, a[0], float(m), sd);
    }
    return;
  }
  if (p.scalar[in.dst]) {
    kernels::values(in.op, 0, 1, &p.sval[in.dst], a[0], a[1], a[2]);
    return;
  }
  float* out = slot_ptr(p.slot[in.dst]) + offset;
  const unsigned tmask = p.tmask[in.dst];
  if (!tmask) {
    kernels::values(in.op, p.mode[i], n, out, a[0], a[1], a[2]);
    return;
  }
  // Objective with tangents: value and partials in one pass, then for each tangent the
  // sum over arguments with a (structurally) nonzero tangent of partial * tangent.
  float* d[3] = {slot_ptr(kSlotPartials), slot_ptr(kSlotPartials + 1),
                 slot_ptr(kSlotPartials + 2)};
  kernels::values_partials(in.op, p.mode[i], n, out, d, a[0], a[1], a[2]);
  for (int k = 0; k < 3; ++k) {
    if (!(tmask & (1u << k))) continue;
    const float* pp[3] = {nullptr, nullptr, nullptr};
    const float* tt[3] = {nullptr, nullptr, nullptr};
    int terms = 0;
    for (int j = 0; j < arity; ++j) {
      const float* t = tptr_[in.src[j]][k];
      if (!t) continue;
      pp[terms] = d[j];
      tt[terms++] = t;
    }
    kernels::tangent(n, slot_ptr(p.tslot[in.dst][k]), terms, pp, tt);
  }
}

void Interpreter::run_scan(std::size_t T, std::size_t B, const ScanInputs& in, float progress,
                           const ScanOutputs& out) {
  const Component& c = program_.scan;
  Plan& p = plans_[kScan];
  const std::size_t n = T * B;
  const float* inputs[kNumInputs[kScan]] = {};  // progress is a scalar, set by bind()
  inputs[kScanR] = in.r, inputs[kScanTerm] = in.term, inputs[kScanReset] = in.reset;
  inputs[kScanV] = in.v, inputs[kScanVNext] = in.v_next, inputs[kScanLogp] = in.logp;
  inputs[kScanEntropy] = in.entropy;
  bind(c, p, n, inputs, progress);
  if (n == 0) return;
  for (int32_t i : p.order) run_instr(c, p, i, n, 0);
  const int nc = c.num_carries(), ni = kNumInputs[kScan];
  if (nc > 0 || !p.step.empty()) {
    for (std::size_t t = T; t-- > 0;) {
      for (int k = 0; k < nc; ++k) {  // each carry's value from t + 1
        float* dst = slot_ptr(p.slot[ni + k]) + t * B;
        if (t == T - 1) {
          if (c.carry_init[k] == kInitVNext)
            std::memcpy(dst, in.v_next + t * B, B * sizeof(float));
          else
            kernels::fill(B, dst, 0.0f);
        } else {
          const int32_t r = c.outputs[kNumFixedOutputs[kScan] + k];
          if (p.scalar[r])
            kernels::fill(B, dst, ptr_[r][0]);
          else
            std::memcpy(dst, ptr_[r] + (t + 1) * B, B * sizeof(float));
        }
      }
      for (int32_t i : p.step) run_instr(c, p, i, B, t * B);
    }
  }
  for (int32_t i : p.after) run_instr(c, p, i, n, 0);
  const int32_t o_adv = c.outputs[0], o_vt = c.outputs[1];
  copy_or_fill(n, out.adv, ptr_[o_adv], p.scalar[o_adv]);
  copy_or_fill(n, out.vtarget, ptr_[o_vt], p.scalar[o_vt]);
  for (int k = 0; k < nc; ++k) {
    const int32_t r = c.outputs[kNumFixedOutputs[kScan] + k];
    if (out.carries[k]) copy_or_fill(n, out.carries[k], ptr_[r], p.scalar[r]);
  }
}

void Interpreter::run_post(std::size_t n, const PostInputs& in, float progress,
                           const PostOutputs& out) {
  const Component& c = program_.post;
  Plan& p = plans_[kPost];
  const float* inputs[kNumInputs[kPost]] = {};
  inputs[kPostAdv] = in.adv, inputs[kPostVtarget] = in.vtarget, inputs[kPostV] = in.v;
  inputs[kPostR] = in.r;
  bind(c, p, n, inputs, progress);
  if (n == 0) return;
  for (int32_t i : p.order) run_instr(c, p, i, n, 0);
  // adv first: out.adv may be in.adv, which only the adv output reads.
  const int32_t o_adv = c.outputs[0], o_vt = c.outputs[1];
  copy_or_fill(n, out.adv, ptr_[o_adv], p.scalar[o_adv]);
  copy_or_fill(n, out.vtarget, ptr_[o_vt], p.scalar[o_vt]);
}

void Interpreter::run_objective(std::size_t n, const ObjectiveInputs& in, float progress,
                                const ObjectiveOutputs& out) {
  const Component& c = program_.objective;
  Plan& p = plans_[kObjective];
  const float* inputs[kNumInputs[kObjective]] = {};  // the ratio is computed
  inputs[kObjectiveLogp] = in.logp, inputs[kObjectiveLogpOld] = in.logp_old;
  inputs[kObjectiveAdv] = in.adv, inputs[kObjectiveV] = in.v, inputs[kObjectiveVOld] = in.v_old;
  inputs[kObjectiveVtarget] = in.vtarget, inputs[kObjectiveEntropy] = in.entropy;
  bind(c, p, n, inputs, progress);
  if (n == 0) return;
  float* ratio = slot_ptr(kSlotRatio);
  float* ones = slot_ptr(kSlotOnes);
  if (p.reads_ratio) kernels::exp_diff(n, ratio, in.logp, in.logp_old);
  kernels::fill(n, ones, 1.0f);
  for (int r = 0; r < c.num_regs(); ++r) {
    auto& t = tptr_[r];
    for (int k = 0; k < 3; ++k) t[k] = p.tslot[r][k] >= 0 ? slot_ptr(p.tslot[r][k]) : nullptr;
  }
  tptr_[kObjectiveLogp] = {ones, nullptr, nullptr};
  tptr_[kObjectiveRatio] = {ratio, nullptr, nullptr};
  tptr_[kObjectiveV] = {nullptr, ones, nullptr};
  tptr_[kObjectiveEntropy] = {nullptr, nullptr, ones};
  for (int32_t i : p.order) run_instr(c, p, i, n, 0);
  const int32_t r = c.outputs[0];
  if (out.loss) copy_or_fill(n, out.loss, ptr_[r], p.scalar[r]);
  float* d[3] = {out.dloss_dlogp, out.dloss_dv, out.dloss_dentropy};
  for (int k = 0; k < 3; ++k) {
    if (!d[k]) continue;
    if (tptr_[r][k])
      std::memcpy(d[k], tptr_[r][k], n * sizeof(float));
    else
      kernels::fill(n, d[k], 0.0f);
  }
}

}  // namespace evozero::interp
