// Loops of kernels.hpp. Every loop is a template on the op struct (ops.hpp) and on the
// operand mode (which arguments are broadcast scalars), force-inlined into a switch that
// GCC compiles once per target (target_clones) and picks at load time.
//
// No FMA contraction: GCC contracts a * b + c by default in C++ (also with -std=c++17),
// which would round differently from numpy; the pragma turns that off for this file,
// before any header so that every inlined function is compiled the same way.
#pragma GCC optimize("fp-contract=off")

#include "interpreter/kernels.hpp"

#include <cmath>

#include "interpreter/fsum.hpp"
#include "interpreter/ops.hpp"

#define EVOZERO_INTERP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define EVOZERO_INTERP_INLINE inline __attribute__((always_inline))

namespace evozero::interp::kernels {
namespace {

template <bool Scalar>
EVOZERO_INTERP_INLINE float at(const float* p, std::size_t i) {
  if constexpr (Scalar) {
    return p[0];
  } else {
    return p[i];
  }
}

template <class O, unsigned M>
EVOZERO_INTERP_INLINE void loop(std::size_t n, float* __restrict out, const float* a,
                                const float* b, const float* c) {
  if constexpr (O::arity == 1) {
    for (std::size_t i = 0; i < n; ++i) out[i] = O::f(a[i]);
  } else if constexpr (O::arity == 2) {
    for (std::size_t i = 0; i < n; ++i) out[i] = O::f(at<M & 1>(a, i), at<(M & 2) != 0>(b, i));
  } else {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = O::f(at<M & 1>(a, i), at<(M & 2) != 0>(b, i), at<(M & 4) != 0>(c, i));
  }
}

template <class O, unsigned M>
EVOZERO_INTERP_INLINE void loop_d(std::size_t n, float* __restrict out, float* __restrict d0,
                                  float* __restrict d1, float* __restrict d2, const float* a,
                                  const float* b, const float* c) {
  if constexpr (O::arity == 1) {
    for (std::size_t i = 0; i < n; ++i) out[i] = O::fd(a[i], d0[i]);
  } else if constexpr (O::arity == 2) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = O::fd(at<M & 1>(a, i), at<(M & 2) != 0>(b, i), d0[i], d1[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = O::fd(at<M & 1>(a, i), at<(M & 2) != 0>(b, i), at<(M & 4) != 0>(c, i), d0[i],
                     d1[i], d2[i]);
  }
}

// mode -> template argument (an all-scalar call is evaluated as vectors of length 1).
#define EVOZERO_MODES(LOOP, O, ...)                       \
  do {                                                    \
    if constexpr (O::arity == 1) {                        \
      LOOP<O, 0>(__VA_ARGS__);                            \
    } else if constexpr (O::arity == 2) {                 \
      switch (mode & 3u) {                                \
        case 1: LOOP<O, 1>(__VA_ARGS__); break;           \
        case 2: LOOP<O, 2>(__VA_ARGS__); break;           \
        default: LOOP<O, 0>(__VA_ARGS__); break;          \
      }                                                   \
    } else {                                              \
      switch (mode & 7u) {                                \
        case 1: LOOP<O, 1>(__VA_ARGS__); break;           \
        case 2: LOOP<O, 2>(__VA_ARGS__); break;           \
        case 3: LOOP<O, 3>(__VA_ARGS__); break;           \
        case 4: LOOP<O, 4>(__VA_ARGS__); break;           \
        case 5: LOOP<O, 5>(__VA_ARGS__); break;           \
        case 6: LOOP<O, 6>(__VA_ARGS__); break;           \
        default: LOOP<O, 0>(__VA_ARGS__); break;          \
      }                                                   \
    }                                                     \
  } while (0)

// opcode -> op struct: a switch over the generated EVOZERO_ELEMENTWISE_OPS (a switch, not
// a generic lambda: a lambda body would not be compiled per target). Each kernel's arity
// must be its op's in ops.py:
#define CHECK_ARITY(code, O)                     \
  static_assert(ops::O::arity == kOps[code].arity, \
                "ops::" #O " takes another number of arguments than its row in ops.py");
EVOZERO_ELEMENTWISE_OPS(CHECK_ARITY)
#undef CHECK_ARITY

}  // namespace

EVOZERO_INTERP_CLONES void values(int32_t op, unsigned mode, std::size_t n, float* out,
                                  const float* a, const float* b, const float* c) {
  switch (op) {
#define CASE(code, O)                                       \
  case code:                                                \
    EVOZERO_MODES(loop, ops::O, n, out, a, b, c);           \
    break;
    EVOZERO_ELEMENTWISE_OPS(CASE)
#undef CASE
    default:
      break;
  }
}

EVOZERO_INTERP_CLONES void values_partials(int32_t op, unsigned mode, std::size_t n, float* out,
                                           float* const d[3], const float* a, const float* b,
                                           const float* c) {
  switch (op) {
#define CASE(code, O)                                                     \
  case code:                                                              \
    EVOZERO_MODES(loop_d, ops::O, n, out, d[0], d[1], d[2], a, b, c);     \
    break;
    EVOZERO_ELEMENTWISE_OPS(CASE)
#undef CASE
    default:
      break;
  }
}

EVOZERO_INTERP_CLONES void tangent(std::size_t n, float* __restrict out, int terms,
                                   const float* const p[3], const float* const t[3]) {
  const float* __restrict p0 = p[0];
  const float* __restrict t0 = t[0];
  const float* __restrict p1 = p[1];
  const float* __restrict t1 = t[1];
  const float* __restrict p2 = p[2];
  const float* __restrict t2 = t[2];
  if (terms == 1) {
    for (std::size_t i = 0; i < n; ++i) out[i] = p0[i] * t0[i];
  } else if (terms == 2) {
    for (std::size_t i = 0; i < n; ++i) out[i] = p0[i] * t0[i] + p1[i] * t1[i];
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = (p0[i] * t0[i] + p1[i] * t1[i]) + p2[i] * t2[i];
  }
}

void exp_diff(std::size_t n, float* __restrict out, const float* a, const float* b) {
  for (std::size_t i = 0; i < n; ++i) out[i] = std::exp(a[i] - b[i]);
}

EVOZERO_INTERP_CLONES void fill(std::size_t n, float* out, float value) {
  for (std::size_t i = 0; i < n; ++i) out[i] = value;
}

namespace {

template <class T, class F>
double exact_sum(std::size_t n, const T* x, F f) {
  ExactSum s;
  for (std::size_t i = 0; i < n; ++i) s.add(f(x[i]));
  return s.result();
}

}  // namespace

double mean64(std::size_t n, const float* x) {
  if (n == 0) return 0.0;
  return exact_sum(n, x, [](float v) { return double(v); }) / double(n);
}

float std32(std::size_t n, const float* x, double mean) {
  if (n == 0) return 0.0f;
  const double sum = exact_sum(n, x, [mean](float v) {
    const double d = double(v) - mean;
    return d * d;
  });
  return float(std::sqrt(sum / double(n)));
}

double fsum(std::size_t n, const double* x) {
  return exact_sum(n, x, [](double v) { return v; });
}

EVOZERO_INTERP_CLONES void normalize(std::size_t n, float* __restrict out, const float* x,
                                     float m, float s) {
  const float den = s + kNormEps;
  for (std::size_t i = 0; i < n; ++i) out[i] = (x[i] - m) / den;
}

}  // namespace evozero::interp::kernels
