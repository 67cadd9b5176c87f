//! CSL's partial-label loss as libtorch ops with the analytic gradient: every mode, on any
//! device. The fused asymmetric-loss kernel serves the modes that are an asymmetric loss on
//! the CPU (`partial.rs`).

use tch::{Kind, Tensor};

use crate::error::Result;

use super::partial::{PartialMode, PartialOptions, EPS};
use super::LossOutput;

/// The per-element weights of `mode`, computed without gradient; `xs_neg` is the clipped
/// probability of absence.
fn weights(
    targets: &Tensor,
    xs_neg: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
) -> Result<Tensor> {
    let kind = xs_neg.f_kind()?;
    let unann = targets.f_eq(-1.0)?;
    let annotated = unann.f_logical_not()?.f_to_kind(kind)?;
    Ok(match o.mode {
        PartialMode::Negative => xs_neg.f_ones_like()?,
        PartialMode::Ignore => annotated,
        PartialMode::IgnoreNormalizeClasses => {
            let n = annotated
                .f_sum_dim_intlist(1, true, kind)?
                .f_add_scalar(1.0)?;
            annotated.f_mul(&n.f_reciprocal()?.f_add_scalar(1.0)?)?
        }
        PartialMode::Selective => {
            let mut w = xs_neg.f_ones_like()?;
            if let (Some(p), true) = (priors, o.prior_threshold != 0.0) {
                // Classes above the threshold lose their unannotated labels; annotated
                // labels keep weight 1 (the official `+= annotated`, then `bool()`).
                let frequent = p.f_gt(o.prior_threshold)?.f_unsqueeze(0)?;
                w = w.f_masked_fill(&frequent.f_logical_and(&unann)?, 0.0)?;
            }
            let batch = targets.size()[0];
            let flat_unann = unann.f_flatten(0, -1)?.f_nonzero()?.f_squeeze_dim(1)?;
            let k = (o.likelihood_topk * batch).min(flat_unann.size()[0]);
            if k > 0 {
                let scores = xs_neg.f_flatten(0, -1)?.f_index_select(0, &flat_unann)?;
                // The unannotated labels least likely absent are left out.
                let (_, order) = scores.f_sort_stable(true, 0, false)?;
                let drop = flat_unann.f_index_select(0, &order.f_narrow(0, 0, k)?)?;
                let flat = w.f_flatten(0, -1)?.f_index_fill(0, &drop, 0.0)?;
                w = flat.f_view_as(xs_neg)?;
            }
            w
        }
    })
}

/// The loss and, with `need_grad`, its gradient (in the logits' dtype). The focal factor
/// and the weights are constants of the gradient, as in the official code.
pub(super) fn run(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    tch::no_grad(|| run_no_grad(logits, targets, priors, o, need_grad))
}

fn run_no_grad(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    let kind = if logits.f_kind()? == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let x = logits.f_detach()?.f_to_kind(kind)?;
    let t = targets.f_to_kind(kind)?;
    let pos = t.f_eq(1.0)?.f_to_kind(kind)?;
    let neg = t.f_eq(0.0)?.f_to_kind(kind)?;
    let unann = t.f_eq(-1.0)?.f_to_kind(kind)?;
    let xs_pos = x.f_sigmoid()?;
    let xs_neg_raw = xs_pos.f_neg()?.f_add_scalar(1.0)?;
    let xs_neg = if o.clip > 0.0 {
        xs_neg_raw.f_add_scalar(o.clip)?.f_clamp_max(1.0)?
    } else {
        xs_neg_raw.shallow_clone()
    };
    let w = weights(
        targets,
        &xs_neg,
        priors.map(|p| p.f_to_kind(kind)).transpose()?.as_ref(),
        o,
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
