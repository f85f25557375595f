#include "trainer/network.hpp"

#include <algorithm>
#include <stdexcept>

#include "trainer/conv.hpp"
#include "trainer/mlp.hpp"

namespace evozero::trainer {
namespace {

// Position in the flat array (past spec.offset) of element k, row-major over spec.shape.
std::size_t position(const TensorSpec& s, std::size_t k) {
  if (!s.at.empty()) return s.at[k];
  const std::size_t cols = s.shape.size() > 1 ? std::size_t(s.shape[1]) : 1;
  const std::size_t r = k / cols, c = k % cols;
  return s.input_major ? c * s.stride + r : r * s.stride + c;
}

}  // namespace

void write_tensor(const TensorSpec& s, const float* values, float* flat) {
  for (std::size_t k = 0, n = s.numel(); k < n; ++k) flat[s.offset + position(s, k)] = values[k];
}

void read_tensor(const TensorSpec& s, const float* flat, float* values) {
  for (std::size_t k = 0, n = s.numel(); k < n; ++k) values[k] = flat[s.offset + position(s, k)];
}

void output_layer_backward(int n, int out, int H, const float* dout, const float* h,
                           const float* w, float* gw, float* gb, float* gb_end, float* dh) {
  // dW[a, :] = sum_i dout[i, a] h[i, :]
  kernels::gemm(out, n, H, dout, 1, out, h, nullptr, false, gw);
  kernels::column_sums(n, out, dout, gb);
  std::fill(gb + out, gb_end, 0.0f);
  kernels::gemm(n, out, H, dout, out, 1, w, nullptr, false, dh);
  kernels::relu_backward(std::size_t(n) * std::size_t(H), h, dh);
}

NetworkKind network_kind(const std::string& name) {
  if (name == "mlp") return NetworkKind::kMlp;
  if (name == "conv") return NetworkKind::kConv;
  throw std::invalid_argument("unknown network '" + name + "'; use 'mlp' or 'conv'");
}

const char* network_name(NetworkKind kind) { return kind == NetworkKind::kConv ? "conv" : "mlp"; }

std::unique_ptr<Network> make_network(NetworkKind kind, int in, int hidden, int out,
                                      std::size_t offset) {
  if (kind == NetworkKind::kConv) return std::make_unique<ConvNet>(in, out, offset);
  return std::make_unique<Mlp>(in, hidden, out, offset);
}

}  // namespace evozero::trainer
