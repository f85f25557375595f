// evozero._cuda: the CUDA envs and op kernels for Python (built only with EVOZERO_CUDA=1;
// see setup.py). Host compiler code: it sees the device code only through vec_env.hpp
// and ops.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/arrays.hpp"
#include "cuda/dlpack.hpp"
#include "cuda/ops.hpp"
#include "cuda/vec_env.hpp"

namespace py = pybind11;
using evozero::bindings::checked;

namespace {

using evozero::cuda::DeviceVecEnv;

uint8_t* bool_out(py::array& a, py::ssize_t size, const char* name) {
  return reinterpret_cast<uint8_t*>(checked<bool>(a, size, name));
}

namespace dl = evozero::cuda::dlpack;

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
