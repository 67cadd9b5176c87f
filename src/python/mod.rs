//! The `q2l._native` extension module: thin shims from Python onto the core.
//!
//! Each shim takes keyword arguments with the names of the Python API, converts them,
//! releases the GIL around the core call and returns the core's `Result` with `?`: the
//! [`Error`](crate::Error) becomes a `q2l.errors` exception (`errors.rs`), and
//! [`errors::guarded`] turns a panic into `q2l.errors.InternalError` so that none reaches the
//! interpreter.

mod array;
mod data;
mod decoder;
mod errors;
mod loss;
mod metrics;
mod options;
mod shards;
mod tensor;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tensor::check_layout(m.py())?;
    errors::init(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TORCH_VERSION", torch_version())?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    data::register(m)?;
    decoder::register(m)?;
    loss::register(m)?;
    metrics::register(m)?;
    options::register(m)?;
    shards::register(m)?;
    Ok(())
}

/// The libtorch version this module was built against: the `torch-2-11` feature (set by
/// `.ci/torch-variant.sh` with tch 0.24) only changes this string; the code is the same.
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
