//! The per-element weights of CSL's partial-label modes: what each unannotated label
//! counts for, computed without gradient before either backend computes the loss.

use tch::{Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::tensor::{as_mut_slice, as_slice, host_readable};

use super::options::{PartialMode, PartialOptions};

/// The lower clamp of the probabilities inside the logarithms (the official `eps`).
pub(super) const EPS: f64 = 1e-8;

/// How the selective mode finds the unannotated labels it leaves out. Both give the first
/// `likelihood_topk * batch` of a stable ascending sort of their probability of absence, so
/// ties go to the lower flat index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TopK {
    /// A stable sort of every unannotated label, on libtorch ops (any device).
    Sort,
    /// A selection in linear time in Rust (CPU tensors): the sort was most of the selective
    /// loss's time at (128, 9605).
    Select,
}

/// The per-element weights of the mode in `kind`, computed without gradient; `xs_neg` is
/// the clipped probability of absence ([`probability_of_absence`]), which only the selective
/// mode reads, and `top_k` how that mode ranks it.
pub(super) fn weights(
    targets: &Tensor,
    kind: Kind,
    xs_neg: impl FnOnce() -> Result<Tensor>,
    priors: Option<&Tensor>,
    o: &PartialOptions,
    top_k: TopK,
) -> Result<Tensor> {
    let unann = targets.f_eq(-1.0)?;
    let annotated = || unann.f_logical_not()?.f_to_kind(kind);
    let ones = || Tensor::f_ones(targets.size(), (kind, targets.device()));
    Ok(match o.mode {
        PartialMode::Negative => ones()?,
        PartialMode::Ignore => annotated()?,
        PartialMode::IgnoreNormalizeClasses => {
            let annotated = annotated()?;
            let n = annotated
                .f_sum_dim_intlist(1, true, kind)?
                .f_add_scalar(1.0)?;
            annotated.f_mul(&n.f_reciprocal()?.f_add_scalar(1.0)?)?
        }
        PartialMode::Selective => {
            let xs_neg = xs_neg()?;
            let mut w = ones()?;
            if let (Some(p), true) = (priors, o.prior_threshold != 0.0) {
                // Classes above the threshold lose their unannotated labels; annotated
                // labels keep weight 1 (the official `+= annotated`, then `bool()`).
                let frequent = p.f_gt(o.prior_threshold)?.f_unsqueeze(0)?;
                w = w.f_masked_fill(&frequent.f_logical_and(&unann)?, 0.0)?;
            }
            // The unannotated labels least likely absent are left out.
            // Saturating: a huge top-k leaves every unannotated label out, never wraps.
            let k = o.likelihood_topk.saturating_mul(targets.size()[0]);
            match top_k {
                _ if k == 0 => {}
                TopK::Select if [&w, &xs_neg, &unann].iter().all(|t| host_readable(t)) => {
                    w = w.f_contiguous()?;
                    zero_least_absent(&w, &xs_neg, &unann, k as usize)?;
                }
                _ => {
                    let flat_unann = unann.f_flatten(0, -1)?.f_nonzero()?.f_squeeze_dim(1)?;
                    let k = k.min(flat_unann.size()[0]);
                    let scores = xs_neg.f_flatten(0, -1)?.f_index_select(0, &flat_unann)?;
                    let (_, order) = scores.f_sort_stable(true, 0, false)?;
                    let drop = flat_unann.f_index_select(0, &order.f_narrow(0, 0, k)?)?;
                    let flat = w.f_flatten(0, -1)?.f_index_fill(0, &drop, 0.0)?;
                    w = flat.f_view_as(&xs_neg)?;
                }
            }
            w
        }
    })
}

/// `(1 - p, min(1 - p + clip, 1))` for the probabilities `p`, as the official code computes
/// them.
pub(super) fn probability_of_absence(p: &Tensor, clip: f64) -> Result<(Tensor, Tensor)> {
    let raw = p.f_neg()?.f_add_scalar(1.0)?;
    let clipped = if clip > 0.0 {
        raw.f_add_scalar(clip)?.f_clamp_max(1.0)?
    } else {
        raw.shallow_clone()
    };
    Ok((raw, clipped))
}

/// Zeroes in `w` the weights of the `k` unannotated labels (`unann`, bool) with the lowest
/// probability of absence `xs_neg`, ties to the lower flat index: the first `k` of the
/// tensor path's stable ascending sort, found by `select_nth_unstable` in linear time.
/// `w` is a contiguous CPU tensor of `xs_neg`'s shape and kind that nothing else views.
fn zero_least_absent(w: &Tensor, xs_neg: &Tensor, unann: &Tensor, k: usize) -> Result<()> {
    let xs = xs_neg.f_contiguous()?;
    let unann = unann.f_contiguous()?;
    let (kind, n) = (xs.f_kind()?, xs.numel());
    let matched = w.f_kind()? == kind && unann.f_kind()? == Kind::Bool;
    if !matched || w.numel() != n || unann.numel() != n || !w.is_contiguous() {
        bail!("selective weights: tensors of mismatched kinds or shapes");
    }
    // SAFETY: contiguous CPU tensors of the matched element types, alive for the call (bool
    // storage is one byte, 0 or 1), and `w` is the only view of its storage.
    unsafe {
        let unann = as_slice::<u8>(&unann);
        match kind {
            Kind::Float => zero_lowest(as_mut_slice::<f32>(w), as_slice::<f32>(&xs), unann, k),
            Kind::Double => zero_lowest(as_mut_slice::<f64>(w), as_slice::<f64>(&xs), unann, k),
            other => bail!("selective weights computed in {other:?}"),
        }
    }
    Ok(())
}

fn zero_lowest<T: Copy + Default + Into<f64>>(w: &mut [T], xs: &[T], unann: &[u8], k: usize) {
    // Adding 0.0 turns -0.0 into 0.0, which torch's sort ranks equal to it; `check` refused
    // NaN logits, so `total_cmp` orders these keys as torch does.
    let mut scored: Vec<(f64, usize)> = (0..xs.len())
        .filter(|&i| unann[i] != 0)
        .map(|i| (xs[i].into() + 0.0, i))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return;
    }
    scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for &(_, i) in &scored[..k] {
        w[i] = T::default();
    }
}
