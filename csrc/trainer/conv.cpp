#include "trainer/conv.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "trainer/init.hpp"

namespace evozero::trainer {
namespace {

constexpr int kTaps = ConvNet::kKernel * ConvNet::kKernel;
constexpr int kF = ConvNet::kFilters;

// Calls f(cell, value) for every non-zero input of sample i: the active cells
// (value 1) of a sparse row, or the non-zero entries of a dense one.
template <class F>
inline void for_each_input(const FirstLayerInput& x, int in, int i, F&& f) {
  if (x.is_sparse()) {
    const int64_t b = x.sparse.rows ? x.sparse.rows[i] : i;
    for (int64_t p = x.sparse.indptr[b]; p < x.sparse.indptr[b + 1]; ++p)
      f(x.sparse.indices[p], 1.0f);
  } else {
    const float* row = x.dense + std::size_t(i) * in;
    for (int j = 0; j < in; ++j)
      if (row[j] != 0.0f) f(j, row[j]);
  }
}

// Calls f(tap, position) for the (at most 9) output positions that input cell
// (y, x) reaches: tap = ky * 3 + kx is the kernel offset, position = oy * 8 + ox.
template <class F>
inline void for_each_tap(int y, int x, F&& f) {
  constexpr int last = ConvNet::kOutGrid - 1;
  for (int oy = std::max(0, y - 2); oy <= std::min(last, y); ++oy)
    for (int ox = std::max(0, x - 2); ox <= std::min(last, x); ++ox)
      f((y - oy) * ConvNet::kKernel + (x - ox), oy * ConvNet::kOutGrid + ox);
}

}  // namespace

ConvNet::ConvNet(int obs_size, int out, std::size_t offset)
    : in_(obs_size), channels_(obs_size / (kGrid * kGrid)), out_(out), offset_(offset) {
  if (obs_size <= 0 || obs_size % (kGrid * kGrid) || out <= 0)
    throw std::invalid_argument(
        "the conv network needs 10x10xC MinAtar observations (obs_size = 100 * C, got " +
        std::to_string(obs_size) + "); use network 'mlp' for other envs");
  wc_ = offset;
  bc_ = wc_ + std::size_t(channels_) * kTaps * kF;
  w1_ = bc_ + kF;
  b1_ = w1_ + std::size_t(kFeatures) * kHidden;
  w2_ = b1_ + kHidden;
  b2_ = w2_ + std::size_t(out) * kHidden;
  size_ = b2_ + std::size_t(padded(out)) - offset;
  w1_out_major_.assign(std::size_t(kFeatures) * kHidden, 0.0f);
}

std::vector<TensorSpec> ConvNet::tensors(const std::string& prefix) const {
  // torch (16, C, 3, 3) -> wc (C, 3, 3, 16); torch (128, f * 64 + p) -> w1 (p * 16 + f, 128).
  std::vector<std::size_t> conv_at, fc_at;
  for (int f = 0; f < kF; ++f)
    for (int t = 0; t < channels_ * kTaps; ++t) conv_at.push_back(std::size_t(t) * kF + f);
  for (int o = 0; o < kHidden; ++o)
    for (int f = 0; f < kF; ++f)
      for (int p = 0; p < kPositions; ++p)
        fc_at.push_back((std::size_t(p) * kF + f) * kHidden + o);
  return {
      {prefix + ".0.weight", {kF, channels_, kKernel, kKernel}, wc_, 0, false, conv_at},
      {prefix + ".0.bias", {kF}, bc_, 1, false},
      {prefix + ".3.weight", {kHidden, kFeatures}, w1_, 0, false, fc_at},
      {prefix + ".3.bias", {kHidden}, b1_, 1, false},
      {prefix + ".5.weight", {out_, kHidden}, w2_, kHidden, false},
      {prefix + ".5.bias", {out_}, b2_, 1, false},
  };
}

void ConvNet::initialize(float* params, NormalRng& rng, double out_gain) const {
  std::fill(params + offset_, params + offset_ + size_, 0.0f);
  const auto specs = tensors("");
  std::vector<float> w;
  for (int layer = 0; layer < 3; ++layer) {  // torch's orthogonal_ flattens all but dim 0
    const TensorSpec& s = specs[2 * layer];
    const int rows = s.shape[0], cols = int(s.numel() / std::size_t(rows));
    w.resize(s.numel());
    orthogonal(rows, cols, layer < 2 ? std::sqrt(2.0) : out_gain, rng, w.data());
    write_tensor(s, w.data(), params);
  }
}

void ConvNet::sync(const float* params) {
  const float* w1 = params + w1_;
  for (int j = 0; j < kFeatures; ++j)
    for (int o = 0; o < kHidden; ++o)
      w1_out_major_[std::size_t(o) * kFeatures + j] = w1[std::size_t(j) * kHidden + o];
}

void ConvNet::reserve(int n) {
  if (n <= capacity_) return;
  const std::size_t rows = std::size_t(n);
  for (Buffer* b : {&h1_, &d1_}) ensure_size(*b, rows * kFeatures);
  for (Buffer* b : {&h2_, &d2_}) ensure_size(*b, rows * kHidden);
  ensure_size(out_buf_, rows * std::size_t(out_));
  capacity_ = n;
}

void ConvNet::forward(const float* params, const FirstLayerInput& x, int n) {
  reserve(n);
  const float* p = params;
  const float* wc = p + wc_;
  const int C = channels_;
  for (int i = 0; i < n; ++i) {
    float* h = h1_.data() + std::size_t(i) * kFeatures;
    for (int q = 0; q < kPositions; ++q) std::copy(p + bc_, p + bc_ + kF, h + q * kF);
    for_each_input(x, in_, i, [&](int cell, float value) {
      const float* w = wc + std::size_t(cell % C) * kTaps * kF;
      const int yx = cell / C;
      for_each_tap(yx / kGrid, yx % kGrid, [&](int tap, int pos) {
        float* hp = h + pos * kF;
        const float* wt = w + tap * kF;
        for (int f = 0; f < kF; ++f) hp[f] += value * wt[f];
      });
    });
    for (int k = 0; k < kFeatures; ++k) h[k] = h[k] < 0.0f ? 0.0f : h[k];  // ReLU; NaN passes
  }
  kernels::gemm(n, kFeatures, kHidden, h1_.data(), kFeatures, 1, p + w1_, p + b1_, true,
                h2_.data());
  kernels::gemm_nt(n, out_, kHidden, h2_.data(), p + w2_, p + b2_, out_buf_.data());
}

void ConvNet::backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                       float* grads) {
  if (n > capacity_)
    throw std::logic_error("ConvNet::backward without a forward pass of n samples");
  const float* p = params;
  float* g = grads;
  float *h1 = h1_.data(), *h2 = h2_.data(), *d1 = d1_.data(), *d2 = d2_.data();

  output_layer_backward(n, out_, kHidden, dout, h2, p + w2_, g + w2_, g + b2_,
                        g + offset_ + size_, d2);

  // Hidden layer: dW1[j, :] = sum_i h1[i, j] d2[i, :];  dh1 = d2 . W1^T.
  kernels::gemm(kFeatures, n, kHidden, h1, 1, kFeatures, d2, nullptr, false, g + w1_);
  kernels::column_sums(n, kHidden, d2, g + b1_);
  kernels::gemm(n, kHidden, kFeatures, d2, kHidden, 1, w1_out_major_.data(), nullptr, false, d1);
  kernels::relu_backward(std::size_t(n) * kFeatures, h1, d1);

  // Conv: each non-zero input adds value * dh1 at the positions it reached.
  float* gc = g + wc_;
  const int C = channels_;
  std::fill(gc, gc + std::size_t(C) * kTaps * kF, 0.0f);
  for (int i = 0; i < n; ++i) {
    const float* d = d1 + std::size_t(i) * kFeatures;
    for_each_input(x, in_, i, [&](int cell, float value) {
      float* w = gc + std::size_t(cell % C) * kTaps * kF;
      const int yx = cell / C;
      for_each_tap(yx / kGrid, yx % kGrid, [&](int tap, int pos) {
        float* wt = w + tap * kF;
        const float* dp = d + pos * kF;
        for (int f = 0; f < kF; ++f) wt[f] += value * dp[f];
      });
    });
  }
  kernels::column_sums(n * kPositions, kF, d1, g + bc_);
}

}  // namespace evozero::trainer
