//! Options of the losses and their validation.

use tch::Device;

use crate::bail;
use crate::error::{Error, Result};

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Per-element losses, shaped like the input.
    None,
    /// The sum over every element (the official ASL code).
    Sum,
    /// The mean over annotated elements (targets other than -1), as
    /// `torch.nn.CrossEntropyLoss` averages over non-ignored ones.
    Mean,
    /// The sum divided by the number of rows (mmpretrain's `avg_factor=batch_size`).
    BatchMean,
}

impl Reduction {
    /// The Python names of the variants.
    pub const NAMES: [&'static str; 4] = ["none", "sum", "mean", "batchmean"];

    /// The Python name.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::BatchMean => "batchmean",
        }
    }
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Reduction::None,
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            "batchmean" => Reduction::BatchMean,
            other => bail!("reduction must be 'none', 'sum', 'mean' or 'batchmean', got {other:?}"),
        })
    }
}

/// Which implementation runs a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The fused kernel on CPU tensors, the tensor path elsewhere.
    Auto,
    /// The fused CPU kernel (CPU tensors only).
    Kernel,
    /// libtorch ops with the analytic gradient (any device).
    Tensor,
}

impl Backend {
    /// Whether logits on `device` run the fused kernel: `Auto` and `Kernel` on the CPU;
    /// `Kernel` elsewhere is an error.
    pub fn uses_kernel(self, device: Device) -> Result<bool> {
        Ok(match (self, device) {
            (Backend::Tensor, _) => false,
            (_, Device::Cpu) => true,
            (Backend::Auto, _) => false,
            (Backend::Kernel, d) => {
                bail!("the fused kernel runs on CPU tensors only; logits are on {d:?}")
            }
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Backend::Auto,
            "kernel" => Backend::Kernel,
            "tensor" => Backend::Tensor,
            other => bail!("backend must be 'auto', 'kernel' or 'tensor', got {other:?}"),
        })
    }
}

/// Options of the asymmetric loss (Ridnik et al. 2021).
#[derive(Clone, Debug)]
pub struct AslOptions {
    /// Focusing exponent of positives.
    pub gamma_pos: f64,
    /// Focusing exponent of negatives.
    pub gamma_neg: f64,
    /// Probability margin shifted off negatives (0 disables clipping).
    pub clip: f64,
    /// Lower clamp of the probabilities inside the logarithms.
    pub eps: f64,
    /// Treat the focal weight as a constant in the backward pass (the official option of
    /// this name; the gradient then does not flow through it).
    pub disable_torch_grad_focal_loss: bool,
    /// How per-element losses are combined.
    pub reduction: Reduction,
    /// Multiplier applied after the reduction (1000 in Query2Label's criterion).
    pub scale: f64,
    /// Whether NaN logits and out-of-range targets raise errors.
    pub validate: bool,
    /// Which implementation runs.
    pub backend: Backend,
}

impl Default for AslOptions {
    fn default() -> Self {
        AslOptions {
            gamma_pos: 1.0,
            gamma_neg: 4.0,
            clip: 0.05,
            eps: 1e-8,
            disable_torch_grad_focal_loss: false,
            reduction: Reduction::Sum,
            scale: 1.0,
            validate: true,
            backend: Backend::Auto,
        }
    }
}

fn check_gamma(name: &str, g: f64) -> Result<()> {
    if !(g.is_finite() && g >= 0.0) {
        bail!("{name} must be a finite number >= 0, got {g}");
    }
    Ok(())
}

fn check_scale(scale: f64) -> Result<()> {
    if !scale.is_finite() {
        bail!("scale must be finite, got {scale}");
    }
    Ok(())
}

impl AslOptions {
    /// Checks every option's range.
    pub fn check(&self) -> Result<()> {
        check_gamma("gamma_pos", self.gamma_pos)?;
        check_gamma("gamma_neg", self.gamma_neg)?;
        if !(0.0..1.0).contains(&self.clip) {
            bail!("clip must be in [0, 1), got {}", self.clip);
        }
        if !(0.0..1.0).contains(&self.eps) {
            bail!("eps must be in [0, 1), got {}", self.eps);
        }
        check_scale(self.scale)
    }
}

/// Options of the single-label (softmax) asymmetric loss.
#[derive(Clone, Debug)]
pub struct SingleLabelOptions {
    /// Focusing exponent of the target class.
    pub gamma_pos: f64,
    /// Focusing exponent of the other classes.
    pub gamma_neg: f64,
    /// Label smoothing: the target distribution is `(1 - s) * onehot + s / C`.
    pub smoothing: f64,
    /// `None` gives one loss per row; `Mean` averages over rows that are not ignored.
    pub reduction: Reduction,
    /// Multiplier applied after the reduction.
    pub scale: f64,
    /// Rows whose target equals this value contribute nothing.
    pub ignore_index: i64,
    /// Whether NaN logits raise errors.
    pub validate: bool,
    /// Which implementation runs.
    pub backend: Backend,
}

impl Default for SingleLabelOptions {
    fn default() -> Self {
        SingleLabelOptions {
            gamma_pos: 0.0,
            gamma_neg: 4.0,
            smoothing: 0.1,
            reduction: Reduction::Mean,
            scale: 1.0,
            ignore_index: -100,
            validate: true,
            backend: Backend::Auto,
        }
    }
}

impl SingleLabelOptions {
    /// Checks every option's range.
    pub fn check(&self) -> Result<()> {
        check_gamma("gamma_pos", self.gamma_pos)?;
        check_gamma("gamma_neg", self.gamma_neg)?;
        if !(0.0..=1.0).contains(&self.smoothing) {
            bail!("label smoothing must be in [0, 1], got {}", self.smoothing);
        }
        if self.reduction == Reduction::BatchMean {
            bail!("the single-label loss supports reduction 'none', 'sum' or 'mean'");
        }
        check_scale(self.scale)
    }
}
