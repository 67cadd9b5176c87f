//! Checked access to a score matrix and its targets, class by class.

use half::{bf16, f16, slice::HalfFloatSliceExt};
use ndarray::{s, ArrayView2};

use crate::error::Result;
use crate::parallel::map_chunks;
use crate::tensor::Element;

use crate::array::{row_slice, with_matrix, with_scores, Inputs};

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

/// Writes `key(v)` of each score into `dst`; returns whether a NaN was seen.
#[inline(always)]
fn keys_with<T: Copy>(src: &[T], dst: &mut [u64], key: fn(T) -> u64, nan: fn(T) -> bool) -> bool {
    let mut seen = false;
    for (d, &v) in dst.iter_mut().zip(src) {
        seen |= nan(v);
        *d = key(v);
    }
    seen
}

fn keys_via_f32(src: &[f32], dst: &mut [u64]) -> bool {
    keys_with(src, dst, key_f32, f32::is_nan)
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
        keys_with(src, dst, key_f64, f64::is_nan)
    }
    fn from_key(key: u64) -> f64 {
        f64::from_bits(if key >> 63 == 1 {
            key & !(1 << 63)
        } else {
            !key
        })
    }
}

/// Ranks every class of checked inputs and maps `f` over them, in class order.
///
/// Samples whose target is -1 are left out of their class.
pub fn map_classes<T, F>(inputs: &Inputs<'_>, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(&Ranked, &dyn Fn(u64) -> f64) -> T + Sync,
{
    let groups = inputs.cols.div_ceil(GROUP);
    let big = inputs.rows * inputs.cols >= 1 << 16;
    let parts = with_scores!(inputs.scores, x: X => with_matrix!(inputs.targets, y: Y => {
        map_chunks(groups, big, |g| gather_group::<X, Y, T, F>(x, y, g, &f))
    }));
    let mut out = Vec::with_capacity(inputs.cols);
    for part in parts {
        match part {
            GroupResult::Ok(v) => out.extend(v),
            GroupResult::Nan => return Err(inputs.nan_error()),
            GroupResult::BadTarget => return Err(inputs.target_error()),
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
    x: ArrayView2<'_, X>,
    y: ArrayView2<'_, Y>,
    g: usize,
    f: &F,
) -> GroupResult<T>
where
    F: Fn(&Ranked, &dyn Fn(u64) -> f64) -> T,
{
    let (rows, cols) = x.dim();
    let c0 = g * GROUP;
    let width = GROUP.min(cols - c0);
    let mut ranked: Vec<Ranked> = (0..width).map(|_| Ranked::default()).collect();
    for r in ranked.iter_mut() {
        r.keys.reserve(rows);
        r.labels.reserve(rows);
    }
    let (mut keys, mut labels) = ([0u64; GROUP], [0f64; GROUP]);
    let (mut xbuf, mut ybuf) = (Vec::new(), Vec::new());
    let block = s![.., c0..c0 + width];
    for (xr, yr) in x.slice(block).rows().into_iter().zip(y.slice(block).rows()) {
        if X::keys(row_slice(xr, &mut xbuf), &mut keys[..width]) {
            return GroupResult::Nan;
        }
        Y::to_f64_slice(row_slice(yr, &mut ybuf), &mut labels[..width]);
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

/// Ranks every class of checked inputs and maps `f` over them.
pub fn for_each_class<T: Send>(
    inputs: &Inputs<'_>,
    f: impl Fn(&Ranked) -> T + Sync,
) -> Result<Vec<T>> {
    map_classes(inputs, |r, _| f(r))
}
