// Buffer checks shared by the bindings: every array that crosses into the core is
// checked here (dtype, contiguity, size or shape) and raises ValueError naming it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace evozero::bindings {

namespace py = pybind11;

// a as a writeable C-contiguous array of exactly dtype T and `size` elements.
template <class T>
T* checked(py::array& a, py::ssize_t size, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style) || !a.writeable())
    throw py::value_error(std::string(name) + " must be a writeable C-contiguous " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + " array");
  if (a.size() != size)
    throw py::value_error(std::string(name) + " must have " + std::to_string(size) +
                          " elements, got " + std::to_string(a.size()));
  return static_cast<T*>(a.mutable_data());
}

// obj as a C-contiguous array of exactly dtype T (no conversion), else ValueError.
template <class T>
py::array_t<T> exact_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::value_error(std::string(name) + " must be a numpy array of dtype " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                          py::str(py::type::handle_of(obj)).cast<std::string>() +
                          (py::isinstance<py::array>(obj)
                               ? " of dtype " +
                                     py::str(obj.cast<py::array>().dtype()).cast<std::string>()
                               : std::string()));
  auto a = obj.cast<py::array_t<T>>();
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return a;
}

// obj as a C-contiguous array of exactly dtype T with ndim dimensions.
template <class T>
py::array_t<T, py::array::c_style> typed_array(const py::handle& obj, const char* name, int ndim) {
  const std::string type = py::str(py::dtype::of<T>());
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::value_error(std::string(name) + " must be a numpy " + type + " array");
  auto a = py::array_t<T, py::array::c_style>::ensure(obj);
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimension(s), got " + std::to_string(a.ndim()));
  return a;
}

// Read-only float32 inputs of one call, all of the first one's shape.
struct Float32Inputs {
  std::vector<py::array_t<float>> arrays;
  std::vector<py::ssize_t> shape;
  std::string first;

  const float* add(const py::handle& obj, const char* name) {
    auto a = exact_array<float>(obj, name);
    std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
    if (arrays.empty()) {
      shape = s;
      first = name;
    } else if (s != shape) {
      auto str = [](const std::vector<py::ssize_t>& v) {
        std::string r;
        for (auto x : v) r += (r.empty() ? "" : ", ") + std::to_string(x);
        return "(" + r + (v.size() == 1 ? ",)" : ")");
      };
      throw py::value_error(std::string(name) + " has shape " + str(s) + ", expected " +
                            str(shape) + " like " + first);
    }
    arrays.push_back(a);
    return a.data();
  }
  py::ssize_t size() const {
    py::ssize_t n = 1;
    for (auto x : shape) n *= x;
    return n;
  }
  py::array_t<float> empty() const { return py::array_t<float>(shape); }
};

}  // namespace evozero::bindings
