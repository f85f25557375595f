// The population trainer's kernel: block b trains agent b from start to end with the
// block code of population/agent.hpp (DeviceBlock: its threads, __syncthreads). Inputs
// are copied to the device once, results copied back once.
#include "cuda/train_many.hpp"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "population/agent.hpp"
#include "population/block.hpp"
#include "population/games.hpp"

namespace evozero::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

// Device copies of host vectors, freed at the end of the call.
class Scratch {
 public:
  ~Scratch() {
    for (void* p : owned_) cudaFree(p);
  }
  template <class T>
  T* upload(const std::vector<T>& v) {
    T* p = alloc<T>(v.size());
    if (!v.empty())
      check(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
    return p;
  }
  template <class T>
  T* alloc(std::size_t n) {
    void* p = nullptr;
    check(cudaMalloc(&p, n * sizeof(T) + 16), "cudaMalloc");
    owned_.push_back(p);
    check(cudaMemset(p, 0, n * sizeof(T) + 16), "cudaMemset");
    return static_cast<T*>(p);
  }

 private:
  std::vector<void*> owned_;
};

struct Device {
  const population::PopConfig* config;
  const float* bias_correction;
  const int32_t* program_ints;
  const float* program_floats;
  const int64_t *int_offset, *float_offset, *ws_floats, *arena_offset;
  const int32_t* agent_program;
  const uint64_t* agent_seed;
  const float* params0;
  char* arena;
  int64_t* info;
  float* returns;
  int64_t* end_steps;
  float* stats;
  float* params;
};

template <class Game>
__global__ void train_kernel(Device d, int agents) {
  const int a = blockIdx.x;
  if (a >= agents) return;
  const population::PopConfig& c = *d.config;
  const int32_t prog = d.agent_program[a];
  const std::size_t cap = std::size_t(c.episode_capacity), P = std::size_t(c.params);
  population::AgentTask task{d.config,
                             d.agent_seed[a],
                             d.params0 + a * P,
                             d.bias_correction,
                             d.program_ints + d.int_offset[prog],
                             d.program_floats + d.float_offset[prog],
                             std::size_t(d.ws_floats[prog]),
                             d.arena + d.arena_offset[a],
                             {d.info + a * population::kNumInfo, d.returns + a * cap,
                              d.end_steps + a * cap,
                              d.stats + a * std::size_t(c.updates) * trainer::kNumUpdateStats,
                              d.params + a * P}};
  population::run_agent<Game>(population::DeviceBlock{}, task);
}

}  // namespace

PopulationOutput train_many(const PopulationInput& in, int block_threads) {
  const population::PopConfig& c = in.config;
  const std::size_t agents = in.agent_seed.size();
  const std::size_t cap = std::size_t(c.episode_capacity), P = std::size_t(c.params);
  const std::size_t stats = std::size_t(c.updates) * trainer::kNumUpdateStats;
  PopulationOutput out;
  out.info.resize(agents * population::kNumInfo);
  out.episode_returns.resize(agents * cap);
  out.episode_end_steps.resize(agents * cap);
  out.update_stats.resize(agents * stats);
  out.params.resize(agents * P);
  if (agents == 0) return out;
  std::vector<int64_t> arena_offset(agents);
  std::size_t total = 0;
  for (std::size_t a = 0; a < agents; ++a) {
    arena_offset[a] = int64_t(total);
    total += population::align16(std::size_t(in.arena_bytes[in.agent_program[a]])) + 256;
  }
  Scratch s;
  const std::vector<population::PopConfig> config{c};
  Device d{s.upload(config),
           s.upload(in.bias_correction),
           s.upload(in.program_ints),
           s.upload(in.program_floats),
           s.upload(in.program_int_offset),
           s.upload(in.program_float_offset),
           s.upload(in.ws_floats),
           s.upload(arena_offset),
           s.upload(in.agent_program),
           s.upload(in.agent_seed),
           s.upload(in.params0),
           s.alloc<char>(total),
           s.alloc<int64_t>(out.info.size()),
           s.alloc<float>(out.episode_returns.size()),
           s.alloc<int64_t>(out.episode_end_steps.size()),
           s.alloc<float>(out.update_stats.size()),
           s.alloc<float>(out.params.size())};
  population::with_game(c.game, [&](auto tag) {
    using Game = typename decltype(tag)::type;
    train_kernel<Game><<<unsigned(agents), unsigned(block_threads)>>>(d, int(agents));
    return 0;
  });
  check(cudaGetLastError(), "train_many kernel launch");
  check(cudaDeviceSynchronize(), "train_many kernel");
  auto down = [](auto& v, const auto* p) {
    if (!v.empty())
      check(cudaMemcpy(v.data(), p, v.size() * sizeof(v[0]), cudaMemcpyDeviceToHost),
            "cudaMemcpy (results)");
  };
  down(out.info, d.info);
  down(out.episode_returns, d.returns);
  down(out.episode_end_steps, d.end_steps);
  down(out.update_stats, d.stats);
  down(out.params, d.params);
  return out;
}

}  // namespace evozero::cuda
