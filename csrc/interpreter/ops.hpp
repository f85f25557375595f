// The kernels of the interpreter's ops: one small struct per elementwise op with its
// exact float32 value and its partial derivatives, AutoML-Zero style.
//
// The op table itself (opcodes, names, arity, where each op is allowed, the dispatch
// list) is generated from src/evozero/program/ops.py into generated/ops.hpp; the kernels
// here are hand-written because they are the numerics. Each is a port of the op's numpy
// form in ops.py, whose module docstring is the contract: every definition below is
// written exactly as it is there (same operations, same order, same float32 constants),
// so the arithmetic ops and the protection logic are bit-identical to numpy, and
// exp/log/tanh/sigmoid differ only by the libm's ulp. NaN behaviour follows the numpy
// forms: every comparison is written the way ops.py writes it (`a < b ? a : b`, never
// std::min), so e.g. relu(NaN) = 0, min(NaN, 1) = 1, min(1, NaN) = NaN, exp(NaN) = NaN
// and log's partial at NaN is 0.
//
// Each op struct is named after its op in CamelCase (op "foo_bar": struct FooBar) and has:
//   arity            number of arguments (kernels.cpp checks it against the table)
//   f(args...)       the value
//   fd(args..., d0, d1, ...) the value, writing d out / d arg_j to d_j (the partials
//                    ops.py's `partials` return, conventions at kinks and ties included)
// The batch ops (mean, std, normalize) are reductions: kernels.cpp (mean64, std32,
// normalize) over the exact sum of fsum.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/hd.hpp"
#include "generated/ops.hpp"

namespace evozero::interp {

// Protection constants (ops.DIV_EPS, LOG_EPS, EXP_MAX, NORM_EPS), float32.
inline constexpr float kDivEps = 1e-6f;
inline constexpr float kLogEps = 1e-6f;
inline constexpr float kExpMax = 80.0f;
inline constexpr float kNormEps = 1e-8f;

namespace ops {

// EVOZERO_HD: the same kernels run in CUDA code (common/hd.hpp).
#define EVOZERO_OP_INLINE EVOZERO_HD static inline __attribute__((always_inline))

// np.sign: 0 for either zero (positive zero), NaN stays NaN.
EVOZERO_OP_INLINE float sign(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == 0.0f ? 0.0f : x));
}
// where(b >= 0, maximum(b, eps), minimum(b, -eps)); NaN takes the second branch and stays NaN.
EVOZERO_OP_INLINE float div_denominator(float b) {
  return b >= 0.0f ? (b < kDivEps ? kDivEps : b) : (b > -kDivEps ? -kDivEps : b);
}

struct Add {
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a + b; }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    da = 1.0f, db = 1.0f;
    return a + b;
  }
};

struct Sub {
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a - b; }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    da = 1.0f, db = -1.0f;
    return a - b;
  }
};

struct Mul {
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a * b; }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    da = b, db = a;
    return a * b;
  }
};

struct Div {  // a / b2; da = 1 / b2; db = -((a / b2) / b2) outside the band, else 0
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a / div_denominator(b); }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    const float b2 = div_denominator(b);
    const float q = a / b2;
    const bool outside = b >= 0.0f ? b >= kDivEps : b <= -kDivEps;
    da = 1.0f / b2;
    db = outside ? -(q / b2) : 0.0f;
    return q;
  }
};

struct Neg {
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return -x; }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = -1.0f;
    return -x;
  }
};

struct Abs {  // d = sign(x) (0 at 0, NaN at NaN)
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return std::fabs(x); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = sign(x);
    return std::fabs(x);
  }
};

struct Square {  // d = x + x
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return x * x; }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = x + x;
    return x * x;
  }
};

struct Sqrt {  // sqrt(|x|); d = sign(x) * (1 / (2 * sqrt(|x|))), 0 at x == 0
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return std::sqrt(std::fabs(x)); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    const float s = std::sqrt(std::fabs(x));
    dx = x == 0.0f ? 0.0f : sign(x) * (1.0f / (2.0f * s));
    return s;
  }
};

struct Exp {  // exp(min(x, 80)) (NaN stays NaN); d = exp(x) where x <= 80, else 0
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return std::exp(x > kExpMax ? kExpMax : x); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    const float e = std::exp(x > kExpMax ? kExpMax : x);
    dx = x <= kExpMax ? e : 0.0f;
    return e;
  }
};

struct Log {  // log(max(|x|, 1e-6)) (NaN stays NaN); d = 1 / x where |x| >= 1e-6, else 0
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) {
    const float ax = std::fabs(x);
    return std::log(ax < kLogEps ? kLogEps : ax);
  }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    const float ax = std::fabs(x);
    dx = ax >= kLogEps ? 1.0f / x : 0.0f;
    return std::log(ax < kLogEps ? kLogEps : ax);
  }
};

struct Tanh {  // d = 1 - t * t
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return std::tanh(x); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    const float t = std::tanh(x);
    dx = 1.0f - t * t;
    return t;
  }
};

struct Sigmoid {  // 1 / (1 + exp(-x)) with the unclamped exp; d = (1 - s) * s
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return 1.0f / (1.0f + std::exp(-x)); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    const float s = 1.0f / (1.0f + std::exp(-x));
    dx = (1.0f - s) * s;
    return s;
  }
};

struct Relu {  // x if x > 0 else 0 (so relu(NaN) = 0); d = [x > 0]
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return x > 0.0f ? x : 0.0f; }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = x > 0.0f ? 1.0f : 0.0f;
    return x > 0.0f ? x : 0.0f;
  }
};

struct Sign {  // d = 0
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return sign(x); }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = 0.0f;
    return sign(x);
  }
};

struct Min {  // a if a < b else b; ties give 0.5 to each
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a < b ? a : b; }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    const float tie = a == b ? 0.5f : 0.0f;
    da = a < b ? 1.0f : tie;
    db = b < a ? 1.0f : tie;
    return a < b ? a : b;
  }
};

struct Max {  // a if a > b else b; ties give 0.5 to each
  static constexpr int arity = 2;
  EVOZERO_OP_INLINE float f(float a, float b) { return a > b ? a : b; }
  EVOZERO_OP_INLINE float fd(float a, float b, float& da, float& db) {
    const float tie = a == b ? 0.5f : 0.0f;
    da = a > b ? 1.0f : tie;
    db = b > a ? 1.0f : tie;
    return a > b ? a : b;
  }
};

struct Clip {  // min(max(x, lo), hi); ATen's clamp_backward_min_max partials
  static constexpr int arity = 3;
  EVOZERO_OP_INLINE float f(float x, float lo, float hi) {
    const float m = x > lo ? x : lo;
    return m < hi ? m : hi;
  }
  EVOZERO_OP_INLINE float fd(float x, float lo, float hi, float& dx, float& dl, float& dh) {
    dx = (x >= lo) & (x <= hi) ? 1.0f : 0.0f;
    dl = (x < lo) & (lo < hi) ? 1.0f : 0.0f;
    dh = (x > hi) | (hi < lo) ? 1.0f : 0.0f;
    return f(x, lo, hi);
  }
};

struct Where {  // a if c > 0 else b; dc = 0, da = [c > 0], db = [not c > 0]
  static constexpr int arity = 3;
  EVOZERO_OP_INLINE float f(float c, float a, float b) { return c > 0.0f ? a : b; }
  EVOZERO_OP_INLINE float fd(float c, float a, float b, float& dc, float& da, float& db) {
    const bool pos = c > 0.0f;
    dc = 0.0f;
    da = pos ? 1.0f : 0.0f;
    db = pos ? 0.0f : 1.0f;
    return pos ? a : b;
  }
};

struct Copy {
  static constexpr int arity = 1;
  EVOZERO_OP_INLINE float f(float x) { return x; }
  EVOZERO_OP_INLINE float fd(float x, float& dx) {
    dx = 1.0f;
    return x;
  }
};

#undef EVOZERO_OP_INLINE

}  // namespace ops

}  // namespace evozero::interp
