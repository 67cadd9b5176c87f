//! The partial-label losses of CSL (Ben-Baruch et al. 2022, `Alibaba-MIIL/PartialLabelingCSL`,
//! `src/loss_functions/partial_asymmetric_loss.py`): targets of -1 are labels nobody
//! annotated, and a mode says what they count as.
//!
//! The loss is the official one, `-sum(w * focal * BCE)` with separate focusing and
//! weighting for positives, negatives and unannotated labels (the latter scored as
//! negatives); only the per-element weight `w` depends on the mode. It is built from libtorch
//! ops (autograd gives the gradient), not the fused kernel: the selective mode's top-k runs
//! over the whole batch, which a per-element kernel cannot see.

use std::str::FromStr;

use tch::{Kind, Tensor};

use crate::bail;
use crate::error::{Error, Result};
use crate::tensor::{check_ternary, float_kind, same_device, shape_str};

/// What unannotated labels (targets of -1) count as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialMode {
    /// Negatives (CSL's `negative`).
    Negative,
    /// Left out (`ignore`).
    Ignore,
    /// Left out, and each image's loss weighted by `1 + 1 / (1 + annotated labels)`
    /// (`ignore_normalize_classes`, after Durand et al. 2019).
    IgnoreNormalizeClasses,
    /// Negatives, except the `likelihood_topk * batch` unannotated labels the model finds
    /// most likely present, and (with priors) the classes whose prior exceeds the threshold
    /// (`selective`).
    Selective,
}

/// The names of the modes, as `--partial-labels` takes them.
pub const PARTIAL_MODES: [&str; 4] = [
    "negative",
    "ignore",
    "ignore_normalize_classes",
    "selective",
];

impl FromStr for PartialMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "negative" => PartialMode::Negative,
            "ignore" => PartialMode::Ignore,
            "ignore_normalize_classes" => PartialMode::IgnoreNormalizeClasses,
            "selective" => PartialMode::Selective,
            _ => bail!(
                "unknown partial-label mode {s:?}; expected one of {}",
                PARTIAL_MODES.join(", ")
            ),
        })
    }
}

/// The options of the official `PartialSelectiveLoss` (its `train.py` defaults in
/// [`Default`]).
#[derive(Clone, Debug)]
pub struct PartialOptions {
    pub mode: PartialMode,
    pub gamma_pos: f64,
    pub gamma_neg: f64,
    pub gamma_unann: f64,
    pub alpha_pos: f64,
    pub alpha_neg: f64,
    pub alpha_unann: f64,
    pub clip: f64,
    /// Unannotated labels per image left out by the selective mode.
    pub likelihood_topk: i64,
    /// Classes with a prior above this leave their unannotated labels out (selective mode
    /// with priors; 0 turns it off, as in the official code).
    pub prior_threshold: f64,
}

impl Default for PartialOptions {
    fn default() -> Self {
        PartialOptions {
            mode: PartialMode::Negative,
            gamma_pos: 0.0,
            gamma_neg: 1.0,
            gamma_unann: 2.0,
            alpha_pos: 1.0,
            alpha_neg: 1.0,
            alpha_unann: 1.0,
            clip: 0.0,
            likelihood_topk: 5,
            prior_threshold: 0.05,
        }
    }
}

fn check(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
) -> Result<()> {
    float_kind(logits, "logits")?;
    let (ls, ts) = (logits.size(), targets.size());
    if ls.len() != 2 || ls != ts {
        bail!(
            "logits and targets must both be [batch, classes], got {} and {}",
            shape_str(&ls),
            shape_str(&ts)
        );
    }
    same_device(targets, "targets", logits, "logits")?;
    check_ternary(targets)?;
    if logits.f_isnan()?.f_any()?.f_int64_value(&[])? != 0 {
        bail!("logits contain NaN");
    }
    if let Some(p) = priors {
        if p.size() != [ls[1]] {
            bail!(
                "priors must have one value per class, shape [{}], got {}",
                ls[1],
                shape_str(&p.size())
            );
        }
        same_device(p, "priors", logits, "logits")?;
    }
    if !(0.0..1.0).contains(&o.clip) || o.likelihood_topk < 0 {
        bail!("need 0 <= clip < 1 and likelihood_topk >= 0");
    }
    Ok(())
}

/// The per-element weights of `mode`, computed without gradient; `xs_neg` is the clipped
/// probability of absence.
fn weights(
    targets: &Tensor,
    xs_neg: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
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

/// The CSL loss of `logits` [B, K] against `targets` in {1, 0, -1}, summed (a 0-dim tensor
/// with autograd); `priors` [K] for the selective mode's class priors.
pub fn partial_asymmetric_loss(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
) -> Result<Tensor> {
    check(logits, targets, priors, o)?;
    let kind = if logits.f_kind()? == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let x = logits.f_to_kind(kind)?;
    let t = targets.f_to_kind(kind)?;
    let pos = t.f_eq(1.0)?.f_to_kind(kind)?;
    let neg = t.f_eq(0.0)?.f_to_kind(kind)?;
    let unann = t.f_eq(-1.0)?.f_to_kind(kind)?;
    let xs_pos = x.f_sigmoid()?;
    let mut xs_neg = xs_pos.f_neg()?.f_add_scalar(1.0)?;
    if o.clip > 0.0 {
        xs_neg = xs_neg.f_add_scalar(o.clip)?.f_clamp_max(1.0)?;
    }
    let w = weights(
        targets,
        &xs_neg,
        priors.map(|p| p.f_to_kind(kind)).transpose()?.as_ref(),
        o,
    )?;
    let log_pos = xs_pos.f_clamp_min(1e-8)?.f_log()?;
    let log_neg = xs_neg.f_clamp_min(1e-8)?.f_log()?;
    let bce = pos
        .f_mul_scalar(o.alpha_pos)?
        .f_mul(&log_pos)?
        .f_add(&neg.f_mul_scalar(o.alpha_neg)?.f_mul(&log_neg)?)?
        .f_add(&unann.f_mul_scalar(o.alpha_unann)?.f_mul(&log_neg)?)?;
    let focal = {
        let _guard = tch::no_grad_guard();
        let base = xs_pos
            .f_mul(&pos)?
            .f_add(&xs_neg.f_mul(&neg.f_add(&unann)?)?)?
            .f_neg()?
            .f_add_scalar(1.0)?;
        let exponent = pos
            .f_mul_scalar(o.gamma_pos)?
            .f_add(&neg.f_mul_scalar(o.gamma_neg)?)?
            .f_add(&unann.f_mul_scalar(o.gamma_unann)?)?;
        base.f_pow(&exponent)?
    };
    Ok(bce.f_mul(&focal)?.f_mul(&w)?.f_sum(kind)?.f_neg()?)
}

/// Class priors as CSL estimates them: the mean predicted probability of each class over
/// `probabilities` [N, K].
pub fn class_priors(probabilities: &Tensor) -> Result<Tensor> {
    float_kind(probabilities, "probabilities")?;
    if probabilities.dim() != 2 || probabilities.size()[0] == 0 {
        bail!(
            "probabilities must be a non-empty [samples, classes], got {}",
            shape_str(&probabilities.size())
        );
    }
    Ok(probabilities.f_mean_dim(0, false, None::<Kind>)?)
}
