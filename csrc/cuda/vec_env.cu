// The CUDA envs: one thread per env runs the CPU envs' own step (minatar/env_step.hpp and
// the games' EVOZERO_HD members), so the two are bit-exact by construction; tests/
// test_cuda.py checks it on a GPU.
#include "cuda/vec_env.hpp"

#include <cuda_runtime.h>

#include <stdexcept>

#include "minatar/asterix.hpp"
#include "minatar/breakout.hpp"
#include "minatar/freeway.hpp"
#include "minatar/seaquest.hpp"
#include "minatar/space_invaders.hpp"

namespace evozero::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

// A device array of n T, freed with the env.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) {
    check(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T) + 1), "cudaMalloc");
    check(cudaMemset(p_, 0, n * sizeof(T)), "cudaMemset");
  }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

constexpr int kThreads = 128;

template <class Game>
__device__ void zero_obs(uint8_t* obs) {
  for (int j = 0; j < 100 * Game::kChannels; ++j) obs[j] = 0;
}

template <class Game>
__global__ void reset_kernel(int n, Game* games, RandomState* rngs, int64_t* steps,
                             const uint32_t* seeds, uint8_t* obs) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (seeds) rngs[i].seed_with(seeds[i]);
  minatar::restart_env(games[i], rngs[i], steps[i]);
  uint8_t* o = obs + static_cast<std::size_t>(i) * 100 * Game::kChannels;
  zero_obs<Game>(o);
  games[i].render(o);
}

template <class Game>
__global__ void step_kernel(int n, Game* games, RandomState* rngs, int* last_action,
                            int64_t* steps, const int* action_set, const int64_t* actions,
                            minatar::EnvOptions options, uint8_t* obs, float* reward,
                            uint8_t* terminated, uint8_t* truncated, uint8_t* final_obs) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  constexpr std::size_t size = 100 * Game::kChannels;
  Game& g = games[i];
  RandomState& rng = rngs[i];
  uint8_t* fin = final_obs + i * size;
  zero_obs<Game>(fin);
  if (minatar::advance_env(g, rng, last_action[i], steps[i], action_set[actions[i]], options,
                           reward[i], terminated[i], truncated[i])) {
    g.render(fin);
    minatar::restart_env(g, rng, steps[i]);
  }
  uint8_t* o = obs + i * size;
  zero_obs<Game>(o);
  g.render(o);
}

template <class Game>
class GameDeviceVecEnv final : public DeviceVecEnv {
 public:
  GameDeviceVecEnv(int n, const minatar::EnvOptions& options)
      : n_(n),
        options_(options),
        games_(n),
        rngs_(n),
        last_action_(n),
        steps_(n),
        action_set_(kNumActions),
        actions_(n),
        seeds_(n),
        obs_(std::size_t(n) * obs_size()),
        final_obs_(std::size_t(n) * obs_size()),
        reward_(n),
        terminated_(n),
        truncated_(n) {
    if (options.minimal_action_set)
      set_.assign(Game::kMinimalActions.begin(), Game::kMinimalActions.end());
    else
      for (int a = 0; a < minatar::kNumActions; ++a) set_.push_back(a);
    // The games start as the host constructs them (trivially copyable state).
    check(cudaGetDevice(&device_), "cudaGetDevice");
    const std::vector<Game> host(n, Game(options.difficulty_ramping));
    check(cudaMemcpy(games_.get(), host.data(), n * sizeof(Game), cudaMemcpyHostToDevice),
          "cudaMemcpy (games)");
    check(cudaMemcpy(action_set_.get(), set_.data(), set_.size() * sizeof(int),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy (action set)");
  }

  int num_envs() const override { return n_; }
  int channels() const override { return Game::kChannels; }
  std::vector<int> action_set() const override { return set_; }
  std::vector<std::string> channel_names() const override {
    return {Game::kChannelNames.begin(), Game::kChannelNames.end()};
  }

  void reset(const uint32_t* seeds) override {
    claim();
    check(cudaMemcpy(seeds_.get(), seeds, n_ * sizeof(uint32_t), cudaMemcpyHostToDevice),
          "cudaMemcpy (seeds)");
    launch_reset(seeds_.get());
  }
  void restart() override {
    claim();
    launch_reset(nullptr);
  }

  void step(const int64_t* actions) override {
    claim();
    check(cudaMemcpy(actions_.get(), actions, n_ * sizeof(int64_t), cudaMemcpyHostToDevice),
          "cudaMemcpy (actions)");
    step_kernel<Game><<<blocks(), kThreads>>>(n_, games_.get(), rngs_.get(), last_action_.get(),
                                              steps_.get(), action_set_.get(), actions_.get(),
                                              options_, obs_.get(), reward_.get(),
                                              terminated_.get(), truncated_.get(),
                                              final_obs_.get());
    check(cudaGetLastError(), "step kernel launch");
    check(cudaDeviceSynchronize(), "step kernel");
  }

  int device() const override { return device_; }
  uint8_t* obs() override { return obs_.get(); }
  uint8_t* final_obs() override { return final_obs_.get(); }
  float* reward() override { return reward_.get(); }
  uint8_t* terminated() override { return terminated_.get(); }
  uint8_t* truncated() override { return truncated_.get(); }

  void copy_out(uint8_t* obs, float* reward, uint8_t* terminated, uint8_t* truncated,
                uint8_t* final_obs) override {
    check(cudaSetDevice(device_), "cudaSetDevice");
    const std::size_t rows = std::size_t(n_) * obs_size();
    if (obs) check(cudaMemcpy(obs, obs_.get(), rows, cudaMemcpyDeviceToHost), "copy obs");
    if (final_obs)
      check(cudaMemcpy(final_obs, final_obs_.get(), rows, cudaMemcpyDeviceToHost),
            "copy final_obs");
    if (reward)
      check(cudaMemcpy(reward, reward_.get(), n_ * sizeof(float), cudaMemcpyDeviceToHost),
            "copy reward");
    if (terminated)
      check(cudaMemcpy(terminated, terminated_.get(), n_, cudaMemcpyDeviceToHost),
            "copy terminated");
    if (truncated)
      check(cudaMemcpy(truncated, truncated_.get(), n_, cudaMemcpyDeviceToHost),
            "copy truncated");
  }

 private:
  static constexpr int kNumActions = minatar::kNumActions;

  int blocks() const { return (n_ + kThreads - 1) / kThreads; }

  // Before overwriting the outputs: make the envs' device current (the caller may have
  // switched) and let every pending reader of the last outputs finish (DLPack
  // consumers may read them on streams of their own).
  void claim() {
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaDeviceSynchronize(), "waiting for the readers of the last outputs");
  }

  void launch_reset(const uint32_t* seeds) {
    reset_kernel<Game><<<blocks(), kThreads>>>(n_, games_.get(), rngs_.get(), steps_.get(),
                                               seeds, obs_.get());
    check(cudaGetLastError(), "reset kernel launch");
    check(cudaDeviceSynchronize(), "reset kernel");
  }

  int n_;
  int device_ = 0;
  minatar::EnvOptions options_;
  std::vector<int> set_;
  DeviceArray<Game> games_;
  DeviceArray<RandomState> rngs_;
  DeviceArray<int> last_action_;  // not reset by reset(), as the reference
  DeviceArray<int64_t> steps_;
  DeviceArray<int> action_set_;
  DeviceArray<int64_t> actions_;
  DeviceArray<uint32_t> seeds_;
  DeviceArray<uint8_t> obs_, final_obs_;
  DeviceArray<float> reward_;
  DeviceArray<uint8_t> terminated_, truncated_;
};

template <class Game>
std::unique_ptr<DeviceVecEnv> make(int n, const minatar::EnvOptions& o) {
  return std::make_unique<GameDeviceVecEnv<Game>>(n, o);
}

}  // namespace

void copy_to_host(const void* device_data, void* host, std::size_t bytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemcpy(host, device_data, bytes, cudaMemcpyDeviceToHost), "copy to host");
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device";
  return n;
}

std::unique_ptr<DeviceVecEnv> make_device_vec_env(const std::string& game, int num_envs,
                                                  const minatar::EnvOptions& options) {
  if (num_envs < 1)
    throw std::invalid_argument("num_envs must be at least 1, got " + std::to_string(num_envs));
  using namespace minatar;
  if (game == Asterix::kName) return make<Asterix>(num_envs, options);
  if (game == Breakout::kName) return make<Breakout>(num_envs, options);
  if (game == Freeway::kName) return make<Freeway>(num_envs, options);
  if (game == Seaquest::kName) return make<Seaquest>(num_envs, options);
  if (game == SpaceInvaders::kName) return make<SpaceInvaders>(num_envs, options);
  throw std::invalid_argument("unknown game '" + game + "'");
}

}  // namespace evozero::cuda
