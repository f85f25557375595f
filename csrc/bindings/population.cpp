// train_many's native side (evozero.native.population): pack a population of agents,
// run it on the host, and hand its arrays to the CUDA extension (evozero._cuda).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/module.hpp"
#include "bindings/py_interpreter.hpp"
#include "bindings/train_config.hpp"
#include "population/pack.hpp"
#include "trainer/mlp.hpp"

namespace evozero::bindings {

namespace {

template <class T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

// The packed population as numpy arrays (what evozero._cuda.train_many reads).
py::dict population_arrays(const population::Population& p) {
  py::dict d;
  py::array_t<uint8_t> config(py::ssize_t(sizeof(population::PopConfig)));
  std::memcpy(config.mutable_data(), &p.config, sizeof p.config);
  d["config"] = config;
  d["bias_correction"] = array_of(p.bias_correction, {py::ssize_t(p.bias_correction.size())});
  d["program_ints"] = array_of(p.program_ints, {py::ssize_t(p.program_ints.size())});
  d["program_floats"] = array_of(p.program_floats, {py::ssize_t(p.program_floats.size())});
  const py::ssize_t np = py::ssize_t(p.program_int_offset.size());
  d["program_int_offset"] = array_of(p.program_int_offset, {np});
  d["program_float_offset"] = array_of(p.program_float_offset, {np});
  d["ws_floats"] = array_of(p.ws_floats, {np});
  std::vector<int64_t> arena(p.program_int_offset.size());
  for (std::size_t k = 0; k < arena.size(); ++k) arena[k] = int64_t(p.arena_bytes(int64_t(k)));
  d["arena_bytes"] = array_of(arena, {np});
  const py::ssize_t na = py::ssize_t(p.agent_seed.size());
  d["agent_program"] = array_of(p.agent_program, {na});
  d["agent_seed"] = array_of(p.agent_seed, {na});
  d["params0"] = array_of(p.params0, {na, py::ssize_t(p.config.params)});
  return d;
}

py::dict results_dict(const population::Results& r, const population::PopConfig& c,
                      std::size_t agents) {
  const py::ssize_t na = py::ssize_t(agents);
  py::dict d;
  d["info"] = array_of(r.info, {na, population::kNumInfo});
  d["episode_returns"] = array_of(r.episode_returns, {na, py::ssize_t(c.episode_capacity)});
  d["episode_end_steps"] = array_of(r.episode_end_steps, {na, py::ssize_t(c.episode_capacity)});
  d["update_stats"] = array_of(r.update_stats, {na, py::ssize_t(c.updates),
                                                py::ssize_t(trainer::kNumUpdateStats)});
  d["params"] = array_of(r.params, {na, py::ssize_t(c.params)});
  d["errors"] = r.errors;
  return d;
}

}  // namespace

void bind_population(py::module_& m) {
  py::class_<population::Population>(m, "Population",
                                     "A packed population of agents (evozero.train_many).")
      .def_property_readonly("num_agents",
                             [](const population::Population& p) { return p.agent_seed.size(); })
      .def("arrays", &population_arrays, "The packed population as numpy arrays.")
      .def(
          "named_parameters",
          [](const population::Population& p, py::array_t<float, py::array::c_style> flat) {
            const population::PopConfig& c = p.config;
            if (flat.size() != c.params) throw py::value_error("flat parameters of the wrong size");
            const trainer::Mlp actor(c.obs_size, c.hidden, c.A, 0);
            const trainer::Mlp critic(c.obs_size, c.hidden, 1, actor.size());
            std::vector<trainer::TensorSpec> specs = actor.tensors("actor");
            for (auto& s : critic.tensors("critic")) specs.push_back(std::move(s));
            py::dict d;
            for (const auto& s : specs) {
              py::array_t<float> a(std::vector<py::ssize_t>(s.shape.begin(), s.shape.end()));
              trainer::read_tensor(s, flat.data(), a.mutable_data());
              d[py::str(s.name)] = a;
            }
            return d;
          },
          py::arg("flat"), "One agent's flat parameters as {torch name: array}.");

  m.def(
      "pack_population",
      [](const std::string& game, int num_envs, double sticky, bool ramping, bool minimal,
         int64_t max_steps, const py::list& programs, const std::vector<int32_t>& agent_program,
         const std::vector<uint64_t>& seeds, const py::dict& options, int64_t episode_capacity,
         int32_t lanes, bool fma) {
        const trainer::TrainConfig config = train_config_from(options);
        std::vector<const interp::Interpreter*> progs;
        for (const auto& p : programs) progs.push_back(&p.cast<PyInterpreter&>().impl);
        try {
          return population::pack(game, num_envs, {sticky, ramping, minimal, max_steps}, config,
                                  progs, agent_program, seeds, episode_capacity, {lanes, fma});
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
      py::arg("difficulty_ramping"), py::arg("minimal_action_set"), py::arg("max_episode_steps"),
      py::arg("programs"), py::arg("agent_program"), py::arg("seeds"), py::arg("options"),
      py::arg("episode_capacity") = 0, py::arg("lanes") = 0, py::arg("fma") = false,
      "Packs agents (program index and seed each) for train_many_host or the CUDA extension. "
      "episode_capacity: episode returns kept per agent (0: the run's steps); lanes, fma: "
      "the MLP's numerics (lanes 0: those of this CPU's kernels, as train()).");

  m.def(
      "train_many_host",
      [](const population::Population& pop, int threads, int block_threads) {
        if (block_threads < 1 || block_threads > 64)
          throw py::value_error("block_threads must be in [1, 64]");
        population::Results r;
        {
          py::gil_scoped_release release;
          r = population::run_host(pop, threads, block_threads);
        }
        return results_dict(r, pop.config, pop.agent_seed.size());
      },
      py::arg("population"), py::arg("threads"), py::arg("block_threads") = 1,
      "Runs every agent of the population on the host (the block code, one thread each; "
      "block_threads > 1, for tests: a block of that many threads per agent, as on a GPU).");

  m.def("population_reason", &population::reason_message, py::arg("reason"),
        "The message of a population run's stop reason.");
}

}  // namespace evozero::bindings
