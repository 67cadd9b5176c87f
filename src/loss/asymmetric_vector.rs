//! The explicit-vector form of the asymmetric loss's common case (see
//! [`super::asymmetric_lanes`]): the choice of instruction set and of the specialisation
//! for the exponents, and the kernel's two ways in, through the scratch block or straight
//! from `f32` inputs.

#[cfg(target_arch = "x86_64")]
use crate::simd;
use crate::vector::Isa;
#[cfg(target_arch = "x86_64")]
use crate::vector::{Avx2, Avx512};

use super::asymmetric_block::{Consts, Scratch};
use super::asymmetric_lanes::{hard_targets, hard_targets_direct, Direct, DYNAMIC};

/// A loop over a block's vectors, to be run with its options fixed at compile time.
trait Pass {
    type Out;
    /// Whether the exponents must stay dynamic: the rare blocks need no specialisation.
    fn rare(&self) -> bool;
    fn run<I: Isa, const CLIP: bool, const FOCAL: bool, const KP: u8, const KN: u8>(
        self,
        isa: I,
        c: &Consts<f32>,
        k: (u8, u8),
    ) -> Self::Out;
}

/// [`hard_targets`] over the scratch block's first `n` elements.
struct InScratch<'a> {
    s: &'a mut Scratch<f32>,
    n: usize,
    nan: bool,
}

impl Pass for InScratch<'_> {
    type Out = ();
    fn rare(&self) -> bool {
        self.nan
    }
    #[inline(always)]
    fn run<I: Isa, const CLIP: bool, const FOCAL: bool, const KP: u8, const KN: u8>(
        self,
        isa: I,
        c: &Consts<f32>,
        k: (u8, u8),
    ) {
        if self.nan {
            hard_targets::<I, CLIP, true, FOCAL, KP, KN>(isa, c, self.s, self.n, k)
        } else {
            hard_targets::<I, CLIP, false, FOCAL, KP, KN>(isa, c, self.s, self.n, k)
        }
    }
}

/// [`hard_targets_direct`] over `f32` inputs and gradient of a whole number of vectors.
struct FromInputs<'a> {
    x: &'a [f32],
    y: &'a [f32],
    g: &'a mut [f32],
}

impl Pass for FromInputs<'_> {
    type Out = Option<Direct>;
    fn rare(&self) -> bool {
        false
    }
    #[inline(always)]
    fn run<I: Isa, const CLIP: bool, const FOCAL: bool, const KP: u8, const KN: u8>(
        self,
        isa: I,
        c: &Consts<f32>,
        k: (u8, u8),
    ) -> Option<Direct> {
        hard_targets_direct::<I, CLIP, FOCAL, KP, KN>(isa, c, self.x, self.y, self.g, k)
    }
}

/// `pass` specialised for the exponents of the presets, with a fallback for any other
/// integers and for rare blocks, and with or without the focal weight's gradient.
#[inline(always)]
fn specialised<I: Isa, P: Pass, const CLIP: bool>(
    isa: I,
    c: &Consts<f32>,
    pass: P,
    k: (u8, u8),
) -> P::Out {
    const D: u8 = DYNAMIC;
    let focal = c.focal != 0.0;
    match (pass.rare(), k, focal) {
        (false, (1, 4), true) => pass.run::<I, CLIP, true, 1, 4>(isa, c, k),
        (false, (1, 4), false) => pass.run::<I, CLIP, false, 1, 4>(isa, c, k),
        (false, (0, 4), true) => pass.run::<I, CLIP, true, 0, 4>(isa, c, k),
        (false, (0, 4), false) => pass.run::<I, CLIP, false, 0, 4>(isa, c, k),
        (false, (0, 2), true) => pass.run::<I, CLIP, true, 0, 2>(isa, c, k),
        (false, (0, 2), false) => pass.run::<I, CLIP, false, 0, 2>(isa, c, k),
        (_, _, true) => pass.run::<I, CLIP, true, D, D>(isa, c, k),
        (_, _, false) => pass.run::<I, CLIP, false, D, D>(isa, c, k),
    }
}

/// Which instruction set [`vectors`] runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Width {
    /// The widest the CPU has, as [`crate::simd::dispatch`] picks it.
    Widest,
    /// AVX2 wherever the CPU has it, AVX-512 or not: tests run the AVX2 code with it.
    #[cfg_attr(not(test), allow(dead_code))]
    Avx2,
}

/// Runs `pass` in explicit vectors if the CPU has AVX-512 or AVX2 (as `width` says) and both
/// exponents are integers in 0..=4; `None` (having done nothing) otherwise. Not inlined
/// into the kernel: one copy per instruction set serves every input and target dtype.
fn vectors<P: Pass, const CLIP: bool>(c: &Consts<f32>, pass: P, width: Width) -> Option<P::Out> {
    let (Some(kp), Some(kn)) = (c.gp.integer_value(), c.gn.integer_value()) else {
        return None;
    };
    #[cfg(target_arch = "x86_64")]
    {
        let avx2_token = match width {
            Width::Widest => Avx2::detect(),
            Width::Avx2 => Avx2::detect_any(),
        };
        let k = (kp, kn);
        // SAFETY (both arms): a token exists only where the CPU has the features that the
        // function compiles for (`simd::level` or `Avx2::detect_any` detected them).
        match (Avx512::detect(), avx2_token) {
            (_, Some(isa)) => {
                return Some(unsafe {
                    simd::run_avx2(
                        #[inline(always)]
                        || specialised::<_, P, CLIP>(isa, c, pass, k),
                    )
                });
            }
            (Some(isa), None) => {
                return Some(unsafe {
                    simd::run_avx512(
                        #[inline(always)]
                        || specialised::<_, P, CLIP>(isa, c, pass, k),
                    )
                });
            }
            (None, None) => {}
        }
    }
    let _ = (c, pass, kp, kn, width);
    None
}

/// The scratch block's first `n` elements in explicit vectors where [`vectors`] can; false
/// (nothing done) otherwise. `nan`: some logits are NaN.
pub(super) fn hard_targets_one_log<const CLIP: bool>(
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
    width: Width,
) -> bool {
    vectors::<_, CLIP>(c, InScratch { s, n, nan }, width).is_some()
}

/// A block from `f32` logits `x` and targets `y` straight to the gradient `g` (equal
/// lengths) where [`vectors`] can and the block is plain (see [`hard_targets_direct`]); `None`
/// otherwise, `g` then to be overwritten. Its length must be a whole number of vectors of
/// every instruction set (16 lanes).
pub(super) fn hard_targets_from_inputs<const CLIP: bool>(
    c: &Consts<f32>,
    x: &[f32],
    y: &[f32],
    g: &mut [f32],
    width: Width,
) -> Option<Direct> {
    if !x.len().is_multiple_of(16) || y.len() != x.len() || g.len() != x.len() {
        return None;
    }
    vectors::<_, CLIP>(c, FromInputs { x, y, g }, width).flatten()
}
