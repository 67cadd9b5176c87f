//! Shims for `crate::loss`.

use pyo3::prelude::*;
use pyo3_tch::PyTensor;

use super::errors::{guarded, to_py};
use crate::loss::{self, AslOptions, LossOutput, SingleLabelOptions};

type Output = (PyTensor, Option<PyTensor>);

fn output(out: LossOutput) -> Output {
    (PyTensor(out.loss), out.grad.map(PyTensor))
}

/// Asymmetric loss: returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (
    logits, targets, class_weight, *, gamma_pos, gamma_neg, clip, eps, focal_grad,
    reduction, scale, validate, backend, need_grad
))]
#[allow(clippy::too_many_arguments)]
fn asymmetric_loss(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    class_weight: Option<PyTensor>,
    gamma_pos: f64,
    gamma_neg: f64,
    clip: f64,
    eps: f64,
    focal_grad: bool,
    reduction: &str,
    scale: f64,
    validate: bool,
    backend: &str,
    need_grad: bool,
) -> PyResult<Output> {
    let opts = AslOptions {
        gamma_pos,
        gamma_neg,
        clip,
        eps,
        focal_grad,
        reduction: reduction.parse().map_err(to_py)?,
        scale,
        validate,
        backend: backend.parse().map_err(to_py)?,
    };
    let (x, y, w) = (logits.0, targets.0, class_weight.map(|w| w.0));
    let out = py.allow_threads(move || {
        guarded(|| loss::asymmetric_loss(&x, &y, w.as_ref(), &opts, need_grad))
    })?;
    Ok(output(out))
}

/// Single-label asymmetric loss: returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (
    logits, targets, *, gamma_pos, gamma_neg, smoothing, reduction, scale, ignore_index,
    validate, backend, need_grad
))]
#[allow(clippy::too_many_arguments)]
fn asymmetric_loss_single_label(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    gamma_pos: f64,
    gamma_neg: f64,
    smoothing: f64,
    reduction: &str,
    scale: f64,
    ignore_index: i64,
    validate: bool,
    backend: &str,
    need_grad: bool,
) -> PyResult<Output> {
    let opts = SingleLabelOptions {
        gamma_pos,
        gamma_neg,
        smoothing,
        reduction: reduction.parse().map_err(to_py)?,
        scale,
        ignore_index,
        validate,
        backend: backend.parse().map_err(to_py)?,
    };
    let (x, y) = (logits.0, targets.0);
    let out = py.allow_threads(move || {
        guarded(|| loss::asymmetric_loss_single_label(&x, &y, &opts, need_grad))
    })?;
    Ok(output(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(asymmetric_loss, m)?)?;
    m.add_function(wrap_pyfunction!(asymmetric_loss_single_label, m)?)?;
    Ok(())
}
