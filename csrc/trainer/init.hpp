// Deterministic parameter initialization: a seeded Gaussian sampler and the
// orthogonal initializer of PureJaxRL / CleanRL (torch.nn.init.orthogonal_,
// jax.nn.initializers.orthogonal).
//
// The values depend only on the seed, on every platform: std::mt19937_64 is
// fully specified by the standard, and the Gaussian and QR arithmetic use only
// IEEE-754 double +, -, *, / and sqrt (correctly rounded), with a logarithm of
// our own and multiply-add contraction switched off in init.cpp.
// std::normal_distribution is avoided on purpose: its algorithm is
// implementation-defined.
#pragma once

#include <cstdint>
#include <random>

namespace evozero::trainer {

class NormalRng {
 public:
  explicit NormalRng(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }

  // Standard normal (Marsaglia's polar method; the second value of each pair is
  // kept for the next call).
  double normal();

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Natural logarithm from basic arithmetic only (deterministic across platforms;
// accurate to a few ulp for finite x > 0).
double portable_log(double x);

// Fills w (rows x cols, row-major: torch's (out, in) layout of a Linear weight)
// with gain * a random semi-orthogonal matrix: w w^T = gain^2 I when rows <= cols,
// w^T w = gain^2 I otherwise. As torch.nn.init.orthogonal_: draw a Gaussian
// (rows x cols) matrix in row-major order, transpose it if it is wide, take the
// Q of its QR decomposition with R's diagonal made positive (here: modified
// Gram-Schmidt run twice, in double), transpose back, scale.
void orthogonal(int rows, int cols, double gain, NormalRng& rng, float* w);

}  // namespace evozero::trainer
