// The one batched implementation behind every game.
#pragma once
#include <cstring>

#include "minatar/game.hpp"
#include "minatar/vec_env.hpp"

namespace evozero::minatar {

template <class Game>
class GameVecEnv final : public VecEnv {
 public:
  GameVecEnv(int num_envs, const EnvOptions& options)
      : options_(options),
        games_(num_envs, Game(options.difficulty_ramping)),
        rngs_(num_envs),
        last_action_(num_envs, 0),
        episode_steps_(num_envs, 0) {
    if (options.minimal_action_set)
      action_set_.assign(Game::kMinimalActions.begin(), Game::kMinimalActions.end());
    else
      for (int a = 0; a < kNumActions; ++a) action_set_.push_back(a);
  }

  const char* game() const override { return Game::kName; }
  int num_envs() const override { return static_cast<int>(games_.size()); }
  int channels() const override { return Game::kChannels; }
  int num_actions() const override { return static_cast<int>(action_set_.size()); }
  std::vector<int> action_set() const override { return action_set_; }
  std::vector<std::string> channel_names() const override {
    return {Game::kChannelNames.begin(), Game::kChannelNames.end()};
  }

  void reset(const uint32_t* seeds, uint8_t* obs) override {
    for (int i = 0; i < num_envs(); ++i) {
      rngs_[i].seed_with(seeds[i]);
      games_[i].reset(rngs_[i]);
      episode_steps_[i] = 0;
    }
    observe(obs);
  }

  void restart(uint8_t* obs) override {
    for (int i = 0; i < num_envs(); ++i) {
      games_[i].reset(rngs_[i]);
      episode_steps_[i] = 0;
    }
    observe(obs);
  }

  void step(const int64_t* actions, const StepOutput& out) override {
    const int n = num_envs(), size = obs_size();
    std::memset(out.obs, 0, static_cast<size_t>(n) * size);
    for (int i = 0; i < n; ++i) {
      if (act_one(i, actions[i], out.reward, out.terminated, out.truncated))
        end_episode(i, out.final_obs ? out.final_obs + static_cast<size_t>(i) * size : nullptr);
      games_[i].render(out.obs + static_cast<size_t>(i) * size);
    }
  }

  void act(const int64_t* actions, float* reward, uint8_t* terminated,
           uint8_t* truncated) override {
    for (int i = 0; i < num_envs(); ++i) act_one(i, actions[i], reward, terminated, truncated);
  }

  void finish(const uint8_t* terminated, const uint8_t* truncated, uint8_t* const* final_obs,
              uint8_t* obs) override {
    const int n = num_envs(), size = obs_size();
    std::memset(obs, 0, static_cast<size_t>(n) * size);
    for (int i = 0; i < n; ++i) {
      if (terminated[i] || truncated[i]) end_episode(i, final_obs ? final_obs[i] : nullptr);
      games_[i].render(obs + static_cast<size_t>(i) * size);
    }
  }

  void observe(uint8_t* obs) const override {
    const int size = obs_size();
    std::memset(obs, 0, static_cast<size_t>(num_envs()) * size);
    for (int i = 0; i < num_envs(); ++i) games_[i].render(obs + static_cast<size_t>(i) * size);
  }

 private:
  // Env i's step up to its end of episode; returns whether it ended.
  bool act_one(int i, int64_t action, float* reward, uint8_t* terminated, uint8_t* truncated) {
    Game& g = games_[i];
    RandomState& rng = rngs_[i];
    int a = action_set_[action];
    if (rng.rand() < options_.sticky_action_prob) a = last_action_[i];
    last_action_[i] = a;
    reward[i] = g.act(a, rng);
    const bool term = g.terminal();
    const bool trunc = !term && options_.max_episode_steps > 0 &&
                       ++episode_steps_[i] >= options_.max_episode_steps;
    terminated[i] = term;
    truncated[i] = trunc;
    return term || trunc;
  }

  // Writes env i's final observation (unless final_obs is null) and resets it.
  void end_episode(int i, uint8_t* final_obs) {
    if (final_obs) {
      std::memset(final_obs, 0, obs_size());
      games_[i].render(final_obs);
    }
    games_[i].reset(rngs_[i]);  // same stream, no reseed: as calling reset() on the reference
    episode_steps_[i] = 0;
  }

  EnvOptions options_;
  std::vector<Game> games_;
  std::vector<RandomState> rngs_;
  std::vector<int> last_action_;  // not reset by reset(), as the reference
  std::vector<int64_t> episode_steps_;
  std::vector<int> action_set_;
};

}  // namespace evozero::minatar
