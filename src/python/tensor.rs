//! Torch tensors across the boundary: `PyTensor` converts a Python `torch.Tensor` argument to
//! a [`tch::Tensor`] and back, sharing storage and autograd history both ways.
//!
//! The conversion goes through `tensor_bridge.cpp`, which includes no CPython header, so the
//! module stays within the stable ABI (one abi3 wheel for CPython 3.10 and later). It replaces
//! pyo3-tch, whose C++ side is compiled against the build interpreter's private API. The type
//! check is `isinstance(obj, torch._C.TensorBase)`, exactly torch's `THPVariable_Check`: only
//! instances of that type have the `THPVariable` layout the bridge reads.

use std::ffi::c_void;
use std::ops::Deref;

use pyo3::exceptions::{PyImportError, PyMemoryError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn q2l_tensor_wrap(t: *const C_tensor) -> *mut pyo3::ffi::PyObject;
    fn q2l_tensor_unpack(obj: *mut pyo3::ffi::PyObject) -> *mut C_tensor;
    fn q2l_tensor_impl(t: *const C_tensor) -> *const c_void;
    fn q2l_variable_impl(obj: *mut pyo3::ffi::PyObject) -> *const c_void;
}

/// A torch tensor argument or result of a `q2l._native` function.
pub struct PyTensor(pub Tensor);

impl Deref for PyTensor {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.0
    }
}

static TENSOR_BASE: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn tensor_base(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TENSOR_BASE.import(py, "torch._C", "TensorBase")
}

/// Whether `ob` is a `torch.Tensor` (as torch's `THPVariable_Check` decides).
pub fn is_tensor(ob: &Bound<'_, PyAny>) -> PyResult<bool> {
    ob.is_instance(tensor_base(ob.py())?)
}

impl<'py> FromPyObject<'py> for PyTensor {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if !is_tensor(ob)? {
            return Err(PyTypeError::new_err(format!(
                "expected a torch.Tensor, got {}",
                ob.get_type()
            )));
        }
        // SAFETY: `ob` is a TensorBase instance (checked above), so it is a THPVariable, whose
        // layout `check_layout` confirmed when the module was imported.
        let ptr = unsafe { q2l_tensor_unpack(ob.as_ptr()) };
        if ptr.is_null() {
            return Err(PyMemoryError::new_err("could not allocate a tensor handle"));
        }
        // SAFETY: `ptr` is a fresh heap handle that the returned Tensor owns and frees.
        Ok(PyTensor(unsafe { Tensor::from_ptr(ptr) }))
    }
}

impl<'py> IntoPyObject<'py> for PyTensor {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: the handle is valid for the call; torch takes its own reference.
        let ptr = unsafe { q2l_tensor_wrap(self.0.as_ptr()) };
        if ptr.is_null() {
            return Err(PyErr::take(py).unwrap_or_else(|| {
                PyRuntimeError::new_err("torch could not wrap a result tensor")
            }));
        }
        // SAFETY: THPVariable_Wrap returns a new reference.
        Ok(unsafe { Bound::from_owned_ptr(py, ptr) })
    }
}

/// Refuses the import unless a tensor wrapped by torch is found where the bridge reads it:
/// the `THPVariable` layout of the torch that is loaded is the one the bridge assumes.
pub fn check_layout(py: Python<'_>) -> PyResult<()> {
    let fail = |why: String| {
        PyImportError::new_err(format!(
            "q2l-rs cannot exchange tensors with this torch ({why}); install the q2l-rs build for it"
        ))
    };
    let t = Tensor::f_zeros([1], (Kind::Float, Device::Cpu)).map_err(|e| fail(e.to_string()))?;
    let obj = PyTensor(t.shallow_clone()).into_pyobject(py)?;
    if !obj.is_instance(tensor_base(py)?)? {
        return Err(fail("a wrapped tensor is not a torch._C.TensorBase".into()));
    }
    // SAFETY: both calls only read a pointer-sized word; `obj` is a live THPVariable-sized
    // object (an instance of TensorBase) and `t` a live handle.
    let same = unsafe { q2l_variable_impl(obj.as_ptr()) == q2l_tensor_impl(t.as_ptr()) };
    if same {
        Ok(())
    } else {
        Err(fail("its Tensor object layout differs".into()))
    }
}
