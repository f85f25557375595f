// The bindings of evozero._core, one file per component of the core. Each is a thin
// layer: check buffers (arrays.hpp), release the GIL, call the core. What only tests and
// benchmarks reach goes into the submodule `testing` (evozero._core.testing).
#pragma once

#include <pybind11/pybind11.h>

namespace evozero::bindings {

namespace py = pybind11;

void bind_minatar(py::module_& m);                                // minatar.cpp
void bind_interpreter(py::module_& m, py::module_& testing);      // interpreter.cpp
void bind_train(py::module_& m, py::module_& testing);            // train.cpp
void bind_networks(py::module_& testing);                         // networks.cpp
void bind_random_state(py::module_& testing);                     // random_state.cpp
void bind_population(py::module_& m);                             // population.cpp

}  // namespace evozero::bindings
