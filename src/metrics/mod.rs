//! Multi-label metrics: average precision under each named definition, threshold and
//! top-k metrics, and per-class threshold search. Inputs are score and target matrices
//! [N, C] (targets 1, 0, or -1 for "ignore"), views of host tensors or numpy arrays; work
//! runs on CPU threads.

mod average_precision;
mod columns;
mod sort;
mod threshold;

pub use average_precision::{average_precision, ranked_ap, ApDefinition, ApOptions, EmptyPolicy};
pub use threshold::{best_f1_thresholds, counts, Counts, Decision, Summary};

use tch::Tensor;

/// Checks one batch of a streaming evaluation, on its device: finite scores and targets
/// in {1, 0, -1}; the error names the argument and the first bad index.
pub fn check_batch(scores: &Tensor, targets: &Tensor) -> crate::Result<()> {
    crate::tensor::check_finite(scores, "scores")?;
    crate::tensor::check_ternary(targets)
}
