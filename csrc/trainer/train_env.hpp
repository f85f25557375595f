// The envs the trainer can drive: a batch of num_envs envs with discrete
// actions and SAME_STEP autoreset (an env that ends is reset inside step and
// its last observation goes to final_obs, so V of the true next state is
// known also on truncation).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "minatar/vec_env.hpp"

namespace evozero::trainer {

class TrainEnv {
 public:
  virtual ~TrainEnv() = default;
  virtual int num_envs() const = 0;
  virtual int obs_size() const = 0;
  virtual int num_actions() const = 0;
  // Binary observations come as uint8 0/1 and feed the sparse first layer;
  // otherwise they are float32 and feed a dense first layer.
  virtual bool binary() const = 0;
  virtual void reset(uint64_t seed, void* obs) = 0;
  virtual void step(const int64_t* actions, void* obs, void* final_obs, float* reward,
                    uint8_t* terminated, uint8_t* truncated) = 0;
};

// Native MinAtar: env i of a run with seed s is seeded with a 32-bit mix of (s, i).
class MinAtarTrainEnv final : public TrainEnv {
 public:
  MinAtarTrainEnv(const std::string& game, int num_envs, const minatar::EnvOptions& options)
      : env_(minatar::make_vec_env(game, num_envs, options)) {}
  int num_envs() const override { return env_->num_envs(); }
  int obs_size() const override { return env_->obs_size(); }
  int num_actions() const override { return env_->num_actions(); }
  bool binary() const override { return true; }
  void reset(uint64_t seed, void* obs) override;
  void step(const int64_t* actions, void* obs, void* final_obs, float* reward,
            uint8_t* terminated, uint8_t* truncated) override {
    env_->step(actions, {static_cast<uint8_t*>(obs), reward, terminated, truncated,
                         static_cast<uint8_t*>(final_obs)});
  }

 private:
  std::unique_ptr<minatar::VecEnv> env_;
};

}  // namespace evozero::trainer
