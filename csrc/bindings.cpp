// The one pybind11 file: thin wrappers that check buffers, release the GIL
// and call the pure C++ core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "minatar/random_state.hpp"
#include "minatar/vec_env.hpp"
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
  const char kind = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj).dtype().kind() : 0;
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
    throw py::value_error("indptr must start at 0 and end at len(indices) = " + std::to_string(nnz));
  for (py::ssize_t i = 0; i < a.n; ++i) {
    if (ptr[i + 1] < ptr[i]) throw py::value_error("indptr must be non-decreasing");
    for (int64_t p = ptr[i]; p < ptr[i + 1]; ++p) {
      if (idx[p] < 0 || idx[p] >= obs_size)
        throw py::value_error("index " + std::to_string(idx[p]) + " of sample " + std::to_string(i) +
                              " is out of range [0, " + std::to_string(obs_size) + ")");
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
            ObsArgs o = sparse_obs(indptr, indices, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            py::array_t<float> logp(o.n), v(o.n), h(o.n);
            s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), logp.mutable_data(), v.mutable_data(),
                          h.mutable_data());
            });
            return py::make_tuple(logp, v, h);
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"),
          "(logp, v, entropy) for sparse binary observations in CSR form.")
      .def(
          "forward_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions) {
            ObsArgs o = dense_obs(obs, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            py::array_t<float> logp(o.n), v(o.n), h(o.n);
            s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), logp.mutable_data(), v.mutable_data(),
                          h.mutable_data());
            });
            return py::make_tuple(logp, v, h);
          },
          py::arg("obs"), py::arg("actions"), "(logp, v, entropy) for dense float32 observations.")
      .def(
          "gradients_sparse",
          [](PyActorCritic& s, py::handle indptr, py::handle indices, py::handle actions,
             py::handle c_logp, py::handle c_v, py::handle c_h) {
            ObsArgs o = sparse_obs(indptr, indices, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            Coefficients c = coefficients(c_logp, c_v, c_h, o.n);
            std::vector<float> flat = s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), nullptr, nullptr, nullptr);
              net.backward(o.obs, int(o.n), a.data(), c.logp.data(), c.v.data(), c.h.data());
              return std::vector<float>(net.gradients(), net.gradients() + net.num_parameters());
            });
            return tensor_dict(s.net, flat);
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"), py::arg("c_logp"),
          py::arg("c_v"), py::arg("c_h"), "Gradients of L, named like parameters().")
      .def(
          "gradients_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions, py::handle c_logp,
             py::handle c_v, py::handle c_h) {
            ObsArgs o = dense_obs(obs, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            Coefficients c = coefficients(c_logp, c_v, c_h, o.n);
            std::vector<float> flat = s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), nullptr, nullptr, nullptr);
              net.backward(o.obs, int(o.n), a.data(), c.logp.data(), c.v.data(), c.h.data());
              return std::vector<float>(net.gradients(), net.gradients() + net.num_parameters());
            });
            return tensor_dict(s.net, flat);
          },
          py::arg("obs"), py::arg("actions"), py::arg("c_logp"), py::arg("c_v"), py::arg("c_h"))
      .def(
          "step_sparse",
          [](PyActorCritic& s, py::handle indptr, py::handle indices, py::handle actions,
             py::handle c_logp, py::handle c_v, py::handle c_h, float lr, float max_grad_norm) {
            ObsArgs o = sparse_obs(indptr, indices, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            Coefficients c = coefficients(c_logp, c_v, c_h, o.n);
            return s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), nullptr, nullptr, nullptr);
              net.backward(o.obs, int(o.n), a.data(), c.logp.data(), c.v.data(), c.h.data());
              return net.apply_gradients(lr, max_grad_norm);
            });
          },
          py::arg("indptr"), py::arg("indices"), py::arg("actions"), py::arg("c_logp"),
          py::arg("c_v"), py::arg("c_h"), py::arg("lr"), py::arg("max_grad_norm") = 0.5f,
          "Forward, backward, clip and Adam step in one call; returns the gradient norm "
          "before clipping (not finite: nothing was updated).")
      .def(
          "step_dense",
          [](PyActorCritic& s, py::handle obs, py::handle actions, py::handle c_logp,
             py::handle c_v, py::handle c_h, float lr, float max_grad_norm) {
            ObsArgs o = dense_obs(obs, s.net.obs_size());
            auto a = action_array(actions, s.net.num_actions(), o.n);
            Coefficients c = coefficients(c_logp, c_v, c_h, o.n);
            return s.locked([&](ActorCritic& net) {
              net.forward(o.obs, int(o.n), a.data(), nullptr, nullptr, nullptr);
              net.backward(o.obs, int(o.n), a.data(), c.logp.data(), c.v.data(), c.h.data());
              return net.apply_gradients(lr, max_grad_norm);
            });
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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "evozero native core: batched MinAtar games (and, later, the trainer).";
  bind_random_state(m);
  bind_minatar(m);
  bind_trainer(m);
}
