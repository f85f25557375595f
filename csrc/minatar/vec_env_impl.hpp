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
    size_t final_row = 0;
    for (int i = 0; i < n; ++i) {
      if (i + kAhead < n) {
        rngs_[i + kAhead].prefetch();
        __builtin_prefetch(&games_[i + kAhead]);
      }
      Game& g = games_[i];
      RandomState& rng = rngs_[i];
      const bool ended = advance_env(g, rng, last_action_[i], episode_steps_[i],
                                     action_set_[actions[i]], options_, out.reward[i],
                                     out.terminated[i], out.truncated[i]);
      uint8_t* obs = out.obs + static_cast<size_t>(i) * size;
      if (ended) {
        if (out.final_obs) {
          uint8_t* fin = out.final_obs + (out.pack_final_obs ? final_row++ : i) * size;
          std::memset(fin, 0, size);
          g.render(fin);
        }
        restart_env(g, rng, episode_steps_[i]);
      }
      g.render(obs);
    }
  }

  void observe(uint8_t* obs) const override {
    const int size = obs_size();
    std::memset(obs, 0, static_cast<size_t>(num_envs()) * size);
    for (int i = 0; i < num_envs(); ++i) games_[i].render(obs + static_cast<size_t>(i) * size);
  }

 private:
  // step() asks for the state of the env this far ahead while it steps the current
  // one: with thousands of envs, states are out of cache (4096 envs: 10 MiB of
  // RandomState), and breakout then steps ~13% faster.
  static constexpr int kAhead = 4;

  EnvOptions options_;
  std::vector<Game> games_;
  std::vector<RandomState> rngs_;
  std::vector<int> last_action_;  // not reset by reset(), as the reference
  std::vector<int64_t> episode_steps_;
  std::vector<int> action_set_;
};

}  // namespace evozero::minatar
