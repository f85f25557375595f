// The dense and sparse linear-algebra kernels the networks are made of.
//
// Everything is float32, row-major and contiguous. Widths marked "padded" must
// be a multiple of kPad floats (16, one AVX-512 vector): hidden layers are
// stored with their width rounded up to kPad and the padding held at exactly
// zero (see mlp.hpp), so the kernels only ever work on whole vectors.
//
// Each kernel is compiled three times (AVX-512, AVX+FMA, baseline SSE2) with a
// vector width and tile shape per instruction set, and the best one the CPU
// supports is picked when the library loads (GCC function multi-versioning,
// see kernels.cpp). Nothing here allocates.
//
// Summation order is fixed: every output element accumulates its terms in
// increasing order of the summed index, starting from the bias or zero. So a
// dense binary input and the same input given as sorted sparse indices give
// bit-identical results (x = 1 multiplies exactly, x = 0 adds exactly zero).
#pragma once

#include <cstddef>
#include <cstdint>

namespace evozero::trainer {

constexpr int kPad = 16;
constexpr int padded(int n) { return (n + kPad - 1) / kPad * kPad; }

namespace kernels {

// y (rows x cols, padded cols) = act(bias + sum_t s(r, t) * v[t, :]) with
// s(r, t) = s[r * s_row + t * s_inner] and v of shape (inner, cols).
// bias may be null (zero); act is ReLU when relu is set, identity otherwise.
//   forward of a layer:   s = x (s_row = ld, s_inner = 1), v = weight stored (in, out)
//   input gradient:       s = dy,                          v = weight stored (out, in)
//   weight gradient:      s = x (s_row = 1, s_inner = ld), v = dy, rows = in, inner = batch
void gemm(int rows, int inner, int cols, const float* s, std::ptrdiff_t s_row,
          std::ptrdiff_t s_inner, const float* v, const float* bias, bool relu, float* y);

// y (rows x cols) = bias + x (rows x k) . w^T with w (cols x k); padded k.
// The small output layers (logits, value). bias may be null.
void gemm_nt(int rows, int cols, int k, const float* x, const float* w, const float* bias,
             float* y);

// A batch of sparse binary rows in CSR form: row i of the batch has its active
// cells at indices[indptr[b] .. indptr[b + 1]) with b = rows ? rows[i] : i.
struct SparseRows {
  const int64_t* indptr;
  const int32_t* indices;
  const int64_t* rows;  // optional gather (minibatch of a larger stored batch)
};

// y[i, :] (padded cols) = act(bias + sum over active cells j of row i of m[j, :]).
void sparse_gemm(int n, const SparseRows& x, int cols, const float* m, const float* bias,
                 bool relu, float* y);

// The same batch by column (CSC): cell j is active in samples
// samples[ptr[j] .. ptr[j + 1]), in increasing order (see transpose()).
struct SparseColumns {
  const int64_t* ptr;     // num_cells + 1
  const int32_t* samples;
};

// Builds the columns of a batch of rows; ptr has num_cells + 1 entries,
// samples as many as there are active cells in the batch.
void transpose(int n, const SparseRows& x, int num_cells, int64_t* ptr, int32_t* samples);

// g[j, :] = sum over the samples i where cell j is active of d[i, :], for every
// cell j < num_cells (padded cols): the weight gradient of a sparse first layer,
// gathered per weight row (rows of inactive cells get zero).
void sparse_column_sums(int num_cells, const SparseColumns& x, int cols, const float* d,
                        float* g);

// Unique 3x3 input patches of the conv network (conv.hpp): in patch k, input
// (ky, kx, c) of the patch (kernel offset t = ky * 3 + kx, channel c) is non-zero
// where bit c of channels[k * 9 + t] is set, and is then values[k][(ky * 10 + kx) * C
// + c] (values[k]: the patch's top-left cell in its sample's row of 10x10xC inputs),
// or 1 when values is null (binary input).
struct ConvPatches {
  const uint64_t* channels;    // (count, 9)
  const float* const* values;  // (count), or null
  int C;
};

// The 3x3 convolution with 16 filters at each patch:
//   y[k * 16 + f] = relu(bias[f] + sum over t and c of x_k(t, c) * w[(c * 9 + t) * 16 + f])
// summed row by row of the patch: (bias + row 0) + (row 1 + row 2).
void conv3x3_forward(int count, const ConvPatches& x, const float* w, const float* bias,
                     float* y);

// The filters' gradient: g[(c * 9 + t) * 16 + f] += sum over patches k of
// x_k(t, c) * d[k * 16 + f], patch by patch.
void conv3x3_weight_grad(int count, const ConvPatches& x, const float* d, float* g);

// out[c] = sum_r d[r, c] for c < cols (any cols).
void column_sums(int rows, int cols, const float* d, float* out);

// d[i] = 0 where h[i] <= 0 (the ReLU backward pass given its output h; NaN passes).
void relu_backward(std::size_t count, const float* h, float* d);

}  // namespace kernels
}  // namespace evozero::trainer
