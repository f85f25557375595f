// The trainer skeleton of ARCHITECTURE.md, in one call:
//
//   for update u in 0..U-1:                       progress = u / U
//       roll out T steps on B envs with pi        (r, term, reset, logp, v, entropy; V(s[t+1]))
//       rule.scan (backwards) -> adv, vtarget;  rule.post -> adv, vtarget
//       repeat E epochs, M shuffled minibatches:
//           forward pi, V -> logp, v, entropy
//           rule.objective -> loss and dloss/dlogp, dloss/dv, dloss/dentropy
//           (their means and stds, the entropy and approx KL -> update_stats)
//           backprop the mean loss, clip the global grad norm, Adam (lr annealed)
//
// The update rule is whatever the program encodes (see UpdateRule); a
// non-finite value anywhere ends the run with status kDiverged.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "generated/status.hpp"
#include "generated/update_stats.hpp"
#include "trainer/train_env.hpp"

namespace evozero::trainer {

// The trainer's settings. No defaults here: evozero.TrainConfig (Python) holds them and
// their docs, and the bindings require every field (for_each_field names them; a test
// checks the names are the dataclass's fields but the env's).
struct TrainConfig {
  int64_t total_steps;
  int num_steps;  // T; B is the env's num_envs
  int update_epochs;
  int num_minibatches;
  float lr;
  bool anneal_lr;
  float adam_eps;
  float max_grad_norm;
  int hidden;
  std::string network;  // "mlp" or "conv" (network.hpp)

  // Calls f(name, field) for every field, in declaration order.
  template <class F>
  void for_each_field(F&& f) {
    f("total_steps", total_steps);
    f("num_steps", num_steps);
    f("update_epochs", update_epochs);
    f("num_minibatches", num_minibatches);
    f("lr", lr);
    f("anneal_lr", anneal_lr);
    f("adam_eps", adam_eps);
    f("max_grad_norm", max_grad_norm);
    f("hidden", hidden);
    f("network", network);
  }
};

// Rollout arrays are (T, B), row-major: element t * B + i is env i at step t.
struct ScanInputs {
  const float *r, *term, *reset, *v, *v_next, *logp, *entropy;
  int T, B;
};

struct ObjectiveInputs {
  const float *logp, *logp_old, *adv, *v, *v_old, *vtarget, *entropy;
  int n;
};

struct ObjectiveOutputs {
  float *loss, *d_logp, *d_v, *d_entropy;
};

// The three program components, as the trainer calls them.
class UpdateRule {
 public:
  virtual ~UpdateRule() = default;
  virtual void scan(const ScanInputs& in, float progress, float* adv, float* vtarget) = 0;
  // In place over the n = T * B rollout values.
  virtual void post(float* adv, float* vtarget, const float* v, const float* r, int64_t n,
                    float progress) = 0;
  virtual void objective(const ObjectiveInputs& in, float progress,
                         const ObjectiveOutputs& out) = 0;
};

// Refinement hooks (evozero.refine); the normal path passes none. Parameters and Adam
// moments are in ActorCritic's flat layout (mlp.hpp).
struct TrainHooks {
  std::vector<float> initial_parameters;  // empty: the seed's orthogonal init
  std::vector<int64_t> checkpoint_updates;  // record a Checkpoint at these updates
  bool stop_after_checkpoints = false;      // end the run after the last of them
};

// One update as it happened: the state before it, its rollout and minibatch order, and
// the parameters after it (enough to replay it exactly, e.g. in torch).
struct Checkpoint {
  int64_t update = 0;
  float progress = 0, lr = 0;
  std::vector<float> params_before, params_after, adam_m, adam_v;  // moments before
  int64_t adam_count = 0;
  std::vector<float> obs;  // ((T + 1) * B, obs_size), dense; the last B rows are s_T
  std::vector<float> r, term, reset, v, v_next, logp, entropy, adv, vtarget;  // (T, B)
  std::vector<int64_t> actions;  // (T, B)
  std::vector<int64_t> perms;    // (update_epochs, T * B): each epoch's shuffled rows
};

struct TrainResult {
  std::vector<Checkpoint> checkpoints;
  // (updates completed, kNumUpdateStats), row-major: each update's learning-phase
  // statistics over all its epochs' minibatch samples (generated/update_stats.hpp).
  std::vector<float> update_stats;
  std::vector<float> episode_returns;
  std::vector<int64_t> episode_end_steps;
  Status status = Status::kOk;  // generated/status.hpp (evozero.status.TRAINING)
  std::string message;
  int64_t steps = 0;
  double seconds = 0;
};

// Written by the training thread, read by anyone: how far the run is.
struct TrainProgress {
  std::atomic<int64_t> steps{0};
  std::atomic<bool> cancel{false};
};

TrainResult train(TrainEnv& env, UpdateRule& rule, const TrainConfig& config, uint64_t seed,
                  TrainProgress* progress = nullptr, const TrainHooks* hooks = nullptr);

}  // namespace evozero::trainer
