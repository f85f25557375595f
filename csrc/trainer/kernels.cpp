// Kernels of kernels.hpp. Each is a template on a GCC vector type V (4, 8 or 16
// floats) held in registers; the EVOZERO_MULTIVERSION macro below instantiates
// it three times inside functions compiled for AVX-512 (16 floats), AVX+FMA (8)
// and the SSE2 baseline (4), and function multi-versioning picks one at load
// time from the CPU's features (dispatch.hpp). Unlike target_clones, which
// compiles one body for every target, this lets the vector width follow the
// instruction set: a 16-float vector type on an AVX2 machine would be split by
// the compiler through memory and run several times slower.
#include "trainer/kernels.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "trainer/dispatch.hpp"

namespace evozero::trainer::kernels {
namespace {

using v4 = float __attribute__((vector_size(16)));
using v8 = float __attribute__((vector_size(32)));
using v16 = float __attribute__((vector_size(64)));

#define EVOZERO_INLINE inline __attribute__((always_inline))
// A lambda does not inherit its caller's target: inlined, its body is compiled
// for the caller's instruction set.
#define EVOZERO_INLINE_LAMBDA __attribute__((always_inline))

template <class V>
constexpr int kLanes = int(sizeof(V) / sizeof(float));

// Unaligned vector load/store; memcpy keeps them free of aliasing UB. Through a
// local: a memcpy straight into an element of an accumulator array was done in
// 16-byte pieces through the stack, whose 32-byte reloads then missed store
// forwarding (the conv network's forward gemm ran 20% slower).
template <class V>
EVOZERO_INLINE void load(V& v, const float* p) {
  V t;
  std::memcpy(&t, p, sizeof(V));
  v = t;
}
template <class V>
EVOZERO_INLINE void store(float* p, const V& v) {
  const V t = v;
  std::memcpy(p, &t, sizeof(V));
}
template <class V>
EVOZERO_INLINE void relu(V& v) {
  const V zero{};
  v = v < zero ? zero : v;  // NaN stays NaN, as in torch
}
// Sum of the lanes: add the two halves until four lanes are left.
EVOZERO_INLINE float horizontal_sum(const v4& v) {
  float a[4];
  std::memcpy(a, &v, sizeof(v));
  return (a[0] + a[2]) + (a[1] + a[3]);
}
template <class V, class Half>
EVOZERO_INLINE void add_halves(const V& v, Half& sum) {
  Half hi;
  std::memcpy(&sum, &v, sizeof(Half));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(Half), sizeof(Half));
  sum += hi;
}
EVOZERO_INLINE float horizontal_sum(const v8& v) {
  v4 half;
  add_halves(v, half);
  return horizontal_sum(half);
}
EVOZERO_INLINE float horizontal_sum(const v16& v) {
  v8 half;
  add_halves(v, half);
  return horizontal_sum(half);
}

// ---- gemm: an R x (C vectors) tile of register accumulators ----------------

// Rows per tile: R x 2 accumulators, enough to hide the FMA latency, and each
// loaded vector of v feeds R FMAs. AVX-512 has 32 vector registers: 8 rows (16
// accumulators) halve the loads of v per FMA (the conv network's 1024 -> 128
// layer streams its weights from L2); AVX2 has 16: 6 rows (12 accumulators, the
// usual AVX2 sgemm tile) ran 12-30% faster than 4 on the conv layer's shapes.
template <class V>
constexpr int kTileRows = kLanes<V> == 16 ? 8 : kLanes<V> == 8 ? 6 : 4;

template <class V, int R, int C>
EVOZERO_INLINE void gemm_tile(int inner, int cols, const float* s, std::ptrdiff_t s_row,
                              std::ptrdiff_t s_inner, const float* v, const float* bias,
                              bool do_relu, float* y) {
  constexpr int W = kLanes<V>;
  V acc[R][C];
  for (int c = 0; c < C; ++c) {
    V b{};
    if (bias) load(b, bias + c * W);
    for (int r = 0; r < R; ++r) acc[r][c] = b;
  }
  for (int t = 0; t < inner; ++t) {
    V w[C];
    for (int c = 0; c < C; ++c) load(w[c], v + std::ptrdiff_t(t) * cols + c * W);
    const float* st = s + std::ptrdiff_t(t) * s_inner;
    for (int r = 0; r < R; ++r) {
      const float x = st[r * s_row];
      for (int c = 0; c < C; ++c) acc[r][c] += x * w[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      if (do_relu) relu(acc[r][c]);
      store(y + std::ptrdiff_t(r) * cols + c * W, acc[r][c]);
    }
}

// Calls tile(std::integral_constant<int, R>{}, r) for row tiles covering rows
// 0..rows: R = kTileRows<V> rows at a time, then the rest in tiles of 4, 2, 1
// rows (16 rows = 6 + 6 + 4: the conv network's per-position weight gradient).
template <class V, class Tile>
EVOZERO_INLINE void for_each_row_tile(int rows, Tile&& tile) {
  constexpr int R = kTileRows<V>;
  int r = 0;
  for (; r + R <= rows; r += R) tile(std::integral_constant<int, R>{}, r);
  if (R > 4 && r + 4 <= rows) {
    tile(std::integral_constant<int, 4>{}, r);
    r += 4;
  }
  if (r + 2 <= rows) {
    tile(std::integral_constant<int, 2>{}, r);
    r += 2;
  }
  for (; r < rows; ++r) tile(std::integral_constant<int, 1>{}, r);
}

template <class V, int C>
EVOZERO_INLINE void gemm_columns(int rows, int inner, int cols, const float* s,
                                 std::ptrdiff_t s_row, std::ptrdiff_t s_inner, const float* v,
                                 const float* bias, bool do_relu, float* y) {
  for_each_row_tile<V>(rows, [&](auto tile_rows, int r) EVOZERO_INLINE_LAMBDA {
    gemm_tile<V, decltype(tile_rows)::value, C>(inner, cols, s + r * s_row, s_row, s_inner, v,
                                                bias, do_relu, y + std::ptrdiff_t(r) * cols);
  });
}

template <class V>
EVOZERO_INLINE void gemm_impl(int rows, int inner, int cols, const float* s,
                              std::ptrdiff_t s_row, std::ptrdiff_t s_inner, const float* v,
                              const float* bias, bool do_relu, float* y) {
  constexpr int W = kLanes<V>;
  int c = 0;
  for (; c + 2 * W <= cols; c += 2 * W)
    gemm_columns<V, 2>(rows, inner, cols, s, s_row, s_inner, v + c, bias ? bias + c : nullptr,
                       do_relu, y + c);
  for (; c < cols; c += W)
    gemm_columns<V, 1>(rows, inner, cols, s, s_row, s_inner, v + c, bias ? bias + c : nullptr,
                       do_relu, y + c);
}

// ---- gemm_nt: dot products, R rows of x at a time ----------------------------

template <class V, int R>
EVOZERO_INLINE void gemm_nt_rows(int cols, int k, const float* x, const float* w,
                                 const float* bias, float* y) {
  constexpr int W = kLanes<V>;
  for (int j = 0; j < cols; ++j) {
    V acc[R] = {};
    const float* wj = w + std::ptrdiff_t(j) * k;
    for (int q = 0; q < k; q += W) {
      V wv;
      load(wv, wj + q);
      for (int r = 0; r < R; ++r) {
        V xv;
        load(xv, x + std::ptrdiff_t(r) * k + q);
        acc[r] += xv * wv;
      }
    }
    const float b = bias ? bias[j] : 0.0f;
    for (int r = 0; r < R; ++r) y[std::ptrdiff_t(r) * cols + j] = b + horizontal_sum(acc[r]);
  }
}

template <class V>
EVOZERO_INLINE void gemm_nt_impl(int rows, int cols, int k, const float* x, const float* w,
                                 const float* bias, float* y) {
  constexpr int R = 4;
  int r = 0;
  for (; r + R <= rows; r += R)
    gemm_nt_rows<V, R>(cols, k, x + std::ptrdiff_t(r) * k, w, bias, y + std::ptrdiff_t(r) * cols);
  for (; r < rows; ++r)
    gemm_nt_rows<V, 1>(cols, k, x + std::ptrdiff_t(r) * k, w, bias, y + std::ptrdiff_t(r) * cols);
}

// ---- sparse rows: C vectors of one output row in registers -------------------

template <class V, int C>
EVOZERO_INLINE void sparse_row(const int32_t* begin, const int32_t* end, int cols, const float* m,
                               const float* bias, bool do_relu, float* y) {
  constexpr int W = kLanes<V>;
  V acc[C];
  for (int c = 0; c < C; ++c) {
    acc[c] = V{};
    if (bias) load(acc[c], bias + c * W);
  }
  for (const int32_t* j = begin; j != end; ++j) {
    const float* row = m + std::ptrdiff_t(*j) * cols;
    for (int c = 0; c < C; ++c) {
      V w;
      load(w, row + c * W);
      acc[c] += w;
    }
  }
  for (int c = 0; c < C; ++c) {
    if (do_relu) relu(acc[c]);
    store(y + c * W, acc[c]);
  }
}

template <class V>
EVOZERO_INLINE void sparse_gemm_impl(int n, const SparseRows& x, int cols, const float* m,
                                     const float* bias, bool do_relu, float* y) {
  constexpr int W = kLanes<V>, C = 64 / W;  // 64 floats of the row per pass
  for (int i = 0; i < n; ++i) {
    const int64_t b = x.rows ? x.rows[i] : i;
    const int32_t* begin = x.indices + x.indptr[b];
    const int32_t* end = x.indices + x.indptr[b + 1];
    float* yi = y + std::ptrdiff_t(i) * cols;
    int c = 0;
    for (; c + C * W <= cols; c += C * W)
      sparse_row<V, C>(begin, end, cols, m + c, bias ? bias + c : nullptr, do_relu, yi + c);
    for (; c < cols; c += W)
      sparse_row<V, 1>(begin, end, cols, m + c, bias ? bias + c : nullptr, do_relu, yi + c);
  }
}

template <class V, int C>
EVOZERO_INLINE void gather_sum(const int32_t* begin, const int32_t* end, int cols, const float* d,
                               float* g) {
  constexpr int W = kLanes<V>;
  V acc[C] = {};
  for (const int32_t* i = begin; i != end; ++i) {
    const float* row = d + std::ptrdiff_t(*i) * cols;
    for (int c = 0; c < C; ++c) {
      V x;
      load(x, row + c * W);
      acc[c] += x;
    }
  }
  for (int c = 0; c < C; ++c) store(g + c * W, acc[c]);
}

template <class V>
EVOZERO_INLINE void sparse_column_sums_impl(int num_cells, const SparseColumns& x, int cols,
                                            const float* d, float* g) {
  constexpr int W = kLanes<V>, C = 64 / W;
  for (int j = 0; j < num_cells; ++j) {
    const int32_t* begin = x.samples + x.ptr[j];
    const int32_t* end = x.samples + x.ptr[j + 1];
    float* gj = g + std::ptrdiff_t(j) * cols;
    int c = 0;
    for (; c + C * W <= cols; c += C * W) gather_sum<V, C>(begin, end, cols, d + c, gj + c);
    for (; c < cols; c += W) gather_sum<V, 1>(begin, end, cols, d + c, gj + c);
  }
}

// ---- column sums: C vectors of columns accumulate down the rows --------------

template <class V, int C>
EVOZERO_INLINE void column_block(int rows, int cols, const float* d, float* out) {
  constexpr int W = kLanes<V>;
  V acc[C] = {};
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c) {
      V x;
      load(x, d + std::ptrdiff_t(r) * cols + c * W);
      acc[c] += x;
    }
  for (int c = 0; c < C; ++c) store(out + c * W, acc[c]);
}

template <class V>
EVOZERO_INLINE void column_sums_impl(int rows, int cols, const float* d, float* out) {
  constexpr int W = kLanes<V>, C = 64 / W;
  int c = 0;
  for (; c + C * W <= cols; c += C * W) column_block<V, C>(rows, cols, d + c, out + c);
  for (; c + W <= cols; c += W) column_block<V, 1>(rows, cols, d + c, out + c);
  for (; c < cols; ++c) {  // the narrow output layers
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += d[std::ptrdiff_t(r) * cols + c];
    out[c] = acc;
  }
}

// ---- conv3x3: the 16 filters at unique input patches -----------------------------

// acc += the filter rows of patch k's non-zero inputs in patch row ky, in increasing
// input order (times their values unless Binary).
template <class V, bool Binary>
EVOZERO_INLINE void add_patch_row(const ConvPatches& x, int k, int ky, const float* w,
                                  V (&acc)[16 / kLanes<V>]) {
  constexpr int W = kLanes<V>, N = 16 / W;
  for (int kx = 0; kx < 3; ++kx) {
    const int t = ky * 3 + kx;
    for (uint64_t m = x.channels[std::ptrdiff_t(k) * 9 + t]; m; m &= m - 1) {
      const int c = __builtin_ctzll(m);
      const float* row = w + std::ptrdiff_t(c * 9 + t) * 16;
      for (int l = 0; l < N; ++l) {
        V v;
        load(v, row + l * W);
        if constexpr (Binary)
          acc[l] += v;
        else
          acc[l] += x.values[k][(ky * 10 + kx) * x.C + c] * v;
      }
    }
  }
}

template <class V, bool Binary>
EVOZERO_INLINE void conv3x3_forward_patches(int count, const ConvPatches& x, const float* w,
                                            const float* bias, float* y) {
  constexpr int W = kLanes<V>, N = 16 / W;
  V b[N];
  for (int l = 0; l < N; ++l) load(b[l], bias + l * W);
  for (int k = 0; k < count; ++k) {
    // one accumulator per patch row: three shorter dependency chains
    V acc0[N], acc1[N] = {}, acc2[N] = {};
    for (int l = 0; l < N; ++l) acc0[l] = b[l];
    add_patch_row<V, Binary>(x, k, 0, w, acc0);
    add_patch_row<V, Binary>(x, k, 1, w, acc1);
    add_patch_row<V, Binary>(x, k, 2, w, acc2);
    for (int l = 0; l < N; ++l) {
      V v = acc0[l] + (acc1[l] + acc2[l]);
      relu(v);
      store(y + std::ptrdiff_t(k) * 16 + l * W, v);
    }
  }
}

template <class V>
EVOZERO_INLINE void conv3x3_forward_impl(int count, const ConvPatches& x, const float* w,
                                         const float* bias, float* y) {
  if (x.values)
    conv3x3_forward_patches<V, false>(count, x, w, bias, y);
  else
    conv3x3_forward_patches<V, true>(count, x, w, bias, y);
}

template <class V>
EVOZERO_INLINE void conv3x3_weight_grad_impl(int count, const ConvPatches& x, const float* d,
                                             float* g) {
  constexpr int W = kLanes<V>, N = 16 / W;
  for (int k = 0; k < count; ++k) {
    V dk[N];
    for (int l = 0; l < N; ++l) load(dk[l], d + std::ptrdiff_t(k) * 16 + l * W);
    for (int t = 0; t < 9; ++t)
      for (uint64_t m = x.channels[std::ptrdiff_t(k) * 9 + t]; m; m &= m - 1) {
        const int c = __builtin_ctzll(m);
        const float value = x.values ? x.values[k][((t / 3) * 10 + t % 3) * x.C + c] : 1.0f;
        float* gt = g + std::ptrdiff_t(c * 9 + t) * 16;
        for (int l = 0; l < N; ++l) {
          V v;
          load(v, gt + l * W);
          store(gt + l * W, v + value * dk[l]);
        }
      }
  }
}

template <class V>
EVOZERO_INLINE void relu_backward_impl(std::size_t count, const float* h, float* d) {
  for (std::size_t i = 0; i < count; ++i) d[i] = h[i] <= 0.0f ? 0.0f : d[i];
}

#if EVOZERO_MULTIVERSIONING
// Defines `name##_mv(params)` three times, one per instruction set, each calling
// `name##_impl<vector type>(args)`.
#define EVOZERO_MULTIVERSION(name, params, args)                                      \
  __attribute__((target("avx512f"))) void name##_mv params { name##_impl<v16> args; } \
  __attribute__((target("fma"))) void name##_mv params { name##_impl<v8> args; }      \
  __attribute__((target("default"))) void name##_mv params { name##_impl<v4> args; }
#else
#define EVOZERO_MULTIVERSION(name, params, args) \
  void name##_mv params { name##_impl<v4> args; }
#endif

EVOZERO_MULTIVERSION(gemm,
                     (int rows, int inner, int cols, const float* s, std::ptrdiff_t s_row,
                      std::ptrdiff_t s_inner, const float* v, const float* bias, bool do_relu,
                      float* y),
                     (rows, inner, cols, s, s_row, s_inner, v, bias, do_relu, y))
EVOZERO_MULTIVERSION(gemm_nt,
                     (int rows, int cols, int k, const float* x, const float* w,
                      const float* bias, float* y),
                     (rows, cols, k, x, w, bias, y))
EVOZERO_MULTIVERSION(sparse_gemm,
                     (int n, const SparseRows& x, int cols, const float* m, const float* bias,
                      bool do_relu, float* y),
                     (n, x, cols, m, bias, do_relu, y))
EVOZERO_MULTIVERSION(sparse_column_sums,
                     (int num_cells, const SparseColumns& x, int cols, const float* d, float* g),
                     (num_cells, x, cols, d, g))
EVOZERO_MULTIVERSION(column_sums, (int rows, int cols, const float* d, float* out),
                     (rows, cols, d, out))
EVOZERO_MULTIVERSION(conv3x3_forward,
                     (int count, const ConvPatches& x, const float* w, const float* bias,
                      float* y),
                     (count, x, w, bias, y))
EVOZERO_MULTIVERSION(conv3x3_weight_grad,
                     (int count, const ConvPatches& x, const float* d, float* g),
                     (count, x, d, g))
EVOZERO_MULTIVERSION(relu_backward, (std::size_t count, const float* h, float* d),
                     (count, h, d))

#undef EVOZERO_MULTIVERSION

}  // namespace

void gemm(int rows, int inner, int cols, const float* s, std::ptrdiff_t s_row,
          std::ptrdiff_t s_inner, const float* v, const float* bias, bool relu, float* y) {
  gemm_mv(rows, inner, cols, s, s_row, s_inner, v, bias, relu, y);
}

void gemm_nt(int rows, int cols, int k, const float* x, const float* w, const float* bias,
             float* y) {
  gemm_nt_mv(rows, cols, k, x, w, bias, y);
}

void sparse_gemm(int n, const SparseRows& x, int cols, const float* m, const float* bias,
                 bool relu, float* y) {
  sparse_gemm_mv(n, x, cols, m, bias, relu, y);
}

void sparse_column_sums(int num_cells, const SparseColumns& x, int cols, const float* d,
                        float* g) {
  sparse_column_sums_mv(num_cells, x, cols, d, g);
}

void transpose(int n, const SparseRows& x, int num_cells, int64_t* ptr, int32_t* samples) {
  std::fill(ptr, ptr + num_cells + 1, int64_t(0));
  for (int i = 0; i < n; ++i) {  // count, shifted by one: ptr[j + 1] = samples with cell j
    const int64_t b = x.rows ? x.rows[i] : i;
    for (int64_t p = x.indptr[b]; p < x.indptr[b + 1]; ++p) ++ptr[x.indices[p] + 1];
  }
  for (int j = 0; j < num_cells; ++j) ptr[j + 1] += ptr[j];
  // fill in sample order (so each column is sorted), using ptr[j] as the cursor
  for (int i = 0; i < n; ++i) {
    const int64_t b = x.rows ? x.rows[i] : i;
    for (int64_t p = x.indptr[b]; p < x.indptr[b + 1]; ++p) samples[ptr[x.indices[p]]++] = i;
  }
  // the cursors ended at the next column's start: shift back
  for (int j = num_cells; j > 0; --j) ptr[j] = ptr[j - 1];
  ptr[0] = 0;
}

void column_sums(int rows, int cols, const float* d, float* out) {
  column_sums_mv(rows, cols, d, out);
}

void conv3x3_forward(int count, const ConvPatches& x, const float* w, const float* bias,
                     float* y) {
  conv3x3_forward_mv(count, x, w, bias, y);
}

void conv3x3_weight_grad(int count, const ConvPatches& x, const float* d, float* g) {
  conv3x3_weight_grad_mv(count, x, d, g);
}

void relu_backward(std::size_t count, const float* h, float* d) {
  relu_backward_mv(count, h, d);
}

}  // namespace evozero::trainer::kernels
