// The program interpreter: the Interpreter class that runs compiled programs
// (evozero.native.interpreter, evozero.native.train), and test-only hooks into its kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "bindings/arrays.hpp"
#include "bindings/module.hpp"
#include "bindings/py_interpreter.hpp"
#include "interpreter/interpreter.hpp"
#include "interpreter/kernels.hpp"

namespace evozero::bindings {

namespace {

interp::Component component_from_arrays(interp::Kind kind, const py::handle& code_obj,
                                        const py::handle& consts_obj,
                                        const py::handle& outputs_obj,
                                        const py::handle& carry_init_obj) {
  const std::string k = interp::kKindNames[kind];
  auto code = exact_array<int32_t>(code_obj, (k + "_code").c_str());
  auto consts = exact_array<float>(consts_obj, (k + "_consts").c_str());
  auto outputs = exact_array<int32_t>(outputs_obj, (k + "_outputs").c_str());
  if (code.ndim() != 2 || code.shape(1) != interp::kCodeWidth)
    throw py::value_error(k + "_code must have shape (n, 5): opcode, dst, src0, src1, src2");
  if (consts.ndim() != 1) throw py::value_error(k + "_consts must be 1-D");
  if (outputs.ndim() != 1) throw py::value_error(k + "_outputs must be 1-D");
  interp::Component c;
  c.kind = kind;
  const int32_t* cd = code.data();
  for (py::ssize_t i = 0; i < code.shape(0); ++i, cd += interp::kCodeWidth)
    c.code.push_back({cd[0], cd[1], {cd[2], cd[3], cd[4]}});
  c.consts.assign(consts.data(), consts.data() + consts.size());
  c.outputs.assign(outputs.data(), outputs.data() + outputs.size());
  if (!carry_init_obj.is_none()) {
    auto ci = exact_array<int32_t>(carry_init_obj, (k + "_carry_init").c_str());
    if (ci.ndim() != 1) throw py::value_error(k + "_carry_init must be 1-D");
    c.carry_init.assign(ci.data(), ci.data() + ci.size());
  }
  return c;
}

}  // namespace

void bind_interpreter(py::module_& m, py::module_& testing) {
  py::class_<PyInterpreter>(
      m, "Interpreter",
      "The native interpreter of a compiled update program (see evozero.compile and\n"
      "csrc/interpreter/interpreter.hpp). Arrays are taken as they are: int32 and float32,\n"
      "C-contiguous; anything else raises ValueError.")
      .def(py::init([](py::handle scan_code, py::handle scan_consts, py::handle scan_outputs,
                       py::handle scan_carry_init, py::handle post_code, py::handle post_consts,
                       py::handle post_outputs, py::handle objective_code,
                       py::handle objective_consts, py::handle objective_outputs) {
             interp::CompiledProgram p;
             p.scan = component_from_arrays(interp::kScan, scan_code, scan_consts, scan_outputs,
                                            scan_carry_init);
             p.post = component_from_arrays(interp::kPost, post_code, post_consts, post_outputs,
                                            py::none());
             p.objective = component_from_arrays(interp::kObjective, objective_code,
                                                 objective_consts, objective_outputs, py::none());
             try {
               return std::make_unique<PyInterpreter>(std::move(p));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           }),
           py::arg("scan_code"), py::arg("scan_consts"), py::arg("scan_outputs"),
           py::arg("scan_carry_init"), py::arg("post_code"), py::arg("post_consts"),
           py::arg("post_outputs"), py::arg("objective_code"), py::arg("objective_consts"),
           py::arg("objective_outputs"))
      .def_property_readonly("num_carries",
                             [](const PyInterpreter& self) { return self.impl.num_carries(); })
      .def(
          "run_scan",
          [](PyInterpreter& self, py::handle r, py::handle term, py::handle reset, py::handle v,
             py::handle v_next, py::handle logp, py::handle entropy, float progress) {
            Float32Inputs in;
            const interp::ScanInputs si{in.add(r, "r"),         in.add(term, "term"),
                                        in.add(reset, "reset"), in.add(v, "v"),
                                        in.add(v_next, "v_next"), in.add(logp, "logp"),
                                        in.add(entropy, "entropy")};
            if (in.shape.size() != 2) throw py::value_error("scan inputs must have shape (T, B)");
            auto adv = in.empty(), vtarget = in.empty();
            interp::ScanOutputs so{adv.mutable_data(), vtarget.mutable_data()};
            py::list carries;
            for (int k = 0; k < self.impl.num_carries(); ++k) {
              auto a = in.empty();
              so.carries[k] = a.mutable_data();
              carries.append(a);
            }
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(self.mu);
              self.impl.run_scan(std::size_t(in.shape[0]), std::size_t(in.shape[1]), si,
                                 progress, so);
            }
            return py::make_tuple(adv, vtarget, py::tuple(carries));
          },
          py::arg("r"), py::arg("term"), py::arg("reset"), py::arg("v"), py::arg("v_next"),
          py::arg("logp"), py::arg("entropy"), py::arg("progress"),
          "Inputs (T, B) float32; returns (adv, vtarget, (carry values at each t, ...)).")
      .def(
          "run_post",
          [](PyInterpreter& self, py::handle adv, py::handle vtarget, py::handle v, py::handle r,
             float progress, py::object out) {
            Float32Inputs in;
            const interp::PostInputs pi{in.add(adv, "adv"), in.add(vtarget, "vtarget"),
                                        in.add(v, "v"), in.add(r, "r")};
            py::array_t<float> adv_out, vtarget_out;
            if (out.is_none()) {
              adv_out = in.empty(), vtarget_out = in.empty();
            } else {
              auto t = out.cast<py::tuple>();
              if (t.size() != 2) throw py::value_error("out must be (adv, vtarget)");
              Float32Inputs o;
              o.shape = in.shape, o.first = "the inputs", o.arrays.push_back(in.arrays[0]);
              o.add(t[0], "out adv"), o.add(t[1], "out vtarget");
              adv_out = o.arrays[1], vtarget_out = o.arrays[2];
              if (!adv_out.writeable() || !vtarget_out.writeable())
                throw py::value_error("out arrays must be writeable");
            }
            const interp::PostOutputs po{adv_out.mutable_data(), vtarget_out.mutable_data()};
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(self.mu);
              self.impl.run_post(std::size_t(in.size()), pi, progress, po);
            }
            return py::make_tuple(adv_out, vtarget_out);
          },
          py::arg("adv"), py::arg("vtarget"), py::arg("v"), py::arg("r"), py::arg("progress"),
          py::arg("out") = py::none(),
          "Inputs float32 of one shape (the whole rollout); returns (adv, vtarget), written\n"
          "to out=(adv, vtarget) if given (which may be the adv and vtarget inputs: in place).")
      .def(
          "run_objective",
          [](PyInterpreter& self, py::handle logp, py::handle logp_old, py::handle adv,
             py::handle v, py::handle v_old, py::handle vtarget, py::handle entropy,
             float progress) {
            Float32Inputs in;
            const interp::ObjectiveInputs oi{
                in.add(logp, "logp"), in.add(logp_old, "logp_old"), in.add(adv, "adv"),
                in.add(v, "v"),       in.add(v_old, "v_old"),       in.add(vtarget, "vtarget"),
                in.add(entropy, "entropy")};
            auto loss = in.empty(), dlogp = in.empty(), dv = in.empty(), dh = in.empty();
            const interp::ObjectiveOutputs oo{loss.mutable_data(), dlogp.mutable_data(),
                                              dv.mutable_data(), dh.mutable_data()};
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(self.mu);
              self.impl.run_objective(std::size_t(in.size()), oi, progress, oo);
            }
            return py::make_tuple(loss, dlogp, dv, dh);
          },
          py::arg("logp"), py::arg("logp_old"), py::arg("adv"), py::arg("v"), py::arg("v_old"),
          py::arg("vtarget"), py::arg("entropy"), py::arg("progress"),
          "Inputs float32 of one shape (a minibatch); returns (loss, dloss_dlogp, dloss_dv, "
          "dloss_dentropy).");

  // Test-only: the kernels, called directly (tests/test_interpreter.py).
  testing.def(
      "apply_op",
      [](int32_t op, py::args args) {
        if (op < 0 || op >= interp::kNumOps || interp::kOps[op].batch)
          throw py::value_error("apply_op needs an elementwise opcode");
        const int arity = interp::kOps[op].arity;
        if (int(args.size()) != arity)
          throw py::value_error(std::string(interp::kOps[op].name) + " takes " +
                                std::to_string(arity) + " arguments");
        Float32Inputs in;
        const float* a[3] = {nullptr, nullptr, nullptr};
        static const char* arg_names[3] = {"arg0", "arg1", "arg2"};
        for (int j = 0; j < arity; ++j) a[j] = in.add(args[j], arg_names[j]);
        auto out = in.empty();
        py::list partials;
        float* d[3] = {nullptr, nullptr, nullptr};
        for (int j = 0; j < 3; ++j) {
          auto p = in.empty();
          d[j] = p.mutable_data();
          if (j < arity) partials.append(p);
        }
        {
          py::gil_scoped_release release;
          interp::kernels::values_partials(op, 0, std::size_t(in.size()), out.mutable_data(), d,
                                           a[0], a[1], a[2]);
        }
        return py::make_tuple(out, py::tuple(partials));
      },
      py::arg("opcode"),
      "An elementwise op's value and partials on float32 arrays of one shape, computed\n"
      "by the interpreter's kernels (for tests against ops.py): (value, (d0, ...)).");
  testing.def(
      "exp_diff",
      [](py::handle a, py::handle b) {
        Float32Inputs in;
        const float* pa = in.add(a, "a");
        const float* pb = in.add(b, "b");
        auto out = in.empty();
        {
          py::gil_scoped_release release;
          interp::kernels::exp_diff(std::size_t(in.size()), out.mutable_data(), pa, pb);
        }
        return out;
      },
      py::arg("a"), py::arg("b"),
      "exp(a - b) in float32 as the interpreter computes the objective's ratio (for tests).");
  testing.def(
      "fsum",
      [](py::handle x) {
        auto a = exact_array<double>(x, "x");
        const double* p = a.data();
        const auto n = std::size_t(a.size());
        py::gil_scoped_release release;
        return interp::kernels::fsum(n, p);
      },
      py::arg("x"),
      "The interpreter's exact sum of a float64 array: math.fsum's value (for tests; NaN\n"
      "where math.fsum raises on inf - inf).");
}

}  // namespace evozero::bindings
