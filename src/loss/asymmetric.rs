//! The asymmetric loss: argument checks, the choice of implementation, and reductions.

use crate::options::Schema;
use tch::{Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::memory::empty_cpu;
use crate::tensor::{
    as_mut_slice, as_slice, check_targets, float_kind, same_device, shape_str, with_float_kind,
    with_target_kind, FloatElement,
};

use super::asymmetric_kernel::{self, Stats};
use super::asymmetric_tensor;
use super::common::{
    gradient_tensor, kernel_loss, kinds, nan_error, reduction_factor, rows, target_error, Inputs,
};
use super::options::{AslOptions, Reduction};
use super::{compute_kind, LossOutput};

/// The asymmetric loss of `logits` against multi-label `targets`.
///
/// `targets` has the shape of `logits` and holds 1 (present), 0 (absent), -1 (not
/// annotated: no loss, no gradient) or a soft label in (0, 1); bool, integer and
/// floating dtypes are accepted. `class_weight`, if given, has one non-negative weight per
/// class (the last dimension) and multiplies each element's loss.
/// With `need_grad`, the gradient of the unreduced loss is returned as well.
pub fn asymmetric_loss(
    logits: &Tensor,
    targets: &Tensor,
    class_weight: Option<&Tensor>,
    opts: &AslOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    opts.check()?;
    let kind = float_kind(logits, "logits")?;
    let shape = logits.size();
    if shape.is_empty() {
        bail!("logits must have at least one dimension (..., num_classes), got a 0-dim tensor");
    }
    check_targets(targets, &shape, "logits")?;
    same_device(targets, "targets", logits, "logits")?;
    let compute = compute_kind(kind);
    let smoothed;
    let targets = if opts.label_smoothing > 0.0 {
        smoothed = smooth(targets, opts.label_smoothing, compute)?;
        &smoothed
    } else {
        targets
    };
    let num_classes = *shape.last().unwrap_or(&1);
    let weight = match class_weight {
        Some(w) => Some(class_weights(
            w,
            num_classes,
            logits,
            compute,
            opts.validate,
        )?),
        None => None,
    };
    let inputs = Inputs {
        logits,
        targets,
        extra: weight.as_ref(),
    };
    let mut all = vec![logits, targets];
    all.extend(weight.as_ref());
    if opts.backend.uses_kernel(&all)? {
        kernel_path(inputs, opts, need_grad)
    } else {
        asymmetric_tensor::run(inputs, opts, need_grad)
    }
}

/// `y (1 - s) + s / 2` where `y` is in [0, 1], in `kind`; -1 (not annotated) and invalid
/// values are kept as they are, so validation still sees the value the caller gave.
fn smooth(targets: &Tensor, s: f64, kind: Kind) -> Result<Tensor> {
    let y = targets.f_to_kind(kind)?;
    let label = y.f_ge(0.0)?.f_logical_and(&y.f_le(1.0)?)?;
    let smoothed = y.f_mul_scalar(1.0 - s)?.f_add_scalar(s / 2.0)?;
    Ok(smoothed.f_where_self(&label, &y)?)
}

/// The fused kernel on CPU tensors with one weight per element: `inputs.extra` has the
/// logits' shape and the compute kind (float64 for float64 logits, else float32). The
/// building block of the partial-label loss; nothing is validated here.
pub(super) fn kernel_with_element_weights(
    inputs: Inputs,
    opts: &AslOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    let (logits, targets, element_weight) = inputs.parts();
    let compute = compute_kind(logits.f_kind()?);
    let shape = logits.size();
    // The kernel indexes weights by flat position modulo their length: per element here.
    let weight = element_weight
        .map(|w| w.f_detach()?.f_to_kind(compute)?.f_contiguous())
        .transpose()?;
    if let Some(w) = &weight {
        if w.size() != shape {
            bail!(
                "element weights must have the logits' shape {}, got {}",
                shape_str(&shape),
                shape_str(&w.size())
            );
        }
    }
    let inputs = Inputs {
        logits,
        targets,
        extra: weight.as_ref(),
    };
    kernel_path(inputs, opts, need_grad)
}

fn class_weights(
    w: &Tensor,
    classes: i64,
    logits: &Tensor,
    compute: Kind,
    validate: bool,
) -> Result<Tensor> {
    float_kind(w, "class_weight")?;
    same_device(w, "class_weight", logits, "logits")?;
    if w.size() != [classes] {
        bail!(
            "class_weight must have shape [{classes}] (one weight per class), got {}",
            shape_str(&w.size())
        );
    }
    let w = w.f_detach()?.f_to_kind(compute)?.f_contiguous()?;
    if validate {
        let bad = w
            .f_isfinite()?
            .f_logical_not()?
            .f_logical_or(&w.f_lt(0.0)?)?;
        if bad.f_any()?.f_int64_value(&[])? != 0 {
            bail!("class_weight must be finite and >= 0");
        }
    }
    Ok(w)
}

#[allow(clippy::too_many_arguments)]
fn kernel_path(inputs: Inputs, opts: &AslOptions, need_grad: bool) -> Result<LossOutput> {
    let (logits, targets, weight) = inputs.parts();
    let (kind, compute) = kinds(logits)?;
    let rows = rows(logits);
    let x = logits.f_detach()?.f_contiguous()?;
    let y = targets.f_detach()?.f_contiguous()?;
    let shape = x.size();
    let mut grad = if need_grad {
        Some(gradient_tensor(&shape, kind)?)
    } else {
        None
    };
    let per_element = if opts.reduction == Reduction::None {
        Some(empty_cpu(&shape, compute)?)
    } else {
        None
    };
    let tkind = y.f_kind()?;
    let (stats, factor): (Stats, f64) = with_float_kind!(kind, X => with_target_kind!(tkind, Y => {
        // SAFETY: x, y, grad and per_element are contiguous CPU tensors of these element
        // types, alive for the whole call; grad and per_element are fresh allocations.
        unsafe {
            let ys = as_slice::<Y>(&y);
            // `Mean` divides by the number of annotated targets, known only after the
            // pass: assume every target is annotated (the usual case) and correct below.
            let numel = ys.len() as u64;
            let factor = reduction_factor(opts.reduction, opts.scale, rows, numel);
            let w: Option<&[<X as FloatElement>::Compute]> = weight.map(|w| as_slice(w));
            let stats = asymmetric_kernel::run::<X, Y>(
                opts,
                as_slice::<X>(&x),
                ys,
                w,
                factor,
                grad.as_ref().map(|g| as_mut_slice::<X>(g)),
                per_element.as_ref().map(|l| as_mut_slice::<<X as FloatElement>::Compute>(l)),
            );
            (stats, factor)
        }
    }));
    if opts.validate && stats.nan_logits > 0 {
        return Err(nan_error(&x, stats.nan_logits)?);
    }
    if opts.validate && stats.bad_targets > 0 {
        return Err(target_error(&y, stats.bad_targets)?);
    }
    let numel = x.numel() as u64;
    let factor = if opts.reduction == Reduction::Mean && stats.annotated != numel {
        let exact = reduction_factor(opts.reduction, opts.scale, rows, stats.annotated);
        if let Some(g) = grad.as_mut() {
            let correction = if stats.annotated > 0 {
                numel as f64 / stats.annotated as f64
            } else {
                0.0
            };
            let _ = g.f_mul_scalar_(correction)?;
        }
        exact
    } else {
        factor
    };
    let loss = kernel_loss(per_element, opts.scale, stats.sum, factor, compute)?;
    Ok(LossOutput { loss, grad })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Backend;
    use tch::Device;

    fn data(rows: i64, cols: i64) -> (Tensor, Tensor) {
        tch::manual_seed(0);
        let x = Tensor::randn([rows, cols], (Kind::Float, Device::Cpu)) * 3.0;
        let y = Tensor::rand([rows, cols], (Kind::Float, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Float);
        (x, y)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn kernel_and_tensor_paths_agree() {
        let (x, y) = data(37, 203);
        for clip in [0.0, 0.05] {
            for reduction in [Reduction::Sum, Reduction::Mean, Reduction::None] {
                let mut opts = AslOptions {
                    clip,
                    reduction,
                    ..AslOptions::default()
                };
                opts.backend = Backend::Kernel;
                let k = asymmetric_loss(&x, &y, None, &opts, true).unwrap();
                opts.backend = Backend::Tensor;
                let t = asymmetric_loss(&x, &y, None, &opts, true).unwrap();
                let scale = t.loss.abs().max().double_value(&[]).max(1.0);
                assert!(max_diff(&k.loss, &t.loss) < 1e-5 * scale);
                assert!(max_diff(&k.grad.unwrap(), &t.grad.unwrap()) < 1e-5);
            }
        }
    }

    #[test]
    fn shape_mismatch_is_a_value_error() {
        let (x, _) = data(3, 4);
        let y = Tensor::zeros([3, 5], (Kind::Float, Device::Cpu));
        let err = asymmetric_loss(&x, &y, None, &AslOptions::default(), false).unwrap_err();
        assert!(
            matches!(err, crate::Error::Value(ref m) if m.contains("[3, 4]")),
            "{err}"
        );
    }

    #[test]
    fn reduction_factors() {
        assert_eq!(reduction_factor(Reduction::Mean, 1000.0, 4, 8), 125.0);
        assert_eq!(reduction_factor(Reduction::Mean, 1.0, 4, 0), 0.0);
        assert_eq!(reduction_factor(Reduction::BatchMean, 2.0, 4, 0), 0.5);
        assert_eq!(reduction_factor(Reduction::Sum, 3.0, 0, 0), 3.0);
    }
}
