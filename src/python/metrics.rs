//! Shims for `crate::metrics`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::array::array_arg;
use super::errors::guarded;
use super::options::Opts;
use super::tensor::PyTensor;
use crate::array::Inputs;
use crate::metrics::{self, ApOptions, Decision};

/// Runs `f` without the GIL on the checked views of two array arguments.
fn with_inputs<T: Send>(
    scores: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    f: impl FnOnce(&Inputs<'_>) -> crate::Result<T> + Send,
) -> PyResult<T> {
    let (s, t) = (array_arg(scores, "scores")?, array_arg(targets, "targets")?);
    let inputs = Inputs::new(s.matrix("scores")?, t.matrix("targets")?)?;
    scores.py().allow_threads(move || guarded(|| f(&inputs)))
}

/// The per-class APs, a class without positives filled as `options.empty` says, and their
/// mean under the same policy.
#[pyfunction]
#[pyo3(signature = (*, scores, targets, options))]
fn average_precision(
    scores: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    options: Opts<ApOptions>,
) -> PyResult<(Vec<f64>, f64)> {
    let o = options.0;
    let aps = with_inputs(scores, targets, |i| {
        metrics::average_precision(i, o.definition)
    })?;
    Ok((o.empty.fill(&aps), o.empty.mean(&aps)?))
}

/// Threshold or top-k summary: a dict of CP, CR, CF1, OP, OR, OF1 and per-class lists.
#[pyfunction]
#[pyo3(signature = (*, scores, targets, thresholds=None, k=None))]
fn threshold_summary<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    targets: &Bound<'py, PyAny>,
    thresholds: Option<Vec<f64>>,
    k: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let decision = match (thresholds, k) {
        (Some(t), None) => Decision::Threshold(t),
        (None, Some(k)) => Decision::TopK(k),
        _ => return Err(crate::Error::value("give exactly one of thresholds and k").into()),
    };
    let sum = with_inputs(scores, targets, |i| {
        Ok(metrics::counts(i, &decision)?.summarize())
    })?;
    let d = PyDict::new(py);
    d.set_item("CP", sum.cp)?;
    d.set_item("CR", sum.cr)?;
    d.set_item("CF1", sum.cf1)?;
    d.set_item("OP", sum.op)?;
    d.set_item("OR", sum.or)?;
    d.set_item("OF1", sum.of1)?;
    d.set_item("precision", sum.precision)?;
    d.set_item("recall", sum.recall)?;
    d.set_item("f1", sum.f1)?;
    d.set_item("tp", sum.counts.tp)?;
    d.set_item("fp", sum.counts.fp)?;
    d.set_item("fn", sum.counts.fn_)?;
    d.set_item("support", sum.counts.support)?;
    Ok(d)
}

/// Per-class thresholds maximising F1: (thresholds, f1s).
#[pyfunction]
#[pyo3(signature = (*, scores, targets))]
fn best_f1_thresholds(
    scores: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
) -> PyResult<(Vec<f64>, Vec<f64>)> {
    let pairs = with_inputs(scores, targets, metrics::best_f1_thresholds)?;
    Ok(pairs.into_iter().unzip())
}

/// Refuses a batch of `MultilabelMetrics.update` with a NaN or infinite score or a target
/// outside {1, 0, -1}, naming the argument and the first bad index.
#[pyfunction]
#[pyo3(signature = (*, scores, targets))]
fn check_metric_batch(py: Python<'_>, scores: PyTensor, targets: PyTensor) -> PyResult<()> {
    let (s, t) = (scores.0, targets.0);
    py.allow_threads(move || guarded(|| metrics::check_batch(&s, &t)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_metric_batch, m)?)?;
    m.add_function(wrap_pyfunction!(average_precision, m)?)?;
    m.add_function(wrap_pyfunction!(threshold_summary, m)?)?;
    m.add_function(wrap_pyfunction!(best_f1_thresholds, m)?)?;
    Ok(())
}
