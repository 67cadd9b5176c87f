//! Losses: the asymmetric loss (multi-label), its single-label softmax variant, and CSL's
//! partial-label loss.
//!
//! Each loss has a fused CPU kernel (one multithreaded pass computing the loss and the
//! analytic gradient; the partial-label loss runs the asymmetric one's with per-element
//! weights) and a tensor path built from libtorch ops for other devices.
//! Both return the gradient of the returned loss (reduction and scale included), so a
//! backward with `grad_output == 1` can hand it on without touching it.

mod asymmetric;
mod asymmetric_block;
mod asymmetric_kernel;
mod asymmetric_lanes;
mod asymmetric_tensor;
mod asymmetric_vector;
#[cfg(test)]
mod asymmetric_vector_tests;
mod common;
mod options;
mod partial;
mod partial_kernel;
mod partial_tensor;
mod partial_weights;
mod single_label;
mod single_label_kernel;
mod single_label_tensor;

pub use asymmetric::asymmetric_loss;
pub use options::{
    AslOptions, Backend, PartialMode, PartialOptions, Reduction, SingleLabelOptions,
};
pub use partial::{class_priors, partial_asymmetric_loss};
pub use single_label::asymmetric_loss_single_label;

use tch::{Kind, Tensor};

use crate::error::Result;

/// The kind the losses compute in for logits of `kind`: float64 for float64, float32 for
/// float32, float16 and bfloat16.
fn compute_kind(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// `scale / count` as a 0-dim tensor of `kind`, or 0 when `count` (a 0-dim tensor,
/// computed on the device without a sync) is 0.
fn mean_factor(count: &Tensor, scale: f64, kind: Kind) -> Result<Tensor> {
    let safe = count.f_clamp_min(1.0)?;
    Ok(count
        .f_gt(0.0)?
        .f_to_kind(kind)?
        .f_mul_scalar(scale)?
        .f_div(&safe)?)
}

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
