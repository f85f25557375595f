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
  dw1_by_position_.assign(std::size_t(kFeatures) * kHidden, 0.0f);
  kappa_.assign(kF, 0.0f);
  base_.assign(kHidden, 0.0f);
  inactive_sums_.assign(std::size_t(kPositions) * kHidden, 0.0f);
  starts_.assign(kPositions + 1, 0);
  yx_of_cell_.resize(std::size_t(obs_size));
  for (int cell = 0; cell < obs_size; ++cell) yx_of_cell_[cell] = int16_t(cell / channels_);
  channel_starts_.resize(std::size_t(channels_) + 1);
  channel_cells_.resize(std::size_t(obs_size));
  channel_values_.resize(std::size_t(obs_size));
  for (int q = 0; q < kPositions; ++q) {
    identity_[q] = q;
    padded_[q] = (q / kOutGrid + 2) * kPadded + q % kOutGrid + 2;
  }
  for (int yx = 0; yx < kGrid * kGrid; ++yx)
    for_each_tap(yx / kGrid, yx % kGrid,
                 [&](int, int pos) { patch_of_cell_[yx] |= uint64_t(1) << pos; });
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

void ConvNet::reserve(int n) {
  if (n <= capacity_) return;
  const std::size_t rows = std::size_t(n);
  ensure_size(h1_, rows * kFeatures);
  ensure_size(d1_, rows * kFeatures + kF);  // and a zero row, read by the conv's backward
  for (Buffer* b : {&h2_, &d2_}) ensure_size(*b, rows * kHidden);
  ensure_size(panel_, rows * kF);
  ensure_size(out_buf_, rows * std::size_t(out_));
  active_.resize(rows);
  by_position_.resize(rows * kPositions);
  capacity_ = n;
}

void ConvNet::index_positions(const FirstLayerInput& x, int n) {
  for (int i = 0; i < n; ++i) {
    uint64_t active = 0;
    for_each_input(x, in_, i,
                   [&](int cell, float) { active |= patch_of_cell_[yx_of_cell_[cell]]; });
    active_[i] = active;
  }
  const int chunks = (n + kChunk - 1) / kChunk;
  starts_.resize(std::size_t(chunks) * (kPositions + 1));
  int64_t slot = 0;
  for (int c = 0; c < chunks; ++c) {
    const int first = c * kChunk, last = std::min(n, first + kChunk);
    int64_t* starts = starts_.data() + std::size_t(c) * (kPositions + 1);
    int64_t next[kPositions] = {};  // counts, then each position's next slot
    for (int i = first; i < last; ++i)
      for (uint64_t m = active_[i]; m; m &= m - 1) ++next[__builtin_ctzll(m)];
    for (int q = 0; q < kPositions; ++q) {
      starts[q] = slot;
      slot += next[q];
      next[q] = starts[q];
    }
    starts[kPositions] = slot;
    for (int i = first; i < last; ++i)  // in sample order: each position's list is sorted
      for (uint64_t m = active_[i]; m; m &= m - 1) by_position_[next[__builtin_ctzll(m)]++] = i;
  }
}

template <class F>
void ConvNet::for_each_sample(int n, int c, const int* place, int64_t* at, F&& f) const {
  int64_t next[kPositions];
  std::copy(chunk_starts(c), chunk_starts(c) + kPositions, next);
  for (int i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
    // samples in increasing order take each position's slots in turn
    for (uint64_t m = active_[i]; m; m &= m - 1) {
      const int q = __builtin_ctzll(m);
      at[place[q]] = next[q]++ * kF;
    }
    f(i);
  }
}

kernels::ConvInputByChannel ConvNet::by_channel(const FirstLayerInput& x, int i) {
  int32_t* starts = channel_starts_.data();
  std::fill(starts, starts + channels_ + 1, 0);
  for_each_input(x, in_, i, [&](int cell, float) {
    ++starts[cell - yx_of_cell_[cell] * channels_ + 1];
  });
  for (int c = 0; c < channels_; ++c) starts[c + 1] += starts[c];
  for_each_input(x, in_, i, [&](int cell, float value) {  // starts[c]: channel c's next
    const int yx = yx_of_cell_[cell];
    const int k = starts[cell - yx * channels_]++;
    channel_cells_[k] = int16_t((yx / kGrid + 2) * kPadded + yx % kGrid + 2);
    channel_values_[k] = value;
  });
  for (int c = channels_; c > 0; --c) starts[c] = starts[c - 1];  // back to the starts
  starts[0] = 0;
  return {channel_cells_.data(), channel_values_.data(), starts, channels_};
}

void ConvNet::forward(const float* params, const FirstLayerInput& x, int n) {
  reserve(n);
  const float* p = params;
  const float* wc = p + wc_;
  const float* bc = p + bc_;
  const float* w1 = p + w1_;
  index_positions(x, n);
  last_n_ = n;
  const float* base = base_.data();  // b1 + sum_q kappa . W1[q] (sync)
  float *h1 = h1_.data(), *h2 = h2_.data();
  for (int c = 0; c * kChunk < n; ++c) {
    // Conv, active positions only, into the chunk's slots (position-major, so each
    // position's samples are contiguous, as the hidden layer reads them).
    for_each_sample(n, c, identity_, at_, [&](int i) {
      uint64_t* channels = channels_of_cell_;
      const auto mark = [&](int cell, float) {
        const int yx = yx_of_cell_[cell];
        channels[yx] |= uint64_t(1) << (cell - yx * channels_);
      };
      for_each_input(x, in_, i, mark);
      const float* values = x.is_sparse() ? nullptr : x.dense + std::size_t(i) * in_;
      kernels::conv3x3_forward(active_[i], {channels, values, channels_}, wc, bc, at_, h1);
      for_each_input(x, in_, i, [&](int cell, float) { channels[yx_of_cell_[cell]] = 0; });
    });
    // h2 = base + the active (h1 - kappa) . W1[q]
    for (int i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
      std::copy(base, base + kHidden, h2 + std::size_t(i) * kHidden);
    const int64_t* starts = chunk_starts(c);
    for (int q = 0; q < kPositions; ++q) {
      const int m = int(starts[q + 1] - starts[q]);
      const float* h = h1 + std::size_t(starts[q]) * kF;
      for (int k = 0; k < m; ++k)
        for (int f = 0; f < kF; ++f) panel_[std::size_t(k) * kF + f] = h[k * kF + f] - kappa_[f];
      kernels::gemm_add_rows(m, kF, kHidden, panel_.data(), w1 + std::size_t(q) * kF * kHidden,
                             by_position_.data() + starts[q], h2);
    }
  }
  for (std::size_t k = 0; k < std::size_t(n) * kHidden; ++k) h2[k] = h2[k] < 0.0f ? 0.0f : h2[k];
  kernels::gemm_nt(n, out_, kHidden, h2, p + w2_, p + b2_, out_buf_.data());
}

void ConvNet::backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                       float* grads) {
  // the slots below are the last forward pass's: same x, same n
  if (n != last_n_)
    throw std::logic_error("ConvNet::backward without the forward pass of the same n samples");
  const float* p = params;
  float* g = grads;
  const float* w1 = p + w1_;
  float *h1 = h1_.data(), *h2 = h2_.data(), *d1 = d1_.data(), *d2 = d2_.data();

  output_layer_backward(n, out_, kHidden, dout, h2, p + w2_, g + w2_, g + b2_,
                        g + offset_ + size_, d2);
  kernels::column_sums(n, kHidden, d2, g + b1_);

  // Hidden layer, chunk by chunk and within a chunk one position q at a time over
  // the samples where it is active (conv.hpp): dW1[q] += h1[., q]^T d2; dh1 = d2 .
  // W1[q]^T in q's slots (the conv weights read no more); then the conv's gradients
  // from that chunk's dh1. After the chunks, the inactive samples' part: kappa (x)
  // (d2 summed where q is inactive) into dW1[q], and one product per position into
  // the conv bias.
  float* gbc = g + bc_;
  float* gc = g + wc_;
  // the padding's positions read the zero row after the last slot (reserve)
  std::fill(padded_at_, padded_at_ + kPadded * kPadded, int64_t(capacity_) * kFeatures);
  std::fill(gbc, gbc + kF, 0.0f);
  std::fill(gc, gc + std::size_t(channels_) * kTaps * kF, 0.0f);
  std::fill(dw1_by_position_.begin(), dw1_by_position_.end(), 0.0f);
  for (int c = 0; c * kChunk < n; ++c) {
    const int64_t* starts = chunk_starts(c);
    for (int q = 0; q < kPositions; ++q) {
      const int m = int(starts[q + 1] - starts[q]);
      if (m == 0) continue;
      const std::size_t first = std::size_t(starts[q]) * kF;
      const int32_t* samples = by_position_.data() + starts[q];  // their rows of d2
      // dW1[q]^T (128, 16) += d2[samples]^T . h1[q's slots], and dh1 = d2[samples] . W1[q]^T
      kernels::gemm_gathered(kHidden, m, kF, d2, 1, kHidden, samples, true, h1 + first, true,
                             dw1_by_position_.data() + std::size_t(q) * kHidden * kF);
      kernels::gemm_gathered(m, kHidden, kF, d2, kHidden, 1, samples, false,
                             w1_by_position_.data() + std::size_t(q) * kHidden * kF, false,
                             d1 + first);
    }
    const std::size_t first = std::size_t(starts[0]) * kF;
    const std::size_t count = std::size_t(starts[kPositions] - starts[0]) * kF;
    kernels::relu_backward(count, h1 + first, d1 + first);
    float active_sum[kF];
    kernels::column_sums(int(count / kF), kF, d1 + first, active_sum);
    for (int f = 0; f < kF; ++f) gbc[f] += active_sum[f];
    for_each_sample(n, c, padded_, padded_at_, [&](int i) {
      kernels::conv3x3_weight_grad(by_channel(x, i), padded_at_, d1, gc);
    });
  }
  kernels::masked_row_sums(n, kHidden, d2, active_.data(), inactive_sums_.data());
  for (int q = 0; q < kPositions; ++q) {
    float* gw = g + w1_ + std::size_t(q) * kF * kHidden;
    const float* inactive = inactive_sums_.data() + std::size_t(q) * kHidden;
    const float* gw_t = dw1_by_position_.data() + std::size_t(q) * kHidden * kF;
    for (int f = 0; f < kF; ++f) {
      const float* w = w1 + (std::size_t(q) * kF + f) * kHidden;
      for (int o = 0; o < kHidden; ++o)
        gw[f * kHidden + o] = gw_t[o * kF + f] + kappa_[f] * inactive[o];
      if (!(kappa_[f] <= 0.0f)) {  // the ReLU passes at kappa (NaN passes)
        float dot = 0.0f;
        for (int o = 0; o < kHidden; ++o) dot += w[o] * inactive[o];
        gbc[f] += dot;
      }
    }
  }
}

}  // namespace evozero::trainer
