//! Checked access to a score matrix and its targets, class by class.

use half::{bf16, f16, slice::HalfFloatSliceExt};
use tch::{Device, Tensor};

use crate::bail;
use crate::error::Result;
use crate::parallel::map_chunks;
use crate::tensor::{
    as_slice, check_targets, check_ternary, first_true, float_kind, same_device, shape_str,
    unravel, with_target_kind, Element,
};

use super::sort::{key_f32, key_f64, Ranked};

/// Classes gathered together: one 64-byte line of `f32` scores per row.
const GROUP: usize = 16;

/// A score element type: sortable keys, and back.
pub trait Score: Element {
    /// Writes the keys of `src` into `dst`; returns whether a NaN was seen.
    fn keys(src: &[Self], dst: &mut [u64]) -> bool;
    /// The score whose key is `key`.
    fn from_key(key: u64) -> f64;
}

fn keys_via_f32(src: &[f32], dst: &mut [u64]) -> bool {
    let mut nan = false;
    for (d, &v) in dst.iter_mut().zip(src) {
        nan |= v.is_nan();
        *d = key_f32(v);
    }
    nan
}

fn f32_from_key(key: u64) -> f64 {
    let b = key as u32;
    f32::from_bits(if b >> 31 == 1 { b & 0x7fff_ffff } else { !b }) as f64
}

macro_rules! half_score {
    ($($t:ty),*) => {$(
        impl Score for $t {
            fn keys(src: &[Self], dst: &mut [u64]) -> bool {
                let mut buf = [0f32; GROUP];
                src.convert_to_f32_slice(&mut buf[..src.len()]);
                keys_via_f32(&buf[..src.len()], dst)
            }
            fn from_key(key: u64) -> f64 {
                f32_from_key(key)
            }
        }
    )*};
}
half_score!(f16, bf16);

impl Score for f32 {
    fn keys(src: &[Self], dst: &mut [u64]) -> bool {
        keys_via_f32(src, dst)
    }
    fn from_key(key: u64) -> f64 {
        f32_from_key(key)
    }
}

impl Score for f64 {
    fn keys(src: &[Self], dst: &mut [u64]) -> bool {
        let mut nan = false;
        for (d, &v) in dst.iter_mut().zip(src) {
            nan |= v.is_nan();
            *d = key_f64(v);
        }
        nan
    }
    fn from_key(key: u64) -> f64 {
        f64::from_bits(if key >> 63 == 1 {
            key & !(1 << 63)
        } else {
            !key
        })
    }
}

/// Scores [N, C] and targets [N, C], checked, contiguous and on the CPU.
pub struct Checked {
    pub scores: Tensor,
    pub targets: Tensor,
    pub rows: usize,
    pub cols: usize,
}

/// The shape of a checked input, shareable across threads (tensors are not `Sync`).
#[derive(Clone, Copy)]
pub struct Dims {
    pub rows: usize,
    pub cols: usize,
}

impl Checked {
    /// Its shape.
    pub fn dims(&self) -> Dims {
        Dims {
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// Checks shapes, dtypes and devices; moves both to contiguous CPU tensors.
pub fn check(scores: &Tensor, targets: &Tensor) -> Result<Checked> {
    float_kind(scores, "scores")?;
    let shape = scores.size();
    if shape.len() != 2 {
        bail!(
            "scores must have shape [num_samples, num_classes], got {}",
            shape_str(&shape)
        );
    }
    check_targets(targets, &shape, "scores")?;
    same_device(targets, "targets", scores, "scores")?;
    if shape[0] == 0 || shape[1] == 0 {
        bail!(
            "scores and targets are empty (shape {}): there is nothing to evaluate",
            shape_str(&shape)
        );
    }
    let scores = scores
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?;
    let targets = targets
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?;
    Ok(Checked {
        scores,
        targets,
        rows: shape[0] as usize,
        cols: shape[1] as usize,
    })
}

/// The error for NaN scores, naming the first.
fn nan_error(scores: &Tensor) -> Result<crate::Error> {
    let first = first_true(&scores.f_isnan()?)?;
    Ok(crate::Error::value(format!(
        "scores contain NaN, the first at index {:?}",
        unravel(first, &scores.size())
    )))
}

/// Ranks every class of a checked input and maps `f` over them, in class order.
///
/// Samples whose target is -1 are left out of their class.
pub fn map_classes<T, F>(c: &Checked, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(&Ranked, &dyn Fn(u64) -> f64) -> T + Sync,
{
    let kind = c.scores.f_kind()?;
    let tkind = c.targets.f_kind()?;
    let groups = c.cols.div_ceil(GROUP);
    let parts = crate::tensor::with_float_kind!(kind, X => with_target_kind!(tkind, Y => {
        // SAFETY: contiguous CPU tensors of these element types, alive for the call.
        let (x, y) = unsafe { (as_slice::<X>(&c.scores), as_slice::<Y>(&c.targets)) };
        let d = c.dims();
        map_chunks(groups, c.rows * c.cols >= 1 << 16, |g| gather_group::<X, Y, T, F>(x, y, d, g, &f))
    }));
    let mut out = Vec::with_capacity(c.cols);
    for part in parts {
        match part {
            GroupResult::Ok(v) => out.extend(v),
            GroupResult::Nan => return Err(nan_error(&c.scores)?),
            GroupResult::BadTarget => {
                check_ternary(&c.targets)?;
                bail!("targets hold a value other than 1, 0 and -1")
            }
        }
    }
    Ok(out)
}

enum GroupResult<T> {
    Ok(Vec<T>),
    Nan,
    BadTarget,
}

fn gather_group<X: Score, Y: Element, T, F>(
    x: &[X],
    y: &[Y],
    c: Dims,
    g: usize,
    f: &F,
) -> GroupResult<T>
where
    F: Fn(&Ranked, &dyn Fn(u64) -> f64) -> T,
{
    let c0 = g * GROUP;
    let width = GROUP.min(c.cols - c0);
    let mut ranked: Vec<Ranked> = (0..width).map(|_| Ranked::default()).collect();
    for r in ranked.iter_mut() {
        r.keys.reserve(c.rows);
        r.labels.reserve(c.rows);
    }
    let (mut keys, mut labels) = ([0u64; GROUP], [0f64; GROUP]);
    for i in 0..c.rows {
        let at = i * c.cols + c0;
        if X::keys(&x[at..at + width], &mut keys[..width]) {
            return GroupResult::Nan;
        }
        Y::to_f64_slice(&y[at..at + width], &mut labels[..width]);
        for j in 0..width {
            let l = labels[j];
            if l == 1.0 || l == 0.0 {
                ranked[j].push(keys[j], l as u8);
            } else if l != -1.0 {
                return GroupResult::BadTarget;
            }
        }
    }
    let from_key = |k: u64| X::from_key(k);
    GroupResult::Ok(
        ranked
            .iter_mut()
            .map(|r| {
                r.sort();
                f(r, &from_key)
            })
            .collect(),
    )
}

/// Checks the inputs, ranks every class and maps `f` over them.
pub fn for_each_class<T: Send>(
    scores: &Tensor,
    targets: &Tensor,
    f: impl Fn(&Ranked) -> T + Sync,
) -> Result<Vec<T>> {
    let c = check(scores, targets)?;
    map_classes(&c, |r, _| f(r))
}
