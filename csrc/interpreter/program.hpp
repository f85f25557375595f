// A compiled update program: the flat form the interpreter runs (built by
// evozero.compile.compile_program from a Program; see its docstring).
//
// Per component, registers are numbered
//   [0, n_inputs)                  the component's inputs, in program.INPUTS order
//   [.., + n_carries)              scan only: each carry's value from step t+1
//   [.., + consts.size())          named constants and literals (scalars, values given)
//   [.., + code.size())            instruction i writes register first_temp() + i
// and an instruction reads only registers numbered below its own (SSA, straight line).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "generated/ops.hpp"
#include "generated/slots.hpp"

namespace evozero::interp {

// Kind, the input slots (kNumInputs, kScanVNext, ...), kNumFixedOutputs, kMaxCarries and
// CarryInit are generated from the Python vocabulary (generated/slots.hpp), the op table
// from ops.py (generated/ops.hpp).
static_assert(kMaxArity == 3, "the interpreter and its kernels take up to 3 arguments");

struct Instr {
  int32_t op;      // opcode: index into kOps (the order of ops.OPS)
  int32_t dst;     // = first_temp() + index
  int32_t src[3];  // registers; -1 past the op's arity
};

struct Component {
  Kind kind = kScan;
  std::vector<Instr> code;
  std::vector<float> consts;        // values of the constant registers
  std::vector<int32_t> outputs;     // register of each output (fixed outputs, then carries)
  std::vector<int32_t> carry_init;  // scan: CarryInit of each carry; empty otherwise

  int num_carries() const { return int(carry_init.size()); }
  int first_const() const { return kNumInputs[kind] + num_carries(); }
  int first_temp() const { return first_const() + int(consts.size()); }
  int num_regs() const { return first_temp() + int(code.size()); }
  // Throws std::invalid_argument naming the first problem (bad opcode, op not allowed
  // in this component, register out of range or not yet defined, wrong output count, a
  // post output that is neither its own input nor computed...).
  void validate() const;
};

struct CompiledProgram {
  Component scan{kScan, {}, {}, {}, {}};
  Component post{kPost, {}, {}, {}, {}};
  Component objective{kObjective, {}, {}, {}, {}};
  void validate() const {
    scan.validate();
    post.validate();
    objective.validate();
  }
};

}  // namespace evozero::interp
