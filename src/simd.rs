//! Runtime choice of instruction set for the `f32` kernels.
//!
//! The kernels are generic, `#[inline(always)]` code; `dispatch` calls them inside a
//! function compiled for the best instruction set the CPU has, so one wheel runs
//! everywhere and still uses AVX-512 where it exists.

use std::sync::OnceLock;

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Avx512,
    Avx2,
    Baseline,
}

/// The widest instruction set this CPU has, of those [`dispatch`] compiles for.
pub(crate) fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

/// The instruction set `dispatch` uses on this CPU, for benchmark reports.
pub fn level_name() -> &'static str {
    match level() {
        Level::Avx512 => "avx512",
        Level::Avx2 => "avx2",
        Level::Baseline => "baseline",
    }
}

/// Runs `f` compiled for AVX-512: [`dispatch`]'s AVX-512 arm, and the explicit-vector
/// kernels' once they hold a [`crate::vector::Avx512`] token.
///
/// # Safety
/// The CPU must have these features: callers call it only after detecting them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c")]
pub(crate) unsafe fn run_avx512<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Runs `f` compiled for AVX2 with FMA, as [`run_avx512`].
///
/// # Safety
/// As [`run_avx512`], for these features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn run_avx2<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Runs `f` compiled for the widest vector instructions available.
///
/// `f` and everything it calls must be `#[inline(always)]` for the wider code to be used.
#[inline(always)]
pub fn dispatch<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each variant runs only when the CPU reports its features.
        match level() {
            Level::Avx512 => return unsafe { run_avx512(f) },
            Level::Avx2 => return unsafe { run_avx2(f) },
            Level::Baseline => {}
        }
    }
    f()
}
