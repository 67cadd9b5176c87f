//! Shims for `crate::loss`.

use super::tensor::PyTensor;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::guarded;
use crate::loss::{self, AslOptions, LossOutput, PartialOptions, SingleLabelOptions};

type Output = (PyTensor, Option<PyTensor>);

fn output(out: LossOutput) -> Output {
    (PyTensor(out.loss), out.grad.map(PyTensor))
}

/// Asymmetric loss: returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (
    *, logits, targets, class_weight, gamma_pos, gamma_neg, clip, eps,
    disable_torch_grad_focal_loss,
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
    disable_torch_grad_focal_loss: bool,
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
        disable_torch_grad_focal_loss,
        reduction: reduction.parse()?,
        scale,
        validate,
        backend: backend.parse()?,
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
    *, logits, targets, gamma_pos, gamma_neg, smoothing, reduction, scale, ignore_index,
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
        reduction: reduction.parse()?,
        scale,
        ignore_index,
        validate,
        backend: backend.parse()?,
    };
    let (x, y) = (logits.0, targets.0);
    let out = py.allow_threads(move || {
        guarded(|| loss::asymmetric_loss_single_label(&x, &y, &opts, need_grad))
    })?;
    Ok(output(out))
}

/// CSL's partial-label loss (summed): returns (loss, d loss / d logits or None).
#[pyfunction]
#[pyo3(signature = (
    *, logits, targets, priors, mode, gamma_pos, gamma_neg, gamma_unann, alpha_pos, alpha_neg,
    alpha_unann, clip, likelihood_topk, prior_threshold, backend, need_grad
))]
#[allow(clippy::too_many_arguments)]
fn partial_asymmetric_loss(
    py: Python<'_>,
    logits: PyTensor,
    targets: PyTensor,
    priors: Option<PyTensor>,
    mode: &str,
    gamma_pos: f64,
    gamma_neg: f64,
    gamma_unann: f64,
    alpha_pos: f64,
    alpha_neg: f64,
    alpha_unann: f64,
    clip: f64,
    likelihood_topk: i64,
    prior_threshold: f64,
    backend: &str,
    need_grad: bool,
) -> PyResult<Output> {
    let opts = PartialOptions {
        mode: mode.parse()?,
        gamma_pos,
        gamma_neg,
        gamma_unann,
        alpha_pos,
        alpha_neg,
        alpha_unann,
        clip,
        likelihood_topk,
        prior_threshold,
        backend: backend.parse()?,
    };
    let (x, y, p) = (logits.0, targets.0, priors.map(|p| p.0));
    let out = py.allow_threads(move || {
        guarded(|| loss::partial_asymmetric_loss(&x, &y, p.as_ref(), &opts, need_grad))
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

/// `PartialOptions::default()` by Python name (the mode excepted).
fn partial_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let o = PartialOptions::default();
    let d = PyDict::new(py);
    d.set_item("gamma_pos", o.gamma_pos)?;
    d.set_item("gamma_neg", o.gamma_neg)?;
    d.set_item("gamma_unann", o.gamma_unann)?;
    d.set_item("alpha_pos", o.alpha_pos)?;
    d.set_item("alpha_neg", o.alpha_neg)?;
    d.set_item("alpha_unann", o.alpha_unann)?;
    d.set_item("clip", o.clip)?;
    d.set_item("likelihood_topk", o.likelihood_topk)?;
    d.set_item("prior_threshold", o.prior_threshold)?;
    Ok(d)
}

/// `AslOptions::default()` by Python name: the defaults of `q2l.AsymmetricLoss`.
fn asl_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let o = AslOptions::default();
    let d = PyDict::new(py);
    d.set_item("gamma_neg", o.gamma_neg)?;
    d.set_item("gamma_pos", o.gamma_pos)?;
    d.set_item("clip", o.clip)?;
    d.set_item("eps", o.eps)?;
    d.set_item(
        "disable_torch_grad_focal_loss",
        o.disable_torch_grad_focal_loss,
    )?;
    d.set_item("reduction", o.reduction.name())?;
    d.set_item("scale", o.scale)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ASL_DEFAULTS", asl_defaults(m.py())?)?;
    m.add("REDUCTIONS", crate::loss::Reduction::NAMES)?;
    m.add("PARTIAL_DEFAULTS", partial_defaults(m.py())?)?;
    m.add("PARTIAL_MODES", crate::loss::PARTIAL_MODES)?;
    m.add_function(wrap_pyfunction!(partial_asymmetric_loss, m)?)?;
    m.add_function(wrap_pyfunction!(class_priors, m)?)?;
    m.add_function(wrap_pyfunction!(asymmetric_loss, m)?)?;
    m.add_function(wrap_pyfunction!(asymmetric_loss_single_label, m)?)?;
    Ok(())
}
