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
// The conv output of a sample is stored position-major, (64 positions, 16
// filters): feature p * 16 + f (torch's Flatten order is f * 64 + p; tensors()
// maps between the two).
//
// The conv exploits the sparse input: an active cell adds its filter column to
// at most 9 output positions (3x3 kernel offsets), so the forward pass costs
// 9 * 16 adds per active cell instead of 64 * 9 * C * 16 multiply-adds, and
// so does the filters' gradient. Dense float rows are read the same way,
// skipping zeros (a value multiplies its filter column). The 1024 -> 128 layer,
// most of the work, is a dense register-tiled gemm (kernels.hpp): running it
// over the ~20-35% non-zero conv outputs only (CSR rows of w1) was measured
// slower, as each sparse row of w1 is read once from L2 where the dense tile
// reuses it across 4 samples.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "trainer/buffer.hpp"
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
  int capacity_ = 0;
  Buffer w1_out_major_;        // (128, 1024): w1 transposed, for the input gradient
  Buffer h1_, h2_, out_buf_;   // activations of the last forward pass
  Buffer d1_, d2_;             // gradients w.r.t. the pre-activations
};

}  // namespace evozero::trainer
