// An update program as the trainer's UpdateRule: the interpreter runs each component.
#pragma once
#include <utility>

#include "interpreter/interpreter.hpp"
#include "trainer/trainer.hpp"

namespace evozero::trainer {

class ProgramRule final : public UpdateRule {
 public:
  explicit ProgramRule(interp::CompiledProgram program) : interp_(std::move(program)) {}

  void scan(const ScanInputs& in, float progress, float* adv, float* vtarget) override {
    interp_.run_scan(in.T, in.B,
                     {in.r, in.term, in.reset, in.v, in.v_next, in.logp, in.entropy}, progress,
                     {adv, vtarget});
  }

  void post(float* adv, float* vtarget, const float* v, const float* r, int64_t n,
            float progress) override {
    interp_.run_post(static_cast<std::size_t>(n), {adv, vtarget, v, r}, progress,
                     {adv, vtarget});
  }

  void objective(const ObjectiveInputs& in, float progress,
                 const ObjectiveOutputs& out) override {
    interp_.run_objective(static_cast<std::size_t>(in.n),
                          {in.logp, in.logp_old, in.adv, in.v, in.v_old, in.vtarget, in.entropy},
                          progress, {out.loss, out.d_logp, out.d_v, out.d_entropy});
  }

 private:
  interp::Interpreter interp_;
};

}  // namespace evozero::trainer
