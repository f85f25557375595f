// The interpreter's op kernels and the trainer's per-sample math, compiled for the device
// from the same EVOZERO_HD source as the CPU build: the building blocks of a GPU
// population trainer (one thread block per agent, see docs/CUDA.md). op_values is
// exposed for tests; the policy-head and Adam kernels are compiled so that CI catches a
// change that makes that code host-only.
#include "cuda/ops.hpp"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "interpreter/ops.hpp"
#include "trainer/adam.hpp"
#include "trainer/policy_head.hpp"

namespace evozero::cuda {

namespace {

template <class O>
__device__ float apply(float a, float b, float c) {
  if constexpr (O::arity == 1)
    return O::f(a);
  else if constexpr (O::arity == 2)
    return O::f(a, b);
  else
    return O::f(a, b, c);
}

__global__ void op_values_kernel(int32_t op, int n, float* out, const float* a, const float* b,
                                 const float* c) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  using namespace interp;
  switch (op) {
#define CASE(code, O)                                \
  case code:                                         \
    out[i] = apply<ops::O>(a[i], b[i], c[i]);        \
    break;
    EVOZERO_ELEMENTWISE_OPS(CASE)
#undef CASE
    default:
      break;
  }
}

// One thread per sample: the categorical head forward and backward, then Adam on one
// parameter per thread (compile coverage for the trainer's shared math).
__global__ void head_adam_kernel(int n, int actions, float* logits, float* log_probs,
                                 float* probs, float* entropy, const int64_t* taken,
                                 float* dlogits, float* p, float* m, float* v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const std::ptrdiff_t at = std::ptrdiff_t(i) * actions;
  entropy[i] =
      trainer::categorical_forward_row(actions, logits + at, log_probs + at, probs + at);
  trainer::categorical_backward_row(actions, log_probs + at, probs + at, entropy[i], taken[i],
                                    1.0f, 0.01f, dlogits + at);
  trainer::adam_element(p[i], dlogits[at], m[i], v[i], 0.9f, 0.999f, 1e-5f, 0.1f, 0.001f,
                        -2.5e-4f);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace

void op_values(int32_t op, int n, float* out, const float* a, const float* b, const float* c) {
  float* d[4] = {nullptr, nullptr, nullptr, nullptr};
  const float* in[3] = {a, b, c};
  const std::size_t bytes = std::size_t(n) * sizeof(float) + 4;
  for (float*& p : d) check(cudaMalloc(reinterpret_cast<void**>(&p), bytes), "cudaMalloc");
  for (int j = 0; j < 3; ++j)
    check(cudaMemcpy(d[j + 1], in[j], std::size_t(n) * sizeof(float), cudaMemcpyHostToDevice),
          "cudaMemcpy");
  op_values_kernel<<<(n + 127) / 128, 128>>>(op, n, d[0], d[1], d[2], d[3]);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e == cudaSuccess)
    e = cudaMemcpy(out, d[0], std::size_t(n) * sizeof(float), cudaMemcpyDeviceToHost);
  for (float* p : d) cudaFree(p);
  check(e, "op_values");
  (void)head_adam_kernel;  // compiled, not launched (see the file comment)
}

}  // namespace evozero::cuda
