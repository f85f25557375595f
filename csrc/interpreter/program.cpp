#include "interpreter/program.hpp"

#include <stdexcept>
#include <string>

namespace evozero::interp {

namespace {

[[noreturn]] void fail(Kind kind, const std::string& what) {
  throw std::invalid_argument(std::string("compiled ") + kKindNames[kind] + ": " + what);
}

}  // namespace

void Component::validate() const {
  if (kind < 0 || kind >= kNumKinds) throw std::invalid_argument("bad component kind");
  if (kind != kScan && !carry_init.empty()) fail(kind, "only scan has carries");
  if (carry_init.size() > std::size_t(kMaxCarries))
    fail(kind, std::to_string(carry_init.size()) + " carries (at most " +
                   std::to_string(kMaxCarries) + ")");
  for (std::size_t c = 0; c < carry_init.size(); ++c)
    if (carry_init[c] != kInitZero && carry_init[c] != kInitVNext)
      fail(kind, "carry " + std::to_string(c) + " has init code " + std::to_string(carry_init[c]) +
                     " (0: zero, 1: v_next)");
  if (code.size() + consts.size() > std::size_t(1) << 30) fail(kind, "program too large");
  const std::size_t want = std::size_t(kNumFixedOutputs[kind]) + carry_init.size();
  if (outputs.size() != want)
    fail(kind, std::to_string(outputs.size()) + " outputs, expected " + std::to_string(want));
  const int32_t base = first_temp();
  for (std::size_t i = 0; i < code.size(); ++i) {
    const Instr& in = code[i];
    const std::string where = "instruction " + std::to_string(i);
    if (in.op < 0 || in.op >= kNumOps) fail(kind, where + " has bad opcode " + std::to_string(in.op));
    const OpInfo& info = kOps[in.op];
    if (!(info.components & (1u << kind))) {
      std::string allowed;
      for (int k = 0; k < kNumKinds; ++k)
        if (info.components & (1u << k))
          allowed += (allowed.empty() ? "" : ", ") + std::string(kKindNames[k]);
      fail(kind, where + ": op '" + info.name + "' is only allowed in " + allowed);
    }
    if (in.dst != base + int32_t(i))
      fail(kind, where + " writes register " + std::to_string(in.dst) + ", expected " +
                     std::to_string(base + int32_t(i)));
    for (int j = 0; j < 3; ++j) {
      const int32_t s = in.src[j];
      if (j < info.arity) {
        if (s < 0 || s >= in.dst)
          fail(kind, where + " (" + info.name + ") reads register " + std::to_string(s) +
                         ", not defined before it");
      } else if (s != -1) {
        fail(kind, where + " (" + info.name + ") has argument " + std::to_string(j) +
                       " past its arity (must be -1)");
      }
    }
  }
  const int32_t n = num_regs();
  for (std::size_t k = 0; k < outputs.size(); ++k)
    if (outputs[k] < 0 || outputs[k] >= n)
      fail(kind, "output " + std::to_string(k) + " is register " + std::to_string(outputs[k]) +
                     ", out of range [0, " + std::to_string(n) + ")");
  // A post output is its own input passed through or computed: so writing the outputs
  // in place over the inputs (the trainer does) never clobbers an input still to be read.
  if (kind == kPost)
    for (int k = 0; k < 2; ++k)
      if (outputs[k] != k && outputs[k] < base)
        fail(kind, "output " + std::to_string(k) + " must be input " + std::to_string(k) +
                       " or an instruction's register, got " + std::to_string(outputs[k]));
}

}  // namespace evozero::interp
