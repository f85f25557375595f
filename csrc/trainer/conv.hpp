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
// The network exploits MinAtar's input: few active cells, and most 3x3 patches
// repeated across a batch (bricks, walls, empty lanes). A position whose patch
// holds no active cell ("inactive": 25-65% of them, by game) outputs the same 16
// features in every sample, kappa = ReLU(conv bias). So, with W1[q] the 16 rows
// of w1 that position q feeds,
//   h2 = ReLU(base + sum over active q of (h1[q] - kappa) . W1[q]),
//   base = b1 + sum_q kappa . W1[q]  (one vector, computed in sync()),
// and an active position's term depends only on its patch. The batch's patch
// index (patches.hpp, shared by actor and critic) lists its distinct (position,
// patch) pairs, "patches"; each one's conv output and 128-wide term are computed
// once (a small gemm per position, W1[q] reused across its patches), and each
// sample sums the terms of its patches: the (samples x patches) incidence matrix
// times the terms, the MLP's sparse first-layer kernel. Backward likewise: D,
// the sum of d2 over the samples holding a patch (the transposed product), gives
//   dW1[q] = sum over q's patches of (h1 - kappa)^T D + kappa (x) sum_i d2[i],
//   dh1 = D . W1[q]^T per patch, then the filters' gradient per patch,
// and the conv bias's gradient: the sum of the patches' dh1 (ReLU-masked) plus the
// inactive samples' share, W1[q] . (sum_i d2[i] - sum of q's D) where the ReLU
// passes kappa. Computing every (sample, active position) pair instead (the
// previous design: per-position gemms over the samples) ran
// 3.9x slower in training on breakout and 1.5x on asterix (README, Performance).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/buffer.hpp"
#include "trainer/kernels.hpp"
#include "trainer/network.hpp"
#include "trainer/patches.hpp"

namespace evozero::trainer {

class ConvNet final : public Network {
 public:
  static constexpr int kGrid = PatchIndex::kGrid;            // MinAtar's 10x10 grid
  static constexpr int kKernel = PatchIndex::kKernel;
  static constexpr int kFilters = 16;
  static constexpr int kPositions = PatchIndex::kPositions;  // 64 (8x8, valid)
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
  // x's patch index (FirstLayerInput::patches), which must be of its n samples
  PatchIndex& index(const FirstLayerInput& x, int n) const;

  int in_, channels_, out_;
  std::size_t offset_, wc_, bc_, w1_, b1_, w2_, b2_, size_;
  int last_n_ = -1;            // the batch size of the last forward pass
  Buffer w1_by_position_;      // (64, 128, 16): W1[q] transposed per position, for dh1
  Buffer h1_, d1_;             // (patches, 16): the conv's outputs, and their gradients
  Buffer shifted_;             // (patches, 16): h1 - kappa
  Buffer terms_;               // (patches, 128): forward, (h1 - kappa) . W1[q]; backward,
                               // d2 summed over the samples holding the patch (D)
  Buffer h2_, d2_, out_buf_;   // the hidden layer's and the output layer's (n, .)
  Buffer kappa_;               // (16): ReLU(conv bias), an inactive position's output
  Buffer base_;                // (128): b1 + sum_q kappa . W1[q], every sample's start
  Buffer inactive_;            // (128): one position's d2 summed where it is inactive
};

}  // namespace evozero::trainer
