// The "block" a population agent's code runs on: a group of threads that share the
// agent's memory and meet at barriers. The per-agent trainer (agent.hpp) is written once
// against this interface and runs
//   - on the host as HostBlock: one thread, tid 0 of 1, sync a no-op;
//   - in CUDA as DeviceBlock: the threads of one thread block, sync = __syncthreads.
// Work is split by strided loops (for i = tid; i < n; i += size), each element written
// by one thread with the same arithmetic whatever the block size; every reduction is
// done by fixed threads in a fixed order, so a run's result does not depend on the
// block size (the host run is the GPU run's reference).
#pragma once

#include "common/hd.hpp"

namespace evozero::population {

struct HostBlock {
  EVOZERO_HD int tid() const { return 0; }
  EVOZERO_HD int size() const { return 1; }
  EVOZERO_HD void sync() const {}
};

#if defined(__CUDACC__)
struct DeviceBlock {
  // __host__ __device__ so the EVOZERO_HD templates that call them compile for both
  // sides; only the device side is ever run.
  __host__ __device__ int tid() const {
#ifdef __CUDA_ARCH__
    return int(threadIdx.x);
#else
    return 0;
#endif
  }
  __host__ __device__ int size() const {
#ifdef __CUDA_ARCH__
    return int(blockDim.x);
#else
    return 1;
#endif
  }
  __host__ __device__ void sync() const {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
};
#endif

}  // namespace evozero::population
