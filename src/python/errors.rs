//! The one mapping from the core's errors to Python exceptions.
//!
//! The exception classes are defined in Python (`q2l/errors.py`, with their documentation);
//! each variant of [`Error`] becomes one of them, so every error from Rust is a
//! `q2l.Q2LError` and also the built-in exception it stood for before.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::PyErr;

use crate::error::{panic_message, Error};

/// The `q2l.errors` class that `err` is raised as.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::Value(_) => "InvalidArgumentError",
        Error::Torch(_) => "LibtorchError",
        Error::Internal(_) => "InternalError",
        Error::Memory(_) => "OutOfMemoryError",
        Error::Image { .. } => "ImageError",
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => "MissingFileError",
            std::io::ErrorKind::PermissionDenied => "FilePermissionError",
            std::io::ErrorKind::IsADirectory => "DirectoryGivenError",
            _ => "FileError",
        },
    }
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("q2l.errors")?
        .getattr(name)?
        .downcast_into::<PyType>()?)
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        Python::with_gil(|py| match class(py, class_name(&err)) {
            Ok(ty) => PyErr::from_type(ty, msg),
            // Only if q2l/errors.py is missing from the installation.
            Err(import_error) => import_error,
        })
    }
}

/// Runs `f`, turning a core error or a panic into a Python exception.
pub fn guarded<T>(f: impl FnOnce() -> crate::Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r?),
        Err(panic) => Err(Error::Internal(panic_message(panic.as_ref())).into()),
    }
}
