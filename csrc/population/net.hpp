// The actor-critic MLPs of trainer/mlp.hpp, block-wide, in the exact arithmetic of the
// CPU kernels (trainer/kernels.cpp), so a host run reproduces train() bit for bit:
//   - every output element accumulates its terms in increasing index order from the
//     bias or zero, as each kernel's register tile does;
//   - dense products are fused multiply-adds when the CPU kernels run their FMA
//     versions (AVX2+FMA, AVX-512) and a multiply then an add otherwise (baseline);
//   - the output layer's dot products (gemm_nt) keep `lanes` partial sums, lane l
//     taking every lanes-th term, summed by halves as horizontal_sum does.
// The sparse binary first layer adds the weight rows of the active cells in increasing
// cell order, as sparse_gemm; its gradient sums the active samples in increasing order,
// as sparse_column_sums over kernels::transpose's columns.
// Each thread computes whole output elements (strided over them), so the result does
// not depend on the block size. Parameters: the flat layout of mlp.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"
#include "population/spec.hpp"

namespace evozero::population {

struct Numerics {
  int lanes;  // 4, 8 or 16
  bool fma;

  EVOZERO_HD float madd(float x, float w, float acc) const {
    return fma ? std::fma(x, w, acc) : acc + x * w;
  }
};

// Offsets of one MLP's tensors in the flat parameter array (mlp.cpp's constructor).
struct MlpShape {
  int in, hidden, H, out;
  std::size_t w0, b0, w1, b1, w2, b2, end;

  EVOZERO_HD static MlpShape make(int in, int hidden, int H, int out, std::size_t offset) {
    MlpShape s{in, hidden, H, out, 0, 0, 0, 0, 0, 0, 0};
    s.w0 = offset;
    s.b0 = s.w0 + std::size_t(in) * H;
    s.w1 = s.b0 + H;
    s.b1 = s.w1 + std::size_t(H) * H;
    s.w2 = s.b1 + H;
    s.b2 = s.w2 + std::size_t(out) * H;
    s.end = s.b2 + std::size_t((out + 15) / 16 * 16);
    return s;
  }
};

// The observations of a batch: sample i is row rows[i] (or i) of obs (obs_size bytes).
struct ObsRows {
  const uint8_t* obs;
  const int32_t* rows;
  int size;
  EVOZERO_HD const uint8_t* row(int i) const {
    return obs + std::size_t(rows ? rows[i] : i) * std::size_t(size);
  }
};

// Activations of one MLP for a batch of up to N samples, and the batch's active cells
// (shared by both MLPs: made by each forward pass, read by the backward pass after it).
struct MlpBuffers {
  float *h1, *h2, *d1, *d2;
  int32_t* active;       // (N, in): row i's active cells, ascending
  int32_t* count;        // N: how many
  int32_t* col_ptr;      // in + 1: the batch by cell (kernels::transpose)
  int32_t* col_samples;  // N * in
};

// out (n, s.out) = the MLP applied to x; keeps h1, h2 for backward.
template <class Blk>
EVOZERO_HD void mlp_forward(const Blk& blk, const Numerics& num, const MlpShape& s,
                            const float* p, const ObsRows& x, int n, const MlpBuffers& b,
                            float* out) {
  const int H = s.H;
  const std::size_t nh = std::size_t(n) * H;
  for (int i = blk.tid(); i < n; i += blk.size()) {  // the active cells (active_cells)
    const uint8_t* o = x.row(i);
    int32_t* a = b.active + std::size_t(i) * s.in;
    int k = 0;
    for (int j = 0; j < s.in; ++j)
      if (o[j]) a[k++] = j;
    b.count[i] = k;
  }
  blk.sync();
  for (std::size_t e = blk.tid(); e < nh; e += blk.size()) {  // sparse_gemm
    const int i = int(e / H), c = int(e % H);
    const int32_t* a = b.active + std::size_t(i) * s.in;
    float acc = p[s.b0 + c];
    for (int k = 0; k < b.count[i]; ++k) acc += p[s.w0 + std::size_t(a[k]) * H + c];
    b.h1[e] = acc < 0.0f ? 0.0f : acc;
  }
  blk.sync();
  for (std::size_t e = blk.tid(); e < nh; e += blk.size()) {  // gemm, inner = hidden
    const int i = int(e / H), c = int(e % H);
    const float* h = b.h1 + std::size_t(i) * H;
    float acc = p[s.b1 + c];
    for (int t = 0; t < s.hidden; ++t) acc = num.madd(h[t], p[s.w1 + std::size_t(t) * H + c], acc);
    b.h2[e] = acc < 0.0f ? 0.0f : acc;
  }
  blk.sync();
  const std::size_t no = std::size_t(n) * s.out;
  for (std::size_t e = blk.tid(); e < no; e += blk.size()) {  // gemm_nt
    const int i = int(e / s.out), j = int(e % s.out);
    const float* h = b.h2 + std::size_t(i) * H;
    const float* w = p + s.w2 + std::size_t(j) * H;
    float lane[16];
    for (int l = 0; l < num.lanes; ++l) lane[l] = 0.0f;
    for (int q = 0; q < H; q += num.lanes)
      for (int l = 0; l < num.lanes; ++l) lane[l] = num.madd(h[q + l], w[q + l], lane[l]);
    for (int w2 = num.lanes / 2; w2 >= 4; w2 /= 2)  // halves down to 4 lanes
      for (int l = 0; l < w2; ++l) lane[l] = lane[l] + lane[l + w2];
    out[e] = p[s.b2 + j] + ((lane[0] + lane[2]) + (lane[1] + lane[3]));
  }
  blk.sync();
}

// The MLP's whole gradient range of g for dout (n, s.out), after mlp_forward on the
// same batch, the last forward pass made with b's active-cell lists (Mlp::backward and
// output_layer_backward).
template <class Blk>
EVOZERO_HD void mlp_backward(const Blk& blk, const Numerics& num, const MlpShape& s,
                             const float* p, const ObsRows& /*x: listed in b*/, int n,
                             const MlpBuffers& b,
                             const float* dout, float* g) {
  const int H = s.H, out = s.out;
  const std::size_t nh = std::size_t(n) * H;
  // Output layer: gw2[a, k] = sum_i dout[i, a] h2[i, k]; gb2 = column sums (padding 0);
  // d2[i, k] = sum_a dout[i, a] w2[a, k], masked by h2's ReLU.
  for (std::size_t e = blk.tid(); e < std::size_t(out) * H; e += blk.size()) {
    const int a = int(e / H), k = int(e % H);
    float acc = 0.0f;
    for (int i = 0; i < n; ++i)
      acc = num.madd(dout[std::size_t(i) * out + a], b.h2[std::size_t(i) * H + k], acc);
    g[s.w2 + e] = acc;
  }
  for (std::size_t a = blk.tid(); a < s.end - s.b2; a += blk.size()) {
    float acc = 0.0f;
    if (a < std::size_t(out))
      for (int i = 0; i < n; ++i) acc += dout[std::size_t(i) * out + a];
    g[s.b2 + a] = acc;
  }
  for (std::size_t e = blk.tid(); e < nh; e += blk.size()) {
    const int i = int(e / H), k = int(e % H);
    float acc = 0.0f;
    for (int a = 0; a < out; ++a)
      acc = num.madd(dout[std::size_t(i) * out + a], p[s.w2 + std::size_t(a) * H + k], acc);
    b.d2[e] = b.h2[e] <= 0.0f ? 0.0f : acc;
  }
  blk.sync();
  // Hidden layer: gw1[k, o] = sum_i h1[i, k] d2[i, o]; gb1; d1 = d2 . w1^T masked by h1.
  for (std::size_t e = blk.tid(); e < std::size_t(H) * H; e += blk.size()) {
    const int k = int(e / H), o = int(e % H);
    float acc = 0.0f;
    for (int i = 0; i < n; ++i)
      acc = num.madd(b.h1[std::size_t(i) * H + k], b.d2[std::size_t(i) * H + o], acc);
    g[s.w1 + e] = acc;
  }
  for (int o = blk.tid(); o < H; o += blk.size()) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc += b.d2[std::size_t(i) * H + o];
    g[s.b1 + o] = acc;
  }
  for (std::size_t e = blk.tid(); e < nh; e += blk.size()) {
    const int i = int(e / H), c = int(e % H);
    const float* d = b.d2 + std::size_t(i) * H;
    float acc = 0.0f;
    for (int t = 0; t < s.hidden; ++t) acc = num.madd(d[t], p[s.w1 + std::size_t(c) * H + t], acc);
    b.d1[e] = b.h1[e] <= 0.0f ? 0.0f : acc;
  }
  blk.sync();
  // First layer: gw0[j, c] = sum of d1[i, c] over the samples with cell j active, in
  // increasing i (kernels::transpose then sparse_column_sums; thread 0 transposes the
  // active cells the forward pass listed).
  if (blk.tid() == 0) {
    int32_t* ptr = b.col_ptr;
    for (int j = 0; j <= s.in; ++j) ptr[j] = 0;
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < b.count[i]; ++k) ++ptr[b.active[std::size_t(i) * s.in + k] + 1];
    for (int j = 0; j < s.in; ++j) ptr[j + 1] += ptr[j];
    for (int i = 0; i < n; ++i)  // in sample order, so each column is ascending
      for (int k = 0; k < b.count[i]; ++k)
        b.col_samples[ptr[b.active[std::size_t(i) * s.in + k]]++] = i;
    for (int j = s.in; j > 0; --j) ptr[j] = ptr[j - 1];
    ptr[0] = 0;
  }
  blk.sync();
  for (std::size_t e = blk.tid(); e < std::size_t(s.in) * H; e += blk.size()) {
    const int j = int(e / H), c = int(e % H);
    float acc = 0.0f;
    for (int32_t q = b.col_ptr[j]; q < b.col_ptr[j + 1]; ++q)
      acc += b.d1[std::size_t(b.col_samples[q]) * H + c];
    g[s.w0 + e] = acc;
  }
  for (int c = blk.tid(); c < H; c += blk.size()) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc += b.d1[std::size_t(i) * H + c];
    g[s.b0 + c] = acc;
  }
  blk.sync();
}

}  // namespace evozero::population
