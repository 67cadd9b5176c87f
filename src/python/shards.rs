//! Shims for `crate::data::dataset::shards` and `shard_writer`: WebDataset tar shards.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::data::{wrap, NativeDataset};
use super::errors::guarded;
use crate::data::dataset::shards::writer::{write_shards as write, ShardLayout};
use crate::data::dataset::shards::{expand_braces, read_classes, shards};

/// A dataset over tar shards; `classes` is a list of names or `classes_file` names a file
/// of them, one per line.
#[pyfunction]
#[pyo3(signature = (*, patterns, classes, on_error))]
fn dataset_shards(
    py: Python<'_>,
    patterns: Vec<String>,
    classes: Vec<String>,
    on_error: &str,
) -> PyResult<NativeDataset> {
    let on_error = on_error.parse()?;
    py.allow_threads(|| guarded(|| wrap(shards(&patterns, classes, on_error))))
}

/// The shard names a brace pattern stands for (`train-{000..015}.tar`).
#[pyfunction]
#[pyo3(signature = (*, pattern))]
fn expand_shards(pattern: &str) -> PyResult<Vec<String>> {
    guarded(|| expand_braces(pattern))
}

/// A label table file: one class name per line.
#[pyfunction]
#[pyo3(signature = (*, path))]
fn read_class_file(py: Python<'_>, path: PathBuf) -> PyResult<Vec<String>> {
    py.allow_threads(|| guarded(|| read_classes(&path)))
}

/// Writes a dataset as shards `directory/PREFIX-000000.tar`, ... and `classes.txt`.
#[pyfunction]
#[pyo3(signature = (*, dataset, directory, prefix, samples_per_shard, max_shard_bytes))]
fn write_shards(
    py: Python<'_>,
    dataset: &NativeDataset,
    directory: PathBuf,
    prefix: String,
    samples_per_shard: usize,
    max_shard_bytes: u64,
) -> PyResult<Vec<PathBuf>> {
    let d = dataset.0.clone();
    let layout = ShardLayout {
        prefix,
        samples_per_shard,
        max_shard_bytes,
    };
    py.allow_threads(move || guarded(|| write(&d, &directory, &layout)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dataset_shards, m)?)?;
    m.add_function(wrap_pyfunction!(expand_shards, m)?)?;
    m.add_function(wrap_pyfunction!(read_class_file, m)?)?;
    m.add_function(wrap_pyfunction!(write_shards, m)?)?;
    Ok(())
}
