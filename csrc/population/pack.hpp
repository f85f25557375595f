// A population run as host data: the settings, every program in flat form, each
// agent's program, seed and initial parameters (pack), and its results (run_host,
// or the CUDA extension's train_many, from the same data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "interpreter/interpreter.hpp"
#include "minatar/env_step.hpp"
#include "population/spec.hpp"
#include "trainer/trainer.hpp"

namespace evozero::population {

struct Population {
  PopConfig config{};
  std::vector<float> bias_correction;     // (2, adam steps)
  std::vector<int32_t> program_ints;      // every program, concatenated
  std::vector<float> program_floats;
  std::vector<int64_t> program_int_offset, program_float_offset, ws_floats;  // per program
  std::vector<int32_t> agent_program;     // per agent: its program
  std::vector<uint64_t> agent_seed;
  std::vector<float> params0;             // (agents, params)
  std::size_t arena_bytes(int64_t program) const;  // one agent's arena
};

struct Results {  // (agents, ...) row-major
  std::vector<int64_t> info;              // kNumInfo per agent
  std::vector<float> episode_returns;     // episode_capacity per agent
  std::vector<int64_t> episode_end_steps;
  std::vector<float> update_stats;        // updates * kNumUpdateStats per agent
  std::vector<float> params;              // params per agent
  std::vector<std::string> errors;        // per agent: an exception's message, or ""
  void resize(const PopConfig& c, std::size_t agents);
};

// The CPU kernels' dispatch on this machine (trainer/kernels.cpp picks AVX-512, AVX2+FMA
// or the baseline when the library loads; these are the numerics that reproduce it).
void host_numerics(int32_t& lanes, int32_t& fma);

// The numerics of the block code's MLP (PopConfig::lanes, fma); lanes 0: this CPU's.
struct NumericsChoice {
  int32_t lanes = 0;
  int32_t fma = 0;
};

// Throws std::invalid_argument for what the population trainer does not support
// (network "conv"; every config is checked as train()'s bindings do). episode_capacity:
// room for episode returns per agent (0: the run's env steps, which always suffice).
Population pack(const std::string& game, int num_envs, const minatar::EnvOptions& env,
                const trainer::TrainConfig& config,
                const std::vector<const interp::Interpreter*>& programs,
                const std::vector<int32_t>& agent_program, const std::vector<uint64_t>& seeds,
                int64_t episode_capacity = 0, NumericsChoice numerics = {});

// Runs every agent on the host (HostBlock), threads at a time. block_threads > 1 (tests
// only): each agent instead runs on a ThreadsBlock of that many threads, one agent at
// a time (thread_block.hpp).
Results run_host(const Population& pop, int threads, int block_threads = 1);

// The message trainer.cpp gives for a Reason.
const char* reason_message(int reason);

}  // namespace evozero::population
