//! Shims for `crate::decoder`.

use std::collections::HashMap;

use super::tensor::PyTensor;
use pyo3::prelude::*;

use super::errors::guarded;
use super::options::Opts;
use crate::decoder::{self, HeadConfig, MlDecoderConfig};

/// The Query2Label head forward: (logits [B, K], attention maps per decoder layer).
#[pyfunction]
#[pyo3(signature = (*, features, params, config, train, return_attention))]
fn head_forward(
    py: Python<'_>,
    features: PyTensor,
    params: HashMap<String, PyTensor>,
    config: Opts<HeadConfig>,
    train: bool,
    return_attention: bool,
) -> PyResult<(PyTensor, Vec<PyTensor>)> {
    let (x, params, cfg) = (features.0, tensors(params), config.0);
    let out = py.allow_threads(move || {
        guarded(|| decoder::forward(&x, &params, &cfg, train, return_attention))
    })?;
    Ok((
        PyTensor(out.logits),
        out.attention.into_iter().map(PyTensor).collect(),
    ))
}

/// The ML-Decoder forward: logits [B, K].
#[pyfunction]
#[pyo3(signature = (*, features, params, label_embeddings, config, train))]
fn ml_decoder_forward(
    py: Python<'_>,
    features: PyTensor,
    params: HashMap<String, PyTensor>,
    label_embeddings: Option<PyTensor>,
    config: Opts<MlDecoderConfig>,
    train: bool,
) -> PyResult<PyTensor> {
    let (x, params, cfg) = (features.0, tensors(params), config.0);
    let emb = label_embeddings.map(|e| e.0);
    let logits = py.allow_threads(move || {
        guarded(|| decoder::ml_decoder_forward(&x, &params, emb.as_ref(), &cfg, train))
    })?;
    Ok(PyTensor(logits))
}

fn tensors(params: HashMap<String, PyTensor>) -> HashMap<String, tch::Tensor> {
    params.into_iter().map(|(k, v)| (k, v.0)).collect()
}

/// The sine positional encoding `[h * w, d]` (float32, CPU).
#[pyfunction]
#[pyo3(signature = (*, height, width, d_model, temperature=10000.0))]
fn sine_encoding(
    py: Python<'_>,
    height: i64,
    width: i64,
    d_model: i64,
    temperature: f64,
) -> PyResult<PyTensor> {
    let t = py.allow_threads(move || {
        guarded(|| {
            decoder::sine_encoding(
                height,
                width,
                d_model,
                temperature,
                tch::Kind::Float,
                tch::Device::Cpu,
            )
        })
    })?;
    Ok(PyTensor(t))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(head_forward, m)?)?;
    m.add_function(wrap_pyfunction!(ml_decoder_forward, m)?)?;
    m.add_function(wrap_pyfunction!(sine_encoding, m)?)?;
    Ok(())
}
