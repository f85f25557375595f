// What the actor-critic's networks have in common: the input they read, the
// named tensors of their parameters, and the interface ActorCritic drives
// (implemented by Mlp, mlp.hpp, and ConvNet, conv.hpp).
//
// A network's parameters live in a flat float array owned by the caller
// (ActorCritic keeps actor and critic in one array so that norm clipping and
// Adam are one loop); the network occupies [offset, offset + size()) of it,
// and its gradient the same range of an array of the same layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/kernels.hpp"

namespace evozero::trainer {

class NormalRng;
class PatchIndex;

// A batch of observations for the first layer: sparse when indptr is set,
// otherwise dense (n, in) floats with row stride in.
struct FirstLayerInput {
  kernels::SparseRows sparse{nullptr, nullptr, nullptr};
  kernels::SparseColumns columns{nullptr, nullptr};  // the same batch by cell; backward only
  PatchIndex* patches = nullptr;  // its unique 3x3 patches (patches.hpp): the conv network
  const float* dense = nullptr;
  bool is_sparse() const { return sparse.indptr != nullptr; }
};

// Where one torch-convention tensor of a flat parameter array lives: element
// (r, c) of a 2-D tensor at flat[offset + (input_major ? c * stride + r : r * stride + c)],
// or, when at is set, element k (row-major over shape) at flat[offset + at[k]].
struct TensorSpec {
  std::string name;            // e.g. "actor.0.weight"
  std::vector<int> shape;      // torch shape: (out, in) for Linear weights, (out) for biases
  std::size_t offset;          // into the flat array
  int stride;                  // row stride in the flat array
  bool input_major;            // stored transposed: flat[offset + c * stride + r] = tensor[r][c]
  std::vector<std::size_t> at = {};  // explicit positions (any layout), overrides the above

  std::size_t numel() const {
    std::size_t n = 1;
    for (int d : shape) n *= std::size_t(d);
    return n;
  }
};

// Copies a tensor (row-major, torch shape) into / out of a flat array.
void write_tensor(const TensorSpec& spec, const float* values, float* flat);
void read_tensor(const TensorSpec& spec, const float* flat, float* values);

// One network of the actor-critic: observations -> out values per sample.
class Network {
 public:
  virtual ~Network() = default;

  virtual int out() const = 0;
  virtual std::size_t offset() const = 0;
  virtual std::size_t size() const = 0;

  // Orthogonal init (hidden gains sqrt(2), output gain out_gain), zero biases,
  // drawing the weights from rng in layer order.
  virtual void initialize(float* params, NormalRng& rng, double out_gain) const = 0;

  // Must be called after every change of the parameters (refreshes any copy
  // of them the passes read).
  virtual void sync(const float* params) = 0;

  // output() = the net applied to x, (n, out); keeps the activations for backward.
  virtual void forward(const float* params, const FirstLayerInput& x, int n) = 0;
  virtual const float* output() const = 0;

  // Writes this net's whole gradient range of grads for the loss whose gradient
  // with respect to output() is dout (n, out). Needs the forward pass of the
  // same x and n just before (and reads its activations).
  virtual void backward(const float* params, const FirstLayerInput& x, int n, const float* dout,
                        float* grads) = 0;

  // Whether backward reads x.columns (the sparse batch by cell) for sparse input.
  virtual bool reads_columns() const = 0;

  virtual std::vector<TensorSpec> tensors(const std::string& prefix) const = 0;
};

// The backward pass of a network's output layer y = h . w^T + b over n samples
// (h: (n, H) ReLU outputs, w: (out, H) output-major, b at gb's offset with zero
// padding up to gb_end): writes gw, gb (padding zeroed) and dh = (dout . w)
// masked by the ReLU of h, the gradient w.r.t. the layer below's pre-activations.
void output_layer_backward(int n, int out, int H, const float* dout, const float* h,
                           const float* w, float* gw, float* gb, float* gb_end, float* dh);

// The networks TrainConfig.network names: "mlp" (mlp.hpp) and "conv" (conv.hpp).
enum class NetworkKind { kMlp, kConv };

// The kind named name; throws std::invalid_argument naming the known ones.
NetworkKind network_kind(const std::string& name);
const char* network_name(NetworkKind kind);

// A network of that kind at offset of the flat parameter array (hidden: the
// MLP's width; the conv network's sizes are fixed, conv.hpp).
std::unique_ptr<Network> make_network(NetworkKind kind, int in, int hidden, int out,
                                      std::size_t offset);

}  // namespace evozero::trainer
