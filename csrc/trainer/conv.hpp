// One convolutional network of the actor-critic, the MinAtar paper's
// (Young & Tian 2019, examples/AC_lambda.py; with ReLU where that example has
// SiLU, as its DQN example): on the 10x10xC bit planes,
//   Conv2d(C, 16, 3x3, stride 1, valid) -> ReLU -> Linear(16*8*8, 128) -> ReLU
//   -> Linear(128, out)
// i.e. torch's nn.Sequential(Conv2d, ReLU, Flatten, Linear, ReLU, Linear),
// hence the parameter names 0, 3, 5.
//
// Observations are MinAtar's: cell (y, x, c) is input (y * 10 + x) * C + c.
// Within the network's range of the flat parameter array (see network.hpp):
//   wc (C, 3, 3, 16) bc (16)   conv filters, filter-minor: the 16 weights that
//                              one input cell adds at one kernel offset are
//                              contiguous (one vector)
//   w1 (1024, 128)   b1 (128)  hidden layer, input-major, its input in the
//                              order of the conv output below
//   w2 (out, 128)    b2 (out)  output layer, output-major (torch's layout)
// The conv output's features are ordered position-major, (64 positions, 16
// filters): feature p * 16 + f (torch's Flatten order is f * 64 + p; tensors()
// maps between the two).
//
// The conv exploits the sparse input: only the patches' non-zero inputs are read,
// about 9 * 16 multiply-adds per active cell instead of 64 * 9 * C * 16, and
// likewise for the filters' gradient. The forward pass gathers each active
// position's patch (per-cell channel masks) into registers; the filters' gradient
// sums, per (channel, kernel offset), the output gradients of that channel's cells
// in registers, one update of each filter row per sample. Measured slower: both
// as scatters into the outputs (read-modify-write chains through memory), and a
// zero row added for each empty cell instead of a branch. Dense float rows are
// read the same way, skipping zeros (a value multiplies its filter row).
//
// The 1024 -> 128 layer, most of the work, exploits it too. A position whose
// 3x3 patch holds no active cell ("inactive": 25-65% of them, by game) outputs
// the same 16 features in every sample, kappa = ReLU(conv bias). So, with W1[p]
// the 16 rows of w1 that position p feeds,
//   h2 = b1 + sum_p kappa . W1[p] + sum over active p of (h1[p] - kappa) . W1[p]
// where the first two terms are one vector for the whole batch; and likewise
// the weight gradient (kappa times the sum of d2 over the samples where p is
// inactive) and the input gradient (needed only where p is active, and, for
// the conv bias, summed over the inactive samples in one product per p). Each
// position's work is a small gemm over the samples where it is active,
// gathered by position (CSC), so the weights of W1[p] are reused across those
// samples. So the activations keep only the active positions: slot k of h1
// holds the 16 features of the k-th (position, sample) pair, pairs grouped by
// position and each group in sample order, so a position's samples are
// contiguous. The batch is worked in chunks of kChunk samples (forward: conv
// then hidden layer; backward: hidden layer then conv), each chunk's pairs
// grouped so, so that a chunk's conv outputs and hidden rows stay in L2 from one
// layer to the next (on breakout, a forward-backward step of a 1024-sample
// minibatch ran 7% faster in chunks of 128 than whole; 64 and 256 were slower).
// Running the layer over the ~20-35% non-zero conv outputs one sample at a time
// was measured slower: each weight row was then read once from L2 where a tile
// reuses it across samples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/buffer.hpp"
#include "trainer/kernels.hpp"
#include "trainer/network.hpp"

namespace evozero::trainer {

class ConvNet final : public Network {
 public:
  static constexpr int kGrid = 10;      // MinAtar's 10x10 grid
  static constexpr int kKernel = 3;
  static constexpr int kOutGrid = kGrid - kKernel + 1;        // 8: valid convolution
  static constexpr int kFilters = 16;
  static constexpr int kPositions = kOutGrid * kOutGrid;      // 64
  static constexpr int kFeatures = kPositions * kFilters;     // 1024
  static constexpr int kHidden = 128;

  // obs_size must be 100 * C (C >= 1 channels).
  ConvNet(int obs_size, int out, std::size_t offset);

  int channels() const { return channels_; }
  int out() const override { return out_; }
  std::size_t offset() const override { return offset_; }
  std::size_t size() const override { return size_; }

  void initialize(float* params, NormalRng& rng, double out_gain) const override;
  void sync(const float* params) override;
  void forward(const float* params, const FirstLayerInput& x, int n) override;
  const float* output() const override { return out_buf_.data(); }
  void backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                float* grads) override;
  bool reads_columns() const override { return false; }
  std::vector<TensorSpec> tensors(const std::string& prefix) const override;

 private:
  void reserve(int n);

  int in_, channels_, out_;
  std::size_t offset_, wc_, bc_, w1_, b1_, w2_, b2_, size_;
  // Samples per chunk of the batch (above): a chunk's conv outputs (about 40 active
  // positions x 64 bytes per sample) and hidden rows (512 bytes) fit in L2.
  static constexpr int kChunk = 128;
  // The positions each sample of x activates (active_), and each chunk's samples by
  // position: in chunk c, position q is active in samples
  // by_position_[s[q] .. s[q + 1]) with s = chunk_starts(c), in increasing order.
  // Index k of that list is also the pair's slot in h1 and d1: chunk by chunk, and
  // within a chunk position by position.
  void index_positions(const FirstLayerInput& x, int n);
  const int64_t* chunk_starts(int c) const {
    return starts_.data() + std::size_t(c) * (kPositions + 1);
  }
  // For each sample i of chunk c: sets at[place[q]] to the offset in h1 (and d1) of
  // the 16 features of its pair with each of its active positions q, then calls f(i).
  template <class F>
  void for_each_sample(int n, int c, const int* place, int64_t* at, F&& f) const;
  // Sample i's non-zero inputs grouped by channel (the conv's backward).
  kernels::ConvInputByChannel by_channel(const FirstLayerInput& x, int i);

  int capacity_ = 0;
  int last_n_ = -1;            // the batch size of the last forward pass
  Buffer w1_by_position_;      // (64, 128, 16): W1[q] transposed per position, for dh1
  Buffer dw1_by_position_;     // (64, 128, 16): dW1[q] so transposed, summed over chunks
  Buffer h1_, d1_;             // (slots, 16): the conv's outputs at active positions only,
                               // and their gradients (the last forward pass's pairs)
  Buffer h2_, d2_, out_buf_;   // the hidden layer's and the output layer's (n, .)
  Buffer kappa_;               // (16): ReLU(conv bias), an inactive position's output
  Buffer base_;                // (128): b1 + sum_q kappa . W1[q], every sample's start
  Buffer panel_;               // (m, 16): one position's h1 - kappa
  Buffer inactive_sums_;       // (64, 128): d2 summed per position over its inactive samples
  uint64_t patch_of_cell_[kGrid * kGrid] = {};  // the positions each grid cell reaches
  uint64_t channels_of_cell_[kGrid * kGrid] = {};  // one sample's non-zero channels, by cell
  static constexpr int kPadded = kOutGrid + 4;       // the 8x8 positions padded by 2
  int identity_[kPositions], padded_[kPositions];    // position -> itself, its padded place
  int64_t at_[kPositions] = {};                      // one sample's slot offsets, by position
  int64_t padded_at_[kPadded * kPadded] = {};        // ... by padded place (zero row: none)
  std::vector<int32_t> channel_starts_;              // by_channel(): C + 1
  std::vector<int16_t> channel_cells_;
  std::vector<float> channel_values_;
  std::vector<int16_t> yx_of_cell_;             // input index -> grid cell (no division)
  std::vector<uint64_t> active_;      // per sample: bit q set when position q is active
  std::vector<int64_t> starts_;       // per chunk, 65 offsets into by_position_
  std::vector<int32_t> by_position_;  // sample indices, grouped by position
};

}  // namespace evozero::trainer
