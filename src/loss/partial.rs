//! The partial-label losses of CSL (Ben-Baruch et al. 2022, `Alibaba-MIIL/PartialLabelingCSL`,
//! `src/loss_functions/partial_asymmetric_loss.py`): targets of -1 are labels nobody
//! annotated, and a mode says what they count as.
//!
//! The loss is the official one, `-sum(w * focal * BCE)` with separate focusing and
//! weighting for positives, negatives and unannotated labels (the latter scored as
//! negatives); only the per-element weight `w` depends on the mode. Two modes are an
//! asymmetric loss (`ignore`, and `negative` when unannotated labels are focused and weighted
//! as negatives) and run its fused kernel on the CPU. The others, and other devices, run
//! libtorch ops with the analytic gradient (`partial_tensor.rs`): the selective mode's top-k
//! spans the whole batch and `ignore_normalize_classes` weights whole rows, which a kernel
//! working one element at a time cannot see.

use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use crate::bail;
use crate::error::{Error, Result};
use crate::tensor::{check_ternary, float_kind, same_device, shape_str};

use super::asymmetric::asymmetric_loss;
use super::options::{AslOptions, Backend, Reduction};
use super::{partial_tensor, LossOutput};

/// The lower clamp of the probabilities inside the logarithms (the official `eps`).
pub(super) const EPS: f64 = 1e-8;

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

impl PartialMode {
    /// The Python name.
    pub fn name(self) -> &'static str {
        match self {
            PartialMode::Negative => PARTIAL_MODES[0],
            PartialMode::Ignore => PARTIAL_MODES[1],
            PartialMode::IgnoreNormalizeClasses => PARTIAL_MODES[2],
            PartialMode::Selective => PARTIAL_MODES[3],
        }
    }
}

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
    /// `Auto`: the fused asymmetric-loss kernel where the mode is an asymmetric loss and the
    /// logits are on the CPU, libtorch ops otherwise; `Kernel` insists on the former.
    pub backend: Backend,
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
            backend: Backend::Auto,
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

/// The asymmetric loss that equals the partial loss of `o`, where there is one, and whether
/// unannotated targets must become negatives for it: `ignore` is the asymmetric loss of the
/// annotated labels, and `negative` is one when unannotated labels are focused and weighted
/// as negatives. Either needs one weight for all kinds (it becomes the scale).
fn as_asymmetric(o: &PartialOptions) -> Option<(AslOptions, bool)> {
    if o.alpha_pos != o.alpha_neg {
        return None;
    }
    let as_negative = match o.mode {
        PartialMode::Ignore => false,
        PartialMode::Negative if o.gamma_unann == o.gamma_neg && o.alpha_unann == o.alpha_neg => {
            true
        }
        _ => return None,
    };
    let asl = AslOptions {
        gamma_pos: o.gamma_pos,
        gamma_neg: o.gamma_neg,
        clip: o.clip,
        eps: EPS,
        // The official CSL loss holds the focal factor constant.
        disable_torch_grad_focal_loss: true,
        reduction: Reduction::Sum,
        scale: o.alpha_pos,
        // Checked already, and more strictly ({1, 0, -1} only).
        validate: false,
        backend: Backend::Kernel,
    };
    Some((asl, as_negative))
}

/// The CSL loss of `logits` [B, K] against `targets` in {1, 0, -1}, summed (0-dim);
/// `priors` [K] for the selective mode's class priors. With `need_grad`, its gradient too.
///
/// Where the mode equals an asymmetric loss (see [`PartialOptions::backend`]) and the
/// logits are on the CPU, the fused kernel computes it; elsewhere libtorch ops do.
pub fn partial_asymmetric_loss(
    logits: &Tensor,
    targets: &Tensor,
    priors: Option<&Tensor>,
    o: &PartialOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    check(logits, targets, priors, o)?;
    let fused = match (o.backend, as_asymmetric(o)) {
        (Backend::Tensor, _) => None,
        (Backend::Auto, Some(asl)) if logits.device() == Device::Cpu => Some(asl),
        (Backend::Auto, _) => None,
        (Backend::Kernel, Some(asl)) => Some(asl),
        (Backend::Kernel, None) => bail!(
            "backend 'kernel' computes the partial-label loss only where it is an asymmetric \
             loss: mode 'ignore' with alpha_pos == alpha_neg, or mode 'negative' with \
             gamma_unann == gamma_neg and alpha_pos == alpha_neg == alpha_unann; \
             use backend 'auto' or 'tensor' for mode {:?} with these options",
            o.mode.name()
        ),
    };
    match fused {
        Some((asl, true)) => {
            asymmetric_loss(logits, &targets.f_clamp_min(0)?, None, &asl, need_grad)
        }
        Some((asl, false)) => asymmetric_loss(logits, targets, None, &asl, need_grad),
        None => partial_tensor::run(logits, targets, priors, o, need_grad),
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

    fn batch() -> (Tensor, Tensor) {
        tch::manual_seed(0);
        let x = Tensor::randn([13, 29], (Kind::Double, Device::Cpu)) * 3.0;
        let y = Tensor::rand([13, 29], (Kind::Double, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Double);
        let hidden = Tensor::rand([13, 29], (Kind::Double, Device::Cpu)).lt(0.5);
        (x, y.masked_fill(&hidden, -1.0))
    }

    fn both(o: &PartialOptions, x: &Tensor, y: &Tensor) -> [LossOutput; 2] {
        [Backend::Kernel, Backend::Tensor].map(|backend| {
            let o = PartialOptions {
                backend,
                ..o.clone()
            };
            partial_asymmetric_loss(x, y, None, &o, true).unwrap()
        })
    }

    #[test]
    fn the_modes_that_are_an_asymmetric_loss_run_the_kernel_with_equal_results() {
        let (x, y) = batch();
        let fused = [
            PartialOptions {
                mode: PartialMode::Ignore,
                ..Default::default()
            },
            PartialOptions {
                mode: PartialMode::Ignore,
                clip: 0.05,
                gamma_neg: 4.0,
                ..Default::default()
            },
            PartialOptions {
                mode: PartialMode::Negative,
                gamma_unann: 1.0,
                ..Default::default()
            },
        ];
        for o in &fused {
            assert!(as_asymmetric(o).is_some(), "{o:?}");
            let [kernel, tensor] = both(o, &x, &y);
            let diff = (&kernel.loss - &tensor.loss).abs().double_value(&[]);
            assert!(diff < 1e-10, "{o:?}: loss differs by {diff}");
            let (gk, gt) = (kernel.grad.unwrap(), tensor.grad.unwrap());
            let diff = (&gk - &gt).abs().max().double_value(&[]);
            assert!(diff < 1e-12, "{o:?}: gradient differs by {diff}");
        }
    }

    #[test]
    fn the_other_modes_refuse_the_kernel() {
        let (x, y) = batch();
        let others = [
            PartialOptions::default(), // negative, but gamma_unann 2 != gamma_neg 1
            PartialOptions {
                mode: PartialMode::Ignore,
                alpha_pos: 2.0,
                ..Default::default()
            },
            PartialOptions {
                mode: PartialMode::IgnoreNormalizeClasses,
                ..Default::default()
            },
            PartialOptions {
                mode: PartialMode::Selective,
                ..Default::default()
            },
        ];
        for o in &others {
            assert!(as_asymmetric(o).is_none(), "{o:?}");
            let o = PartialOptions {
                backend: Backend::Kernel,
                ..o.clone()
            };
            let err = partial_asymmetric_loss(&x, &y, None, &o, false).unwrap_err();
            assert!(err.to_string().contains("backend 'kernel'"), "{err}");
        }
    }
}
