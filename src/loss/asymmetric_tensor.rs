//! The asymmetric loss as libtorch ops with the analytic gradient, for non-CPU devices.
//!
//! It computes the general (soft-target) formula in float32 or float64: fewer kernels
//! than autograd through the official code, and no autograd graph at all.

use tch::{Kind, Tensor};

use crate::error::Result;

use super::common::{
    bad_target_mask, kinds, nan_error, reduction_factor, rows, target_error, tensor_loss, Inputs,
};
use super::options::{AslOptions, Reduction};
use super::{mean_factor, LossOutput};

/// The loss and, with `need_grad`, its gradient.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(inputs: Inputs, opts: &AslOptions, need_grad: bool) -> Result<LossOutput> {
    tch::no_grad(|| run_no_grad(inputs, opts, need_grad))
}

/// The reduction factor as a 0-dim tensor; `Mean` counts annotated targets on the device.
fn factor(opts: &AslOptions, valid: &Tensor, compute: Kind, rows: i64) -> Result<Tensor> {
    if opts.reduction == Reduction::Mean {
        return mean_factor(&valid.f_sum(compute)?, opts.scale, compute);
    }
    let f = reduction_factor(opts.reduction, opts.scale, rows, 0);
    Ok(Tensor::f_scalar_tensor(f, (compute, valid.device()))?)
}

/// NaN logits and targets outside [0, 1] and -1, with one device-to-host copy for both.
fn check_values(x: &Tensor, y: &Tensor) -> Result<()> {
    let flags = Tensor::f_stack(
        &[
            x.f_isnan()?.f_sum(Kind::Int64)?,
            bad_target_mask(y)?.f_sum(Kind::Int64)?,
        ],
        0,
    )?
    .f_to_device(tch::Device::Cpu)?;
    let nan = flags.f_int64_value(&[0])?;
    let bad = flags.f_int64_value(&[1])?;
    if nan > 0 {
        return Err(nan_error(x, nan as u64)?);
    }
    if bad > 0 {
        return Err(target_error(y, bad as u64)?);
    }
    Ok(())
}

/// The negative term's log `ln` (clamped at `le`), its derivative `dln` along the logit,
/// the focal base `q` (the shifted probability) and its derivative `dq`.
struct Negative {
    ln: Tensor,
    dln: Tensor,
    q: Tensor,
    dq: Tensor,
}

/// The negative terms with probability margin `clip` (0: none), from `p = sigmoid(x)`,
/// `sn = sigmoid(-x)`, `psn = p * sn` and `lsn = log sigmoid(-x)`.
fn negative_terms(
    clip: f64,
    le: f64,
    p: &Tensor,
    sn: &Tensor,
    psn: &Tensor,
    lsn: &Tensor,
) -> Result<Negative> {
    if clip > 0.0 {
        let pm_raw = sn.f_add_scalar(clip)?;
        let pm = pm_raw.f_clamp_max(1.0)?;
        let lpm = pm.f_log()?;
        let pass = pm_raw.f_lt(1.0)?.f_logical_and(&lpm.f_ge(le)?)?;
        Ok(Negative {
            ln: lpm.f_clamp_min(le)?,
            dln: psn.f_div(&pm)?.f_neg()?.f_mul(&pass)?,
            q: p.f_sub_scalar(clip)?.f_clamp_min(0.0)?,
            dq: psn.f_mul(&p.f_gt(clip)?)?,
        })
    } else {
        Ok(Negative {
            ln: lsn.f_clamp_min(le)?,
            dln: p.f_neg()?.f_mul(&lsn.f_ge(le)?)?,
            q: p.shallow_clone(),
            dq: psn.shallow_clone(),
        })
    }
}

fn run_no_grad(inputs: Inputs, opts: &AslOptions, need_grad: bool) -> Result<LossOutput> {
    let (logits, targets, weight) = inputs.parts();
    let (_, compute) = kinds(logits)?;
    let rows = rows(logits);
    let x = logits.f_detach()?.f_to_kind(compute)?;
    let y = targets.f_detach()?.f_to_kind(compute)?;
    if opts.validate {
        check_values(&x, &y)?;
    }
    let valid = y.f_ne(-1.0)?.f_to_kind(compute)?;
    let factor = factor(opts, &valid, compute, rows)?;
    let y = y.f_mul(&valid)?;
    let ny = y.f_neg()?.f_add_scalar(1.0)?;
    let lsp = x.f_log_sigmoid()?;
    let lsn = x.f_neg()?.f_log_sigmoid()?;
    let p = lsp.f_exp()?;
    let sn = lsn.f_exp()?;
    let psn = p.f_mul(&sn)?;
    let le = if opts.eps > 0.0 {
        opts.eps.ln()
    } else {
        f64::NEG_INFINITY
    };
    let lp = lsp.f_clamp_min(le)?;
    let dlp = sn.f_mul(&lsp.f_ge(le)?)?;
    let Negative { ln, dln, q, dq } = negative_terms(opts.clip, le, &p, &sn, &psn, &lsn)?;
    let b = y.f_mul(&sn)?.f_add(&ny.f_mul(&q)?)?;
    let gamma = y
        .f_mul_scalar(opts.gamma_pos)?
        .f_add(&ny.f_mul_scalar(opts.gamma_neg)?)?;
    let w = b.f_pow(&gamma)?;
    let big_l = y.f_mul(&lp)?.f_add(&ny.f_mul(&ln)?)?;
    let mut loss = w.f_mul(&big_l)?.f_neg()?.f_mul(&valid)?;
    if let Some(cw) = weight {
        loss = loss.f_mul(cw)?;
    }
    let grad = if need_grad {
        let d_big_l = y.f_mul(&dlp)?.f_add(&ny.f_mul(&dln)?)?;
        let mut inner = w.f_mul(&d_big_l)?;
        if !opts.disable_torch_grad_focal_loss {
            let db = ny.f_mul(&dq)?.f_sub(&y.f_mul(&psn)?)?;
            let positive = b.f_gt(0.0)?;
            let safe_b = b.f_where_scalarother(&positive, 1.0)?;
            let dw = gamma
                .f_mul(&w)?
                .f_mul(&db)?
                .f_div(&safe_b)?
                .f_mul(&positive)?;
            inner = inner.f_add(&dw.f_mul(&big_l)?)?;
        }
        let mut g = inner.f_mul(&valid)?.f_mul(&factor.f_neg()?)?;
        if let Some(cw) = weight {
            g = g.f_mul(cw)?;
        }
        Some(g.f_to_kind(logits.f_kind()?)?)
    } else {
        None
    };
    let loss = tensor_loss(&loss, opts.reduction, opts.scale, &factor, compute)?;
    Ok(LossOutput { loss, grad })
}
