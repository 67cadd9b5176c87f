//! The `q2l._native` extension module: thin shims from Python onto the core.
//!
//! Each shim converts arguments, releases the GIL around the core call, and maps
//! [`Error`](crate::Error) through [`errors::to_py`]. Panics are caught and turned into
//! `RuntimeError` so that none reaches the interpreter.

mod data;
mod decoder;
mod errors;
mod loss;
mod metrics;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TORCH_VERSION", torch_version())?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    data::register(m)?;
    decoder::register(m)?;
    errors::register(m)?;
    loss::register(m)?;
    metrics::register(m)?;
    Ok(())
}

/// The libtorch version this module was built against.
fn torch_version() -> &'static str {
    if cfg!(feature = "torch-2-11") {
        "2.11.0"
    } else {
        "2.13.0"
    }
}

/// The instruction set the CPU kernels run with on this machine.
#[pyfunction]
fn simd_level() -> &'static str {
    crate::simd::level_name()
}
