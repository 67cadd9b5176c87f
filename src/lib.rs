//! q2l: Query2Label for PyTorch, in Rust.
//!
//! The core is free of Python: its public functions take `tch` tensors or `ndarray` views
//! (`array`) and return `Result<_, Error>`. The `python` feature adds the `q2l._native` extension module,
//! a thin layer of `#[pyfunction]` shims over this core.

pub mod array;
pub mod buffer_pool;
pub mod data;
pub mod decoder;
pub mod error;
pub mod loss;
pub mod math;
pub mod memory;
pub mod metrics;
pub mod options;
pub mod parallel;
pub mod simd;
pub mod tensor;
pub mod vector;

#[cfg(feature = "python")]
mod python;

// The fuzz harness, run over the corpora by a test, names this crate `q2l` as the targets do.
#[cfg(test)]
extern crate self as q2l;
#[cfg(test)]
mod fuzz_corpus;

pub use error::{Error, Result};
