// The program interpreter: runs the three components of a compiled program over whole
// batch arrays, as the trainer needs them (see ARCHITECTURE.md, "The trainer skeleton").
//
//   Interpreter interp(program);                 // validates, plans; throws invalid_argument
//   interp.run_scan(T, B, scan_in, progress, scan_out);      // backwards over t, all envs
//   interp.run_post(T * B, post_in, progress, post_out);     // batch reductions over all
//   interp.run_objective(N, obj_in, progress, obj_out);      // loss and 3 coefficients
//
// Semantics are those of the reference evaluator (src/evozero/evaluate.py) and the op
// table (src/evozero/ops.py): float32 throughout, exact fsum-based batch statistics,
// forward-mode tangents with respect to logp, v and entropy (d ratio / d logp = ratio).
// Non-finite values propagate (the trainer checks the outputs); nothing is undefined.
//
// Planning (once, in the constructor): registers whose operands are all scalars
// (constants, literals, progress) are scalars, computed once per call and broadcast;
// the scan is split into the instructions that do not depend on a carry (run once over
// the whole T x B batch), those the carries' recurrence needs (run per step over B
// envs, backwards) and those that only read carries (run once over the batch after the
// recurrence); in the objective each register knows at compile time which of its three
// tangents can be nonzero, and only those are computed.
//
// Storage is one workspace reused across calls: it grows to the largest batch seen and
// is never allocated again, so steady-state calls allocate nothing. One Interpreter must
// not be used by two threads at once; make one per thread (they are cheap).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "interpreter/program.hpp"

namespace evozero::interp {

// All arrays are contiguous float32. Scan arrays have shape (T, B), row-major (one row
// per time step). Outputs must not overlap inputs, except where noted.
struct ScanInputs {
  const float* r;
  const float* term;
  const float* reset;
  const float* v;
  const float* v_next;
  const float* logp;
  const float* entropy;
};
struct ScanOutputs {
  float* adv;
  float* vtarget;
  float* carries[kMaxCarries] = {};  // optional, (T, B)
};
struct PostInputs {
  const float* adv;
  const float* vtarget;
  const float* v;
  const float* r;
};
struct PostOutputs {  // may be the same arrays as PostInputs::adv / ::vtarget (in place)
  float* adv;
  float* vtarget;
};
struct ObjectiveInputs {  // ratio is computed: exp(logp - logp_old)
  const float* logp;
  const float* logp_old;
  const float* adv;
  const float* v;
  const float* v_old;
  const float* vtarget;
  const float* entropy;
};
struct ObjectiveOutputs {  // each may be null (not wanted)
  float* loss;
  float* dloss_dlogp;
  float* dloss_dv;
  float* dloss_dentropy;
};

class Interpreter {
 public:
  explicit Interpreter(CompiledProgram program);

  const CompiledProgram& program() const { return program_; }
  int num_carries() const { return program_.scan.num_carries(); }

  void run_scan(std::size_t T, std::size_t B, const ScanInputs& in, float progress,
                const ScanOutputs& out);
  void run_post(std::size_t n, const PostInputs& in, float progress, const PostOutputs& out);
  void run_objective(std::size_t n, const ObjectiveInputs& in, float progress,
                     const ObjectiveOutputs& out);

  // The plan of a component (kind: kScan, kPost, kObjective), made in the constructor;
  // the population trainer runs the same plan block-wide (population/interp.hpp).
  struct Plan {
    std::vector<uint8_t> scalar;   // per register: a broadcast scalar
    std::vector<uint8_t> mode;     // per instruction: bit j set if argument j is scalar
    std::vector<int32_t> slot;     // per register: workspace slot of a computed vector, or -1
    std::vector<int32_t> order;    // instructions run once over the batch, in order
    std::vector<int32_t> step;     // scan: instructions run per step (the recurrence)
    std::vector<int32_t> after;    // scan: instructions run after the recurrence
    std::vector<uint8_t> tmask;    // objective: bit k set if tangent k may be nonzero
    std::vector<std::array<int32_t, 3>> tslot;  // objective: workspace slot of tangent k
    std::vector<float> sval;       // per register: value of scalar registers
    int num_slots = 0;
    bool reads_ratio = false;      // objective: whether the ratio must be computed
  };

  const Plan& plan(int kind) const { return plans_[kind]; }

 private:
  void plan_component(const Component& c, Plan& p);
  // Sizes the workspace for vectors of n floats and points every register at its storage.
  void bind(const Component& c, Plan& p, std::size_t n, const float* const* inputs,
            float progress);
  float* slot_ptr(int32_t slot) { return base_ + std::size_t(slot) * stride_; }
  // Runs instruction i on elements [offset, offset + n) of its vector operands.
  void run_instr(const Component& c, Plan& p, int32_t i, std::size_t n, std::size_t offset);
  void run_instr_tangents(const Component& c, Plan& p, int32_t i, std::size_t n);

  CompiledProgram program_;
  Plan plans_[kNumKinds];
  std::vector<float> workspace_;
  float* base_ = nullptr;  // workspace_ rounded up to a cache line
  std::size_t stride_ = 0;  // floats per slot (n rounded up to 16)
  std::vector<const float*> ptr_;                 // per register, for the current call
  std::vector<std::array<const float*, 3>> tptr_;  // objective: tangents (null = zero)
};

}  // namespace evozero::interp
