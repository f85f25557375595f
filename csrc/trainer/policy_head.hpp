// The categorical policy head: log-softmax over the logits, log-prob of the
// taken action, entropy, and the backward pass to the logits.
//
// Per sample i with logits z (A of them):
//   logp_j = z_j - max(z) - log(sum_k exp(z_k - max(z)))      (stable log-softmax)
//   p_j    = exp(z_j - max(z)) / sum_k exp(z_k - max(z))
//   H      = -sum_j p_j logp_j
// and for the per-sample loss c_logp * logp_a + c_h * H:
//   dL/dz_j = c_logp * ([j == a] - p_j) - c_h * p_j * (logp_j + H)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"

namespace evozero::trainer {

// One sample: log_probs and probs of its A logits z; returns the entropy. lp may alias z.
// EVOZERO_HD: the same per-sample math runs in CUDA code.
EVOZERO_HD inline float categorical_forward_row(int A, const float* z, float* lp, float* p) {
  float m = z[0];
  for (int j = 1; j < A; ++j) m = z[j] > m ? z[j] : m;
  float sum = 0.0f;
  for (int j = 0; j < A; ++j) {
    p[j] = std::exp(z[j] - m);
    sum += p[j];
  }
  const float log_sum = std::log(sum), inv_sum = 1.0f / sum;
  float h = 0.0f;
  for (int j = 0; j < A; ++j) {
    lp[j] = (z[j] - m) - log_sum;
    p[j] *= inv_sum;
    h -= p[j] * lp[j];
  }
  return h;
}

// One sample's dlogits from its coefficients of logp (cl) and entropy (ch).
EVOZERO_HD inline void categorical_backward_row(int A, const float* lp, const float* p, float h,
                                                int64_t action, float cl, float ch, float* d) {
  for (int j = 0; j < A; ++j) d[j] = -cl * p[j] - ch * p[j] * (lp[j] + h);
  d[action] += cl;
}

// logits, log_probs, probs: (n, A) row-major; log_probs may alias logits.
// entropy: n. If actions is non-null, logp[i] = log_probs[i, actions[i]].
inline void categorical_forward(int n, int num_actions, const float* logits, float* log_probs,
                                float* probs, float* entropy, const int64_t* actions,
                                float* logp) {
  const int A = num_actions;
  for (int i = 0; i < n; ++i) {
    float* lp = log_probs + std::ptrdiff_t(i) * A;
    entropy[i] = categorical_forward_row(A, logits + std::ptrdiff_t(i) * A, lp,
                                         probs + std::ptrdiff_t(i) * A);
    if (actions) logp[i] = lp[actions[i]];
  }
}

// dlogits (n, A) from the per-sample coefficients of logp and entropy.
inline void categorical_backward(int n, int num_actions, const float* log_probs,
                                 const float* probs, const float* entropy,
                                 const int64_t* actions, const float* c_logp, const float* c_h,
                                 float* dlogits) {
  const int A = num_actions;
  for (int i = 0; i < n; ++i) {
    const std::ptrdiff_t at = std::ptrdiff_t(i) * A;
    categorical_backward_row(A, log_probs + at, probs + at, entropy[i], actions[i], c_logp[i],
                             c_h[i], dlogits + at);
  }
}

}  // namespace evozero::trainer
