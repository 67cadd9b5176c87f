// Torch tensors to and from Python objects without CPython's headers.
//
// The extension is built for CPython's stable ABI (abi3): one wheel serves every CPython from
// 3.10 on. Any C++ that includes <Python.h> (or torch's Python headers, which pull in
// pybind11) is compiled against one interpreter's private layout: torch-sys's own bridge
// referenced _PyThreadState_UncheckedGet, which CPython 3.13 no longer exports, and
// instantiated pybind11 internals of the build interpreter. This file needs only two things of
// torch's Python layer: THPVariable_Wrap, exported by libtorch_python, and the layout of a
// THPVariable (torch/csrc/autograd/python_variable.h, the same in torch 2.11 and 2.13), which
// the module checks at import (src/python/tensor.rs) before it converts any tensor.

#include <ATen/core/Tensor.h>

#include <cstdint>

struct _object;  // CPython's PyObject, only ever behind a pointer here.

// libtorch_python.so; the declaration matches torch's, so the mangled names agree.
_object* THPVariable_Wrap(const at::TensorBase& var);

namespace {

// torch's THPVariable: PyObject_HEAD (a reference count and a type pointer on a CPython
// without free threading, which abi3 excludes), then the tensor.
struct Variable {
  std::intptr_t ob_refcnt;
  void* ob_type;
  at::Tensor cdata;
};

}  // namespace

extern "C" {

// A new reference to the Python tensor of `t`, or null (with a Python error set where torch
// set one) when torch fails.
_object* q2l_tensor_wrap(const at::Tensor* t) noexcept {
  try {
    return THPVariable_Wrap(*t);
  } catch (...) {
    return nullptr;
  }
}

// A new handle on the tensor of `obj`, which must be an instance of torch._C.TensorBase;
// null when the handle cannot be allocated.
at::Tensor* q2l_tensor_unpack(_object* obj) noexcept {
  try {
    return new at::Tensor(reinterpret_cast<Variable*>(obj)->cdata);
  } catch (...) {
    return nullptr;
  }
}

// The TensorImpl of a tensor handle, and the word where the layout above puts the TensorImpl
// of a Python tensor: equal for a tensor and its wrapper when the layout holds. Neither
// dereferences anything, so a wrong layout is found without touching memory through it.
const void* q2l_tensor_impl(const at::Tensor* t) noexcept {
  return t->unsafeGetTensorImpl();
}

const void* q2l_variable_impl(_object* obj) noexcept {
  return reinterpret_cast<Variable*>(obj)->cdata.unsafeGetTensorImpl();
}

}  // extern "C"
