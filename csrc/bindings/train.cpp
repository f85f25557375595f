// Training runs: one call trains an agent with a compiled program, on native MinAtar
// or on a Python (gymnasium) env (evozero.native.train).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings/module.hpp"
#include "bindings/py_interpreter.hpp"
#include "bindings/train_config.hpp"
#include "trainer/network.hpp"
#include "trainer/program_rule.hpp"
#include "trainer/train_env.hpp"
#include "trainer/trainer.hpp"

namespace evozero::bindings {

namespace {

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

// The networks' tensors in torch names and shapes, and the size of their flat array
// (ActorCritic's layout: the actor's network, then the critic's; mlp.hpp, conv.hpp).
struct NetworkLayout {
  std::vector<trainer::TensorSpec> specs;
  std::size_t size = 0;
};

NetworkLayout network_layout(const trainer::TrainEnv& env, const trainer::TrainConfig& config) {
  const trainer::NetworkKind kind = trainer::network_kind(config.network);
  const auto actor = trainer::make_network(kind, env.obs_size(), config.hidden, env.num_actions(), 0);
  const auto critic = trainer::make_network(kind, env.obs_size(), config.hidden, 1, actor->size());
  NetworkLayout l{actor->tensors("actor"), critic->offset() + critic->size()};
  for (auto& s : critic->tensors("critic")) l.specs.push_back(std::move(s));
  return l;
}

py::dict named(const std::vector<trainer::TensorSpec>& specs, const std::vector<float>& flat) {
  py::dict d;
  for (const auto& s : specs) {
    std::vector<py::ssize_t> shape(s.shape.begin(), s.shape.end());
    py::array_t<float> a(shape);
    trainer::read_tensor(s, flat.data(), a.mutable_data());
    d[py::str(s.name)] = a;
  }
  return d;
}

template <class T>
py::array_t<T> shaped(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// The refinement hooks from {"initial_parameters": {name: array}, "checkpoints": [u, ...],
// "stop_after_checkpoints": bool} (every key optional).
trainer::TrainHooks hooks_from(const py::dict& d, const NetworkLayout& layout) {
  trainer::TrainHooks h;
  if (d.contains("initial_parameters")) {
    const py::dict params = d["initial_parameters"].cast<py::dict>();
    h.initial_parameters.assign(layout.size, 0.f);
    for (const auto& s : layout.specs) {
      if (!params.contains(s.name))
        throw py::value_error("initial_parameters lack '" + s.name + "'");
      auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(
          params[py::str(s.name)]);
      if (!a || std::size_t(a.size()) != s.numel())
        throw py::value_error("initial_parameters['" + s.name + "'] has the wrong size");
      trainer::write_tensor(s, a.data(), h.initial_parameters.data());
    }
  }
  if (d.contains("checkpoints")) {
    for (auto u : d["checkpoints"]) h.checkpoint_updates.push_back(u.cast<int64_t>());
    if (!std::is_sorted(h.checkpoint_updates.begin(), h.checkpoint_updates.end()) ||
        std::adjacent_find(h.checkpoint_updates.begin(), h.checkpoint_updates.end()) !=
            h.checkpoint_updates.end())
      throw py::value_error("checkpoints must be distinct update indices in ascending order");
  }
  if (d.contains("stop_after_checkpoints"))
    h.stop_after_checkpoints = d["stop_after_checkpoints"].cast<bool>();
  return h;
}

py::list checkpoints_out(const std::vector<trainer::Checkpoint>& cps,
                         const std::vector<trainer::TensorSpec>& specs, int obs_size, int T,
                         int B) {
  py::list out;
  for (const auto& c : cps) {
    py::dict d;
    d["update"] = c.update;
    d["progress"] = c.progress;
    d["lr"] = c.lr;
    d["params_before"] = named(specs, c.params_before);
    d["params_after"] = named(specs, c.params_after);
    d["adam_m"] = named(specs, c.adam_m);
    d["adam_v"] = named(specs, c.adam_v);
    d["adam_count"] = c.adam_count;
    d["obs"] = shaped(c.obs, {T + 1, B, obs_size});
    const std::pair<const char*, const std::vector<float>*> rows[] = {
        {"r", &c.r},       {"term", &c.term}, {"reset", &c.reset},     {"v", &c.v},
        {"v_next", &c.v_next}, {"logp", &c.logp}, {"entropy", &c.entropy}, {"adv", &c.adv},
        {"vtarget", &c.vtarget}};
    for (const auto& [name, v] : rows) d[name] = shaped(*v, {T, B});
    d["actions"] = shaped(c.actions, {T, B});
    d["perms"] = shaped(c.perms, {py::ssize_t(c.perms.size()) / (py::ssize_t(T) * B),
                                  py::ssize_t(T) * B});
    out.append(d);
  }
  return out;
}

py::dict run_training(trainer::TrainEnv& env, PyInterpreter& program, const py::dict& options,
                      uint64_t seed, trainer::TrainProgress& progress,
                      const py::object& hooks_dict) {
  const trainer::TrainConfig config = train_config_from(options);
  if (env.num_envs() * int64_t(config.num_steps) % config.num_minibatches)
    throw py::value_error("num_minibatches must divide num_envs * num_steps");
  trainer::ProgramRule rule(program.impl.program());  // its own interpreter: runs can overlap
  trainer::TrainResult r;
  NetworkLayout layout;
  trainer::TrainHooks hooks;
  const bool hooked = !hooks_dict.is_none();
  if (hooked) {
    layout = network_layout(env, config);
    hooks = hooks_from(hooks_dict.cast<py::dict>(), layout);
  }
  {
    py::gil_scoped_release release;
    r = trainer::train(env, rule, config, seed, &progress, hooked ? &hooks : nullptr);
  }
  py::dict out;
  if (hooked)
    out["checkpoints"] =
        checkpoints_out(r.checkpoints, layout.specs, env.obs_size(), config.num_steps, env.num_envs());
  out["update_stats"] = shaped(r.update_stats,
                               {py::ssize_t(r.update_stats.size() / trainer::kNumUpdateStats),
                                trainer::kNumUpdateStats});
  out["episode_returns"] = py::array_t<float>(r.episode_returns.size(), r.episode_returns.data());
  out["episode_end_steps"] =
      py::array_t<int64_t>(r.episode_end_steps.size(), r.episode_end_steps.data());
  out["status"] = trainer::status_name(r.status);
  out["message"] = r.message;
  out["steps"] = r.steps;
  out["seconds"] = r.seconds;
  return out;
}

}  // namespace

// The trainer's settings from the dict evozero.train passes: every field of
// trainer::TrainConfig by name, nothing else (the defaults are evozero.TrainConfig's).
trainer::TrainConfig train_config_from(const py::dict& d) {
  trainer::TrainConfig c{};
  std::vector<std::string> names;
  c.for_each_field([&](const char* name, auto& field) {
    if (!d.contains(name))
      throw py::value_error(std::string("train options lack '") + name +
                            "' (pass every field of evozero.TrainConfig)");
    field = d[name].cast<std::decay_t<decltype(field)>>();
    names.emplace_back(name);
  });
  for (const auto& item : d) {
    const std::string key = py::str(item.first);
    if (std::find(names.begin(), names.end(), key) == names.end())
      throw py::value_error("train options have an unknown field '" + key + "'");
  }
  if (c.total_steps < 1 || c.num_steps < 1 || c.update_epochs < 1 || c.num_minibatches < 1 ||
      c.hidden < 1)
    throw py::value_error("train options must be positive (see evozero.TrainConfig)");
  try {
    trainer::network_kind(c.network);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string("train options: ") + e.what());
  }
  return c;
}

void bind_train(py::module_& m, py::module_& testing) {
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
         trainer::TrainProgress& progress, const py::object& hooks) {
        trainer::MinAtarTrainEnv env(game, num_envs, {sticky, ramping, minimal, max_steps});
        return run_training(env, program, options, seed, progress, hooks);
      },
      py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
      py::arg("difficulty_ramping"), py::arg("minimal_action_set"), py::arg("max_episode_steps"),
      py::arg("program"), py::arg("options"), py::arg("seed"), py::arg("progress"),
      py::arg("hooks") = py::none(),
      "One training run on native MinAtar (see evozero.train).");

  m.def(
      "train_python_env",
      [](py::object reset, py::object step, int num_envs, int obs_size, int num_actions,
         PyInterpreter& program, const py::dict& options, uint64_t seed,
         trainer::TrainProgress& progress, const py::object& hooks) {
        if (num_envs < 1 || obs_size < 1 || num_actions < 1)
          throw py::value_error("num_envs, obs_size and num_actions must be positive");
        PyTrainEnv env(std::move(reset), std::move(step), num_envs, obs_size, num_actions);
        return run_training(env, program, options, seed, progress, hooks);
      },
      py::arg("reset"), py::arg("step"), py::arg("num_envs"), py::arg("obs_size"),
      py::arg("num_actions"), py::arg("program"), py::arg("options"), py::arg("seed"),
      py::arg("progress"), py::arg("hooks") = py::none(), "One training run on a Python (gymnasium) env (see evozero.train).");

  // Test-only: the names train_config_from reads (tests/test_train.py compares them with
  // evozero.TrainConfig's fields).
  py::list fields;
  trainer::TrainConfig{}.for_each_field([&](const char* name, auto&) { fields.append(name); });
  testing.attr("TRAIN_CONFIG_FIELDS") = py::tuple(fields);
}

}  // namespace evozero::bindings
