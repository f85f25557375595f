// numpy's legacy RandomState as ported for the games (test-only: tests/test_random_state.py).
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/module.hpp"
#include "minatar/random_state.hpp"

namespace evozero::bindings {

void bind_random_state(py::module_& testing) {
  py::class_<RandomState>(testing, "RandomState",
                          "The C++ port of numpy's legacy RandomState (for tests).")
      .def(py::init<uint32_t>(), py::arg("seed"))
      .def("next_u32", &RandomState::next_u32)
      .def("rand", &RandomState::rand)
      .def(
          "randint",
          [](RandomState& r, int64_t lo, int64_t hi) {
            if (hi <= lo || hi - lo > (int64_t(1) << 32))
              throw py::value_error("randint needs lo < hi and hi - lo <= 2**32");
            return r.randint(lo, hi);
          },
          py::arg("lo"), py::arg("hi"));
}

}  // namespace evozero::bindings
