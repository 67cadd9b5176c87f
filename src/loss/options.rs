//! The options of the losses: each struct is the one declaration of its loss's options,
//! their defaults and their documentation (see `crate::options`).

use tch::Tensor;

use crate::bail;
use crate::error::Result;
use crate::options::{at_least, in_range, Checked};
use crate::tensor::host_readable;

crate::choices! {
    /// How per-element losses are combined.
    pub enum Reduction("reduction") {
        /// Per-element losses, shaped like the input.
        None = "none",
        /// The sum over every element (the official ASL code).
        Sum = "sum",
        /// The mean over annotated elements (targets other than -1), as
        /// `torch.nn.CrossEntropyLoss` averages over non-ignored ones.
        Mean = "mean",
        /// The sum divided by the number of rows (mmpretrain's `avg_factor=batch_size`).
        BatchMean = "batchmean",
    }
}

crate::choices! {
    /// Which implementation runs a loss.
    pub enum Backend("backend") {
        /// The fused kernel on CPU tensors, the tensor path elsewhere.
        Auto = "auto",
        /// The fused CPU kernel (CPU tensors only).
        Kernel = "kernel",
        /// libtorch ops with the analytic gradient (any device).
        Tensor = "tensor",
    }
}

impl Backend {
    /// Whether a loss of these tensors (logits first) runs the fused kernel: `Auto` and
    /// `Kernel` on plain CPU tensors with storage. Other tensors (on an accelerator, or
    /// batched and wrapped ones of `torch.vmap` and `torch.func`) take libtorch ops under
    /// `Auto`, and are an error under `Kernel`.
    pub fn uses_kernel(self, tensors: &[&Tensor]) -> Result<bool> {
        let readable = tensors.iter().all(|t| host_readable(t));
        Ok(match self {
            Backend::Tensor => false,
            Backend::Auto => readable,
            Backend::Kernel if readable => true,
            Backend::Kernel => bail!(
                "the fused kernel reads plain CPU tensors with storage; logits are on {:?} or \
                 are batched or wrapped (torch.vmap, torch.func): use backend='auto' or 'tensor'",
                tensors[0].device()
            ),
        })
    }
}

crate::options! {
    /// Options of the asymmetric loss (Ridnik et al. 2021); the defaults are the official
    /// class's, with the gradient through the focal weight.
    pub struct AslOptions {
        /// Focusing exponent of negatives.
        gamma_neg: f64 = 4.0,
        /// Focusing exponent of positives.
        gamma_pos: f64 = 1.0,
        /// Probability margin shifted off negatives; 0 disables it.
        clip: f64 = 0.05,
        /// Lower clamp of the probabilities inside the logarithms.
        eps: f64 = 1e-8,
        /// Stop the gradient through the focal weight, as the official flag of that name does.
        disable_torch_grad_focal_loss: bool = false,
        /// Label smoothing s in [0, 1): annotated targets y become y (1 - s) + s / 2, so hard
        /// labels pull towards 1 - s / 2 and s / 2 (timm's BinaryCrossEntropy smoothing).
        label_smoothing: f64 = 0.0,
        /// "sum" (official), "mean" (over annotated elements), "batchmean" (sum divided by
        /// the rows) or "none".
        reduction: Reduction = Reduction::Sum,
        /// Multiplier applied after the reduction (1000 in Query2Label's criterion).
        scale: f64 = 1.0,
        /// Raise on NaN logits and on targets outside {-1} and [0, 1]; with False no value
        /// is checked and NaN propagates to the loss.
        validate: bool = true,
        /// "auto" (fused kernel on CPU, libtorch ops elsewhere), "kernel" (CPU) or "tensor".
        backend: Backend = Backend::Auto,
    }
}

impl Checked for AslOptions {
    fn check(&self) -> Result<()> {
        at_least("gamma_pos", self.gamma_pos, 0.0)?;
        at_least("gamma_neg", self.gamma_neg, 0.0)?;
        in_range("clip", self.clip, 0.0, 1.0, false)?;
        in_range("eps", self.eps, 0.0, 1.0, false)?;
        in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, false)
    }
}

crate::options! {
    /// Options of the single-label (softmax) asymmetric loss; the defaults are ASL's
    /// `ASLSingleLabel`'s.
    pub struct SingleLabelOptions {
        /// Focusing exponent of the target class.
        gamma_pos: f64 = 0.0,
        /// Focusing exponent of the other classes.
        gamma_neg: f64 = 4.0,
        /// Label smoothing (the official name): the target distribution is
        /// (1 - eps) * onehot + eps / C.
        eps: f64 = 0.1,
        /// "mean" (over rows not ignored), "sum" or "none" (one loss per row).
        reduction: Reduction = Reduction::Mean,
        /// Multiplier applied after the reduction.
        scale: f64 = 1.0,
        /// Rows whose target equals this value contribute neither loss nor gradient.
        ignore_index: i64 = -100,
        /// Raise on NaN logits.
        validate: bool = true,
        /// "auto", "kernel" (CPU) or "tensor".
        backend: Backend = Backend::Auto,
    }
}

impl Checked for SingleLabelOptions {
    fn check(&self) -> Result<()> {
        at_least("gamma_pos", self.gamma_pos, 0.0)?;
        at_least("gamma_neg", self.gamma_neg, 0.0)?;
        in_range("eps (label smoothing)", self.eps, 0.0, 1.0, true)?;
        if self.reduction == Reduction::BatchMean {
            bail!("the single-label loss supports reduction 'none', 'sum' or 'mean'");
        }
        Ok(())
    }
}

crate::choices! {
    /// What unannotated labels (targets of -1) count as in CSL's partial-label loss.
    pub enum PartialMode("mode") {
        /// Negatives (CSL's `negative`).
        Negative = "negative",
        /// Left out (`ignore`).
        Ignore = "ignore",
        /// Left out, and each image's loss weighted by `1 + 1 / (1 + annotated labels)`
        /// (`ignore_normalize_classes`, after Durand et al. 2019).
        IgnoreNormalizeClasses = "ignore_normalize_classes",
        /// Negatives, except the `likelihood_topk * batch` unannotated labels the model
        /// finds most likely present, and (with priors) the classes whose prior exceeds the
        /// threshold (`selective`).
        Selective = "selective",
    }
}

crate::options! {
    /// Options of CSL's `PartialSelectiveLoss`; the defaults are its `train.py`'s.
    pub struct PartialOptions {
        /// "negative", "ignore", "ignore_normalize_classes" or "selective".
        mode: PartialMode = PartialMode::Negative,
        /// Focusing of positives.
        gamma_pos: f64 = 0.0,
        /// Focusing of negatives.
        gamma_neg: f64 = 1.0,
        /// Focusing of unannotated labels.
        gamma_unann: f64 = 2.0,
        /// Weight of positives.
        alpha_pos: f64 = 1.0,
        /// Weight of negatives.
        alpha_neg: f64 = 1.0,
        /// Weight of unannotated labels.
        alpha_unann: f64 = 1.0,
        /// Probability margin added to the probability of absence (0: none).
        clip: f64 = 0.0,
        /// Unannotated labels per image the selective mode leaves out.
        likelihood_topk: i64 = 5,
        /// Classes with a prior above it leave their unannotated labels out (selective
        /// mode with priors; 0 turns it off, as in the official code).
        prior_threshold: f64 = 0.05,
        /// "auto" (the fused kernel for CPU logits, libtorch ops elsewhere), "kernel" (CPU
        /// only) or "tensor" (libtorch ops everywhere).
        backend: Backend = Backend::Auto,
    }
}

impl Checked for PartialOptions {
    fn check(&self) -> Result<()> {
        at_least("gamma_pos", self.gamma_pos, 0.0)?;
        at_least("gamma_neg", self.gamma_neg, 0.0)?;
        at_least("gamma_unann", self.gamma_unann, 0.0)?;
        at_least("alpha_pos", self.alpha_pos, 0.0)?;
        at_least("alpha_neg", self.alpha_neg, 0.0)?;
        at_least("alpha_unann", self.alpha_unann, 0.0)?;
        in_range("clip", self.clip, 0.0, 1.0, false)?;
        in_range("prior_threshold", self.prior_threshold, 0.0, 1.0, true)?;
        at_least("likelihood_topk", self.likelihood_topk, 0)?;
        self.check_used_by_mode()
    }
}

impl PartialOptions {
    /// Refuses an option set away from its default that the chosen mode never reads: it
    /// would be dropped without a word. (One equal to its default cannot be told from one
    /// left out, and changes nothing.)
    fn check_used_by_mode(&self) -> Result<()> {
        let d = Self::default();
        let unused: &[(&str, bool)] = match self.mode {
            PartialMode::Selective => &[],
            PartialMode::Negative => &[
                ("likelihood_topk", self.likelihood_topk != d.likelihood_topk),
                ("prior_threshold", self.prior_threshold != d.prior_threshold),
            ],
            // Unannotated labels are left out: their focusing and weight never apply.
            PartialMode::Ignore | PartialMode::IgnoreNormalizeClasses => &[
                ("likelihood_topk", self.likelihood_topk != d.likelihood_topk),
                ("prior_threshold", self.prior_threshold != d.prior_threshold),
                ("gamma_unann", self.gamma_unann != d.gamma_unann),
                ("alpha_unann", self.alpha_unann != d.alpha_unann),
            ],
        };
        if let Some((name, _)) = unused.iter().find(|(_, set)| *set) {
            let used_by = if name.ends_with("_unann") {
                "modes 'negative' and 'selective'"
            } else {
                "mode 'selective'"
            };
            crate::bail!(
                "{name} is used only by {used_by}; mode '{}' would ignore it (leave it out)",
                self.mode.name()
            );
        }
        Ok(())
    }
}
