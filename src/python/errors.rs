//! The one mapping from the core's errors to Python exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::PyErr;

use crate::error::Error;

pyo3::create_exception!(
    q2l,
    ImageError,
    PyOSError,
    "An image file that is truncated, corrupt, too large, not a JPEG/PNG or not a regular file."
);

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ImageError", m.py().get_type::<ImageError>())
}

/// Converts a core error into the Python exception users catch.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::Value(msg) => PyValueError::new_err(msg),
        Error::Image { .. } => ImageError::new_err(err.to_string()),
        Error::Torch(_) => PyRuntimeError::new_err(err.to_string()),
        Error::Io { ref source, .. } => {
            let msg = err.to_string();
            match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        }
    }
}

/// Runs `f`, turning a core error or a panic into a Python exception.
pub fn guarded<T>(f: impl FnOnce() -> crate::Result<T>) -> Result<T, PyErr> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in q2l (please report it): {what}"
            )))
        }
    }
}
