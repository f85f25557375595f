// The interpreter's loops over contiguous float32 arrays. Each is compiled for
// AVX-512, AVX2 and the baseline and picked at load time (GCC target_clones); none
// allocates. Float contraction (FMA) is off in these loops so every op rounds exactly
// as ops.py's numpy form does.
#pragma once

#include <cstddef>
#include <cstdint>

namespace evozero::interp::kernels {

// Operand modes: bit j set means argument j is a scalar (one float, broadcast).
// out[i] = op(a[i], b[i], c[i]) for an elementwise opcode; unused arguments are ignored.
// out must not overlap the vector arguments.
void values(int32_t op, unsigned mode, std::size_t n, float* out, const float* a,
            const float* b, const float* c);

// As values(), and d[j][i] = d out / d arg_j at i for j < arity (ops.py's partials).
void values_partials(int32_t op, unsigned mode, std::size_t n, float* out, float* const d[3],
                     const float* a, const float* b, const float* c);

// out[i] = p[0][i] * t[0][i] (+ p[1][i] * t[1][i]) (+ p[2][i] * t[2][i]), summed left to
// right, for 1 <= terms <= 3 (a forward-mode tangent: partials times argument tangents).
void tangent(std::size_t n, float* out, int terms, const float* const p[3],
             const float* const t[3]);

// out[i] = exp(a[i] - b[i]) (the unclamped float32 exp: the objective's ratio).
void exp_diff(std::size_t n, float* out, const float* a, const float* b);

void fill(std::size_t n, float* out, float value);

// Batch statistics as ops.py defines them: mean64 = fsum(x) / n in float64, std32 =
// float32(sqrt(fsum((x - mean64)^2) / n)), with fsum the exact, correctly rounded sum
// (fsum.hpp); both 0 for n == 0.
double mean64(std::size_t n, const float* x);
float std32(std::size_t n, const float* x, double mean);
// math.fsum of n doubles (exposed for tests).
double fsum(std::size_t n, const double* x);
// out[i] = (x[i] - m) / (s + 1e-8f) in float32.
void normalize(std::size_t n, float* out, const float* x, float m, float s);

}  // namespace evozero::interp::kernels
