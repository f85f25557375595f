// evozero._cuda: the CUDA envs and op kernels for Python (built only with EVOZERO_CUDA=1;
// see setup.py). Host compiler code: it sees the device code only through vec_env.hpp
// and ops.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/arrays.hpp"
#include "cuda/dlpack.hpp"
#include "cuda/ops.hpp"
#include "cuda/train_many.hpp"
#include "cuda/vec_env.hpp"

namespace py = pybind11;
using evozero::bindings::checked;

namespace {

using evozero::cuda::DeviceVecEnv;

uint8_t* bool_out(py::array& a, py::ssize_t size, const char* name) {
  return reinterpret_cast<uint8_t*>(checked<bool>(a, size, name));
}

namespace dl = evozero::cuda::dlpack;

// A numpy array of the packed population as a vector of T (its dtype checked).
template <class T>
std::vector<T> vector_of(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::value_error(std::string("population arrays lack '") + key + "'");
  auto a = py::array_t<T, py::array::c_style>::ensure(d[key]);
  if (!a) throw py::value_error(std::string("population array '") + key + "' has the wrong dtype");
  return std::vector<T>(a.data(), a.data() + a.size());
}

template <class T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

// evozero._core's Population.arrays() -> the results of every agent (the keys of
// _core.train_many_host's).
py::dict train_many(const py::dict& arrays, int block_threads) {
  namespace pop = evozero::population;
  if (block_threads < 32 || block_threads > 1024 || block_threads % 32)
    throw py::value_error("block_threads must be a multiple of 32 in [32, 1024]");
  evozero::cuda::PopulationInput in;
  const std::vector<uint8_t> config = vector_of<uint8_t>(arrays, "config");
  if (config.size() != sizeof(pop::PopConfig))
    throw py::value_error("population config of another build (its size differs)");
  std::memcpy(&in.config, config.data(), sizeof in.config);
  in.bias_correction = vector_of<float>(arrays, "bias_correction");
  in.program_ints = vector_of<int32_t>(arrays, "program_ints");
  in.program_floats = vector_of<float>(arrays, "program_floats");
  in.program_int_offset = vector_of<int64_t>(arrays, "program_int_offset");
  in.program_float_offset = vector_of<int64_t>(arrays, "program_float_offset");
  in.ws_floats = vector_of<int64_t>(arrays, "ws_floats");
  in.arena_bytes = vector_of<int64_t>(arrays, "arena_bytes");
  in.agent_program = vector_of<int32_t>(arrays, "agent_program");
  in.agent_seed = vector_of<uint64_t>(arrays, "agent_seed");
  in.params0 = vector_of<float>(arrays, "params0");
  const pop::PopConfig& c = in.config;
  const std::size_t agents = in.agent_seed.size();
  if (in.agent_program.size() != agents || in.params0.size() != agents * std::size_t(c.params))
    throw py::value_error("population arrays of different agent counts");
  for (int32_t p : in.agent_program)
    if (p < 0 || std::size_t(p) >= in.program_int_offset.size())
      throw py::value_error("an agent's program index is out of range");
  evozero::cuda::PopulationOutput out;
  {
    py::gil_scoped_release release;
    out = evozero::cuda::train_many(in, block_threads);
  }
  const py::ssize_t na = py::ssize_t(agents);
  py::dict d;
  d["info"] = array_of(out.info, {na, pop::kNumInfo});
  d["episode_returns"] = array_of(out.episode_returns, {na, py::ssize_t(c.episode_capacity)});
  d["episode_end_steps"] = array_of(out.episode_end_steps, {na, py::ssize_t(c.episode_capacity)});
  d["update_stats"] = array_of(out.update_stats, {na, py::ssize_t(c.updates),
                                                  py::ssize_t(evozero::trainer::kNumUpdateStats)});
  d["params"] = array_of(out.params, {na, py::ssize_t(c.params)});
  d["errors"] = std::vector<std::string>(agents);
  return d;
}

// A view of one of env's device buffers (rows of `row` elements, one per env), kept
// alive by the Python env object.
dl::View env_view(const py::object& self, void* data, std::vector<int64_t> row,
                  dl::DLDataType dtype) {
  const DeviceVecEnv& e = self.cast<const DeviceVecEnv&>();
  row.insert(row.begin(), e.num_envs());
  return dl::View{data, std::move(row), dtype, {dl::kDLCUDA, e.device()}, self};
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "evozero's CUDA kernels: MinAtar envs stepped on the device (see docs/CUDA.md).";
  m.def(
      "device_count",
      [] {
        std::string why;
        const int n = evozero::cuda::device_count(&why);
        return py::make_tuple(n, why);
      },
      "(number of CUDA devices, why there are none: '' when there are)");

  m.def(
      "op_values",
      [](int32_t op, py::array_t<float, py::array::c_style | py::array::forcecast> a,
         py::array_t<float, py::array::c_style | py::array::forcecast> b,
         py::array_t<float, py::array::c_style | py::array::forcecast> c) {
        if (a.size() != b.size() || a.size() != c.size())
          throw py::value_error("a, b and c must have the same size");
        py::array_t<float> out(a.size());
        evozero::cuda::op_values(op, static_cast<int>(a.size()), out.mutable_data(), a.data(),
                                 b.data(), c.data());
        return out;
      },
      py::arg("op"), py::arg("a"), py::arg("b"), py::arg("c"),
      "out[i] = op(a[i], b[i], c[i]) computed on the device by the CPU's op kernels");

  m.def("train_many", &train_many, py::arg("arrays"), py::arg("block_threads") = 256,
        "Trains a packed population (evozero._core.Population.arrays()) on the current device, "
        "one thread block per agent; the results as evozero._core.train_many_host returns them");

  dl::bind(m, "DeviceView");
  m.def(
      "host_view",
      [](py::array_t<float, py::array::c_style> a) {
        std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
        return dl::View{a.mutable_data(), std::move(shape), dl::kFloat32, {dl::kDLCPU, 0}, a};
      },
      py::arg("array").noconvert(),
      "A DeviceView of a float32 C-contiguous host array (the export path of the device "
      "views, testable without a GPU)");
  m.def(
      "to_numpy",
      [](const dl::View& v) {
        if (v.device.device_type != dl::kDLCUDA)
          throw py::value_error("to_numpy reads device views; read host views with numpy");
        const bool is_bool = v.dtype.code == dl::kBool.code;
        py::array out(is_bool ? py::dtype::of<bool>() : py::dtype::of<float>(), v.shape);
        evozero::cuda::copy_to_host(v.data, out.mutable_data(), std::size_t(out.nbytes()),
                                    v.device.device_id);
        return out;
      },
      py::arg("view"),
      "A copy of a device view's data in a new numpy array (tests read the views with it "
      "where no CUDA-enabled consumer such as torch is installed)");

  py::class_<DeviceVecEnv>(m, "MinAtarVecEnv")
      .def(py::init([](const std::string& game, int num_envs, double sticky, bool ramping,
                       bool minimal, int64_t max_steps) {
             evozero::minatar::EnvOptions o{sticky, ramping, minimal, max_steps};
             return evozero::cuda::make_device_vec_env(game, num_envs, o);
           }),
           py::arg("game"), py::arg("num_envs"), py::arg("sticky_action_prob"),
           py::arg("difficulty_ramping"), py::arg("minimal_action_set"),
           py::arg("max_episode_steps"))
      .def_property_readonly("num_envs", &DeviceVecEnv::num_envs)
      .def_property_readonly("channels", &DeviceVecEnv::channels)
      .def_property_readonly("action_set", &DeviceVecEnv::action_set)
      .def_property_readonly("channel_names", &DeviceVecEnv::channel_names)
      .def(
          "reset",
          [](DeviceVecEnv& e, py::array_t<uint32_t, py::array::c_style> seeds, py::array obs) {
            if (seeds.size() != e.num_envs())
              throw py::value_error("seeds must have one entry per env");
            uint8_t* o = bool_out(obs, py::ssize_t(e.num_envs()) * e.obs_size(), "obs");
            e.reset(seeds.data());
            e.copy_out(o, nullptr, nullptr, nullptr, nullptr);
          },
          py::arg("seeds"), py::arg("obs"))
      .def(
          "restart",
          [](DeviceVecEnv& e, py::array obs) {
            uint8_t* o = bool_out(obs, py::ssize_t(e.num_envs()) * e.obs_size(), "obs");
            e.restart();
            e.copy_out(o, nullptr, nullptr, nullptr, nullptr);
          },
          py::arg("obs"))
      .def(
          "step",
          [](DeviceVecEnv& e, py::array_t<int64_t, py::array::c_style> actions, py::array obs,
             py::array_t<float, py::array::c_style> reward, py::array terminated,
             py::array truncated, py::object final_obs) {
            const py::ssize_t n = e.num_envs(), rows = n * e.obs_size();
            if (actions.size() != n) throw py::value_error("actions must have one entry per env");
            uint8_t* o = bool_out(obs, rows, "obs");
            if (reward.size() != n) throw py::value_error("reward must have one entry per env");
            uint8_t* term = bool_out(terminated, n, "terminated");
            uint8_t* trunc = bool_out(truncated, n, "truncated");
            uint8_t* fin = nullptr;
            py::array fin_array;
            if (!final_obs.is_none()) {
              fin_array = final_obs.cast<py::array>();
              fin = bool_out(fin_array, rows, "final_obs");
            }
            {
              py::gil_scoped_release release;
              e.step(actions.data());
              e.copy_out(o, reward.mutable_data(), term, trunc, fin);
            }
          },
          py::arg("actions"), py::arg("obs"), py::arg("reward"), py::arg("terminated"),
          py::arg("truncated"), py::arg("final_obs") = py::none(),
          "One step of every env, in one kernel launch; outputs copied to the host arrays "
          "(final_obs: row i is env i's last observation where it ended, zero elsewhere)")
      .def(
          "step_on_device",
          [](DeviceVecEnv& e, py::array_t<int64_t, py::array::c_style> actions) {
            if (actions.size() != e.num_envs())
              throw py::value_error("actions must have one entry per env");
            py::gil_scoped_release release;
            e.step(actions.data());
          },
          py::arg("actions"), "One step; the outputs stay on the device")
      .def_property_readonly(
          "device_outputs",
          [](const py::object& self) {
            DeviceVecEnv& e = self.cast<DeviceVecEnv&>();
            const int64_t c = e.channels();
            return py::make_tuple(env_view(self, e.obs(), {10, 10, c}, dl::kBool),
                                  env_view(self, e.reward(), {}, dl::kFloat32),
                                  env_view(self, e.terminated(), {}, dl::kBool),
                                  env_view(self, e.truncated(), {}, dl::kBool),
                                  env_view(self, e.final_obs(), {10, 10, c}, dl::kBool));
          },
          "(obs, reward, terminated, truncated, final_obs) of the latest step as DeviceViews "
          "of the device buffers (no copy; overwritten by the next step)");
}
