//! Array arguments: a numpy array or a torch tensor where the core reads values on the CPU.
//!
//! rust-numpy borrows a numpy array read-only, in place, with any strides (negative ones
//! too), and the core reads it as an `ndarray` view; a tensor is read from a host copy (none
//! when it is already a contiguous CPU tensor). The element type is checked once, here.

use half::f16;
use ndarray::{ArrayViewD, Ix2, IxDyn};
use numpy::{
    dtype, PyArrayDescrMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use tch::{Kind, Tensor};

use super::tensor::{is_tensor, PyTensor};
use crate::array::{host, Matrix};
use crate::error::{Error, Result};
use crate::tensor::{as_slice, host_readable, kind_name, shape_str};

/// A numpy array borrowed read-only, of one of the element types the core reads.
pub enum NumpyArray<'py> {
    Bool(PyReadonlyArrayDyn<'py, bool>),
    U8(PyReadonlyArrayDyn<'py, u8>),
    I8(PyReadonlyArrayDyn<'py, i8>),
    I16(PyReadonlyArrayDyn<'py, i16>),
    I32(PyReadonlyArrayDyn<'py, i32>),
    I64(PyReadonlyArrayDyn<'py, i64>),
    F16(PyReadonlyArrayDyn<'py, f16>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

/// An array argument, held for the duration of a call.
pub enum ArrayArg<'py> {
    /// A detached, contiguous CPU tensor.
    Tensor(Tensor),
    Numpy(NumpyArray<'py>),
}

/// Reads argument `name`: a `torch.Tensor` (any device) or a numpy array.
pub fn array_arg<'py>(ob: &Bound<'py, PyAny>, name: &str) -> PyResult<ArrayArg<'py>> {
    if is_tensor(ob)? {
        return Ok(ArrayArg::Tensor(host(&ob.extract::<PyTensor>()?.0, name)?));
    }
    let Ok(array) = ob.downcast::<PyUntypedArray>() else {
        return Err(Error::Type(format!(
            "{name} must be a numpy array or a torch.Tensor, got {}",
            ob.get_type().name()?
        ))
        .into());
    };
    // rust-numpy reads aligned arrays of the native byte order; others (a field of a
    // packed record array, big-endian data) are copied once into one.
    let descr = array.dtype();
    if !array
        .getattr("flags")?
        .getattr("aligned")?
        .extract::<bool>()?
        || !descr.is_native_byteorder().unwrap_or(true)
    {
        let native = descr.call_method1("newbyteorder", ("=",))?;
        return array_arg(&array.call_method1("astype", (native,))?, name);
    }
    let py = ob.py();
    macro_rules! typed {
        ($($variant:ident $t:ty),*) => {$(
            if descr.is_equiv_to(&dtype::<$t>(py)) {
                return Ok(ArrayArg::Numpy(NumpyArray::$variant(ob.extract()?)));
            }
        )*};
    }
    typed!(Bool bool, U8 u8, I8 i8, I16 i16, I32 i32, I64 i64, F16 f16, F32 f32, F64 f64);
    Err(Error::value(format!(
        "{name} must hold bools, integers or floats, got a numpy array of dtype {descr}"
    ))
    .into())
}

impl ArrayArg<'_> {
    /// The `[N, C]` view the metrics read.
    pub fn matrix(&self, name: &str) -> Result<Matrix<'_>> {
        let a = match self {
            ArrayArg::Tensor(t) => return Matrix::from_tensor(t, name),
            ArrayArg::Numpy(a) => a,
        };
        macro_rules! two_d {
            ($($variant:ident),*) => {
                match a {$(
                    NumpyArray::$variant(x) => Matrix::$variant(matrix_view(x.as_array(), name)?),
                )*}
            };
        }
        Ok(two_d!(Bool, U8, I8, I16, I32, I64, F16, F32, F64))
    }

    /// The bytes of a uint8 array, in its shape.
    pub fn bytes(&self, name: &str) -> Result<ArrayViewD<'_, u8>> {
        match self {
            ArrayArg::Numpy(NumpyArray::U8(x)) => Ok(x.as_array()),
            ArrayArg::Tensor(t) if !host_readable(t) => {
                crate::bail!("{name}: a batched or wrapped tensor (torch.vmap, torch.func) has no memory to read")
            }
            ArrayArg::Tensor(t) if t.kind() == Kind::Uint8 => {
                let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
                // SAFETY: a contiguous CPU uint8 tensor (`host`), borrowed as long as the view.
                let data = unsafe { as_slice::<u8>(t) };
                ArrayViewD::from_shape(IxDyn(&shape), data).map_err(|e| Error::value(e.to_string()))
            }
            _ => crate::bail!("{name} must be uint8, got {}", self.dtype()),
        }
    }

    /// The element type's name as numpy prints it (`float32`).
    fn dtype(&self) -> String {
        macro_rules! descr {
            ($($variant:ident),*) => {
                match self {
                    ArrayArg::Tensor(t) => kind_name(t.kind()).trim_start_matches("torch.").to_string(),
                    $(ArrayArg::Numpy(NumpyArray::$variant(x)) => x.dtype().to_string(),)*
                }
            };
        }
        descr!(Bool, U8, I8, I16, I32, I64, F16, F32, F64)
    }
}

fn matrix_view<'a, T>(a: ArrayViewD<'a, T>, name: &str) -> Result<ndarray::ArrayView2<'a, T>> {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    a.into_dimensionality::<Ix2>().map_err(|_| {
        Error::value(format!(
            "{name} must have shape [num_samples, num_classes], got {}",
            shape_str(&shape)
        ))
    })
}
