// PYBIND11_MODULE of evozero._core: the build's identity and the components' bindings.
#include <pybind11/pybind11.h>

#include "bindings/module.hpp"
#include "generated/digest.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  using namespace evozero::bindings;
  m.doc() = "evozero native core: batched MinAtar games, the program interpreter, the trainer.";
  // Recorded in run stores so that numbers can be traced to the build that made them.
#if defined(__clang__)
  m.attr("COMPILER") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("COMPILER") = "gcc " __VERSION__;
#else
  m.attr("COMPILER") = "unknown";
#endif
  // The digest of the generated tables the core was built from (evozero.native.codegen).
  m.attr("TABLES_DIGEST") = evozero::kTablesDigest;
  py::module_ testing = m.def_submodule(
      "testing",
      "Test-only hooks into the core's internals (kernels, networks, random streams), for\n"
      "tests/ and benchmarks/; not part of evozero's API.");
  bind_minatar(m);
  bind_interpreter(m, testing);
  bind_train(m, testing);
  bind_networks(testing);
  bind_random_state(testing);
  bind_population(m);
}
