//! What the asymmetric loss's two backends share: the reduction's factor and the errors
//! that name the first bad logit or target.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::tensor::{first_true, unravel};

use super::options::Reduction;

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
