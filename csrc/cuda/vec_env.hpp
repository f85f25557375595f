// MinAtar envs stepped on a CUDA device: the interface, in plain C++ (no CUDA types), so
// that the pybind11 layer (module.cpp, built by the host compiler) links against the
// kernels (vec_env.cu, built by nvcc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "minatar/env_step.hpp"

namespace evozero::cuda {

// How many CUDA devices the runtime sees; 0 with `why` set when it sees none (no driver,
// no GPU, or a driver older than this build's runtime).
int device_count(std::string* why);

// Copies bytes of device memory (on that device) to host memory.
void copy_to_host(const void* device_data, void* host, std::size_t bytes, int device);

// num_envs envs of one game, their state in device memory, each stepped by one thread
// of one kernel launch per step, with the CPU envs' code (minatar/env_step.hpp).
// Outputs stay on the device; the copy_* calls bring them to host buffers.
class DeviceVecEnv {
 public:
  virtual ~DeviceVecEnv() = default;
  virtual int num_envs() const = 0;
  virtual int channels() const = 0;
  virtual std::vector<int> action_set() const = 0;
  virtual std::vector<std::string> channel_names() const = 0;
  int obs_size() const { return 100 * channels(); }
  // The CUDA device the envs live on (the current device when they were made).
  virtual int device() const = 0;

  // Reseeds env i with seeds[i] (host) and resets it, as VecEnv::reset.
  virtual void reset(const uint32_t* seeds) = 0;
  // Resets every env from its current stream, as VecEnv::restart.
  virtual void restart() = 0;
  // actions (host, indices into the action set, range-checked by the caller).
  // Final observations go to row i for env i (rows of envs that did not end: zero).
  virtual void step(const int64_t* actions) = 0;

  // Device pointers of the latest outputs (num_envs rows each).
  virtual uint8_t* obs() = 0;
  virtual uint8_t* final_obs() = 0;
  virtual float* reward() = 0;
  virtual uint8_t* terminated() = 0;
  virtual uint8_t* truncated() = 0;

  // Copies the latest outputs to host buffers (any may be null).
  virtual void copy_out(uint8_t* obs, float* reward, uint8_t* terminated, uint8_t* truncated,
                        uint8_t* final_obs) = 0;
};

// Throws std::invalid_argument for an unknown game, std::runtime_error naming the CUDA
// error when the device cannot be used.
std::unique_ptr<DeviceVecEnv> make_device_vec_env(const std::string& game, int num_envs,
                                                  const minatar::EnvOptions& options);

}  // namespace evozero::cuda
