// A batch of independent MinAtar envs stepped in one call.
//
// Each env owns its RandomState, so env i with seed s reproduces the
// reference `Environment` seeded with s and driven by the same actions:
// sticky actions draw first, then the game; resets draw from the same stream.
// Autoreset is gymnasium's SAME_STEP: an env that ends is reset inside the
// step, its last observation goes to `final_obs`.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "minatar/env_step.hpp"

namespace evozero::minatar {

// Per-step outputs, each of length num_envs (obs: num_envs * obs_size).
struct StepOutput {
  uint8_t* obs;
  float* reward;
  uint8_t* terminated;
  uint8_t* truncated;
  uint8_t* final_obs;  // written only for envs that ended this step; may be null
  // Where env i's final observation goes: row i of final_obs, or, packed, row j for the
  // j-th env (in index order) that ended, so that a few endings touch a few rows.
  bool pack_final_obs = false;
};

class VecEnv {
 public:
  virtual ~VecEnv() = default;
  virtual const char* game() const = 0;
  virtual int num_envs() const = 0;
  virtual int channels() const = 0;
  virtual int num_actions() const = 0;  // 6, or the size of the minimal set
  virtual std::vector<int> action_set() const = 0;
  virtual std::vector<std::string> channel_names() const = 0;
  int obs_size() const { return 100 * channels(); }

  // Reseeds env i with seeds[i], resets it and writes its observation.
  virtual void reset(const uint32_t* seeds, uint8_t* obs) = 0;
  // Resets every env from its current stream, as the reference reset().
  virtual void restart(uint8_t* obs) = 0;
  // actions[i] indexes the action set; the caller has range-checked them.
  virtual void step(const int64_t* actions, const StepOutput& out) = 0;
  // Observations of the current states, without stepping.
  virtual void observe(uint8_t* obs) const = 0;
};

// The compact observation: indices (y*10 + x)*C + c of the active cells of
// each env, in CSR form (indptr has num_envs + 1 entries). Returns nnz;
// `indices` must hold num_envs * obs_size entries.
int64_t active_cells(const uint8_t* obs, int num_envs, int obs_size, int64_t* indptr,
                     int32_t* indices);

// Names of the games, in the order `make_vec_env` knows them.
const std::vector<std::string>& game_names();

// Throws std::invalid_argument naming the valid games for an unknown name.
std::unique_ptr<VecEnv> make_vec_env(const std::string& game, int num_envs,
                                     const EnvOptions& options);

}  // namespace evozero::minatar
