//! The partial-label losses of CSL (Ben-Baruch et al. 2022, `Alibaba-MIIL/PartialLabelingCSL`,
//! `src/loss_functions/partial_asymmetric_loss.py`): targets of -1 are labels nobody
//! annotated, and a mode says what they count as.
//!
//! The loss is the official one, `-sum(w * focal * BCE)` with separate focusing and
//! weighting for positives, negatives and unannotated labels (the latter scored as
//! negatives); only the per-element weight `w` depends on the mode. That weight is computed
//! first, on libtorch ops (the selective mode's top-k spans the whole batch; on the CPU it
//! is a selection in Rust); then, on the CPU, the asymmetric loss's fused kernel computes
//! the loss and its gradient with those weights (`partial_kernel.rs`), and elsewhere
//! libtorch ops do (`partial_tensor.rs`).

use tch::{Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::tensor::{
    check_probabilities, check_ternary, float_kind, has_nan, same_device, shape_str,
};

use super::common::Inputs;
use super::options::{PartialMode, PartialOptions};
use super::{partial_kernel, partial_tensor, LossOutput};
use crate::options::Schema;

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
    if has_nan(logits)? {
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
        if o.mode != PartialMode::Selective {
            bail!(
                "priors are used by mode='selective' only; this loss has mode='{}'",
                o.mode.name()
            );
        }
        check_probabilities(p, "priors")?;
    }
    o.check()
}

/// The CSL loss of `logits` [B, K] against `targets` in {1, 0, -1}, summed (0-dim);
/// `priors` [K] for the selective mode's class priors. With `need_grad`, its gradient too.
///
/// On the CPU the fused asymmetric-loss kernel computes it (`partial_kernel.rs`); elsewhere,
/// or with `Backend::Tensor`, libtorch ops do (`partial_tensor.rs`).
pub fn partial_asymmetric_loss(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    check(logits, targets, priors, o)?;
    let inputs = Inputs {
        logits,
        targets,
        extra: priors,
    };
    let mut all = vec![logits, targets];
    all.extend(priors);
    if o.backend.uses_kernel(&all)? {
        partial_kernel::run(inputs, o, need_grad)
    } else {
        partial_tensor::run(inputs, o, need_grad)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::partial_weights::{probability_of_absence, weights, TopK};
    use crate::loss::{Backend, PartialMode};
    use tch::Device;

    fn batch() -> (Tensor, Tensor) {
        tch::manual_seed(0);
        let x = Tensor::randn([13, 29], (Kind::Double, Device::Cpu)) * 3.0;
        let y = Tensor::rand([13, 29], (Kind::Double, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Double);
        let hidden = Tensor::rand([13, 29], (Kind::Double, Device::Cpu)).lt(0.5);
        (x, y.masked_fill(&hidden, -1.0))
    }

    fn loss(o: &PartialOptions, backend: Backend, x: &Tensor, y: &Tensor) -> LossOutput {
        let o = PartialOptions {
            backend,
            ..o.clone()
        };
        partial_asymmetric_loss(x, y, None, &o, true).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn kernel_and_tensor_paths_agree_in_every_mode() {
        let (x, y) = batch();
        let modes = [
            PartialMode::Negative,
            PartialMode::Ignore,
            PartialMode::IgnoreNormalizeClasses,
            PartialMode::Selective,
        ];
        for mode in modes {
            // Each mode is given only the options it reads (the others are refused).
            let d = PartialOptions::default();
            let reads_unann = matches!(mode, PartialMode::Negative | PartialMode::Selective);
            let unann = |v: f64, default: f64| if reads_unann { v } else { default };
            let options = [
                PartialOptions {
                    mode,
                    ..Default::default()
                },
                // Unannotated labels focused as negatives: one kernel pass.
                PartialOptions {
                    mode,
                    gamma_unann: unann(1.0, d.gamma_unann),
                    ..Default::default()
                },
                PartialOptions {
                    mode,
                    clip: 0.05,
                    gamma_pos: 1.0,
                    gamma_neg: 4.0,
                    alpha_pos: 0.7,
                    alpha_unann: unann(0.5, d.alpha_unann),
                    likelihood_topk: if mode == PartialMode::Selective {
                        2
                    } else {
                        d.likelihood_topk
                    },
                    ..Default::default()
                },
            ];
            for o in &options {
                let kernel = loss(o, Backend::Kernel, &x, &y);
                let tensor = loss(o, Backend::Tensor, &x, &y);
                let d = max_diff(&kernel.loss, &tensor.loss);
                assert!(d < 1e-10, "{o:?}: loss differs by {d}");
                let d = max_diff(&kernel.grad.unwrap(), &tensor.grad.unwrap());
                assert!(d < 1e-12, "{o:?}: gradient differs by {d}");
            }
        }
    }

    #[test]
    fn selection_and_stable_sort_leave_out_the_same_labels_under_ties() {
        let (x, y) = batch();
        // Logits on a grid of 5 values, so most scores tie, and the clip makes more ties at 1.
        let x = (x / 3.0).round().clamp(-2.0, 2.0);
        for (kind, clip, likelihood_topk) in [
            (Kind::Double, 0.0, 5),
            (Kind::Float, 0.2, 5),
            (Kind::Float, 0.0, 1),
            (Kind::Double, 0.2, 1000),
        ] {
            let o = PartialOptions {
                mode: PartialMode::Selective,
                clip,
                likelihood_topk,
                ..Default::default()
            };
            let xs_neg = || Ok(probability_of_absence(&x.to_kind(kind).sigmoid(), clip)?.1);
            let w = |top_k| weights(&y, kind, xs_neg, None, &o, top_k).unwrap();
            let (select, sort) = (w(TopK::Select), w(TopK::Sort));
            assert!(
                select.equal(&sort),
                "{kind:?} clip {clip} top-k {likelihood_topk}"
            );
            let left_out = select.eq(0.0).sum(Kind::Int64).int64_value(&[]);
            let unannotated = y.eq(-1.0).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(left_out, (likelihood_topk * 13).min(unannotated));
        }
    }

    #[test]
    fn selective_with_every_prior_above_the_threshold_is_ignore_exactly() {
        let (x, y) = batch();
        let priors = Tensor::full([29], 0.5, (Kind::Double, Device::Cpu));
        let ignore = PartialOptions {
            mode: PartialMode::Ignore,
            ..Default::default()
        };
        let selective = PartialOptions {
            mode: PartialMode::Selective,
            ..Default::default()
        };
        for backend in [Backend::Kernel, Backend::Tensor] {
            let a = loss(&ignore, backend, &x, &y);
            let o = PartialOptions {
                backend,
                ..selective.clone()
            };
            let b = partial_asymmetric_loss(&x, &y, Some(&priors), &o, true).unwrap();
            assert!(a.loss.equal(&b.loss), "{backend:?}");
            assert!(a.grad.unwrap().equal(&b.grad.unwrap()), "{backend:?}");
        }
    }
}
