// The batched MinAtar games (evozero.envs wraps them as gymnasium envs).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "bindings/arrays.hpp"
#include "bindings/module.hpp"
#include "minatar/vec_env.hpp"

namespace evozero::bindings {

namespace {

// A bool array's buffer as the core reads and writes it: uint8 0/1.
uint8_t* bool_buffer(py::array& a, py::ssize_t size, const char* name) {
  return reinterpret_cast<uint8_t*>(checked<bool>(a, size, name));
}

// The observations of all envs.
uint8_t* obs_buffer(py::array& obs, const minatar::VecEnv& e, const char* name = "obs") {
  return bool_buffer(obs, py::ssize_t(e.num_envs()) * e.obs_size(), name);
}

}  // namespace

void bind_minatar(py::module_& m) {
  using minatar::VecEnv;
  m.attr("GAMES") = minatar::game_names();
  m.def(
      "active_cells",
      [](py::array obs) {
        if (obs.ndim() < 2) throw py::value_error("obs must have shape (num_envs, ...)");
        const auto n = obs.shape(0);
        const auto size = n ? obs.size() / n : 0;
        const uint8_t* o = bool_buffer(obs, obs.size(), "obs");
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

  // Every option is required: evozero.envs.MinAtarVecEnv holds the defaults.
  py::class_<VecEnv>(m, "MinAtarVecEnv", "Batched native MinAtar games (see evozero.envs).")
      .def(py::init([](const std::string& game, int num_envs, double sticky, bool ramping,
                       bool minimal, int64_t max_steps) {
             minatar::EnvOptions o{sticky, ramping, minimal, max_steps};
             return minatar::make_vec_env(game, num_envs, o);
           }),
           py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
           py::arg("difficulty_ramping"), py::arg("minimal_action_set"),
           py::arg("max_episode_steps"))
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
            uint8_t* o = obs_buffer(obs, e);
            py::gil_scoped_release release;
            e.reset(s, o);
          },
          py::arg("seeds"), py::arg("obs"))
      .def(
          "step",
          [](VecEnv& e, py::array actions, py::array obs, py::array reward, py::array terminated,
             py::array truncated, py::object final_obs) {
            const py::ssize_t n = e.num_envs();
            const int64_t* a = checked<int64_t>(actions, n, "actions");
            for (py::ssize_t i = 0; i < n; ++i)
              if (a[i] < 0 || a[i] >= e.num_actions())
                throw py::value_error("action " + std::to_string(a[i]) + " of env " +
                                      std::to_string(i) + " is out of range [0, " +
                                      std::to_string(e.num_actions()) + ")");
            minatar::StepOutput out{obs_buffer(obs, e), checked<float>(reward, n, "reward"),
                                    bool_buffer(terminated, n, "terminated"),
                                    bool_buffer(truncated, n, "truncated"), nullptr};
            if (!final_obs.is_none()) {
              py::array f = final_obs.cast<py::array>();
              out.final_obs = obs_buffer(f, e, "final_obs");
            }
            py::gil_scoped_release release;
            e.step(a, out);
          },
          py::arg("actions"), py::arg("obs"), py::arg("reward"), py::arg("terminated"),
          py::arg("truncated"), py::arg("final_obs") = py::none())
      .def(
          "restart",
          [](VecEnv& e, py::array obs) {
            uint8_t* o = obs_buffer(obs, e);
            py::gil_scoped_release release;
            e.restart(o);
          },
          py::arg("obs"))
      .def(
          "observe",
          [](const VecEnv& e, py::array obs) {
            uint8_t* o = obs_buffer(obs, e);
            py::gil_scoped_release release;
            e.observe(o);
          },
          py::arg("obs"));
}

}  // namespace evozero::bindings
