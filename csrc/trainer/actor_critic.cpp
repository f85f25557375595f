#include "trainer/actor_critic.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "trainer/init.hpp"
#include "trainer/policy_head.hpp"

namespace evozero::trainer {
namespace {

int checked_size(int value, const char* what) {
  if (value <= 0)
    throw std::invalid_argument(std::string("ActorCritic: ") + what + " must be positive");
  return value;
}

}  // namespace

ActorCritic::ActorCritic(int obs_size, int num_actions, int hidden, NetworkKind network,
                         uint64_t seed, AdamConfig adam)
    : obs_size_(checked_size(obs_size, "obs_size")),
      num_actions_(checked_size(num_actions, "num_actions")),
      hidden_(checked_size(hidden, "hidden")),
      network_(network),
      actor_(make_network(network, obs_size, hidden, num_actions, 0)),
      critic_(make_network(network, obs_size, hidden, 1, actor_->size())),
      params_(actor_->size() + critic_->size(), 0.0f),
      grads_(params_.size(), 0.0f),
      adam_(params_.size(), adam) {
  if (network == NetworkKind::kConv) patches_ = std::make_unique<PatchIndex>(obs_size);
  NormalRng rng(seed);
  actor_->initialize(params_.data(), rng, 0.01);
  critic_->initialize(params_.data(), rng, 1.0);
  parameters_changed();
}

std::vector<TensorSpec> ActorCritic::tensors() const {
  std::vector<TensorSpec> specs = actor_->tensors("actor");
  for (TensorSpec& s : critic_->tensors("critic")) specs.push_back(std::move(s));
  return specs;
}

void ActorCritic::parameters_changed() {
  actor_->sync(params_.data());
  critic_->sync(params_.data());
}

FirstLayerInput ActorCritic::first_layer_input(const Observations& obs, int n) {
  FirstLayerInput x;
  if (obs.indptr) {
    if (!obs.indices)
      throw std::invalid_argument("ActorCritic: sparse observations without indices");
    x.sparse = {obs.indptr, obs.indices, obs.rows};
  } else if (!obs.dense) {
    throw std::invalid_argument("ActorCritic: no observations");
  } else if (obs.rows) {  // gather the minibatch rows into one contiguous block
    const std::size_t row = std::size_t(obs_size_);
    ensure_size(gathered_, std::size_t(n) * row);
    for (int i = 0; i < n; ++i)
      std::memcpy(gathered_.data() + i * row, obs.dense + std::size_t(obs.rows[i]) * row,
                  row * sizeof(float));
    x.dense = gathered_.data();
  } else {
    x.dense = obs.dense;
  }
  return x;
}

void ActorCritic::forward(const Observations& obs, int n, const int64_t* actions, float* logp,
                          float* value, float* entropy) {
  if (n < 0) throw std::invalid_argument("ActorCritic: negative batch size");
  if (logp && !actions) throw std::invalid_argument("ActorCritic: logp needs actions");
  FirstLayerInput x = first_layer_input(obs, n);
  if (patches_) {  // one index serves both networks
    patches_->build(x, n);
    x.patches = patches_.get();
  }
  const std::size_t table = std::size_t(n) * std::size_t(num_actions_);
  ensure_size(log_probs_, table);
  ensure_size(probs_, table);
  ensure_size(dlogits_, table);
  ensure_size(entropy_, std::size_t(n));

  actor_->forward(params_.data(), x, n);
  critic_->forward(params_.data(), x, n);
  categorical_forward(n, num_actions_, actor_->output(), log_probs_.data(), probs_.data(),
                      entropy_.data(), logp ? actions : nullptr, logp);
  if (value) std::copy(critic_->output(), critic_->output() + n, value);
  if (entropy) std::copy(entropy_.data(), entropy_.data() + n, entropy);
  last_n_ = n;
}

void ActorCritic::backward(const Observations& obs, int n, const int64_t* actions,
                           const float* c_logp, const float* c_v, const float* c_h) {
  if (n != last_n_) throw std::logic_error("ActorCritic::backward needs forward on the same batch");
  if (n > 0 && (!actions || !c_logp || !c_v || !c_h))
    throw std::invalid_argument("ActorCritic::backward: null actions or coefficients");
  FirstLayerInput x = first_layer_input(obs, n);
  if (x.is_sparse() && actor_->reads_columns()) {  // one transpose serves both networks
    int64_t nnz = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t b = obs.rows ? obs.rows[i] : i;
      nnz += obs.indptr[b + 1] - obs.indptr[b];
    }
    if (column_ptr_.size() < std::size_t(obs_size_) + 1) column_ptr_.resize(obs_size_ + 1);
    if (column_samples_.size() < std::size_t(nnz)) column_samples_.resize(nnz);
    kernels::transpose(n, x.sparse, obs_size_, column_ptr_.data(), column_samples_.data());
    x.columns = {column_ptr_.data(), column_samples_.data()};
  }
  if (patches_) {  // the forward pass's index of the same batch
    patches_->transpose();
    x.patches = patches_.get();
  }
  categorical_backward(n, num_actions_, log_probs_.data(), probs_.data(), entropy_.data(),
                       actions, c_logp, c_h, dlogits_.data());
  actor_->backward(params_.data(), x, n, dlogits_.data(), grads_.data());
  critic_->backward(params_.data(), x, n, c_v, grads_.data());  // dL/dv_i = c_v[i]
}

float ActorCritic::apply_gradients(float lr, float max_grad_norm) {
  const float norm = adam_.step(params_.data(), grads_.data(), lr, max_grad_norm);
  parameters_changed();
  return norm;
}

}  // namespace evozero::trainer
