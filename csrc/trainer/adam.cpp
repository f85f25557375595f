#include "trainer/adam.hpp"

#include <algorithm>
#include <cmath>

namespace evozero::trainer {
namespace {

#define EVOZERO_CLONES __attribute__((target_clones("avx512f", "fma", "default")))

EVOZERO_CLONES double sum_squares(const float* x, std::size_t size) {
  constexpr int L = 8;  // independent partial sums let the loop vectorize
  double acc[L] = {};
  std::size_t i = 0;
  for (; i + L <= size; i += L)
    for (int l = 0; l < L; ++l) acc[l] += double(x[i + l]) * double(x[i + l]);
  for (; i < size; ++i) acc[0] += double(x[i]) * double(x[i]);
  double total = 0.0;
  for (double a : acc) total += a;
  return total;
}

EVOZERO_CLONES void scale_clip(float* g, std::size_t size, float norm, float max_norm) {
  for (std::size_t i = 0; i < size; ++i) g[i] = (g[i] / norm) * max_norm;
}

EVOZERO_CLONES void adam_update(float* __restrict p, const float* __restrict g,
                                float* __restrict m, float* __restrict v, std::size_t size,
                                float b1, float b2, float eps, float bc1, float bc2,
                                float neg_lr) {
  for (std::size_t i = 0; i < size; ++i) {
    m[i] = (1.0f - b1) * g[i] + b1 * m[i];
    v[i] = (1.0f - b2) * (g[i] * g[i]) + b2 * v[i];
    const float u = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    p[i] = p[i] + neg_lr * u;
  }
}

#undef EVOZERO_CLONES

}  // namespace

double global_norm(const float* x, std::size_t size) { return std::sqrt(sum_squares(x, size)); }

float Adam::step(float* params, float* grads, float lr, float max_grad_norm) {
  const std::size_t n = size();
  const float norm = float(global_norm(grads, n));
  if (!std::isfinite(norm)) return norm;
  if (max_grad_norm > 0.0f && std::isfinite(max_grad_norm) && !(norm < max_grad_norm))
    scale_clip(grads, n, norm, max_grad_norm);
  ++count_;
  const double t = double(count_);
  const float bc1 = float(1.0 - std::pow(double(config_.b1), t));
  const float bc2 = float(1.0 - std::pow(double(config_.b2), t));
  adam_update(params, grads, m_.data(), v_.data(), n, config_.b1, config_.b2, config_.eps, bc1,
              bc2, -lr);
  return norm;
}

void Adam::reset() {
  std::fill(m_.begin(), m_.end(), 0.0f);
  std::fill(v_.begin(), v_.end(), 0.0f);
  count_ = 0;
}

}  // namespace evozero::trainer
