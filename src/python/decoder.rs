//! Shims for `crate::decoder`.

use std::collections::HashMap;

use super::tensor::PyTensor;
use pyo3::prelude::*;

use super::errors::guarded;
use crate::decoder::{self, HeadConfig, MlDecoderConfig};

/// The Query2Label head forward: (logits [B, K], attention maps per decoder layer).
#[pyfunction]
#[pyo3(signature = (
    *, features, params, d_model, nhead, num_encoder_layers, num_decoder_layers, dropout,
    pre_norm, keep_first_self_attn, keep_other_self_attn, temperature, train, return_attention
))]
#[allow(clippy::too_many_arguments)]
fn head_forward(
    py: Python<'_>,
    features: PyTensor,
    params: HashMap<String, PyTensor>,
    d_model: i64,
    nhead: i64,
    num_encoder_layers: i64,
    num_decoder_layers: i64,
    dropout: f64,
    pre_norm: bool,
    keep_first_self_attn: bool,
    keep_other_self_attn: bool,
    temperature: f64,
    train: bool,
    return_attention: bool,
) -> PyResult<(PyTensor, Vec<PyTensor>)> {
    let cfg = HeadConfig {
        d_model,
        nhead,
        num_encoder_layers,
        num_decoder_layers,
        dropout,
        pre_norm,
        keep_first_self_attn,
        keep_other_self_attn,
        temperature,
    };
    let params: HashMap<String, tch::Tensor> = params.into_iter().map(|(k, v)| (k, v.0)).collect();
    let x = features.0;
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
#[pyo3(signature = (*, features, params, label_embeddings, nhead, dropout, train))]
fn ml_decoder_forward(
    py: Python<'_>,
    features: PyTensor,
    params: HashMap<String, PyTensor>,
    label_embeddings: Option<PyTensor>,
    nhead: i64,
    dropout: f64,
    train: bool,
) -> PyResult<PyTensor> {
    let cfg = MlDecoderConfig { nhead, dropout };
    let params: HashMap<String, tch::Tensor> = params.into_iter().map(|(k, v)| (k, v.0)).collect();
    let x = features.0;
    let emb = label_embeddings.map(|e| e.0);
    let logits = py.allow_threads(move || {
        guarded(|| decoder::ml_decoder_forward(&x, &params, emb.as_ref(), &cfg, train))
    })?;
    Ok(PyTensor(logits))
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
