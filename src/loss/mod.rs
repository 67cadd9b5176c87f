//! Losses: the asymmetric loss (multi-label) and its single-label softmax variant.
//!
//! Each loss has a fused CPU kernel (one multithreaded pass computing the loss and the
//! analytic gradient) and a tensor path built from libtorch ops for other devices.
//! Both return the gradient of the returned loss (reduction and scale included), so a
//! backward with `grad_output == 1` can hand it on without touching it.

mod asymmetric;
mod asymmetric_kernel;
mod asymmetric_tensor;
mod options;
mod single_label;
mod single_label_kernel;
mod single_label_tensor;

pub use asymmetric::asymmetric_loss;
pub use options::{AslOptions, Backend, Reduction, SingleLabelOptions};
pub use single_label::asymmetric_loss_single_label;

use tch::Tensor;

/// What a loss call returns.
#[derive(Debug)]
pub struct LossOutput {
    /// The reduced loss (0-dim), or the per-element loss for `Reduction::None`.
    /// float32 for float16/bfloat16/float32 logits, float64 for float64 logits.
    pub loss: Tensor,
    /// The gradient of `loss` (summed, for `Reduction::None`) with respect to the logits,
    /// in the logits' dtype, when asked for. Backward is `grad * grad_output`.
    pub grad: Option<Tensor>,
}
