// The interpreter's elementwise op kernels on the device (ops.cu), in plain C++.
#pragma once
#include <cstdint>

namespace evozero::cuda {

// out[i] = op(a[i], b[i], c[i]) for i < n (host arrays; unused arguments ignored), each
// element computed by one device thread with the CPU's own op kernel (interpreter/ops.hpp).
// Throws std::runtime_error naming the CUDA error.
void op_values(int32_t op, int n, float* out, const float* a, const float* b, const float* c);

}  // namespace evozero::cuda
