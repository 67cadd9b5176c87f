//! The one mapping from the core's errors to Python exceptions.
//!
//! The exception classes are defined in Python (`q2l/errors.py`, with their documentation)
//! and looked up once, when `q2l._native` is imported ([`init`]); raising one never
//! imports. Each variant of [`Error`] becomes one of them, so every error from Rust is a
//! `q2l.Q2LError` and also the built-in exception it stood for before.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use pyo3::PyErr;

use crate::error::{panic_message, Error};

/// The `q2l.errors` classes Rust raises: every name [`class_name`] returns.
const CLASS_NAMES: [&str; 10] = [
    "InvalidArgumentError",
    "InvalidTypeError",
    "LibtorchError",
    "InternalError",
    "OutOfMemoryError",
    "ImageError",
    "MissingFileError",
    "FilePermissionError",
    "DirectoryGivenError",
    "FileError",
];

static CLASSES: GILOnceCell<Vec<Py<PyType>>> = GILOnceCell::new();

/// Looks up the exception classes in `q2l.errors`; called once by the module's init.
pub fn init(py: Python<'_>) -> PyResult<()> {
    let module = py.import("q2l.errors")?;
    let classes = CLASS_NAMES
        .iter()
        .map(|name| Ok(module.getattr(*name)?.downcast_into::<PyType>()?.unbind()))
        .collect::<PyResult<Vec<_>>>()?;
    // A second import of the module keeps the first lookup.
    let _ = CLASSES.set(py, classes);
    Ok(())
}

/// The `q2l.errors` class that `err` is raised as.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::Value(_) => "InvalidArgumentError",
        Error::Type(_) => "InvalidTypeError",
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

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        let name = class_name(&err);
        Python::with_gil(|py| {
            // A libtorch call that ran Python (a saved-tensor hook, a tensor subclass's
            // __torch_dispatch__, anomaly mode) and failed there leaves that exception set:
            // it is the error, unchanged, and must not stay set under a new one.
            if matches!(err, Error::Torch(_)) {
                if let Some(original) = PyErr::take(py) {
                    return original;
                }
            }
            let index = CLASS_NAMES.iter().position(|n| *n == name);
            match (CLASSES.get(py), index) {
                (Some(classes), Some(i)) => PyErr::from_type(classes[i].bind(py).clone(), msg),
                // Only before `init`, which runs before any function of the module exists.
                _ => PyRuntimeError::new_err(msg),
            }
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
