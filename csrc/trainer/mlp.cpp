#include "trainer/mlp.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "trainer/init.hpp"

namespace evozero::trainer {

Mlp::Mlp(int in, int hidden, int out, std::size_t offset)
    : in_(in), hidden_(hidden), stride_(padded(hidden)), out_(out), offset_(offset) {
  if (in <= 0 || hidden <= 0 || out <= 0)
    throw std::invalid_argument("Mlp: sizes must be positive");
  const std::size_t H = std::size_t(stride_);
  w0_ = offset;
  b0_ = w0_ + std::size_t(in) * H;
  w1_ = b0_ + H;
  b1_ = w1_ + H * H;
  w2_ = b1_ + H;
  b2_ = w2_ + std::size_t(out) * H;
  size_ = b2_ + std::size_t(padded(out)) - offset;
  w1_out_major_.assign(H * H, 0.0f);
}

std::vector<TensorSpec> Mlp::tensors(const std::string& prefix) const {
  return {
      {prefix + ".0.weight", {hidden_, in_}, w0_, stride_, true},
      {prefix + ".0.bias", {hidden_}, b0_, 1, false},
      {prefix + ".2.weight", {hidden_, hidden_}, w1_, stride_, true},
      {prefix + ".2.bias", {hidden_}, b1_, 1, false},
      {prefix + ".4.weight", {out_, hidden_}, w2_, stride_, false},
      {prefix + ".4.bias", {out_}, b2_, 1, false},
  };
}

void Mlp::initialize(float* params, NormalRng& rng, double out_gain) const {
  std::fill(params + offset_, params + offset_ + size_, 0.0f);
  const double hidden_gain = std::sqrt(2.0);
  const auto specs = tensors("");
  std::vector<float> w;
  for (int layer = 0; layer < 3; ++layer) {
    const TensorSpec& s = specs[2 * layer];
    w.resize(std::size_t(s.shape[0]) * s.shape[1]);
    orthogonal(s.shape[0], s.shape[1], layer < 2 ? hidden_gain : out_gain, rng, w.data());
    write_tensor(s, w.data(), params);
  }
}

void Mlp::sync(const float* params) {
  const int H = stride_;
  const float* w1 = params + w1_;
  for (int k = 0; k < H; ++k)
    for (int o = 0; o < H; ++o) w1_out_major_[std::size_t(o) * H + k] = w1[std::size_t(k) * H + o];
}

void Mlp::reserve(int n) {
  if (n <= capacity_) return;
  const std::size_t rows = std::size_t(n), H = std::size_t(stride_);
  for (Buffer* b : {&h1_, &h2_, &d1_, &d2_}) ensure_size(*b, rows * H);
  ensure_size(out_buf_, rows * std::size_t(out_));
  capacity_ = n;
}

void Mlp::forward(const float* params, const FirstLayerInput& x, int n) {
  reserve(n);
  const int H = stride_;
  const float* p = params;
  if (x.is_sparse())
    kernels::sparse_gemm(n, x.sparse, H, p + w0_, p + b0_, true, h1_.data());
  else
    kernels::gemm(n, in_, H, x.dense, in_, 1, p + w0_, p + b0_, true, h1_.data());
  kernels::gemm(n, hidden_, H, h1_.data(), H, 1, p + w1_, p + b1_, true, h2_.data());
  kernels::gemm_nt(n, out_, H, h2_.data(), p + w2_, p + b2_, out_buf_.data());
}

void Mlp::backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                   float* grads) {
  if (n > capacity_) throw std::logic_error("Mlp::backward without a forward pass of n samples");
  const int H = stride_;
  const std::size_t count = std::size_t(n) * std::size_t(H);
  const float* p = params;
  float* g = grads;
  float *h1 = h1_.data(), *h2 = h2_.data(), *d1 = d1_.data(), *d2 = d2_.data();

  output_layer_backward(n, out_, H, dout, h2, p + w2_, g + w2_, g + b2_, g + offset_ + size_, d2);

  // Hidden layer: dW1[k, :] = sum_i h1[i, k] d2[i, :];  dh1 = d2 . W1^T.
  kernels::gemm(H, n, H, h1, 1, H, d2, nullptr, false, g + w1_);
  kernels::column_sums(n, H, d2, g + b1_);
  kernels::gemm(n, hidden_, H, d2, H, 1, w1_out_major_.data(), nullptr, false, d1);
  kernels::relu_backward(count, h1, d1);

  // First layer: only the rows of active cells receive gradient when sparse.
  if (x.is_sparse()) {
    if (!x.columns.ptr) throw std::logic_error("Mlp::backward: sparse input without columns");
    kernels::sparse_column_sums(in_, x.columns, H, d1, g + w0_);
  } else {
    kernels::gemm(in_, n, H, x.dense, 1, in_, d1, nullptr, false, g + w0_);
  }
  kernels::column_sums(n, H, d1, g + b0_);
}

}  // namespace evozero::trainer
