//! CSL's partial-label loss as libtorch ops with the analytic gradient: every mode, on any
//! device (the fused path, `partial_kernel.rs`, serves CPU tensors).

use crate::error::Result;

use super::common::Inputs;
use super::options::PartialOptions;
use super::partial_weights::{probability_of_absence, weights, TopK, EPS};
use super::{compute_kind, LossOutput};

/// The loss and, with `need_grad`, its gradient (in the logits' dtype). The focal factor
/// and the weights are constants of the gradient, as in the official code.
pub(super) fn run(inputs: Inputs, o: &PartialOptions, need_grad: bool) -> Result<LossOutput> {
    tch::no_grad(|| run_no_grad(inputs, o, need_grad))
}

fn run_no_grad(inputs: Inputs, o: &PartialOptions, need_grad: bool) -> Result<LossOutput> {
    let (logits, targets, priors) = inputs.parts();
    let kind = compute_kind(logits.f_kind()?);
    let x = logits.f_detach()?.f_to_kind(kind)?;
    let t = targets.f_to_kind(kind)?;
    let pos = t.f_eq(1.0)?.f_to_kind(kind)?;
    let neg = t.f_eq(0.0)?.f_to_kind(kind)?;
    let unann = t.f_eq(-1.0)?.f_to_kind(kind)?;
    let xs_pos = x.f_sigmoid()?;
    let (xs_neg_raw, xs_neg) = probability_of_absence(&xs_pos, o.clip)?;
    let priors = priors.map(|p| p.f_to_kind(kind)).transpose()?;
    let w = weights(
        targets,
        kind,
        || Ok(xs_neg.shallow_clone()),
        priors.as_ref(),
        o,
        TopK::Sort,
    )?;
    let log_pos = xs_pos.f_clamp_min(EPS)?.f_log()?;
    let log_neg = xs_neg.f_clamp_min(EPS)?.f_log()?;
    let alpha_neg = neg
        .f_mul_scalar(o.alpha_neg)?
        .f_add(&unann.f_mul_scalar(o.alpha_unann)?)?;
    let alpha_pos = pos.f_mul_scalar(o.alpha_pos)?;
    let bce = alpha_pos
        .f_mul(&log_pos)?
        .f_add(&alpha_neg.f_mul(&log_neg)?)?;
    let base = xs_pos
        .f_mul(&pos)?
        .f_add(&xs_neg.f_mul(&neg.f_add(&unann)?)?)?
        .f_neg()?
        .f_add_scalar(1.0)?;
    let exponent = pos
        .f_mul_scalar(o.gamma_pos)?
        .f_add(&neg.f_mul_scalar(o.gamma_neg)?)?
        .f_add(&unann.f_mul_scalar(o.gamma_unann)?)?;
    let scale = base.f_pow(&exponent)?.f_mul(&w)?;
    let loss = bce.f_mul(&scale)?.f_sum(kind)?.f_neg()?;
    let grad = if need_grad {
        // d/dx log(max(p, eps)) = (1 - p) where p >= eps; the probability of absence
        // q = min(1 - p + clip, 1) has dq/dx = -p (1 - p) below the cap, and
        // d/dx log(max(q, eps)) = dq/dx / q where q >= eps (clamps pass the boundary, as
        // torch's do).
        let dp = xs_pos.f_mul(&xs_neg_raw)?;
        let d_log_pos = xs_neg_raw.f_mul(&xs_pos.f_ge(EPS)?)?;
        let mut dq = dp.f_neg()?;
        if o.clip > 0.0 {
            dq = dq.f_mul(&xs_neg_raw.f_add_scalar(o.clip)?.f_le(1.0)?)?;
        }
        let d_log_neg = dq
            .f_div(&xs_neg.f_clamp_min(EPS)?)?
            .f_mul(&xs_neg.f_ge(EPS)?)?;
        let d_bce = alpha_pos
            .f_mul(&d_log_pos)?
            .f_add(&alpha_neg.f_mul(&d_log_neg)?)?;
        Some(d_bce.f_mul(&scale)?.f_neg()?.f_to_kind(logits.f_kind()?)?)
    } else {
        None
    };
    Ok(LossOutput { loss, grad })
}
