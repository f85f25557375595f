// The one pybind11 file: thin wrappers that check buffers, release the GIL
// and call the pure C++ core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "interpreter/interpreter.hpp"
#include "interpreter/kernels.hpp"
#include "minatar/random_state.hpp"
#include "minatar/vec_env.hpp"
#include "trainer/program_rule.hpp"
#include "trainer/train_env.hpp"
#include "trainer/trainer.hpp"
#include "trainer/actor_critic.hpp"

namespace py = pybind11;
using namespace evozero;

namespace {

template <class T>
T* checked(py::array& a, py::ssize_t size, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style) || !a.writeable())
    throw py::value_error(std::string(name) + " must be a writeable C-contiguous " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + " array");
  if (a.size() != size)
    throw py::value_error(std::string(name) + " must have " + std::to_string(size) +
                          " elements, got " + std::to_string(a.size()));
  return static_cast<T*>(a.mutable_data());
}

void bind_random_state(py::module_& m) {
  py::class_<RandomState>(m, "RandomState",
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

void bind_minatar(py::module_& m) {
  using minatar::VecEnv;
  m.attr("GAMES") = minatar::game_names();
  m.def(
      "active_cells",
      [](py::array obs) {
        if (obs.ndim() < 2) throw py::value_error("obs must have shape (num_envs, ...)");
        const auto n = obs.shape(0);
        const auto size = n ? obs.size() / n : 0;
        const uint8_t* o = reinterpret_cast<uint8_t*>(checked<bool>(obs, obs.size(), "obs"));
        py::array_t<int64_t> indptr(n + 1);
        py::array_t<int32_t> indices(obs.size());
        int64_t nnz;
        {
          py::gil_scoped_release release;
          nnz = minatar::active_cells(o, int(n), int(size), indptr.mutable_data(),
                                      indices.mutable_data());
        }
        indices.resize({nnz});
        return py::make_tuple(indptr, indices);
      },
      py::arg("obs"), "CSR indices of the active cells of a batch of observations.");

  py::class_<VecEnv>(m, "MinAtarVecEnv", "Batched native MinAtar games (see evozero.envs).")
      .def(py::init([](const std::string& game, int num_envs, double sticky, bool ramping,
                       bool minimal, int64_t max_steps) {
             minatar::EnvOptions o{sticky, ramping, minimal, max_steps};
             return minatar::make_vec_env(game, num_envs, o);
           }),
           py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob") = 0.1,
           py::arg("difficulty_ramping") = true, py::arg("minimal_action_set") = false,
           py::arg("max_episode_steps") = 0)
      .def_property_readonly("game", &VecEnv::game)
      .def_property_readonly("num_envs", &VecEnv::num_envs)
      .def_property_readonly("channels", &VecEnv::channels)
      .def_property_readonly("num_actions", &VecEnv::num_actions)
      .def_property_readonly("action_set", &VecEnv::action_set)
      .def_property_readonly("channel_names", &VecEnv::channel_names)
      .def(
          "reset",
          [](VecEnv& e, py::array seeds, py::array obs) {
            const uint32_t* s = checked<uint32_t>(seeds, e.num_envs(), "seeds");
            uint8_t* o = reinterpret_cast<uint8_t*>(
                checked<bool>(obs, py::ssize_t(e.num_envs()) * e.obs_size(), "obs"));
            py::gil_scoped_release release;
            e.reset(s, o);
          },
          py::arg("seeds"), py::arg("obs"))
      .def(
          "step",
          [](VecEnv& e, py::array actions, py::array obs, py::array reward, py::array terminated,
             py::array truncated, py::object final_obs) {
            const py::ssize_t n = e.num_envs(), size = py::ssize_t(n) * e.obs_size();
            const int64_t* a = checked<int64_t>(actions, n, "actions");
            for (py::ssize_t i = 0; i < n; ++i)
              if (a[i] < 0 || a[i] >= e.num_actions())
                throw py::value_error("action " + std::to_string(a[i]) + " of env " +
                                      std::to_string(i) + " is out of range [0, " +
                                      std::to_string(e.num_actions()) + ")");
            minatar::StepOutput out{reinterpret_cast<uint8_t*>(checked<bool>(obs, size, "obs")),
                                    checked<float>(reward, n, "reward"),
                                    reinterpret_cast<uint8_t*>(checked<bool>(terminated, n, "terminated")),
                                    reinterpret_cast<uint8_t*>(checked<bool>(truncated, n, "truncated")),
                                    nullptr};
            if (!final_obs.is_none()) {
              py::array f = final_obs.cast<py::array>();
              out.final_obs = reinterpret_cast<uint8_t*>(checked<bool>(f, size, "final_obs"));
            }
            py::gil_scoped_release release;
            e.step(a, out);
          },
          py::arg("actions"), py::arg("obs"), py::arg("reward"), py::arg("terminated"),
          py::arg("truncated"), py::arg("final_obs") = py::none())
      .def(
          "restart",
          [](VecEnv& e, py::array obs) {
            uint8_t* o = reinterpret_cast<uint8_t*>(
                checked<bool>(obs, py::ssize_t(e.num_envs()) * e.obs_size(), "obs"));
            py::gil_scoped_release release;
            e.restart(o);
          },
          py::arg("obs"))
      .def(
          "observe",
          [](const VecEnv& e, py::array obs) {
            uint8_t* o = reinterpret_cast<uint8_t*>(
                checked<bool>(obs, py::ssize_t(e.num_envs()) * e.obs_size(), "obs"));
            py::gil_scoped_release release;
            e.observe(o);
          },
          py::arg("obs"));
}

// ---- interpreter ------------------------------------------------------------

// A compiled program's interpreter and a lock: every call releases the GIL, then
// takes the lock (one interpreter's workspace serves one call at a time).
struct PyInterpreter {
  explicit PyInterpreter(interp::CompiledProgram p) : impl(std::move(p)) {}
  interp::Interpreter impl;
  std::mutex mu;
};

// a as a C-contiguous array of exactly dtype T (no conversion), else ValueError.
template <class T>
py::array_t<T> exact_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::value_error(std::string(name) + " must be a numpy array of dtype " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                          py::str(py::type::handle_of(obj)).cast<std::string>() +
                          (py::isinstance<py::array>(obj)
                               ? " of dtype " +
                                     py::str(obj.cast<py::array>().dtype()).cast<std::string>()
                               : std::string()));
  auto a = obj.cast<py::array_t<T>>();
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return a;
}

interp::Component component_from_arrays(interp::Kind kind, const py::handle& code_obj,
                                        const py::handle& consts_obj,
                                        const py::handle& outputs_obj,
                                        const py::handle& carry_init_obj) {
  const std::string k = interp::kKindNames[kind];
  auto code = exact_array<int32_t>(code_obj, (k + "_code").c_str());
  auto consts = exact_array<float>(consts_obj, (k + "_consts").c_str());
  auto outputs = exact_array<int32_t>(outputs_obj, (k + "_outputs").c_str());
  if (code.ndim() != 2 || code.shape(1) != 5)
    throw py::value_error(k + "_code must have shape (n, 5): opcode, dst, src0, src1, src2");
  if (consts.ndim() != 1) throw py::value_error(k + "_consts must be 1-D");
  if (outputs.ndim() != 1) throw py::value_error(k + "_outputs must be 1-D");
  interp::Component c;
  c.kind = kind;
  const int32_t* cd = code.data();
  for (py::ssize_t i = 0; i < code.shape(0); ++i, cd += 5)
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

// Read-only float32 inputs of one call, all of the first one's shape.
struct Float32Inputs {
  std::vector<py::array_t<float>> arrays;
  std::vector<py::ssize_t> shape;

  const float* add(const py::handle& obj, const char* name) {
    auto a = exact_array<float>(obj, name);
    std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
    if (arrays.empty()) {
      shape = s;
      first = name;
    } else if (s != shape) {
      auto str = [](const std::vector<py::ssize_t>& v) {
        std::string r;
        for (auto x : v) r += (r.empty() ? "" : ", ") + std::to_string(x);
        return "(" + r + (v.size() == 1 ? ",)" : ")");
      };
      throw py::value_error(std::string(name) + " has shape " + str(s) + ", expected " +
                            str(shape) + " like " + first);
    }
    arrays.push_back(a);
    return a.data();
  }
  py::ssize_t size() const {
    py::ssize_t n = 1;
    for (auto x : shape) n *= x;
    return n;
  }
  py::array_t<float> empty() const { return py::array_t<float>(shape); }
  std::string first;
};

void bind_interpreter(py::module_& m) {
  using interp::Interpreter;
  py::list names, arity, batch;
  for (const auto& op : interp::kOps) {
    names.append(op.name);
    arity.append(op.arity);
    batch.append(op.batch);
  }
  m.attr("OP_NAMES") = py::tuple(names);
  m.attr("OP_ARITY") = py::tuple(arity);
  m.attr("OP_BATCH") = py::tuple(batch);
  py::dict inputs;
  inputs["scan"] = py::tuple(py::cast(std::vector<std::string>(std::begin(interp::kScanInputs),
                                                                std::end(interp::kScanInputs))));
  inputs["post"] = py::tuple(py::cast(std::vector<std::string>(std::begin(interp::kPostInputs),
                                                                std::end(interp::kPostInputs))));
  inputs["objective"] = py::tuple(py::cast(std::vector<std::string>(
      std::begin(interp::kObjectiveInputs), std::end(interp::kObjectiveInputs))));
  m.attr("INTERPRETER_INPUTS") = inputs;
  m.attr("MAX_CARRIES") = interp::kMaxCarries;

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

  m.def(
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
  m.def(
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
  m.def(
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

// ---- trainer ----------------------------------------------------------------

// The network and a lock: every call releases the GIL, then takes the lock.
struct PyActorCritic {
  PyActorCritic(int obs_size, int num_actions, int hidden, uint64_t seed)
      : net(obs_size, num_actions, hidden, seed) {}
  trainer::ActorCritic net;
  std::mutex mutex;

  template <class F>
  auto locked(F&& f) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex);
    return f(net);
  }
};

// obj as a C-contiguous array of exactly dtype T with ndim dimensions.
template <class T>
py::array_t<T, py::array::c_style> typed_array(const py::handle& obj, const char* name, int ndim) {
  const std::string type = py::str(py::dtype::of<T>());
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::value_error(std::string(name) + " must be a numpy " + type + " array");
  auto a = py::array_t<T, py::array::c_style>::ensure(obj);
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimension(s), got " + std::to_string(a.ndim()));
  return a;
}

py::array_t<int64_t, py::array::c_style> action_array(const py::handle& obj, int num_actions,
                                                      py::ssize_t n) {
  const char kind =
      py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj).dtype().kind() : 0;
  if (kind != 'i' && kind != 'u') throw py::value_error("actions must be a numpy integer array");
  auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error("actions must have shape (" + std::to_string(n) + ",)");
  const int64_t* p = a.data();
  for (py::ssize_t i = 0; i < n; ++i)
    if (p[i] < 0 || p[i] >= num_actions)
      throw py::value_error("action " + std::to_string(p[i]) + " of sample " + std::to_string(i) +
                            " is out of range [0, " + std::to_string(num_actions) + ")");
  return a;
}

// The observations of one call, kept alive (and contiguous) for its duration.
struct ObsArgs {
  py::array_t<int64_t, py::array::c_style> indptr;
  py::array_t<int32_t, py::array::c_style> indices;
  py::array_t<float, py::array::c_style> dense;
  trainer::Observations obs;
  py::ssize_t n = 0;
};

ObsArgs sparse_obs(const py::handle& indptr_obj, const py::handle& indices_obj, int obs_size) {
  ObsArgs a;
  a.indptr = typed_array<int64_t>(indptr_obj, "indptr", 1);
  a.indices = typed_array<int32_t>(indices_obj, "indices", 1);
  if (a.indptr.shape(0) < 1) throw py::value_error("indptr must have length n + 1 >= 1");
  a.n = a.indptr.shape(0) - 1;
  if (a.n > std::numeric_limits<int>::max()) throw py::value_error("too many samples");
  const int64_t* ptr = a.indptr.data();
  const int32_t* idx = a.indices.data();
  const int64_t nnz = a.indices.shape(0);
  if (ptr[0] != 0 || ptr[a.n] != nnz)
    throw py::value_error("indptr must start at 0 and end at len(indices) = " +
                          std::to_string(nnz));
  for (py::ssize_t i = 0; i < a.n; ++i) {
    if (ptr[i + 1] < ptr[i]) throw py::value_error("indptr must be non-decreasing");
    for (int64_t p = ptr[i]; p < ptr[i + 1]; ++p) {
      if (idx[p] < 0 || idx[p] >= obs_size)
        throw py::value_error("index " + std::to_string(idx[p]) + " of sample " +
                              std::to_string(i) + " is out of range [0, " +
                              std::to_string(obs_size) + ")");
      if (p > ptr[i] && idx[p] <= idx[p - 1])
        throw py::value_error("the indices of sample " + std::to_string(i) +
                              " must be strictly increasing");
    }
  }
  a.obs.indptr = ptr;
  a.obs.indices = idx;
  return a;
}

ObsArgs dense_obs(const py::handle& obj, int obs_size) {
  ObsArgs a;
  a.dense = typed_array<float>(obj, "obs", 2);
  if (a.dense.shape(1) != obs_size)
    throw py::value_error("obs must have shape (n, " + std::to_string(obs_size) + "), got (" +
                          std::to_string(a.dense.shape(0)) + ", " +
                          std::to_string(a.dense.shape(1)) + ")");
  a.n = a.dense.shape(0);
  if (a.n > std::numeric_limits<int>::max()) throw py::value_error("too many samples");
  a.obs.dense = a.dense.data();
  return a;
}

struct Coefficients {
  py::array_t<float, py::array::c_style> logp, v, h;
};

Coefficients coefficients(const py::handle& c_logp, const py::handle& c_v, const py::handle& c_h,
                          py::ssize_t n) {
  Coefficients c{typed_array<float>(c_logp, "c_logp", 1), typed_array<float>(c_v, "c_v", 1),
                 typed_array<float>(c_h, "c_h", 1)};
  for (auto* a : {&c.logp, &c.v, &c.h})
    if (a->shape(0) != n)
      throw py::value_error("coefficients must have shape (" + std::to_string(n) + ",)");
  return c;
}

py::dict tensor_dict(const trainer::ActorCritic& net, const std::vector<float>& flat) {
  py::dict out;
  for (const auto& s : net.tensors()) {
    py::array_t<float> a(std::vector<py::ssize_t>(s.shape.begin(), s.shape.end()));
    trainer::read_tensor(s, flat.data(), a.mutable_data());
    out[py::str(s.name)] = a;
  }
  return out;
}

// Reads a full set of named tensors (float arrays of the torch shapes) into flat.
void read_tensor_dict(const trainer::ActorCritic& net, const py::dict& d, const char* what,
                      std::vector<float>& flat) {
  const auto specs = net.tensors();
  if (d.size() != specs.size()) {
    std::string names;
    for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
    throw py::value_error(std::string(what) + " must have exactly the keys " + names);
  }
  std::fill(flat.begin(), flat.end(), 0.0f);
  for (const auto& s : specs) {
    if (!d.contains(s.name)) throw py::value_error(std::string(what) + " is missing " + s.name);
    py::object v = d[py::str(s.name)];
    if (!py::isinstance<py::array>(v) || py::reinterpret_borrow<py::array>(v).dtype().kind() != 'f')
      throw py::value_error(s.name + " must be a numpy float array");
    auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(v);
    bool ok = a.ndim() == py::ssize_t(s.shape.size());
    for (std::size_t k = 0; ok && k < s.shape.size(); ++k) ok = a.shape(k) == s.shape[k];
    if (!ok) {
      std::string shape;
      for (int x : s.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(x);
      throw py::value_error(s.name + " must have shape (" + shape + ")");
    }
    trainer::write_tensor(s, a.data(), flat.data());
  }
}

// The sparse and dense methods differ only in how observations are read;
// these do the work for both.
py::tuple ac_forward(PyActorCritic& s, const ObsArgs& o, py::handle actions) {
  auto a = action_array(actions, s.net.num_actions(), o.n);
  py::array_t<float> logp(o.n), v(o.n), h(o.n);
  s.locked([&](trainer::ActorCritic& net) {
    net.forward(o.obs, int(o.n), a.data(), logp.mutable_data(), v.mutable_data(),
                h.mutable_data());
  });
  return py::make_tuple(logp, v, h);
}

// Forward then backward of L on one batch, under the object's lock; f(net) follows.
template <class F>
auto ac_backprop(PyActorCritic& s, const ObsArgs& o, py::handle actions, py::handle c_logp,
                 py::handle c_v, py::handle c_h, F&& f) {
  auto a = action_array(actions, s.net.num_actions(), o.n);
  Coefficients c = coefficients(c_logp, c_v, c_h, o.n);
  return s.locked([&](trainer::ActorCritic& net) {
    net.forward(o.obs, int(o.n), a.data(), nullptr, nullptr, nullptr);
    net.backward(o.obs, int(o.n), a.data(), c.logp.data(), c.v.data(), c.h.data());
    return f(net);
  });
}

py::dict ac_gradients(PyActorCritic& s, const ObsArgs& o, py::handle actions, py::handle c_logp,
                      py::handle c_v, py::handle c_h) {
  std::vector<float> flat = ac_backprop(s, o, actions, c_logp, c_v, c_h, [](trainer::ActorCritic& net) {
    return std::vector<float>(net.gradients(), net.gradients() + net.num_parameters());
  });
  return tensor_dict(s.net, flat);
}

float ac_step(PyActorCritic& s, const ObsArgs& o, py::handle actions, py::handle c_logp,
              py::handle c_v, py::handle c_h, float lr, float max_grad_norm) {
  return ac_backprop(s, o, actions, c_logp, c_v, c_h,
                     [&](trainer::ActorCritic& net) { return net.apply_gradients(lr, max_grad_norm); });
}

void bind_trainer(py::module_& m) {
  using trainer::ActorCritic;
  py::class_<PyActorCritic>(m, "ActorCritic",
                            "Native actor-critic MLPs (see csrc/trainer/actor_critic.hpp).\n"
                            "Gradients are of L = sum_i c_logp[i] logp_i + c_v[i] v_i + c_h[i] "
                            "entropy_i (no averaging).")
      .def(py::init([](int obs_size, int num_actions, int hidden, uint64_t seed) {
             if (obs_size <= 0 || num_actions <= 0 || hidden <= 0)
               throw py::value_error("obs_size, num_actions and hidden must be positive");
             return std::make_unique<PyActorCritic>(obs_size, num_actions, hidden, seed);
           }),
           py::arg("obs_size"), py::arg("num_actions"), py::arg("hidden") = 64,
           py::arg("seed") = 0)
      .def_property_readonly("obs_size", [](PyActorCritic& s) { return s.net.obs_size(); })
      .def_property_readonly("num_actions", [](PyActorCritic& s) { return s.net.num_actions(); })
      .def_property_readonly("hidden", [](PyActorCritic& s) { return s.net.hidden(); })
      .def_property_readonly("adam_count", [](PyActorCritic& s) {
        return s.locked([](ActorCritic& net) { return net.optimizer().count(); });
      })
      .def(
          "parameters",
          [](PyActorCritic& s) {
            std::vector<float> flat = s.locked([](ActorCritic& net) {
              return std::vector<float>(net.parameters(), net.parameters() + net.num_parameters());
            });
            return tensor_dict(s.net, flat);
          },
          "Copies of the parameters, torch names and shapes (Linear weights are (out, in)).")
      .def(
          "set_parameters",
          [](PyActorCritic& s, const py::dict& d) {
            std::vector<float> flat(s.net.num_parameters());
            read_tensor_dict(s.net, d, "parameters", flat);
            s.locked([&](ActorCritic& net) {
              std::copy(flat.begin(), flat.end(), net.mutable_parameters());
              net.parameters_changed();
            });
          },
          py::arg("parameters"))
      .def(
          "forward_sparse",
          [](PyActorCritic& s, py::handle indptr, py::handle indices, py::handle actions) {
            return ac_forward(s, sparse_obs(indptr, indices, s.net.obs_size()), actions);
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"),
          "(logp, v, entropy) for sparse binary observations in CSR form.")
      .def(
          "forward_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions) {
            return ac_forward(s, dense_obs(obs, s.net.obs_size()), actions);
          },
          py::arg("obs"), py::arg("actions"), "(logp, v, entropy) for dense float32 observations.")
      .def(
          "gradients_sparse",
          [](PyActorCritic& s, py::handle indptr, py::handle indices, py::handle actions,
             py::handle c_logp, py::handle c_v, py::handle c_h) {
            return ac_gradients(s, sparse_obs(indptr, indices, s.net.obs_size()), actions,
                                c_logp, c_v, c_h);
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"), py::arg("c_logp"),
          py::arg("c_v"), py::arg("c_h"), "Gradients of L, named like parameters().")
      .def(
          "gradients_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions, py::handle c_logp,
             py::handle c_v, py::handle c_h) {
            return ac_gradients(s, dense_obs(obs, s.net.obs_size()), actions, c_logp, c_v, c_h);
          },
          py::arg("obs"), py::arg("actions"), py::arg("c_logp"), py::arg("c_v"), py::arg("c_h"))
      .def(
          "step_sparse",
          [](PyActorCritic& s, py::handle indptr, py::handle indices, py::handle actions,
             py::handle c_logp, py::handle c_v, py::handle c_h, float lr, float max_grad_norm) {
            return ac_step(s, sparse_obs(indptr, indices, s.net.obs_size()), actions, c_logp,
                           c_v, c_h, lr, max_grad_norm);
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"), py::arg("c_logp"),
          py::arg("c_v"), py::arg("c_h"), py::arg("lr"), py::arg("max_grad_norm") = 0.5f,
          "Forward, backward, clip and Adam step in one call; returns the gradient norm "
          "before clipping (not finite: nothing was updated).")
      .def(
          "step_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions, py::handle c_logp,
             py::handle c_v, py::handle c_h, float lr, float max_grad_norm) {
            return ac_step(s, dense_obs(obs, s.net.obs_size()), actions, c_logp, c_v, c_h, lr,
                           max_grad_norm);
          },
          py::arg("obs"), py::arg("actions"), py::arg("c_logp"), py::arg("c_v"), py::arg("c_h"),
          py::arg("lr"), py::arg("max_grad_norm") = 0.5f)
      .def(
          "adam_step",
          [](PyActorCritic& s, const py::dict& grads, float lr, float max_grad_norm) {
            std::vector<float> flat(s.net.num_parameters());
            read_tensor_dict(s.net, grads, "grads", flat);
            return s.locked([&](ActorCritic& net) {
              std::copy(flat.begin(), flat.end(), net.mutable_gradients());
              return net.apply_gradients(lr, max_grad_norm);
            });
          },
          py::arg("grads"), py::arg("lr"), py::arg("max_grad_norm") = 0.5f,
          "Clip (global norm) and Adam step with the given gradients (named like parameters()); "
          "returns the norm before clipping.");
}


// ---- training runs ----------------------------------------------------------

// A gymnasium vector env driven from C++: each call takes the GIL back and calls
// the Python adapter (evozero.train._GymAdapter); Python errors become C++ errors
// that end the run with status "error".
class PyTrainEnv final : public trainer::TrainEnv {
 public:
  PyTrainEnv(py::object reset, py::object step, int num_envs, int obs_size, int num_actions)
      : reset_(std::move(reset)), step_(std::move(step)), n_(num_envs), size_(obs_size),
        actions_(num_actions) {}
  ~PyTrainEnv() override {
    py::gil_scoped_acquire gil;
    reset_ = py::object();
    step_ = py::object();
  }
  int num_envs() const override { return n_; }
  int obs_size() const override { return size_; }
  int num_actions() const override { return actions_; }
  bool binary() const override { return false; }

  void reset(uint64_t seed, void* obs) override {
    py::gil_scoped_acquire gil;
    try {
      copy_out(reset_(seed), static_cast<float*>(obs), std::size_t(n_) * size_, "obs");
    } catch (py::error_already_set& e) {
      throw std::runtime_error(std::string("env reset failed: ") + e.what());
    }
  }

  void step(const int64_t* actions, void* obs, void* final_obs, float* reward,
            uint8_t* terminated, uint8_t* truncated) override {
    py::gil_scoped_acquire gil;
    try {
      py::array_t<int64_t> a(n_);
      std::copy(actions, actions + n_, a.mutable_data());
      py::tuple out = step_(a);
      const std::size_t o = std::size_t(n_) * size_;
      copy_out(out[0], static_cast<float*>(obs), o, "obs");
      copy_out(out[1], static_cast<float*>(final_obs), o, "final_obs");
      copy_out(out[2], reward, n_, "reward");
      copy_out(out[3], terminated, n_, "terminated");
      copy_out(out[4], truncated, n_, "truncated");
    } catch (py::error_already_set& e) {
      throw std::runtime_error(std::string("env step failed: ") + e.what());
    }
  }

 private:
  template <class T>
  static void copy_out(const py::handle& src, T* dst, std::size_t n, const char* what) {
    using Src = std::conditional_t<std::is_same_v<T, uint8_t>, bool, T>;
    auto a = py::array_t<Src, py::array::c_style | py::array::forcecast>::ensure(src);
    if (!a || std::size_t(a.size()) != n)
      throw std::runtime_error(std::string("env returned a malformed ") + what);
    std::memcpy(dst, a.data(), n * sizeof(T));
  }

  py::object reset_, step_;
  int n_, size_, actions_;
};

trainer::TrainConfig train_config_from(const py::dict& d) {
  trainer::TrainConfig c;
  c.total_steps = d["total_steps"].cast<int64_t>();
  c.num_steps = d["num_steps"].cast<int>();
  c.update_epochs = d["update_epochs"].cast<int>();
  c.num_minibatches = d["num_minibatches"].cast<int>();
  c.lr = d["lr"].cast<float>();
  c.anneal_lr = d["anneal_lr"].cast<bool>();
  c.adam_eps = d["adam_eps"].cast<float>();
  c.max_grad_norm = d["max_grad_norm"].cast<float>();
  c.hidden = d["hidden"].cast<int>();
  if (c.total_steps < 1 || c.num_steps < 1 || c.update_epochs < 1 || c.num_minibatches < 1 ||
      c.hidden < 1)
    throw py::value_error("train options must be positive (see evozero.TrainConfig)");
  return c;
}

py::dict run_training(trainer::TrainEnv& env, PyInterpreter& program, const py::dict& options,
                      uint64_t seed, trainer::TrainProgress& progress) {
  const trainer::TrainConfig config = train_config_from(options);
  if (env.num_envs() * int64_t(config.num_steps) % config.num_minibatches)
    throw py::value_error("num_minibatches must divide num_envs * num_steps");
  trainer::ProgramRule rule(program.impl.program());  // its own interpreter: runs can overlap
  trainer::TrainResult r;
  {
    py::gil_scoped_release release;
    r = trainer::train(env, rule, config, seed, &progress);
  }
  py::dict out;
  out["episode_returns"] = py::array_t<float>(r.episode_returns.size(), r.episode_returns.data());
  out["episode_end_steps"] =
      py::array_t<int64_t>(r.episode_end_steps.size(), r.episode_end_steps.data());
  out["status"] = r.status;
  out["message"] = r.message;
  out["steps"] = r.steps;
  out["seconds"] = r.seconds;
  return out;
}

void bind_train(py::module_& m) {
  py::class_<trainer::TrainProgress>(m, "TrainProgress",
                                     "How far a training run is; lets another thread cancel it.")
      .def(py::init<>())
      .def_property_readonly("steps",
                             [](const trainer::TrainProgress& p) { return p.steps.load(); })
      .def("cancel", [](trainer::TrainProgress& p) { p.cancel.store(true); });

  m.def(
      "train_minatar",
      [](const std::string& game, int num_envs, double sticky, bool ramping, bool minimal,
         int64_t max_steps, PyInterpreter& program, const py::dict& options, uint64_t seed,
         trainer::TrainProgress& progress) {
        trainer::MinAtarTrainEnv env(game, num_envs, {sticky, ramping, minimal, max_steps});
        return run_training(env, program, options, seed, progress);
      },
      py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
      py::arg("difficulty_ramping"), py::arg("minimal_action_set"), py::arg("max_episode_steps"),
      py::arg("program"), py::arg("options"), py::arg("seed"), py::arg("progress"),
      "One training run on native MinAtar (see evozero.train).");

  m.def(
      "train_python_env",
      [](py::object reset, py::object step, int num_envs, int obs_size, int num_actions,
         PyInterpreter& program, const py::dict& options, uint64_t seed,
         trainer::TrainProgress& progress) {
        if (num_envs < 1 || obs_size < 1 || num_actions < 1)
          throw py::value_error("num_envs, obs_size and num_actions must be positive");
        PyTrainEnv env(std::move(reset), std::move(step), num_envs, obs_size, num_actions);
        return run_training(env, program, options, seed, progress);
      },
      py::arg("reset"), py::arg("step"), py::arg("num_envs"), py::arg("obs_size"),
      py::arg("num_actions"), py::arg("program"), py::arg("options"), py::arg("seed"),
      py::arg("progress"), "One training run on a Python (gymnasium) env (see evozero.train).");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "evozero native core: batched MinAtar games, the program interpreter, the trainer.";
  // Recorded in run stores so that numbers can be traced to the build that made them.
#if defined(__clang__)
  m.attr("COMPILER") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("COMPILER") = "gcc " __VERSION__;
#else
  m.attr("COMPILER") = "unknown";
#endif
  bind_random_state(m);
  bind_minatar(m);
  bind_trainer(m);
  bind_interpreter(m);
  bind_train(m);
}
