//! The single-label (softmax) asymmetric loss with label smoothing (ASL's `ASLSingleLabel`).

use crate::options::Schema;
use tch::{Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::memory::empty_cpu;
use crate::tensor::{
    as_mut_slice, as_slice, first_true, float_kind, kind_name, same_device, shape_str,
    with_float_kind, FloatElement,
};

use super::common::gradient_tensor;
use super::options::{Reduction, SingleLabelOptions};
use super::{compute_kind, single_label_kernel, single_label_tensor, LossOutput};

/// The single-label asymmetric loss of `logits` [N, C] against class indices `targets` [N].
///
/// Rows whose target equals `opts.ignore_index` contribute nothing; `Reduction::Mean`
/// averages over the other rows. With `need_grad` the gradient of the unreduced loss is
/// returned as well.
pub fn asymmetric_loss_single_label(
    logits: &Tensor,
    targets: &Tensor,
    opts: &SingleLabelOptions,
    need_grad: bool,
) -> Result<LossOutput> {
    opts.check()?;
    let kind = float_kind(logits, "logits")?;
    let shape = logits.size();
    if shape.len() != 2 {
        bail!(
            "logits must have shape [batch, num_classes], got {}",
            shape_str(&shape)
        );
    }
    let (rows, classes) = (shape[0], shape[1]);
    if classes == 0 {
        bail!(
            "logits must have at least one class, got shape {}",
            shape_str(&shape)
        );
    }
    if targets.size() != [rows] {
        bail!(
            "targets must be class indices of shape [{rows}], got {}",
            shape_str(&targets.size())
        );
    }
    let tkind = targets.f_kind()?;
    if !matches!(
        tkind,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
    ) {
        bail!(
            "targets must be an integer tensor of class indices, got {}",
            kind_name(tkind)
        );
    }
    same_device(targets, "targets", logits, "logits")?;
    let t = targets.f_detach()?.f_to_kind(Kind::Int64)?;
    let bad = t
        .f_lt(0)?
        .f_logical_or(&t.f_ge(classes)?)?
        .f_logical_and(&t.f_ne(opts.ignore_index)?)?;
    if bad.f_any()?.f_int64_value(&[])? != 0 {
        let first = first_true(&bad)?;
        let value = t.f_int64_value(&[first as i64])?;
        bail!(
            "targets must be class indices in [0, {classes}) or ignore_index={}; found {value} at row {first}",
            opts.ignore_index
        );
    }
    let compute = compute_kind(kind);
    let use_kernel = opts.backend.uses_kernel(&[logits, &t])?;
    if use_kernel {
        kernel_path(logits, &t, opts, need_grad, kind, compute)
    } else {
        single_label_tensor::run(logits, &t, opts, need_grad, compute)
    }
}

fn kernel_path(
    logits: &Tensor,
    targets: &Tensor,
    opts: &SingleLabelOptions,
    need_grad: bool,
    kind: Kind,
    compute: Kind,
) -> Result<LossOutput> {
    let x = logits.f_detach()?.f_contiguous()?;
    let t = targets.f_contiguous()?;
    let shape = x.size();
    let grad = if need_grad {
        Some(gradient_tensor(&shape, kind)?)
    } else {
        None
    };
    let per_row = if opts.reduction == Reduction::None {
        Some(empty_cpu(&[shape[0]], compute)?)
    } else {
        None
    };
    let counted = t
        .f_ne(opts.ignore_index)?
        .f_sum(Kind::Int64)?
        .f_int64_value(&[])?;
    let factor = match opts.reduction {
        Reduction::Mean if counted > 0 => opts.scale / counted as f64,
        Reduction::Mean => 0.0,
        _ => opts.scale,
    };
    let stats = with_float_kind!(kind, X => {
        // SAFETY: contiguous CPU tensors of these element types, alive for the call;
        // grad and per_row are fresh allocations.
        unsafe {
            single_label_kernel::run::<X>(
                opts,
                as_slice::<X>(&x),
                as_slice::<i64>(&t),
                shape[1] as usize,
                factor,
                grad.as_ref().map(|g| as_mut_slice::<X>(g)),
                per_row.as_ref().map(|l| as_mut_slice::<<X as FloatElement>::Compute>(l)),
            )
        }
    });
    if opts.validate && stats.nan_logits > 0 {
        return Err(super::common::nan_error(&x, stats.nan_logits)?);
    }
    let loss = super::common::kernel_loss(per_row, opts.scale, stats.sum, factor, compute)?;
    Ok(LossOutput { loss, grad })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{Backend, Reduction};

    /// The reference in closed form: `-sum_c t_c (1 - p_c)^gamma_c log p_c` per row, with
    /// `t` the smoothed one-hot target and `gamma_c` gamma_pos on the target, else gamma_neg
    /// (the asymmetric weighting of ASL's `ASLSingleLabel`), averaged over rows.
    fn reference(logits: &[[f64; 3]], targets: &[i64], o: &SingleLabelOptions) -> f64 {
        let mut total = 0.0;
        for (row, &y) in logits.iter().zip(targets) {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for (c, v) in row.iter().enumerate() {
                let log_p = v - m - z.ln();
                let p = log_p.exp();
                let t = (1.0 - o.eps) * (c as i64 == y) as i64 as f64 + o.eps / 3.0;
                let w = if c as i64 == y {
                    (1.0 - p).powf(o.gamma_pos)
                } else {
                    p.powf(o.gamma_neg)
                };
                total -= t * w * log_p;
            }
        }
        total / targets.len() as f64
    }

    #[test]
    fn both_backends_match_the_closed_form() {
        let rows = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]];
        let targets = [1i64, 0];
        let x = Tensor::from_slice(&rows.concat()).view([2, 3]);
        let y = Tensor::from_slice(&targets);
        for (gamma_pos, gamma_neg, eps) in [(0.0, 0.0, 0.0), (0.0, 4.0, 0.1), (1.0, 2.0, 0.2)] {
            for backend in [Backend::Kernel, Backend::Tensor] {
                let o = SingleLabelOptions {
                    gamma_pos,
                    gamma_neg,
                    eps,
                    reduction: Reduction::Mean,
                    backend,
                    ..Default::default()
                };
                let out = asymmetric_loss_single_label(&x, &y, &o, true).unwrap();
                let got = out.loss.double_value(&[]);
                let want = reference(&rows, &targets, &o);
                assert!(
                    (got - want).abs() < 1e-12,
                    "{backend:?} {gamma_neg}: {got} vs {want}"
                );
                assert_eq!(out.grad.unwrap().size(), vec![2, 3]);
            }
        }
    }

    #[test]
    fn ignored_rows_and_bad_targets() {
        let x = Tensor::from_slice(&[1.0f64, 2.0, 0.5, 0.0, 0.0, 0.0]).view([2, 3]);
        let o = SingleLabelOptions::default();
        let one = asymmetric_loss_single_label(
            &x.narrow(0, 0, 1),
            &Tensor::from_slice(&[1i64]),
            &o,
            false,
        );
        let with_ignored =
            asymmetric_loss_single_label(&x, &Tensor::from_slice(&[1i64, -100]), &o, false);
        let (a, b) = (one.unwrap().loss, with_ignored.unwrap().loss);
        assert!((a.double_value(&[]) - b.double_value(&[])).abs() < 1e-12);
        let err = asymmetric_loss_single_label(&x, &Tensor::from_slice(&[1i64, 3]), &o, false)
            .unwrap_err();
        assert!(err.to_string().contains("class indices in [0, 3)"), "{err}");
    }
}
