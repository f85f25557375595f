// Zero-copy export of device (or host) buffers through DLPack, the tensor exchange
// protocol of the Python array API (`__dlpack__` / `__dlpack_device__`), so that
// torch.from_dlpack, cupy.from_dlpack and jax.dlpack read them without a copy.
//
// The structs are DLPack's C ABI, the pre-1.0 (unversioned) "dltensor" capsule that
// every consumer still accepts (dlpack.h; https://dmlc.github.io/dlpack/latest/c_api.html),
// declared here from the spec: they are an ABI, and consumers read exactly this layout.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

namespace evozero::cuda::dlpack {

struct DLDevice {
  int32_t device_type;  // kDLCPU = 1, kDLCUDA = 2
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;  // kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBool = 6
  uint8_t bits;
  uint16_t lanes;
};

struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements (null: compact, row-major; not allowed since 1.2)
  uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

constexpr int32_t kDLCPU = 1, kDLCUDA = 2;
constexpr DLDataType kBool{6, 8, 1}, kFloat32{2, 32, 1};

// A compact row-major view of memory that `owner` keeps alive: what `__dlpack__` hands
// out. The data is the owner's live buffer (an env's outputs are overwritten by its next
// step): consumers copy what they keep.
struct View {
  void* data;
  std::vector<int64_t> shape;
  DLDataType dtype;
  DLDevice device;
  pybind11::object owner;

  // `__dlpack__(stream=None, max_version=None, dl_device=None, copy=None)`: a
  // "dltensor" capsule. The data is complete when it is made (the env's steps
  // synchronize), so `stream` needs no event; the env's next step or reset waits for
  // the device's pending work first, readers' included. Raises BufferError for a copy
  // or another device (this view can give neither), TypeError for a malformed device.
  pybind11::capsule capsule(const pybind11::object& dl_device,
                            const pybind11::object& copy) const;
  // `__dlpack_device__()`: (device type, device id).
  pybind11::tuple device_tuple() const {
    return pybind11::make_tuple(device.device_type, device.device_id);
  }
};

// Binds View as `name` in module m (`__dlpack__`, `__dlpack_device__`, shape, dtype).
void bind(pybind11::module_& m, const char* name);

}  // namespace evozero::cuda::dlpack
