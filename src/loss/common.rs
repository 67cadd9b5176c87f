//! What the losses' fronts and backends share: their inputs, their kinds and rows, the
//! reduction's factor, the scaled or reduced loss, and the errors that name the first bad
//! logit or target.

use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use crate::buffer_pool::BufferPool;
use crate::error::{Error, Result};
use crate::tensor::{first_true, unravel};

use super::compute_kind;
use super::options::Reduction;

/// An uninitialised CPU tensor for a kernel's gradient, over memory used again.
///
/// The gradient is as large as the logits (4.9 MB at (128, 9605) in float32) and usually
/// becomes `.grad`, freed at the next `zero_grad`. Fresh memory each step cost the kernel's
/// page zeroing and an unmap (0.4 ms per freed gradient at (128, 9605) on a 2-core EPYC,
/// in a loop where glibc mapped each anew); the pool keeps the last two buffers instead.
/// float32 and uint8 only; other kinds get fresh memory.
pub(super) fn gradient_tensor(shape: &[i64], kind: Kind) -> Result<Tensor> {
    static POOL: OnceLock<BufferPool> = OnceLock::new();
    POOL.get_or_init(|| BufferPool::new(2)).tensor(shape, kind)
}

/// The factor by which the reduction and the loss scale multiply the loss sum.
pub(super) fn reduction_factor(reduction: Reduction, scale: f64, rows: i64, annotated: u64) -> f64 {
    match reduction {
        Reduction::None | Reduction::Sum => scale,
        Reduction::BatchMean if rows > 0 => scale / rows as f64,
        Reduction::Mean if annotated > 0 => scale / annotated as f64,
        Reduction::BatchMean | Reduction::Mean => 0.0,
    }
}

/// The error for NaN logits, naming the first one.
pub(super) fn nan_error(x: &Tensor, count: u64) -> Result<Error> {
    let first = first_true(&x.f_isnan()?)?;
    let idx = unravel(first, &x.size());
    Ok(Error::value(format!(
        "logits contain {count} NaN value(s), the first at index {idx:?}; \
         pass validate=False to let NaN propagate into the loss instead"
    )))
}

/// The mask of targets that are neither -1 nor in [0, 1].
pub(super) fn bad_target_mask(y: &Tensor) -> Result<Tensor> {
    let y = y.f_to_kind(Kind::Double)?;
    let outside = y.f_lt(0.0)?.f_logical_or(&y.f_gt(1.0)?)?;
    let ignored = y.f_eq(-1.0)?;
    Ok(outside
        .f_logical_and(&ignored.f_logical_not()?)?
        .f_logical_or(&y.f_isnan()?)?)
}

/// The error for targets outside {-1} and [0, 1], naming the first one.
pub(super) fn target_error(y: &Tensor, count: u64) -> Result<Error> {
    let flat = bad_target_mask(y)?.f_flatten(0, -1)?;
    let first = flat
        .f_to_kind(Kind::Uint8)?
        .f_argmax(0, false)?
        .f_int64_value(&[])?;
    let value = y
        .f_flatten(0, -1)?
        .f_to_kind(Kind::Double)?
        .f_double_value(&[first])?;
    let idx = unravel(first as usize, &y.size());
    Ok(Error::value(format!(
        "targets must be 1 (present), 0 (absent), -1 (not annotated) or a soft label in [0, 1]; \
         found {count} invalid value(s), the first is {value} at index {idx:?}"
    )))
}

/// The tensors of one loss call: logits `(*, C)`, targets of their shape, and the loss's
/// optional third tensor (the asymmetric loss's weights per class or per element, the
/// partial-label loss's class priors `[C]`).
#[derive(Clone, Copy)]
pub(super) struct Inputs<'a> {
    pub logits: &'a Tensor,
    pub targets: &'a Tensor,
    pub extra: Option<&'a Tensor>,
}

impl<'a> Inputs<'a> {
    /// The logits, the targets and the third tensor.
    pub fn parts(self) -> (&'a Tensor, &'a Tensor, Option<&'a Tensor>) {
        (self.logits, self.targets, self.extra)
    }
}

/// The rows of `logits` `(*, C)`: its elements over the classes (0 without classes).
pub(super) fn rows(logits: &Tensor) -> i64 {
    match logits.size().last() {
        Some(&c) if c > 0 => logits.numel() as i64 / c,
        _ => 0,
    }
}

/// The kind of `logits` and the kind the losses compute in for it.
pub(super) fn kinds(logits: &Tensor) -> Result<(Kind, Kind)> {
    let kind = logits.f_kind()?;
    Ok((kind, compute_kind(kind)))
}

/// A fused kernel's loss: the unreduced losses it wrote times `scale`, else its reduced sum
/// times `factor` as a 0-dim CPU tensor of kind `compute`.
pub(super) fn kernel_loss(
    unreduced: Option<Tensor>,
    scale: f64,
    sum: f64,
    factor: f64,
    compute: Kind,
) -> Result<Tensor> {
    Ok(match unreduced {
        Some(mut l) if scale != 1.0 => {
            let _ = l.f_mul_scalar_(scale)?;
            l
        }
        Some(l) => l,
        None => Tensor::f_scalar_tensor(sum * factor, (compute, Device::Cpu))?,
    })
}

/// A tensor path's loss: `loss` times `scale` unreduced, else its sum times `factor`.
pub(super) fn tensor_loss(
    loss: &Tensor,
    reduction: Reduction,
    scale: f64,
    factor: &Tensor,
    compute: Kind,
) -> Result<Tensor> {
    Ok(match reduction {
        Reduction::None => loss.f_mul_scalar(scale)?,
        _ => loss.f_sum(compute)?.f_mul(factor)?,
    })
}
