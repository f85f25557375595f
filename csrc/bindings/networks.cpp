// The actor-critic networks the trainer updates, test-only: the trainer builds its own
// (csrc/trainer/trainer.cpp); tests compare these with PyTorch and benchmarks time them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/arrays.hpp"
#include "bindings/module.hpp"
#include "trainer/actor_critic.hpp"

namespace evozero::bindings {

namespace {

// The network and a lock: every call releases the GIL, then takes the lock.
struct PyActorCritic {
  PyActorCritic(int obs_size, int num_actions, int hidden, const std::string& network,
                uint64_t seed, float adam_eps)
      : net(obs_size, num_actions, hidden, trainer::network_kind(network), seed,
            trainer::AdamConfig{adam_eps}) {}
  trainer::ActorCritic net;
  std::mutex mutex;

  template <class F>
  auto locked(F&& f) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex);
    return f(net);
  }
};

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

}  // namespace

void bind_networks(py::module_& testing) {
  using trainer::ActorCritic;
  py::class_<PyActorCritic>(testing, "ActorCritic",
                            "Native actor-critic networks, 'mlp' or 'conv' (see "
                            "csrc/trainer/actor_critic.hpp).\n"
                            "Gradients are of L = sum_i c_logp[i] logp_i + c_v[i] v_i + c_h[i] "
                            "entropy_i (no averaging).")
      .def(py::init([](int obs_size, int num_actions, int hidden, const std::string& network,
                       uint64_t seed, float adam_eps) {
             if (obs_size <= 0 || num_actions <= 0 || hidden <= 0)
               throw py::value_error("obs_size, num_actions and hidden must be positive");
             return std::make_unique<PyActorCritic>(obs_size, num_actions, hidden, network,
                                                    seed, adam_eps);
           }),
           py::arg("obs_size"), py::arg("num_actions"), py::arg("hidden"), py::arg("network"),
           py::arg("seed"),
           py::arg("adam_eps"))
      .def_property_readonly("obs_size", [](PyActorCritic& s) { return s.net.obs_size(); })
      .def_property_readonly("num_actions", [](PyActorCritic& s) { return s.net.num_actions(); })
      .def_property_readonly("hidden", [](PyActorCritic& s) { return s.net.hidden(); })
      .def_property_readonly(
          "network", [](PyActorCritic& s) { return trainer::network_name(s.net.network()); })
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
          py::arg("c_v"), py::arg("c_h"), py::arg("lr"), py::arg("max_grad_norm"),
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
          py::arg("lr"), py::arg("max_grad_norm"))
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
          py::arg("grads"), py::arg("lr"), py::arg("max_grad_norm"),
          "Clip (global norm) and Adam step with the given gradients (named like parameters()); "
          "returns the norm before clipping.");

  // The conv network's patch index of one batch (csrc/trainer/patches.hpp).
  const auto patch_index = [](const ObsArgs& o, int obs_size) {
    trainer::PatchIndex index(obs_size);
    trainer::FirstLayerInput x;
    if (o.obs.indptr)
      x.sparse = {o.obs.indptr, o.obs.indices, nullptr};
    else
      x.dense = o.obs.dense;
    index.build(x, int(o.n));
    py::array_t<int64_t> first(trainer::PatchIndex::kPositions + 1);
    for (int q = 0; q <= trainer::PatchIndex::kPositions; ++q)
      first.mutable_data()[q] = index.first(q);
    const trainer::kernels::SparseRows rows = index.incidence();
    py::array_t<int64_t> indptr(o.n + 1);
    std::copy(rows.indptr, rows.indptr + o.n + 1, indptr.mutable_data());
    py::array_t<int32_t> indices(rows.indptr[o.n]);
    std::copy(rows.indices, rows.indices + rows.indptr[o.n], indices.mutable_data());
    return py::make_tuple(first, indptr, indices);
  };
  const char* patch_doc =
      "(first, indptr, indices): the batch's unique 3x3 patches, position q's numbered "
      "first[q] .. first[q + 1] - 1, and sample i's, one per active position, "
      "indices[indptr[i] .. indptr[i + 1]] (csrc/trainer/patches.hpp).";
  testing.def(
      "patch_index_sparse",
      [=](py::handle indptr, py::handle indices, int obs_size) {
        return patch_index(sparse_obs(indptr, indices, obs_size), obs_size);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("obs_size"), patch_doc);
  testing.def(
      "patch_index_dense",
      [=](py::handle obs) {
        const auto a = typed_array<float>(obs, "obs", 2);
        return patch_index(dense_obs(obs, int(a.shape(1))), int(a.shape(1)));
      },
      py::arg("obs"), patch_doc);
}

}  // namespace evozero::bindings
