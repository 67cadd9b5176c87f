//! Typed views of CPU tensor storage and the argument checks shared by the kernels.

use std::any::TypeId;

use half::{bf16, f16, slice::HalfFloatSliceExt};
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::math::Real;

/// An element type that a kernel can read, converting blocks to its compute type.
pub trait Element: Copy + Send + Sync + 'static {
    /// Converts `src` into `dst` (equal lengths).
    fn to_f32_slice(src: &[Self], dst: &mut [f32]);
    /// Converts `src` into `dst` (equal lengths).
    fn to_f64_slice(src: &[Self], dst: &mut [f64]);
    /// `src` itself if this type is `f32` (`None` for every other type): kernels read it
    /// without a conversion.
    #[inline(always)]
    fn as_f32(src: &[Self]) -> Option<&[f32]> {
        // SAFETY: only where `Self` is `f32`, so the same memory, length and lifetime hold
        // the same type (test `as_f32_is_the_f32_storage_itself`).
        (TypeId::of::<Self>() == TypeId::of::<f32>())
            .then(|| unsafe { std::slice::from_raw_parts(src.as_ptr().cast(), src.len()) })
    }
    /// `dst` itself if this type is `f32`, as [`Element::as_f32`].
    #[inline(always)]
    fn as_f32_mut(dst: &mut [Self]) -> Option<&mut [f32]> {
        // SAFETY: as in `as_f32`; the borrow of `dst` moves into the result.
        (TypeId::of::<Self>() == TypeId::of::<f32>())
            .then(|| unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast(), dst.len()) })
    }
}

/// A floating element type that a kernel can also write (logits and their gradient).
pub trait FloatElement: Element {
    /// The type the kernels compute in for this storage type.
    type Compute: Real + ComputeIo;
    /// Converts `src` into `dst` (equal lengths).
    fn from_compute(src: &[Self::Compute], dst: &mut [Self]);
}

/// Block loads from any [`Element`] into a compute type.
pub trait ComputeIo: Sized {
    /// Converts `src` into `dst` (equal lengths).
    fn load<E: Element>(src: &[E], dst: &mut [Self]);
}

impl ComputeIo for f32 {
    #[inline(always)]
    fn load<E: Element>(src: &[E], dst: &mut [f32]) {
        E::to_f32_slice(src, dst)
    }
}

impl ComputeIo for f64 {
    #[inline(always)]
    fn load<E: Element>(src: &[E], dst: &mut [f64]) {
        E::to_f64_slice(src, dst)
    }
}

macro_rules! plain_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            #[inline(always)]
            fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s as f32;
                }
            }
            #[inline(always)]
            fn to_f64_slice(src: &[Self], dst: &mut [f64]) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s as f64;
                }
            }
        }
    )*};
}
plain_element!(u8, i8, i16, i32, i64, f32, f64);

impl Element for bool {
    #[inline(always)]
    fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
        u8::to_f32_slice(bool_bytes(src), dst)
    }
    #[inline(always)]
    fn to_f64_slice(src: &[Self], dst: &mut [f64]) {
        u8::to_f64_slice(bool_bytes(src), dst)
    }
}

/// `b` as the bytes it is made of (0 or 1 each).
fn bool_bytes(b: &[bool]) -> &[u8] {
    // SAFETY: a bool is one byte holding 0 or 1, which is a valid u8; same length and lifetime.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), b.len()) }
}

macro_rules! half_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            #[inline(always)]
            fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
                src.convert_to_f32_slice(dst)
            }
            #[inline(always)]
            fn to_f64_slice(src: &[Self], dst: &mut [f64]) {
                src.convert_to_f64_slice(dst)
            }
        }
        impl FloatElement for $t {
            type Compute = f32;
            #[inline(always)]
            fn from_compute(src: &[f32], dst: &mut [Self]) {
                dst.convert_from_f32_slice(src)
            }
        }
    )*};
}
half_element!(f16, bf16);

impl FloatElement for f32 {
    type Compute = f32;
    #[inline(always)]
    fn from_compute(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }
}

impl FloatElement for f64 {
    type Compute = f64;
    #[inline(always)]
    fn from_compute(src: &[f64], dst: &mut [f64]) {
        dst.copy_from_slice(src)
    }
}

/// One `match` arm per listed group of tensor kinds, binding `$t` to their Rust element type,
/// then any further arms.
macro_rules! kind_dispatch {
    ($kind:expr, $t:ident => $body:expr; $($($k:ident)|+ => $ty:ty),+; $($rest:tt)*) => {
        match $kind {
            $( $(tch::Kind::$k)|+ => {
                type $t = $ty;
                $body
            } )+
            $($rest)*
        }
    };
}
pub(crate) use kind_dispatch;

/// Calls `$body` with `$t` bound to the Rust type of a floating tensor kind.
macro_rules! with_float_kind {
    ($kind:expr, $t:ident => $body:expr) => {
        $crate::tensor::kind_dispatch!($kind, $t => $body;
            Half => half::f16, BFloat16 => half::bf16, Float => f32, Double => f64;
            other => unreachable!("with_float_kind called with {other:?}"),
        )
    };
}
pub(crate) use with_float_kind;

/// Calls `$body` with `$t` bound to the Rust type of a target tensor kind.
macro_rules! with_target_kind {
    ($kind:expr, $t:ident => $body:expr) => {
        $crate::tensor::kind_dispatch!($kind, $t => $body;
            Bool | Uint8 => u8, Int8 => i8, Int16 => i16, Int => i32, Int64 => i64;
            other => $crate::tensor::with_float_kind!(other, $t => $body),
        )
    };
}
pub(crate) use with_target_kind;

/// The user-facing name of a tensor kind, as torch prints it.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Uint8 => "torch.uint8",
        Kind::Int8 => "torch.int8",
        Kind::Int16 => "torch.int16",
        Kind::Int => "torch.int32",
        Kind::Int64 => "torch.int64",
        Kind::Half => "torch.float16",
        Kind::Float => "torch.float32",
        Kind::Double => "torch.float64",
        Kind::Bool => "torch.bool",
        Kind::BFloat16 => "torch.bfloat16",
        _ => "an unsupported dtype",
    }
}

/// Whether `t` is a meta tensor: shape and dtype without memory.
///
/// tch reports every device type it has no variant for (meta, xpu, ...) as `Mps`; of those,
/// only a meta tensor has elements but no data pointer.
pub fn is_meta(t: &Tensor) -> bool {
    t.device() == Device::Mps && t.numel() > 0 && matches!(try_data_ptr(t), Ok(p) if p.is_null())
}

/// The address of `t`'s data, or an error for a tensor without storage (a batched or
/// wrapped tensor of `torch.vmap` and `torch.func`): tch's `data_ptr` panics there.
pub fn try_data_ptr(t: &Tensor) -> Result<*mut std::ffi::c_void> {
    // SAFETY: a live tensor handle; libtorch's error, if any, is taken and freed right after.
    let ptr = unsafe { torch_sys::at_data_ptr(t.as_ptr() as *mut _) };
    let err = unsafe { torch_sys::get_and_reset_last_err() };
    if err.is_null() {
        return Ok(ptr);
    }
    // SAFETY: a NUL-terminated message that libtorch allocated with malloc, freed once.
    let msg = unsafe { std::ffi::CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { libc::free(err.cast()) };
    let first = msg.lines().next().unwrap_or_default().to_string();
    Err(crate::Error::Torch(first))
}

/// Whether Rust may read `t`'s memory directly: a CPU tensor with storage (not a meta, fake,
/// batched or wrapped one).
pub fn host_readable(t: &Tensor) -> bool {
    t.device() == Device::Cpu && (t.numel() == 0 || try_data_ptr(t).is_ok_and(|p| !p.is_null()))
}

/// The user-facing name of the device `t` lives on.
pub fn device_label(t: &Tensor) -> String {
    match t.device() {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Vulkan => "vulkan".into(),
        Device::Mps if is_meta(t) => "meta".into(),
        Device::Mps => "mps (or another device q2l cannot name)".into(),
    }
}

/// A `Value` error for a meta tensor `name`: these functions read tensor data.
pub fn check_has_data(t: &Tensor, name: &str) -> Result<()> {
    if is_meta(t) {
        crate::bail!(
            "{name} is a meta tensor (shape and dtype, no data): this function reads values; pass a \
             cpu or cuda tensor"
        );
    }
    Ok(())
}

/// Whether `kind` is a floating kind the kernels support.
pub fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
    )
}

/// Whether `kind` can hold targets (bool, integer or floating).
pub fn is_target_kind(kind: Kind) -> bool {
    is_float(kind)
        || matches!(
            kind,
            Kind::Bool | Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
        )
}

/// The kind of `t`, or a `Value` error naming the argument when it is not floating.
pub fn float_kind(t: &Tensor, name: &str) -> Result<Kind> {
    kind_where(
        t,
        name,
        is_float,
        "a floating tensor (float16, bfloat16, float32 or float64)",
    )
}

/// Checks that `targets` has `shape` (that of `of`, e.g. "logits") and a target dtype.
pub fn check_targets(targets: &Tensor, shape: &[i64], of: &str) -> Result<Kind> {
    if targets.size() != shape {
        crate::bail!(
            "targets must have the shape of {of} {}, got {}",
            shape_str(shape),
            shape_str(&targets.size())
        );
    }
    kind_where(
        targets,
        "targets",
        is_target_kind,
        "a bool, integer or floating tensor",
    )
}

/// The kind of `t` (which must have data) where `ok` holds, else an error saying it must be `want`.
fn kind_where(t: &Tensor, name: &str, ok: fn(Kind) -> bool, want: &str) -> Result<Kind> {
    check_has_data(t, name)?;
    let kind = t.f_kind()?;
    if !ok(kind) {
        crate::bail!("{name} must be {want}, got {}", kind_name(kind));
    }
    Ok(kind)
}

/// Checks that `t` (argument `name`) lives on the device of `reference` (argument `other`).
pub fn same_device(t: &Tensor, name: &str, reference: &Tensor, other: &str) -> Result<()> {
    if t.device() != reference.device() || is_meta(t) != is_meta(reference) {
        crate::bail!(
            "{name} is on {} but {other} is on {}; move both to the same device",
            device_label(t),
            device_label(reference)
        );
    }
    Ok(())
}

/// Formats a shape the way torch prints it.
pub fn shape_str(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Multi-dimensional index of flat position `flat` in a row-major `shape`.
pub fn unravel(mut flat: usize, shape: &[i64]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        let d = d.max(1) as usize;
        idx[i] = flat % d;
        flat /= d;
    }
    idx
}

/// Checks that every target is 1 (present), 0 (absent) or -1 (ignored), naming the first
/// that is not: the check of ternary target tensors on any device (the losses'); host
/// arrays have [`crate::array::Matrix::ternary`].
pub fn check_ternary(targets: &Tensor) -> Result<()> {
    let first = first_where(
        targets,
        |y| y != 0.0 && y != 1.0 && y != -1.0,
        |t| {
            let t = t.f_to_kind(Kind::Double)?;
            Ok(t.f_eq(0.0)?
                .f_logical_or(&t.f_eq(1.0)?)?
                .f_logical_or(&t.f_eq(-1.0)?)?)
        },
    )?;
    let Some(first) = first else {
        return Ok(());
    };
    let value = targets
        .f_flatten(0, -1)?
        .f_to_kind(Kind::Double)?
        .f_double_value(&[first as i64])?;
    Err(ternary_error(value, &unravel(first, &targets.size())))
}

/// The error for a target `value` outside {1, 0, -1} at index `at`.
pub fn ternary_error(value: f64, at: &[usize]) -> crate::Error {
    crate::Error::value(format!(
        "targets must be 1, 0 or -1 (ignored); found {value} at index {at:?}"
    ))
}

/// Checks that the floating tensor `t` (argument `name`, any device) holds no NaN or
/// infinity, naming the first.
pub fn check_finite(t: &Tensor, name: &str) -> Result<()> {
    let first = first_where(t, |v| !v.is_finite(), |t| Ok(t.f_isfinite()?))?;
    match first {
        None => Ok(()),
        Some(i) => crate::bail!(
            "{name} must be finite; found a NaN or infinity at index {:?}",
            unravel(i, &t.size())
        ),
    }
}

/// Checks that `t` (argument `name`, a small tensor such as class priors, on any device)
/// holds probabilities: finite, in [0, 1], naming the first that is not.
pub fn check_probabilities(t: &Tensor, name: &str) -> Result<()> {
    float_kind(t, name)?;
    let host = t.f_detach()?.f_to_device(Device::Cpu)?;
    let bad = |p: f64| !(0.0..=1.0).contains(&p);
    let Some(first) = first_in_blocks(&host, bad)? else {
        return Ok(());
    };
    let value = host
        .f_flatten(0, -1)?
        .f_to_kind(Kind::Double)?
        .f_double_value(&[first as i64])?;
    // Shown as the tensor holds it: -0.2 in float32, not -0.20000000298023224.
    let shown = if t.f_kind()? == Kind::Double {
        value.to_string()
    } else {
        (value as f32).to_string()
    };
    let percent = if value > 1.0 && value <= 100.0 {
        " (percentages? divide by 100)"
    } else {
        ""
    };
    crate::bail!(
        "{name} must be probabilities in [0, 1]; found {shown} at index {:?}{percent}",
        unravel(first, &t.size())
    )
}

/// The flat index of the first element of `t` (any device) that is bad: on the CPU one
/// pass in blocks testing `bad` (counted without branches, so that it vectorises), where
/// libtorch ops would take several and a copy; elsewhere the first `false` of the mask
/// `ok` builds.
fn first_where(
    t: &Tensor,
    bad: impl Fn(f64) -> bool,
    ok: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Option<usize>> {
    if in_blocks(t)? {
        return first_in_blocks(t, bad);
    }
    let ok = ok(t)?;
    if ok.f_all()?.f_int64_value(&[])? != 0 {
        return Ok(None);
    }
    Ok(Some(first_true(&ok.f_logical_not()?)?))
}

/// Whether a float tensor holds a NaN; on the CPU in one pass of Rust, which (unlike a
/// libtorch op) leaves no OpenMP threads spinning beside the fused kernels that follow.
pub fn has_nan(x: &Tensor) -> Result<bool> {
    if !in_blocks(x)? {
        return Ok(x.f_isnan()?.f_any()?.f_int64_value(&[])? != 0);
    }
    Ok(first_in_blocks(x, f64::is_nan)?.is_some())
}

/// Whether [`first_in_blocks`] reads `t`: a CPU tensor of an element type it knows.
fn in_blocks(t: &Tensor) -> Result<bool> {
    use Kind::*;
    let known = matches!(
        t.f_kind()?,
        Bool | Uint8 | Int8 | Int16 | Int | Int64 | Half | BFloat16 | Float | Double
    );
    Ok(known && host_readable(t))
}

/// The flat index of the first element of a CPU tensor for which `bad` holds; `t` must
/// pass [`in_blocks`].
fn first_in_blocks(t: &Tensor, bad: impl Fn(f64) -> bool) -> Result<Option<usize>> {
    const BLOCK: usize = 1024;
    let t = t.f_contiguous()?;
    let kind = t.f_kind()?;
    Ok(with_target_kind!(kind, Y => {
        // SAFETY: `t` is a contiguous CPU tensor of element type `Y`, alive for the call.
        let ys = unsafe { as_slice::<Y>(&t) };
        let mut buf = [0f64; BLOCK];
        let mut found = None;
        for (b, chunk) in ys.chunks(BLOCK).enumerate() {
            let v = &mut buf[..chunk.len()];
            Y::to_f64_slice(chunk, v);
            if v.iter().map(|&y| bad(y) as u32).sum::<u32>() > 0 {
                found = v.iter().position(|&y| bad(y)).map(|i| b * BLOCK + i);
                break;
            }
        }
        found
    }))
}

/// Flat index of the first `true` in a boolean mask (0 when there is none).
pub fn first_true(mask: &Tensor) -> Result<usize> {
    let flat = mask.f_flatten(0, -1)?.f_to_kind(Kind::Uint8)?;
    Ok(flat.f_argmax(0, false)?.f_int64_value(&[])? as usize)
}

/// Read-only view of a contiguous CPU tensor's storage.
///
/// # Safety
/// `t` must be contiguous, on the CPU, and of the element type `E`; the view must not
/// outlive the tensor nor overlap a mutable view.
pub unsafe fn as_slice<E>(t: &Tensor) -> &[E] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr() as *const E, n)
}

/// Mutable view of a contiguous CPU tensor's storage.
///
/// # Safety
/// As [`as_slice`], and no other view of the storage may exist.
#[allow(clippy::mut_from_ref)]
pub unsafe fn as_mut_slice<E>(t: &Tensor) -> &mut [E] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut E, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_f32` and `as_f32_mut` give an `f32` slice's own memory, every element, and
    /// nothing for other types, 4-byte `i32` included.
    #[test]
    fn as_f32_is_the_f32_storage_itself() {
        let mut v: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let whole = f32::as_f32(&v).expect("f32 is f32");
        assert_eq!((whole.as_ptr(), whole.len()), (v.as_ptr(), v.len()));
        assert_eq!(whole.iter().sum::<f32>(), v.iter().sum::<f32>());
        let part = f32::as_f32_mut(&mut v[3..]).expect("f32 is f32");
        part.iter_mut().for_each(|e| *e = -*e);
        assert_eq!((v[2], v[3], v[36]), (1.0, -1.5, -18.0));
        assert!(i32::as_f32(&[1, 2]).is_none());
        assert!(f64::as_f32_mut(&mut [1.0]).is_none());
        assert!(u8::as_f32(&[1]).is_none() && bool::as_f32(&[true]).is_none());
    }

    #[test]
    fn the_block_checks_find_the_first_bad_element_in_every_dtype() {
        for kind in [
            Kind::Int8,
            Kind::Int64,
            Kind::Half,
            Kind::BFloat16,
            Kind::Float,
            Kind::Double,
        ] {
            let t = Tensor::zeros([4, 700], (kind, Device::Cpu)).fill_(-1.0);
            assert!(check_ternary(&t).is_ok(), "{kind:?}");
            // Past the first 1,024-element block, and a second bad value after it.
            let _ = t.get(2).get(100).fill_(2.0);
            let _ = t.get(3).get(5).fill_(3.0);
            let err = check_ternary(&t).unwrap_err().to_string();
            assert!(err.contains("found 2 at index [2, 100]"), "{kind:?}: {err}");
        }
        let flags = Tensor::ones([3000], (Kind::Bool, Device::Cpu));
        assert!(check_ternary(&flags).is_ok());
        for kind in [Kind::Half, Kind::BFloat16, Kind::Float, Kind::Double] {
            let x = Tensor::zeros([2500], (kind, Device::Cpu));
            assert!(!has_nan(&x).unwrap(), "{kind:?}");
            let _ = x.get(2400).fill_(f64::NAN);
            assert!(has_nan(&x).unwrap(), "{kind:?}");
        }
        // A non-contiguous view is read in its logical order.
        let t = Tensor::zeros([50, 40], (Kind::Float, Device::Cpu));
        let _ = t.get(3).get(1).fill_(0.5);
        let err = check_ternary(&t.tr()).unwrap_err().to_string();
        assert!(err.contains("found 0.5 at index [1, 3]"), "{err}");
    }
}
