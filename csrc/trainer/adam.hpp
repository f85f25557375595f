// Adam with global gradient-norm clipping, the optimizer of PureJaxRL:
//   optax.chain(optax.clip_by_global_norm(max_grad_norm),
//               optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-5))
// applied to one flat float array holding every parameter.
//
// One step, t = number of steps so far + 1, on gradient g:
//   norm = sqrt(sum g^2)                            (over all parameters, in double)
//   g    = norm < max_grad_norm ? g : (g / norm) * max_grad_norm
//   m    = (1 - b1) g + b1 m
//   v    = (1 - b2) g^2 + b2 v
//   u    = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (eps outside the sqrt,
//                                         optax's eps_root = 0; torch.optim.Adam's form)
//   p    = p + (-lr) u
// The bias corrections 1 - b^t are computed in double and rounded to float.
// max_grad_norm <= 0 or infinite disables clipping. A gradient whose norm is not
// finite is not applied at all (parameters and moments unchanged, t not
// advanced); the step returns that norm so the caller can end the run.
//
// torch.nn.utils.clip_grad_norm_ differs slightly: it always scales by
// min(1, max_norm / (norm + 1e-6)).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"
#include "trainer/buffer.hpp"

namespace evozero::trainer {

struct AdamConfig {
  float eps;  // no default: evozero.TrainConfig.adam_eps holds it
  float b1 = 0.9f;
  float b2 = 0.999f;
};

class Adam {
 public:
  explicit Adam(std::size_t size, AdamConfig config)
      : config_(config), m_(size, 0.0f), v_(size, 0.0f) {}

  // Clips grads in place, updates params; returns the norm before clipping.
  float step(float* params, float* grads, float lr, float max_grad_norm);

  int64_t count() const { return count_; }
  const float* first_moment() const { return m_.data(); }
  const float* second_moment() const { return v_.data(); }
  std::size_t size() const { return m_.size(); }
  const AdamConfig& config() const { return config_; }
  void reset();

 private:
  AdamConfig config_;
  Buffer m_, v_;
  int64_t count_ = 0;
};

// One parameter's update, the scalar form of the arithmetic above (bc1, bc2: the bias
// corrections; neg_lr = -lr). The vector loops in adam.cpp compute the same, a vector at
// a time; EVOZERO_HD: CUDA code uses this one (built without FMA contraction, to match).
EVOZERO_HD inline void adam_element(float& p, float g, float& m, float& v, float b1, float b2,
                                    float eps, float bc1, float bc2, float neg_lr) {
  m = (1.0f - b1) * g + b1 * m;
  v = (1.0f - b2) * (g * g) + b2 * v;
  const float u = (m / bc1) / (std::sqrt(v / bc2) + eps);
  p = p + neg_lr * u;
}

// sqrt(sum of squares), accumulated in double.
double global_norm(const float* x, std::size_t size);

}  // namespace evozero::trainer
