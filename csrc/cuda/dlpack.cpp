#include "cuda/dlpack.hpp"

#include <Python.h>
#include <pybind11/stl.h>

#include <string>

namespace py = pybind11;

namespace evozero::cuda::dlpack {
namespace {

// What one exported tensor owns: its shape array and a reference to the buffer's owner.
struct Export {
  DLManagedTensor tensor{};
  std::vector<int64_t> shape, strides;  // strides in elements, row-major
  py::object owner;
};

void delete_export(DLManagedTensor* self) {
  // After the interpreter is gone (a consumer freeing late) the owner cannot be
  // released: leak it rather than crash.
  if (!Py_IsInitialized()) return;
  // Consumers may call this from any thread, with or without the GIL.
  py::gil_scoped_acquire gil;
  delete static_cast<Export*>(self->manager_ctx);
}

// The capsule's destructor: a capsule never consumed (still named "dltensor"; a consumer
// renames it "used_dltensor" and calls the deleter itself) frees its tensor. It may run
// while an exception is set (a consumer that refused the capsule): keep it.
void destroy_capsule(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, "dltensor")) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto* tensor = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
  if (tensor && tensor->deleter) tensor->deleter(tensor);
  PyErr_Restore(type, value, traceback);
}

std::string dtype_name(const DLDataType& t) {
  if (t.code == kBool.code) return "bool";
  if (t.code == kFloat32.code && t.bits == 32) return "float32";
  return "code " + std::to_string(t.code) + ", " + std::to_string(t.bits) + " bits";
}

}  // namespace

py::capsule View::capsule(const py::object& dl_device, const py::object& copy) const {
  if (!copy.is_none() && copy.cast<bool>())
    throw py::buffer_error(
        "this view exports its buffer as is: copy=True is not supported (import it, then "
        "copy: torch.from_dlpack(view).clone())");
  if (!dl_device.is_none()) {
    std::pair<int32_t, int32_t> want;
    try {
      want = dl_device.cast<std::pair<int32_t, int32_t>>();
    } catch (const py::cast_error&) {
      throw py::type_error("dl_device must be a (device type, device id) pair of ints");
    }
    if (want.first != device.device_type || want.second != device.device_id)
      throw py::buffer_error("this view lives on device (" + std::to_string(device.device_type) +
                             ", " + std::to_string(device.device_id) +
                             ") and cannot be exported to another");
  }
  auto* e = new Export;
  e->shape = shape;
  e->owner = owner;
  DLTensor& t = e->tensor.dl_tensor;
  t.data = data;
  t.device = device;
  t.ndim = int32_t(e->shape.size());
  t.dtype = dtype;
  e->strides.assign(e->shape.size(), 1);
  for (std::size_t d = e->shape.size(); d-- > 1;)
    e->strides[d - 1] = e->strides[d] * e->shape[d];
  t.shape = e->shape.data();
  t.strides = e->strides.data();  // explicit: DLPack >= 1.2 forbids null for ndim > 0
  t.byte_offset = 0;
  e->tensor.manager_ctx = e;
  e->tensor.deleter = delete_export;
  PyObject* capsule = PyCapsule_New(&e->tensor, "dltensor", destroy_capsule);
  if (!capsule) {
    delete e;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

void bind(py::module_& m, const char* name) {
  py::class_<View>(m, name,
                   "A zero-copy view of a buffer for DLPack consumers (torch.from_dlpack, "
                   "cupy.from_dlpack): the owner's live buffer, overwritten by its next step")
      .def(
          "__dlpack__",
          [](const View& v, const py::object&, const py::object&, const py::object& dl_device,
             const py::object& copy) { return v.capsule(dl_device, copy); },
          py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
          py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", &View::device_tuple)
      .def_property_readonly("shape", [](const View& v) { return py::tuple(py::cast(v.shape)); })
      .def_property_readonly("dtype", [](const View& v) { return dtype_name(v.dtype); })
      .def("__repr__", [](const View& v) {
        return "<" + std::string(v.device.device_type == kDLCUDA ? "cuda" : "cpu") + ":" +
               std::to_string(v.device.device_id) + " " + dtype_name(v.dtype) + " " +
               py::str(py::tuple(py::cast(v.shape))).cast<std::string>() + ">";
      });
}

}  // namespace evozero::cuda::dlpack
