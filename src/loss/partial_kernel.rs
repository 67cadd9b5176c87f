//! CSL's partial-label loss on the asymmetric loss's fused CPU kernel.
//!
//! Each element's loss is an asymmetric-loss element (positives and negatives focused by
//! `gamma_pos` / `gamma_neg`, unannotated labels scored as negatives focused by `gamma_unann`)
//! times a weight: the mode's ([`weights`]) times the kind's alpha. So one kernel pass
//! over the annotated labels and, where unannotated labels count and are focused
//! differently, a second pass over them alone (with `gamma_neg = gamma_unann`) give the loss
//! and its gradient; each element is non-zero in one pass only, so the sum is exact.

use tch::{Kind, Tensor};

use crate::error::Result;

use super::asymmetric::kernel_with_element_weights;
use super::common::Inputs;
use super::options::{AslOptions, Backend, Reduction};
use super::options::{PartialMode, PartialOptions};
use super::partial_weights::{probability_of_absence, weights, TopK, EPS};
use super::{compute_kind, LossOutput};

/// The loss and, with `need_grad`, its gradient in the logits' dtype; CPU tensors only.
pub(super) fn run(inputs: Inputs, o: &PartialOptions, need_grad: bool) -> Result<LossOutput> {
    let (logits, targets, _) = inputs.parts();
    let kind = compute_kind(logits.f_kind()?);
    let w = tch::no_grad(|| element_weights(inputs, o, kind))?;
    let annotated = AslOptions {
        gamma_pos: o.gamma_pos,
        gamma_neg: o.gamma_neg,
        clip: o.clip,
        eps: EPS,
        // The official CSL loss holds the focal factor constant.
        disable_torch_grad_focal_loss: true,
        reduction: Reduction::Sum,
        // Checked already, and more strictly ({1, 0, -1} only).
        validate: false,
        backend: Backend::Kernel,
        // Scale 1 and the options CSL does not have.
        ..AslOptions::default()
    };
    let pass = |t: &Tensor, opts: &AslOptions| {
        let inputs = Inputs {
            logits,
            targets: t,
            extra: w.as_ref(),
        };
        kernel_with_element_weights(inputs, opts, need_grad)
    };
    let unannotated_count = matches!(o.mode, PartialMode::Negative | PartialMode::Selective);
    if !unannotated_count {
        // The kernel leaves targets of -1 out.
        return pass(targets, &annotated);
    }
    if o.gamma_unann == o.gamma_neg {
        // Checked ternary, so int8 holds every target (bool has no clamp).
        return pass(&targets.f_to_kind(Kind::Int8)?.f_clamp_min(0)?, &annotated);
    }
    // Unannotated labels become negatives (0), every other label is left out (-1); int8
    // targets, a quarter of the traffic of float ones. Made before the first pass so that
    // the two passes run back to back (libtorch's OpenMP threads spin for a while after an
    // op and slow a kernel that follows at once).
    let only_unann = targets
        .f_eq(-1.0)?
        .f_to_kind(Kind::Int8)?
        .f_sub_scalar_(1)?;
    let first = pass(targets, &annotated)?;
    let second = pass(
        &only_unann,
        &AslOptions {
            gamma_neg: o.gamma_unann,
            ..annotated
        },
    )?;
    let grad = match (first.grad, second.grad) {
        (Some(mut a), Some(b)) => {
            let _ = a.f_add_(&b)?;
            Some(a)
        }
        _ => None,
    };
    Ok(LossOutput {
        loss: first.loss.f_add(&second.loss)?,
        grad,
    })
}

/// The mode's weights times each element's alpha, or `None` where every weight is 1.
fn element_weights(inputs: Inputs, o: &PartialOptions, kind: Kind) -> Result<Option<Tensor>> {
    let (logits, targets, priors) = inputs.parts();
    let mode_weights = match o.mode {
        // All ones, and the kernel leaves out the unannotated labels `ignore` weights 0.
        PartialMode::Negative | PartialMode::Ignore => None,
        _ => {
            let p = || logits.f_to_kind(kind)?.f_sigmoid();
            let xs_neg = || Ok(probability_of_absence(&p()?, o.clip)?.1);
            let priors = priors.map(|p| p.f_to_kind(kind)).transpose()?;
            Some(weights(
                targets,
                kind,
                xs_neg,
                priors.as_ref(),
                o,
                TopK::Select,
            )?)
        }
    };
    if o.alpha_pos == 1.0 && o.alpha_neg == 1.0 && o.alpha_unann == 1.0 {
        return Ok(mode_weights);
    }
    let t = targets.f_to_kind(kind)?;
    let alpha = t
        .f_eq(1.0)?
        .f_to_kind(kind)?
        .f_mul_scalar(o.alpha_pos)?
        .f_add(&t.f_eq(0.0)?.f_to_kind(kind)?.f_mul_scalar(o.alpha_neg)?)?
        .f_add(&t.f_eq(-1.0)?.f_to_kind(kind)?.f_mul_scalar(o.alpha_unann)?)?;
    Ok(Some(match mode_weights {
        Some(w) => w.f_mul(&alpha)?,
        None => alpha,
    }))
}
