// One source for CPU and GPU: EVOZERO_HD marks a function that both compilers build.
//
// Under nvcc it is `__host__ __device__`; for the host compiler it is empty, so the CPU
// build is the same code it always was. A function marked EVOZERO_HD may call only other
// EVOZERO_HD (or constexpr) functions and uses no std::vector, exceptions on the device
// side, virtual calls or heap: fixed-size state only.
#pragma once

#if defined(__CUDACC__)
#define EVOZERO_HD __host__ __device__
#else
#define EVOZERO_HD
#endif

namespace evozero {

// std::min/max are not device functions (nvcc would need --expt-relaxed-constexpr).
template <class T>
EVOZERO_HD constexpr T hd_min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
EVOZERO_HD constexpr T hd_max(T a, T b) {
  return a < b ? b : a;
}

// The bits of a double (std::memcpy is not a device function everywhere).
EVOZERO_HD inline unsigned long long hd_double_bits(double x) {
#ifdef __CUDA_ARCH__
  return static_cast<unsigned long long>(__double_as_longlong(x));
#else
  unsigned long long bits;
  __builtin_memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

// The number of leading zero bits of x != 0.
EVOZERO_HD inline int hd_clzll(unsigned long long x) {
#ifdef __CUDA_ARCH__
  return __clzll(static_cast<long long>(x));
#else
  return __builtin_clzll(x);
#endif
}

// The index of the lowest set bit of x != 0.
EVOZERO_HD inline int hd_ctz(unsigned x) {
#ifdef __CUDA_ARCH__
  return __ffs(static_cast<int>(x)) - 1;
#else
  return __builtin_ctz(x);
#endif
}

}  // namespace evozero
