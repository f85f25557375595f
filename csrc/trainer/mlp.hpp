// One MLP of the actor-critic: in -> hidden -> hidden (ReLU after each) -> out,
// as PureJaxRL's MinAtar PPO (nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)
// in torch terms, hence the parameter names 0, 2, 4).
//
// Parameters live in a flat float array owned by the caller (ActorCritic keeps
// actor and critic in one array so that norm clipping and Adam are one loop);
// this MLP occupies [offset, offset + size()) of it, and its gradient the same
// range of an array of the same layout. Within that range:
//   w0 (in, H)  b0 (H)   first layer, input-major: row j is input j's weights,
//                        so a sparse input sums the rows of its active cells
//   w1 (H, H)   b1 (H)   hidden layer, input-major
//   w2 (out, H) b2 (out) output layer, output-major (torch's layout)
// with H = padded(hidden), a multiple of 16: the padding rows/columns and bias
// entries are zero and stay zero (their gradients are exactly zero, and Adam
// leaves a parameter with zero gradient and zero moments unchanged).
//
// The first layer takes either sparse binary rows (CSR indices of the active
// cells) or dense float rows; the two give bit-identical results on the same
// binary input when the indices are sorted (see kernels.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/buffer.hpp"
#include "trainer/kernels.hpp"
#include "trainer/network.hpp"

namespace evozero::trainer {

class Mlp final : public Network {
 public:
  Mlp(int in, int hidden, int out, std::size_t offset);

  int in() const { return in_; }
  int hidden() const { return hidden_; }
  int out() const override { return out_; }
  std::size_t offset() const override { return offset_; }
  std::size_t size() const override { return size_; }

  // Orthogonal init (hidden gains sqrt(2), output gain out_gain), zero biases,
  // drawing w0, w1, w2 in that order from rng.
  void initialize(float* params, NormalRng& rng, double out_gain) const override;

  // Must be called after every change of the parameters (it refreshes the
  // output-major copy of w1 that the backward pass reads).
  void sync(const float* params) override;

  // Grows the per-sample workspaces to n samples; the only allocation.
  void reserve(int n);

  // output() = the net applied to x, (n, out); keeps the activations for backward.
  void forward(const float* params, const FirstLayerInput& x, int n) override;
  const float* output() const override { return out_buf_.data(); }

  // Writes this net's whole gradient range of grads for the loss whose gradient
  // with respect to output() is dout (n, out). Needs the forward pass of the
  // same x and n just before (and reads its activations).
  void backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                float* grads) override;
  bool reads_columns() const override { return true; }

  std::vector<TensorSpec> tensors(const std::string& prefix) const override;

 private:
  int in_, hidden_, stride_, out_;
  std::size_t offset_, w0_, b0_, w1_, b1_, w2_, b2_, size_;
  int capacity_ = 0;
  Buffer w1_out_major_;        // (H, H): w1 transposed, for the input gradient
  Buffer h1_, h2_, out_buf_;   // activations of the last forward pass
  Buffer d1_, d2_;             // gradients w.r.t. the hidden pre-activations
};

}  // namespace evozero::trainer
