#include "trainer/conv.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "trainer/init.hpp"

namespace evozero::trainer {
namespace {

constexpr int kTaps = PatchIndex::kTaps;
constexpr int kF = ConvNet::kFilters;

}  // namespace

ConvNet::ConvNet(int obs_size, int out, std::size_t offset)
    : in_(obs_size), channels_(obs_size / (kGrid * kGrid)), out_(out), offset_(offset) {
  if (obs_size <= 0 || obs_size % (kGrid * kGrid) || out <= 0)
    throw std::invalid_argument(
        "the conv network needs 10x10xC MinAtar observations (obs_size = 100 * C, got " +
        std::to_string(obs_size) + "); use network 'mlp' for other envs");
  if (channels_ > 64)
    throw std::invalid_argument("the conv network takes at most 64 channels (got " +
                                std::to_string(channels_) + "); use network 'mlp'");
  wc_ = offset;
  bc_ = wc_ + std::size_t(channels_) * kTaps * kF;
  w1_ = bc_ + kF;
  b1_ = w1_ + std::size_t(kFeatures) * kHidden;
  w2_ = b1_ + kHidden;
  b2_ = w2_ + std::size_t(out) * kHidden;
  size_ = b2_ + std::size_t(padded(out)) - offset;
  w1_by_position_.assign(std::size_t(kFeatures) * kHidden, 0.0f);
  kappa_.assign(kF, 0.0f);
  base_.assign(kHidden, 0.0f);
  inactive_.assign(kHidden, 0.0f);
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
  for (int q = 0; q < kPositions; ++q)
    for (int f = 0; f < kF; ++f)
      for (int o = 0; o < kHidden; ++o)
        w1_by_position_[(std::size_t(q) * kHidden + o) * kF + f] =
            w1[(std::size_t(q) * kF + f) * kHidden + o];
  // An inactive position's output, and every sample's start of the hidden layer:
  // base = b1 + sum_q kappa . W1[q] (no skipping kappa = 0: 0 * inf is NaN here as
  // in torch).
  const float* bc = params + bc_;
  for (int f = 0; f < kF; ++f) kappa_[f] = bc[f] < 0.0f ? 0.0f : bc[f];  // NaN passes
  float* base = base_.data();
  std::copy(params + b1_, params + b1_ + kHidden, base);
  for (int j = 0; j < kFeatures; ++j) {
    const float k = kappa_[j % kF];
    const float* w = w1 + std::size_t(j) * kHidden;
    for (int o = 0; o < kHidden; ++o) base[o] += k * w[o];
  }
}

PatchIndex& ConvNet::index(const FirstLayerInput& x, int n) const {
  if (!x.patches || x.patches->samples() != n)
    throw std::logic_error("ConvNet: the input has no patch index of its n samples "
                           "(FirstLayerInput::patches, built by ActorCritic)");
  return *x.patches;
}

void ConvNet::forward(const float* params, const FirstLayerInput& x, int n) {
  PatchIndex& index = this->index(x, n);
  const float* p = params;
  const float* w1 = p + w1_;
  last_n_ = n;
  const std::size_t patches = std::size_t(index.patches());
  ensure_size(h1_, patches * kF);
  ensure_size(shifted_, patches * kF);
  ensure_size(terms_, patches * kHidden);
  ensure_size(h2_, std::size_t(n) * kHidden);
  ensure_size(out_buf_, std::size_t(n) * out_);
  float *h1 = h1_.data(), *shifted = shifted_.data(), *terms = terms_.data();
  kernels::conv3x3_forward(int(patches), index.inputs(x), p + wc_, p + bc_, h1);
  for (std::size_t k = 0; k < patches * kF; ++k) shifted[k] = h1[k] - kappa_[k % kF];
  // each patch's term (h1 - kappa) . W1[q], a gemm per position
  for (int q = 0; q < kPositions; ++q) {
    const int64_t first = index.first(q);
    kernels::gemm(int(index.first(q + 1) - first), kF, kHidden, shifted + first * kF, kF, 1,
                  w1 + std::size_t(q) * kF * kHidden, nullptr, false, terms + first * kHidden);
  }
  // h2 = ReLU(base + the terms of the sample's patches)
  kernels::sparse_gemm(n, index.incidence(), kHidden, terms, base_.data(), true, h2_.data());
  kernels::gemm_nt(n, out_, kHidden, h2_.data(), p + w2_, p + b2_, out_buf_.data());
}

void ConvNet::backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                       float* grads) {
  // the activations below are the last forward pass's: same x, same n
  if (n != last_n_)
    throw std::logic_error("ConvNet::backward without the forward pass of the same n samples");
  PatchIndex& index = this->index(x, n);
  const float* p = params;
  float* g = grads;
  const float* w1 = p + w1_;
  const std::size_t patches = std::size_t(index.patches());
  ensure_size(d2_, std::size_t(n) * kHidden);
  ensure_size(d1_, patches * kF);
  float *h1 = h1_.data(), *shifted = shifted_.data(), *terms = terms_.data();
  float *d1 = d1_.data(), *d2 = d2_.data();

  output_layer_backward(n, out_, kHidden, dout, h2_.data(), p + w2_, g + w2_, g + b2_,
                        g + offset_ + size_, d2);
  const float* d2_sum = g + b1_;
  kernels::column_sums(n, kHidden, d2, g + b1_);
  // Per position q, over its patches: D (into terms), d2 summed over the samples
  // holding each patch, then, while q's rows of D are in cache,
  //   dW1[q] = (h1 - kappa)^T D + kappa (x) sum_i d2[i],   dh1 = D . W1[q]^T,
  // and the conv bias's share from the samples where q is inactive,
  // W1[q] . (sum_i d2[i] - the sum of q's D), where the ReLU passes kappa.
  float* gbc = g + bc_;
  std::fill(gbc, gbc + kF, 0.0f);
  float* inactive = inactive_.data();
  const kernels::SparseColumns holders = index.by_patch();
  for (int q = 0; q < kPositions; ++q) {
    const int64_t first = index.first(q);
    const int m = int(index.first(q + 1) - first);
    float* gw = g + w1_ + std::size_t(q) * kF * kHidden;
    kernels::sparse_column_sums(m, {holders.ptr + first, holders.samples}, kHidden, d2,
                                terms + first * kHidden);
    kernels::gemm(kF, m, kHidden, shifted + first * kF, 1, kF, terms + first * kHidden, nullptr,
                  false, gw);
    kernels::gemm(m, kHidden, kF, terms + first * kHidden, kHidden, 1,
                  w1_by_position_.data() + std::size_t(q) * kHidden * kF, nullptr, false,
                  d1 + first * kF);
    kernels::column_sums(m, kHidden, terms + first * kHidden, inactive);
    for (int o = 0; o < kHidden; ++o) inactive[o] = d2_sum[o] - inactive[o];
    for (int f = 0; f < kF; ++f) {
      float* row = gw + f * kHidden;
      for (int o = 0; o < kHidden; ++o) row[o] += kappa_[f] * d2_sum[o];
      if (!(kappa_[f] <= 0.0f)) {  // the ReLU passes at kappa (NaN passes)
        const float* w = w1 + (std::size_t(q) * kF + f) * kHidden;
        float dot = 0.0f;
        for (int o = 0; o < kHidden; ++o) dot += w[o] * inactive[o];
        gbc[f] += dot;
      }
    }
  }
  kernels::relu_backward(patches * kF, h1, d1);
  float active[kF];
  kernels::column_sums(int(patches), kF, d1, active);
  for (int f = 0; f < kF; ++f) gbc[f] += active[f];
  float* gc = g + wc_;
  std::fill(gc, gc + std::size_t(channels_) * kTaps * kF, 0.0f);
  kernels::conv3x3_weight_grad(int(patches), index.inputs(x), d1, gc);
}

}  // namespace evozero::trainer
