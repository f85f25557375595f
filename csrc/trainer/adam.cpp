#include "trainer/adam.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "trainer/dispatch.hpp"

#if EVOZERO_MULTIVERSIONING
#include <immintrin.h>
#endif

namespace evozero::trainer {
namespace {

EVOZERO_TARGET_CLONES double sum_squares(const float* x, std::size_t size) {
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

EVOZERO_TARGET_CLONES void scale_clip(float* g, std::size_t size, float norm,
                                      float max_norm) {
  for (std::size_t i = 0; i < size; ++i) g[i] = (g[i] / norm) * max_norm;
}

// The update loop needs a vector square root. GCC vectorizes std::sqrt only
// under -fno-math-errno (which the build does not set, and which no pragma or
// attribute can switch on), so the loop is written on GCC vector types with the
// SSE / AVX square-root instruction, one version per instruction set (AVX's
// 8-float version also serves AVX-512 machines: the loop is bound by division
// and square-root throughput, not by vector width).
#if EVOZERO_MULTIVERSIONING
using v4 = float __attribute__((vector_size(16)));
using v8 = float __attribute__((vector_size(32)));
inline void vector_sqrt(v4& x) { x = v4(_mm_sqrt_ps(__m128(x))); }
__attribute__((target("avx"))) inline void vector_sqrt(v8& x) {
  x = v8(_mm256_sqrt_ps(__m256(x)));
}
#endif

// One Adam step on elements [begin, end), scalar.
inline void adam_scalar(float* p, const float* g, float* m, float* v, std::size_t begin,
                        std::size_t end, float b1, float b2, float eps, float bc1, float bc2,
                        float neg_lr) {
  for (std::size_t i = begin; i < end; ++i)
    adam_element(p[i], g[i], m[i], v[i], b1, b2, eps, bc1, bc2, neg_lr);
}

#if EVOZERO_MULTIVERSIONING
// The same arithmetic, a vector V at a time.
template <class V>
inline __attribute__((always_inline)) void adam_vector(float* p, const float* g, float* m,
                                                       float* v, std::size_t size, float b1,
                                                       float b2, float eps, float bc1, float bc2,
                                                       float neg_lr) {
  constexpr std::size_t W = sizeof(V) / sizeof(float);
  std::size_t i = 0;
  for (; i + W <= size; i += W) {
    V pv, gv, mv, vv;
    std::memcpy(&pv, p + i, sizeof(V));
    std::memcpy(&gv, g + i, sizeof(V));
    std::memcpy(&mv, m + i, sizeof(V));
    std::memcpy(&vv, v + i, sizeof(V));
    mv = (1.0f - b1) * gv + b1 * mv;
    vv = (1.0f - b2) * (gv * gv) + b2 * vv;
    V root = vv / bc2;
    vector_sqrt(root);
    pv = pv + neg_lr * ((mv / bc1) / (root + eps));
    std::memcpy(p + i, &pv, sizeof(V));
    std::memcpy(m + i, &mv, sizeof(V));
    std::memcpy(v + i, &vv, sizeof(V));
  }
  adam_scalar(p, g, m, v, i, size, b1, b2, eps, bc1, bc2, neg_lr);
}

__attribute__((target("avx"))) void adam_update(float* p, const float* g, float* m, float* v,
                                                std::size_t size, float b1, float b2, float eps,
                                                float bc1, float bc2, float neg_lr) {
  adam_vector<v8>(p, g, m, v, size, b1, b2, eps, bc1, bc2, neg_lr);
}
__attribute__((target("default"))) void adam_update(float* p, const float* g, float* m,
                                                    float* v, std::size_t size, float b1,
                                                    float b2, float eps, float bc1, float bc2,
                                                    float neg_lr) {
  adam_vector<v4>(p, g, m, v, size, b1, b2, eps, bc1, bc2, neg_lr);
}
#else
void adam_update(float* p, const float* g, float* m, float* v, std::size_t size, float b1,
                 float b2, float eps, float bc1, float bc2, float neg_lr) {
  adam_scalar(p, g, m, v, 0, size, b1, b2, eps, bc1, bc2, neg_lr);
}
#endif


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
