// One env's step, the same code for GameVecEnv (CPU) and the CUDA kernel (cuda/).
#pragma once
#include <cstdint>

#include "common/hd.hpp"
#include "minatar/random_state.hpp"

namespace evozero::minatar {

// No defaults here: the Python callers hold them (evozero.envs.MinAtarVecEnv, whose
// defaults are minatar's, and evozero.TrainConfig) and pass every field.
struct EnvOptions {
  double sticky_action_prob;
  bool difficulty_ramping;
  bool minimal_action_set;
  int64_t max_episode_steps;  // 0: no truncation, as the reference
};

// Sticky action (the env's first draw), the game's step, and the end of the episode:
// terminated, or truncated at max_episode_steps. `action` is already mapped through the
// action set. Returns whether the episode ended; the caller then renders the final
// observation if it wants one, and calls restart_env.
template <class Game>
EVOZERO_HD inline bool advance_env(Game& g, RandomState& rng, int& last_action,
                                   int64_t& episode_steps, int action, const EnvOptions& o,
                                   float& reward, uint8_t& terminated, uint8_t& truncated) {
  if (rng.rand() < o.sticky_action_prob) action = last_action;
  last_action = action;
  reward = g.act(action, rng);
  const bool term = g.terminal();
  const bool trunc =
      !term && o.max_episode_steps > 0 && ++episode_steps >= o.max_episode_steps;
  terminated = term;
  truncated = trunc;
  return term || trunc;
}

// The next episode, from the same stream (no reseed): as calling reset() on the reference.
template <class Game>
EVOZERO_HD inline void restart_env(Game& g, RandomState& rng, int64_t& episode_steps) {
  g.reset(rng);
  episode_steps = 0;
}

}  // namespace evozero::minatar
