// The actor-critic of the native trainer: separate actor and critic networks
// (MLPs obs -> hidden -> hidden -> num_actions logits / 1 value, or the conv
// networks of conv.hpp; ReLU, orthogonal init), a categorical policy head, and
// clipped Adam over all parameters.
//
// The trainer drives one minibatch as
//   net.forward(obs, n, actions, logp, v, entropy);      // per-sample outputs
//   ... objective -> c_logp[i], c_v[i], c_h[i] ...
//   net.backward(obs, n, actions, c_logp, c_v, c_h);      // -> gradients()
//   float norm = net.apply_gradients(lr, max_grad_norm); // clip + Adam
// and a rollout step as forward(obs, B, nullptr, ...) followed by sampling from
// log_probs().
//
// Loss convention: backward computes the gradient of
//   L = sum_i ( c_logp[i] * logp_i + c_v[i] * v_i + c_h[i] * entropy_i )
// over the n samples, where logp_i is the log-prob of actions[i]. There is no
// implicit averaging: for a mean over the minibatch pass coefficients already
// divided by n.
//
// Not thread-safe: one object is used by one thread at a time. Workspaces grow
// to the largest n seen and are reused; nothing else allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "trainer/adam.hpp"
#include "trainer/buffer.hpp"
#include "trainer/network.hpp"
#include "trainer/patches.hpp"

namespace evozero::trainer {

// A batch of n observations, sparse binary or dense.
struct Observations {
  // Sparse binary (MinAtar bit planes): the active cells of stored row b are
  // indices[indptr[b] .. indptr[b + 1]), each in [0, obs_size), ascending.
  const int64_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  // Dense (gymnasium Box), used when indptr is null: stored row b is
  // dense[b * obs_size .. (b + 1) * obs_size).
  const float* dense = nullptr;
  // Optional gather: sample i of the batch is stored row rows[i] (e.g. a
  // shuffled minibatch of a rollout); null means row i.
  const int64_t* rows = nullptr;
};

class ActorCritic {
 public:
  // Initial parameters depend only on the seed (see init.hpp): the actor's
  // three weights then the critic's are drawn from one NormalRng(seed);
  // gains sqrt(2) (hidden), 0.01 (actor output), 1 (critic output); zero biases.
  // No defaults: evozero.TrainConfig holds hidden and Adam's eps.
  ActorCritic(int obs_size, int num_actions, int hidden, NetworkKind network, uint64_t seed,
              AdamConfig adam);

  int obs_size() const { return obs_size_; }
  int num_actions() const { return num_actions_; }
  int hidden() const { return hidden_; }
  NetworkKind network() const { return network_; }

  // Every parameter in one flat array (layouts in mlp.hpp, conv.hpp); tensors()
  // names its pieces in torch conventions (actor.0.weight, ..., critic.4.bias).
  std::size_t num_parameters() const { return params_.size(); }
  const float* parameters() const { return params_.data(); }
  float* mutable_parameters() { return params_.data(); }
  void parameters_changed();  // call after writing through mutable_parameters()
  const float* gradients() const { return grads_.data(); }
  float* mutable_gradients() { return grads_.data(); }
  std::vector<TensorSpec> tensors() const;

  // Runs both networks on n samples. Writes (each may be null) logp[i] =
  // log pi(actions[i] | obs_i) (needs actions), value[i] and entropy[i].
  // log_probs() and probs() then hold the (n, num_actions) distributions.
  void forward(const Observations& obs, int n, const int64_t* actions, float* logp,
               float* value, float* entropy);
  const float* log_probs() const { return log_probs_.data(); }
  const float* probs() const { return probs_.data(); }

  // Gradient of L (see the top of this file) into gradients(). Needs the
  // forward pass of the same obs, n and actions just before.
  void backward(const Observations& obs, int n, const int64_t* actions, const float* c_logp,
                const float* c_v, const float* c_h);

  // Clips gradients() to max_grad_norm (global norm, in place) and takes one
  // Adam step with learning rate lr (see adam.hpp). Returns the norm before
  // clipping; when it is not finite nothing is updated.
  float apply_gradients(float lr, float max_grad_norm);

  const Adam& optimizer() const { return adam_; }
  Adam& optimizer() { return adam_; }

 private:
  FirstLayerInput first_layer_input(const Observations& obs, int n);

  int obs_size_, num_actions_, hidden_;
  NetworkKind network_;
  std::unique_ptr<Network> actor_, critic_;
  Buffer params_, grads_;
  Adam adam_;
  int last_n_ = -1;
  Buffer gathered_, log_probs_, probs_, entropy_, dlogits_;
  std::vector<int64_t> column_ptr_;    // the sparse batch by cell, for backward
  std::vector<int32_t> column_samples_;
  std::unique_ptr<PatchIndex> patches_;  // the conv networks': the batch's unique patches
};

}  // namespace evozero::trainer
