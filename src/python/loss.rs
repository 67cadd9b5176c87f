//! Shims for `crate::loss`: tensors by name, the options as one dict (see `options.rs`).

use pyo3::prelude::*;

use super::errors::guarded;
use super::options::Opts;
use super::tensor::PyTensor;
use crate::loss::{self, AslOptions, LossOutput, PartialOptions, SingleLabelOptions};

type Output = (PyTensor, Option<PyTensor>);

fn output(out: LossOutput) -> Output {
    (PyTensor(out.loss), out.grad.map(PyTensor))
}

/// Asymmetric loss: returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (*, logits, targets, class_weight, options, need_grad))]
fn asymmetric_loss(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    class_weight: Option<PyTensor>,
    options: Opts<AslOptions>,
    need_grad: bool,
) -> PyResult<Output> {
    let (x, y, w, o) = (logits.0, targets.0, class_weight.map(|w| w.0), options.0);
    let out = py.allow_threads(move || {
        guarded(|| loss::asymmetric_loss(&x, &y, w.as_ref(), &o, need_grad))
    })?;
    Ok(output(out))
}

/// Single-label asymmetric loss: returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (*, logits, targets, options, need_grad))]
fn asymmetric_loss_single_label(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    options: Opts<SingleLabelOptions>,
    need_grad: bool,
) -> PyResult<Output> {
    let (x, y, o) = (logits.0, targets.0, options.0);
    let out = py.allow_threads(move || {
        guarded(|| loss::asymmetric_loss_single_label(&x, &y, &o, need_grad))
    })?;
    Ok(output(out))
}

/// CSL's partial-label loss (summed): returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (*, logits, targets, priors, options, need_grad))]
fn partial_asymmetric_loss(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    priors: Option<PyTensor>,
    options: Opts<PartialOptions>,
    need_grad: bool,
) -> PyResult<Output> {
    let (x, y, p, o) = (logits.0, targets.0, priors.map(|p| p.0), options.0);
    let out = py.allow_threads(move || {
        guarded(|| loss::partial_asymmetric_loss(&x, &y, p.as_ref(), &o, need_grad))
    })?;
    Ok(output(out))
}

/// CSL's class priors: the mean of `probabilities` [N, K] over samples.
#[pyfunction]
#[pyo3(signature = (*, probabilities))]
fn class_priors(py: Python<'_>, probabilities: PyTensor) -> PyResult<PyTensor> {
    let p = probabilities.0;
    let out = py.allow_threads(move || guarded(|| loss::class_priors(&p)))?;
    Ok(PyTensor(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(partial_asymmetric_loss, m)?)?;
    m.add_function(wrap_pyfunction!(class_priors, m)?)?;
    m.add_function(wrap_pyfunction!(asymmetric_loss, m)?)?;
    m.add_function(wrap_pyfunction!(asymmetric_loss_single_label, m)?)?;
    Ok(())
}
