// The population trainer on a CUDA device: one thread block per agent for its whole
// training run, running the block code of population/agent.hpp (the code the host path
// of evozero.train_many runs with one thread). Plain C++ interface (no CUDA types) for
// the pybind11 layer (module.cpp); train_many.cu is built by nvcc.
#pragma once

#include <cstdint>
#include <vector>

#include "population/spec.hpp"

namespace evozero::cuda {

// A packed population (evozero._core's Population.arrays()).
struct PopulationInput {
  population::PopConfig config{};
  std::vector<float> bias_correction;
  std::vector<int32_t> program_ints;
  std::vector<float> program_floats;
  std::vector<int64_t> program_int_offset, program_float_offset, ws_floats, arena_bytes;
  std::vector<int32_t> agent_program;
  std::vector<uint64_t> agent_seed;
  std::vector<float> params0;  // (agents, params)
};

// Per agent, row-major: info (kNumInfo), episode returns and end steps
// (episode_capacity), update stats (updates, kNumUpdateStats), final parameters.
struct PopulationOutput {
  std::vector<int64_t> info;
  std::vector<float> episode_returns;
  std::vector<int64_t> episode_end_steps;
  std::vector<float> update_stats;
  std::vector<float> params;
};

// Trains every agent on the current device in one launch (block_threads threads per
// agent) and copies the results back once. Throws std::runtime_error on a CUDA error.
PopulationOutput train_many(const PopulationInput& in, int block_threads);

}  // namespace evozero::cuda
