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
// increasing order of the summed index, starting from the bias or zero
// (gemm_add_rows: from the output's value). So a dense binary input and the
// same input given as sorted sparse indices give bit-identical results
// (x = 1 multiplies exactly, x = 0 adds exactly zero).
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

// The same product (no bias, no activation) with s read through an index, in
// place: s(r, t) = s[s_at[r] * s_row + t * s_inner], or with gather_inner
// s[r * s_row + s_at[t] * s_inner]; added into y (y += s . v) when add is set. The
// conv network's hidden-layer gradients over one position's samples (rows of d2),
// accumulated over the chunks of a batch.
void gemm_gathered(int rows, int inner, int cols, const float* s, std::ptrdiff_t s_row,
                   std::ptrdiff_t s_inner, const int32_t* s_at, bool gather_inner,
                   const float* v, bool add, float* y);

// y[at[k], :] (padded cols) += sum_t s[k * inner + t] * v[t, :] for k < rows: a block
// of rows' contribution through v, added into the rows of y that `at` names (the
// conv network's hidden layer, one input position at a time; conv.hpp).
void gemm_add_rows(int rows, int inner, int cols, const float* s, const float* v,
                   const int32_t* at, float* y);

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

// sums[q, :] (padded cols) = sum of d[i, :] over the samples i < n whose bit q of
// masks[i] is clear, for q < 64: per-position sums over the samples where the
// position is inactive (the conv network's hidden layer, conv.hpp).
void masked_row_sums(int n, int cols, const float* d, const uint64_t* masks, float* sums);

// One sample of the conv network's 10x10xC input (conv.hpp), by grid cell: bit c of
// channels[cell] is set where input (cell, c) is non-zero, and that input is
// values[cell * C + c], or 1 when values is null (a sparse binary row).
struct ConvInput {
  const uint64_t* channels;  // 100 cells
  const float* values;       // 100 * C, or null
  int C;
};

// The 3x3 valid convolution with 16 filters of one sample, at the output positions
// set in `positions` (bit q: position q = oy * 8 + ox), each gathering its patch:
//   y[at[q] + f] = relu(bias[f] + sum over kernel offsets t = ky * 3 + kx and
//                  channels c of x(oy + ky, ox + kx, c) * w[(c * 9 + t) * 16 + f])
// summed row by row of the patch: (bias + row 0) + (row 1 + row 2).
void conv3x3_forward(uint64_t positions, const ConvInput& x, const float* w, const float* bias,
                     const int64_t* at, float* y);

// The same sample by channel: channel c is non-zero at the cells
// cells[starts[c] .. starts[c + 1]) with values values[...] (1 for binary input);
// a cell (y, x) is given as (y + 2) * 12 + x + 2, its place in a 12x12 grid of
// positions that pads the 8x8 output grid by 2 on each side.
struct ConvInputByChannel {
  const int16_t* cells;
  const float* values;
  const int32_t* starts;  // C + 1
  int C;
};

// The filters' gradient of one sample from its output gradient d:
//   g[(c * 9 + t) * 16 + f] += sum over the cells (y, x) where channel c is non-zero
//                              of x(y, x, c) * d[at[(y - ky + 2) * 12 + x - kx + 2] + f]
// with at (12x12) the offset in d of each output position's 16 gradients (of a zero
// row for the padding). Summed in registers per (c, t), one update of g each.
void conv3x3_weight_grad(const ConvInputByChannel& x, const int64_t* at, const float* d,
                         float* g);

// out[c] = sum_r d[r, c] for c < cols (any cols).
void column_sums(int rows, int cols, const float* d, float* out);

// d[i] = 0 where h[i] <= 0 (the ReLU backward pass given its output h; NaN passes).
void relu_backward(std::size_t count, const float* h, float* d);

}  // namespace kernels
}  // namespace evozero::trainer
