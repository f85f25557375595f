// Seeded, platform-independent initialization (see init.hpp).

// A fused multiply-add rounds differently from a multiply then an add; forbid
// the compiler from fusing here (e.g. under -march=native) so that the values
// stay the same on every machine.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "trainer/init.hpp"

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

namespace evozero::trainer {

double portable_log(double x) {
  if (!(x > 0.0) || !std::isfinite(x)) throw std::domain_error("portable_log needs finite x > 0");
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); frexp and the rescaling are exact.
  int e = 0;
  double m = std::frexp(x, &e);  // m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: the odd series
  // 2 (s + s^3/3 + s^5/5 + ...) reaches double precision by s^27.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double sum = 0.0;
  for (int k = 27; k >= 1; k -= 2) sum = sum * s2 + 1.0 / k;
  const double ln2 = 0.69314718055994530942;
  return 2.0 * s * sum + e * ln2;
}

double NormalRng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, q;
  do {
    u = 2.0 * uniform() - 1.0;
    v = 2.0 * uniform() - 1.0;
    q = u * u + v * v;
  } while (q >= 1.0 || q == 0.0);
  const double f = std::sqrt(-2.0 * portable_log(q) / q);
  spare_ = v * f;
  has_spare_ = true;
  return u * f;
}

void orthogonal(int rows, int cols, double gain, NormalRng& rng, float* w) {
  if (rows <= 0 || cols <= 0) throw std::invalid_argument("orthogonal: empty matrix");
  std::vector<double> a(std::size_t(rows) * cols);
  for (double& x : a) x = rng.normal();

  // Work on the tall matrix t (m x k, m >= k): a itself, or a^T when a is wide.
  // Its k columns are stored contiguously: col[j][i] = t[i][j].
  const bool wide = rows < cols;
  const int m = wide ? cols : rows, k = wide ? rows : cols;
  std::vector<double> col(std::size_t(m) * k);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double x = a[std::size_t(r) * cols + c];
      if (wide)
        col[std::size_t(r) * m + c] = x;  // column r of a^T is row r of a
      else
        col[std::size_t(c) * m + r] = x;
    }

  // Modified Gram-Schmidt, twice ("twice is enough" for orthogonality to
  // rounding level). Dividing by the norm gives R a positive diagonal, the
  // sign convention torch and jax impose on their Householder QR.
  for (int j = 0; j < k; ++j) {
    double* q = &col[std::size_t(j) * m];
    for (int pass = 0; pass < 2; ++pass)
      for (int p = 0; p < j; ++p) {
        const double* qp = &col[std::size_t(p) * m];
        double dot = 0.0;
        for (int i = 0; i < m; ++i) dot += qp[i] * q[i];
        for (int i = 0; i < m; ++i) q[i] -= dot * qp[i];
      }
    double norm2 = 0.0;
    for (int i = 0; i < m; ++i) norm2 += q[i] * q[i];
    const double norm = std::sqrt(norm2);
    if (!(norm > 0.0)) throw std::runtime_error("orthogonal: degenerate Gaussian matrix");
    for (int i = 0; i < m; ++i) q[i] /= norm;
  }

  // w = gain * Q (tall) or gain * Q^T (wide).
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double q = wide ? col[std::size_t(r) * m + c] : col[std::size_t(c) * m + r];
      w[std::size_t(r) * cols + c] = float(gain * q);
    }
}

}  // namespace evozero::trainer
