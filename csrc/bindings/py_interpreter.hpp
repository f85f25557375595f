// The Python object of a compiled program's interpreter (bound in interpreter.cpp; the
// training runs of train.cpp take its program).
#pragma once

#include <mutex>
#include <utility>

#include "interpreter/interpreter.hpp"

namespace evozero::bindings {

// An interpreter and a lock: every call releases the GIL, then takes the lock (one
// interpreter's workspace serves one call at a time).
struct PyInterpreter {
  explicit PyInterpreter(interp::CompiledProgram p) : impl(std::move(p)) {}
  interp::Interpreter impl;
  std::mutex mu;
};

}  // namespace evozero::bindings
