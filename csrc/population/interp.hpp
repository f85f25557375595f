// The interpreter of interpreter.cpp, block-wide: the same plan (the host's, flattened
// into spec.hpp's FlatComponent), the same op kernels (interpreter/ops.hpp), the same
// order of float operations per element, and the batch statistics over the exact sum
// (fsum.hpp; thread 0 adds, the sum is exact so its order does not matter). Elementwise
// instructions split their elements over the block; each instruction ends at a barrier.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "interpreter/fsum.hpp"
#include "interpreter/ops.hpp"
#include "population/spec.hpp"

namespace evozero::population {

// Calls O::f / O::fd with the op's own arity.
template <class O>
EVOZERO_HD inline float op_f(float a, float b, float c) {
  if constexpr (O::arity == 1) {
    return O::f(a);
  } else if constexpr (O::arity == 2) {
    return O::f(a, b);
  } else {
    return O::f(a, b, c);
  }
}
template <class O>
EVOZERO_HD inline float op_fd(float a, float b, float c, float* d) {
  if constexpr (O::arity == 1) {
    return O::fd(a, d[0]);
  } else if constexpr (O::arity == 2) {
    return O::fd(a, b, d[0], d[1]);
  } else {
    return O::fd(a, b, c, d[0], d[1], d[2]);
  }
}

EVOZERO_HD inline float eval_op(int32_t op, float a, float b, float c) {
  switch (op) {
#define EVOZERO_CASE(code, O) \
  case interp::code:          \
    return op_f<interp::ops::O>(a, b, c);
    EVOZERO_ELEMENTWISE_OPS(EVOZERO_CASE)
#undef EVOZERO_CASE
    default:
      return 0.0f;
  }
}

EVOZERO_HD inline float eval_op_d(int32_t op, float a, float b, float c, float* d) {
  switch (op) {
#define EVOZERO_CASE(code, O) \
  case interp::code:          \
    return op_fd<interp::ops::O>(a, b, c, d);
    EVOZERO_ELEMENTWISE_OPS(EVOZERO_CASE)
#undef EVOZERO_CASE
    default:
      return 0.0f;
  }
}

// One component's call: where its registers live.
struct InterpFrame {
  const FlatComponent* c;
  const int32_t* prog;     // the agent's program ints
  float* sval;             // num_regs floats: scalar registers' values
  float* slots;            // num_slots * stride floats
  std::size_t stride;
  const float* inputs[9];  // the component's input arrays (null for progress)
  const float* ratio;      // objective: the ratio slot
  const float* ones;       // objective: n ones

  EVOZERO_HD const FlatInstr& instr(int32_t i) const {
    return reinterpret_cast<const FlatInstr*>(prog + c->off_instr)[i];
  }
  EVOZERO_HD const FlatReg& reg(int32_t r) const {
    return reinterpret_cast<const FlatReg*>(prog + c->off_regs)[r];
  }
  EVOZERO_HD float* slot(int32_t s) const { return slots + std::size_t(s) * stride; }
  EVOZERO_HD const float* ptr(int32_t r) const {
    const FlatReg& g = reg(r);
    if (g.scalar) return sval + r;
    if (r < c->ni && g.slot < 0) return inputs[r];
    return slot(g.slot);
  }
  // Objective: the tangent k of register r (null: structurally zero), as run_objective.
  EVOZERO_HD const float* tangent(int32_t r, int k) const {
    if (r == interp::kObjectiveLogp) return k == 0 ? ones : nullptr;
    if (r == interp::kObjectiveRatio) return k == 0 ? ratio : nullptr;
    if (r == interp::kObjectiveV) return k == 1 ? ones : nullptr;
    if (r == interp::kObjectiveEntropy) return k == 2 ? ones : nullptr;
    const int32_t s = reg(r).tslot[k];
    return s >= 0 ? slot(s) : nullptr;
  }
};

// Instruction i on elements [offset, offset + n) of its vector operands (run_instr).
// `scratch`: 2 doubles shared by the block.
template <class Blk>
EVOZERO_HD void run_instr(const Blk& blk, const InterpFrame& f, int32_t i, std::size_t n,
                          std::size_t offset, double* scratch) {
  const FlatInstr& in = f.instr(i);
  const int arity = in.arity;
  const float* a[3] = {nullptr, nullptr, nullptr};
  bool sc[3] = {true, true, true};
  for (int j = 0; j < arity; ++j) {
    sc[j] = f.reg(in.src[j]).scalar != 0;
    a[j] = f.ptr(in.src[j]) + (sc[j] ? 0 : offset);
  }
  const FlatReg& dreg = f.reg(in.dst);
  if (in.batch) {  // post only, whole batch
    float* out = dreg.scalar ? f.sval + in.dst : f.slot(dreg.slot);
    if (sc[0]) {
      if (blk.tid() == 0) {
        const float s = a[0][0];
        const float sd = std::isfinite(s) ? 0.0f : float(NAN);
        if (in.op == interp::kMean) *out = s;
        else if (in.op == interp::kStd) *out = sd;
        else *out = (a[0][0] - s) / (sd + interp::kNormEps);
      }
      blk.sync();
      return;
    }
    if (blk.tid() == 0) {
      interp::ExactSum s;
      for (std::size_t k = 0; k < n; ++k) s.add(double(a[0][k]));
      const double m = n ? s.result() / double(n) : 0.0;
      double sd = 0.0;
      if (in.op != interp::kMean && n) {
        interp::ExactSum q;
        for (std::size_t k = 0; k < n; ++k) {
          const double d = double(a[0][k]) - m;
          q.add(d * d);
        }
        sd = double(float(std::sqrt(q.result() / double(n))));
      }
      scratch[0] = m, scratch[1] = sd;
      if (in.op == interp::kMean) *out = float(m);
      else if (in.op == interp::kStd) *out = float(sd);
    }
    blk.sync();
    if (in.op == interp::kNormalize) {
      const float m = float(scratch[0]), den = float(scratch[1]) + interp::kNormEps;
      for (std::size_t k = blk.tid(); k < n; k += blk.size()) out[k] = (a[0][k] - m) / den;
    }
    blk.sync();
    return;
  }
  if (dreg.scalar) {
    if (blk.tid() == 0) f.sval[in.dst] = eval_op(in.op, a[0] ? a[0][0] : 0.f,
                                                 a[1] ? a[1][0] : 0.f, a[2] ? a[2][0] : 0.f);
    blk.sync();
    return;
  }
  float* out = f.slot(dreg.slot) + offset;
  const std::size_t inc[3] = {sc[0] ? 0u : 1u, sc[1] ? 0u : 1u, sc[2] ? 0u : 1u};
  if (!dreg.tmask) {
    for (std::size_t k = blk.tid(); k < n; k += blk.size())
      out[k] = eval_op(in.op, a[0] ? a[0][k * inc[0]] : 0.f, a[1] ? a[1][k * inc[1]] : 0.f,
                       a[2] ? a[2][k * inc[2]] : 0.f);
    blk.sync();
    return;
  }
  // Value and partials, then each tangent: partial * tangent over the arguments with a
  // (structurally) nonzero tangent, summed left to right (kernels::tangent).
  const float* t[3][3];
  float* tout[3];
  for (int k = 0; k < 3; ++k) {
    tout[k] = (dreg.tmask & (1 << k)) ? f.slot(dreg.tslot[k]) : nullptr;
    for (int j = 0; j < arity; ++j) t[k][j] = f.tangent(in.src[j], k);
  }
  for (std::size_t e = blk.tid(); e < n; e += blk.size()) {
    float d[3] = {0.f, 0.f, 0.f};
    out[e] = eval_op_d(in.op, a[0] ? a[0][e * inc[0]] : 0.f, a[1] ? a[1][e * inc[1]] : 0.f,
                       a[2] ? a[2][e * inc[2]] : 0.f, d);
    for (int k = 0; k < 3; ++k) {
      if (!tout[k]) continue;
      float acc = 0.f;
      int used = 0;
      for (int j = 0; j < arity; ++j) {
        if (!t[k][j]) continue;
        const float term = d[j] * t[k][j][e];
        acc = used == 0 ? term : acc + term;
        ++used;
      }
      tout[k][e] = acc;
    }
  }
  blk.sync();
}

// Copies (or fills with a scalar) n floats of register r to dst, block-wide.
template <class Blk>
EVOZERO_HD void copy_reg(const Blk& blk, const InterpFrame& f, int32_t r, std::size_t n,
                         float* dst) {
  const float* src = f.ptr(r);
  const bool scalar = f.reg(r).scalar != 0;
  for (std::size_t k = blk.tid(); k < n; k += blk.size()) dst[k] = scalar ? src[0] : src[k];
}

// Sets the scalar registers' initial values (constants) and progress; block-wide.
template <class Blk>
EVOZERO_HD void bind(const Blk& blk, const InterpFrame& f, const float* sval0, float progress) {
  for (int32_t r = blk.tid(); r < f.c->num_regs; r += blk.size())
    f.sval[r] = r == f.c->progress_reg ? progress : sval0[r];
  blk.sync();
}

// An agent's program and its interpreter workspace: the three components' scalar
// registers, then the slots (the largest component's num_slots * stride).
struct AgentProgram {
  const int32_t* ints;    // kFlatHeaderInts then the arrays
  const float* floats;    // initial register values (FlatComponent::off_sval)
  float* ws;

  EVOZERO_HD const FlatComponent& comp(int k) const {
    return reinterpret_cast<const FlatComponent*>(ints)[k];
  }
  EVOZERO_HD InterpFrame frame(int k, std::size_t stride) const {
    InterpFrame f{};
    f.c = &comp(k);
    f.prog = ints;
    std::size_t at = 0;
    for (int j = 0; j < k; ++j) at += std::size_t(comp(j).num_regs);
    f.sval = ws + at;
    std::size_t regs = 0;
    for (int j = 0; j < 3; ++j) regs += std::size_t(comp(j).num_regs);
    f.slots = ws + align16(regs);
    f.stride = stride;
    return f;
  }
  EVOZERO_HD const int32_t* list(int32_t off) const { return ints + off; }
};

// The workspace floats an agent's program needs for rollouts of tb and minibatches of n.
inline std::size_t workspace_floats(const FlatComponent* c, std::size_t tb, std::size_t n) {
  std::size_t regs = 0, slots = 0;
  for (int k = 0; k < 3; ++k) {
    regs += std::size_t(c[k].num_regs);
    const std::size_t need = std::size_t(c[k].num_slots) * (k == 2 ? n : tb);
    slots = need > slots ? need : slots;
  }
  return align16(regs) + slots;
}

// Interpreter::run_scan, block-wide: adv and vtarget (T, B) from the rollout arrays.
template <class Blk>
EVOZERO_HD void run_scan(const Blk& blk, const AgentProgram& ap, std::size_t T, std::size_t B,
                         const float* const in[7], float progress, float* adv, float* vtarget,
                         double* scratch) {
  const std::size_t n = T * B;
  InterpFrame f = ap.frame(interp::kScan, n);
  for (int j = 0; j < 7; ++j) f.inputs[j] = in[j];
  f.inputs[7] = nullptr;
  bind(blk, f, ap.floats + f.c->off_sval, progress);
  const FlatComponent& c = *f.c;
  for (int32_t k = 0; k < c.n_order; ++k) run_instr(blk, f, ap.list(c.off_order)[k], n, 0, scratch);
  const int nc = c.num_carries, ni = c.ni;
  const int32_t* outputs = ap.list(c.off_outputs);
  const int32_t* carry_init = ap.list(c.off_carry_init);
  if (nc > 0 || c.n_step > 0) {
    for (std::size_t t = T; t-- > 0;) {
      for (int k = 0; k < nc; ++k) {  // each carry's value from t + 1
        float* dst = f.slot(f.reg(ni + k).slot) + t * B;
        const int32_t r = outputs[interp::kNumFixedOutputs[interp::kScan] + k];
        for (std::size_t b = blk.tid(); b < B; b += blk.size()) {
          if (t == T - 1)
            dst[b] = carry_init[k] == interp::kInitVNext ? in[interp::kScanVNext][t * B + b] : 0.0f;
          else
            dst[b] = f.reg(r).scalar ? f.ptr(r)[0] : f.ptr(r)[(t + 1) * B + b];
        }
      }
      blk.sync();
      for (int32_t k = 0; k < c.n_step; ++k)
        run_instr(blk, f, ap.list(c.off_step)[k], B, t * B, scratch);
    }
  }
  for (int32_t k = 0; k < c.n_after; ++k) run_instr(blk, f, ap.list(c.off_after)[k], n, 0, scratch);
  copy_reg(blk, f, outputs[0], n, adv);
  copy_reg(blk, f, outputs[1], n, vtarget);
  blk.sync();
}

// Interpreter::run_post, block-wide, in place over adv and vtarget (n = T * B).
template <class Blk>
EVOZERO_HD void run_post(const Blk& blk, const AgentProgram& ap, std::size_t n, float* adv,
                         float* vtarget, const float* v, const float* r, float progress,
                         double* scratch) {
  InterpFrame f = ap.frame(interp::kPost, n);
  f.inputs[interp::kPostAdv] = adv, f.inputs[interp::kPostVtarget] = vtarget;
  f.inputs[interp::kPostV] = v, f.inputs[interp::kPostR] = r;
  f.inputs[interp::kPostProgress] = nullptr;
  bind(blk, f, ap.floats + f.c->off_sval, progress);
  const FlatComponent& c = *f.c;
  for (int32_t k = 0; k < c.n_order; ++k) run_instr(blk, f, ap.list(c.off_order)[k], n, 0, scratch);
  // adv first: it may be an input only the adv output reads (run_post).
  const int32_t* outputs = ap.list(c.off_outputs);
  copy_reg(blk, f, outputs[0], n, adv);
  blk.sync();
  copy_reg(blk, f, outputs[1], n, vtarget);
  blk.sync();
}

// Interpreter::run_objective, block-wide: loss and its three derivatives (n each).
template <class Blk>
EVOZERO_HD void run_objective(const Blk& blk, const AgentProgram& ap, std::size_t n,
                              const float* const in[7], float progress, float* const out[4],
                              double* scratch) {
  InterpFrame f = ap.frame(interp::kObjective, n);
  // inputs in ObjectiveInputs order: logp, logp_old, adv, v, v_old, vtarget, entropy
  f.inputs[interp::kObjectiveLogp] = in[0], f.inputs[interp::kObjectiveLogpOld] = in[1];
  f.inputs[interp::kObjectiveRatio] = nullptr;
  f.inputs[interp::kObjectiveAdv] = in[2], f.inputs[interp::kObjectiveV] = in[3];
  f.inputs[interp::kObjectiveVOld] = in[4], f.inputs[interp::kObjectiveVtarget] = in[5];
  f.inputs[interp::kObjectiveEntropy] = in[6], f.inputs[interp::kObjectiveProgress] = nullptr;
  float* ratio = f.slot(0);  // the fixed slots of interpreter.cpp: ratio, ones
  float* ones = f.slot(1);
  f.ratio = ratio, f.ones = ones;
  bind(blk, f, ap.floats + f.c->off_sval, progress);
  const FlatComponent& c = *f.c;
  for (std::size_t k = blk.tid(); k < n; k += blk.size()) {
    if (c.reads_ratio) ratio[k] = std::exp(in[0][k] - in[1][k]);
    ones[k] = 1.0f;
  }
  blk.sync();
  for (int32_t k = 0; k < c.n_order; ++k) run_instr(blk, f, ap.list(c.off_order)[k], n, 0, scratch);
  const int32_t r = ap.list(c.off_outputs)[0];
  copy_reg(blk, f, r, n, out[0]);
  for (int k = 0; k < 3; ++k) {
    const float* t = f.reg(r).scalar ? nullptr : f.tangent(r, k);
    for (std::size_t e = blk.tid(); e < n; e += blk.size()) out[k + 1][e] = t ? t[e] : 0.0f;
  }
  blk.sync();
}

}  // namespace evozero::population
