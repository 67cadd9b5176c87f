//! The asymmetric loss's common case in explicit vectors: hard targets (0, 1, -1), integer
//! exponents, a normal `eps`, `f32` compute: the asymmetric kernel's `hard_targets_one_log`
//! with every intermediate in registers.
//!
//! Why not leave it to LLVM: the auto-vectorised loops pass each intermediate through the
//! stack block and have neither FMA (the baseline build must not change results) nor
//! `vscalefps`, and the kernel is bound by its instruction count. Here one pass per
//! vector computes the loss and gradient; results are within a few ulp of the scalar form.

use crate::vector::{exp_nonpositive, ln_normal, F32s, Isa};

#[cfg(target_arch = "x86_64")]
use crate::vector::{Avx2, Avx512};

use super::asymmetric_block::{Consts, Scratch};

/// `K` for an exponent known only at run time.
const DYNAMIC: u8 = u8::MAX;

/// `b^K` for `K` in 0..=4, or `b^k` for `K = DYNAMIC`.
#[inline(always)]
fn powi<F: F32s, const K: u8>(b: F, k: u8, one: F) -> F {
    match if K == DYNAMIC { k } else { K } {
        0 => one,
        1 => b,
        2 => b * b,
        3 => b * b * b,
        _ => {
            let b2 = b * b;
            b2 * b2
        }
    }
}

/// The elements `[0, n)` of `s` (loss to `s.l`, gradient to `s.g`), with integer exponents
/// `kp` (positives) and `kn` (negatives), fixed at compile time as `KP` and `KN` unless
/// `DYNAMIC`. Lanes past `n` in the last vector compute on whatever the block holds there
/// and are not read.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn hard_targets<
    I: Isa,
    const CLIP: bool,
    const NAN: bool,
    const FOCAL: bool,
    const KP: u8,
    const KN: u8,
>(
    isa: I,
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    (kp, kn): (u8, u8),
) {
    let (zero, one) = (isa.splat(0.0), isa.splat(1.0));
    let (eps, clip) = (isa.splat(c.eps), isa.splat(c.clip));
    let (gp, gn, gf) = (
        isa.splat(c.gp_value),
        isa.splat(c.gn_value),
        isa.splat(c.grad_factor),
    );
    let lanes = I::LANES;
    let inputs = s.x.chunks_exact(lanes).zip(s.y.chunks_exact(lanes));
    let inputs = inputs.zip(s.w.chunks_exact(lanes));
    let outputs = s.l.chunks_exact_mut(lanes).zip(s.g.chunks_exact_mut(lanes));
    for (((xs, ys), ws), (ls, gs)) in inputs.zip(outputs).take(n.div_ceil(lanes)) {
        let (x, y, w) = (isa.load(xs), isa.load(ys), isa.load(ws));
        let sel = I::F::select;
        let t = exp_nonpositive(isa, -x.abs());
        let inv = one / (one + t);
        let ti = t * inv;
        let pos = x.ge(zero);
        let (p, sn) = (sel(pos, inv, ti), sel(pos, ti, inv));
        // A negative's probability `pm` and focal base `q`, with the margin when clipping.
        let (pm, q) = if CLIP {
            (sn + clip, (p - clip).max(zero))
        } else {
            (sn, p)
        };
        let positive = y.eq(one);
        let negative = y.eq(zero);
        let arg = sel(positive, p, pm.min(one));
        // `max` also maps a NaN probability (of a NaN logit, blended below) to eps.
        let lc = ln_normal(isa, arg.max(eps));
        let (wp, wn) = (powi::<_, KP>(sn, kp, one), powi::<_, KN>(q, kn, one));
        // Each element takes one branch, so the branches share their factors: the focal
        // weight `fw`, the log's derivative `d` (along the logit) and the weight's `dw`;
        // the loss is `-fw * lc`, its derivative `-(dw * lc + fw * d)`.
        let fw = sel(positive, wp, sel(negative, wn, zero));
        let psn = p * sn;
        // The clamp passes the gradient where the probability is at least eps.
        let kept = arg.ge(eps);
        let d = if CLIP {
            let dln = sel(!positive & pm.lt(one) & kept, -(psn / pm), zero);
            sel(positive & kept, sn, dln)
        } else {
            sel(kept, sel(positive, sn, -p), zero)
        };
        let g = if FOCAL {
            let dwp = -(gp * p * wp);
            let dwn = if CLIP {
                let kn = if KN == DYNAMIC { kn } else { KN };
                let lower = if kn == 0 {
                    zero
                } else {
                    powi::<_, DYNAMIC>(q, kn - 1, one)
                };
                gn * lower * sel(p.gt(clip), psn, zero)
            } else {
                gn * sn * wn
            };
            let dw = sel(positive, dwp, sel(negative, dwn, zero));
            dw.mul_add(lc, fw * d)
        } else {
            fw * d
        };
        let l = fw * lc;
        let (l, g) = if NAN {
            // The negation below keeps a NaN a NaN.
            let nan = x.is_nan();
            (sel(nan, x, l), sel(nan, x, g))
        } else {
            (l, g)
        };
        let nw = -w;
        (l * nw).store(ls);
        (g * (nw * gf)).store(gs);
    }
}

/// [`hard_targets`] specialised for the exponents of the presets, with a fallback for any
/// other integers and for blocks with NaN logits (rare).
#[inline(always)]
fn on_exponents<I: Isa, const CLIP: bool, const FOCAL: bool>(
    isa: I,
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
    k: (u8, u8),
) {
    const D: u8 = DYNAMIC;
    match (nan, k) {
        (false, (1, 4)) => hard_targets::<I, CLIP, false, FOCAL, 1, 4>(isa, c, s, n, k),
        (false, (0, 4)) => hard_targets::<I, CLIP, false, FOCAL, 0, 4>(isa, c, s, n, k),
        (false, (0, 2)) => hard_targets::<I, CLIP, false, FOCAL, 0, 2>(isa, c, s, n, k),
        (false, _) => hard_targets::<I, CLIP, false, FOCAL, D, D>(isa, c, s, n, k),
        (true, _) => hard_targets::<I, CLIP, true, FOCAL, D, D>(isa, c, s, n, k),
    }
}

/// [`hard_targets`] with or without the focal weight's gradient.
#[inline(always)]
fn on<I: Isa, const CLIP: bool>(
    isa: I,
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
    k: (u8, u8),
) {
    if c.focal != 0.0 {
        on_exponents::<I, CLIP, true>(isa, c, s, n, nan, k)
    } else {
        on_exponents::<I, CLIP, false>(isa, c, s, n, nan, k)
    }
}

/// # Safety
/// The CPU must have AVX-512 (F, VL, DQ, BW) and FMA; the token proves it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
unsafe fn avx512<const CLIP: bool>(
    isa: Avx512,
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
    k: (u8, u8),
) {
    on::<_, CLIP>(isa, c, s, n, nan, k)
}

/// # Safety
/// The CPU must have AVX2 and FMA; the token proves it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const CLIP: bool>(
    isa: Avx2,
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
    k: (u8, u8),
) {
    on::<_, CLIP>(isa, c, s, n, nan, k)
}

/// Runs the block in explicit vectors if the CPU has AVX-512 or AVX2 and both exponents are
/// integers in 0..=4; returns false (having done nothing) otherwise. Not inlined into the
/// kernel: one copy per instruction set serves every input and target dtype.
pub(super) fn hard_targets_one_log<const CLIP: bool>(
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
) -> bool {
    let (Some(kp), Some(kn)) = (c.gp.integer_value(), c.gn.integer_value()) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(isa) = Avx512::detect() {
            // SAFETY: the token exists only where the CPU has the features.
            unsafe { avx512::<CLIP>(isa, c, s, n, nan, (kp, kn)) };
            return true;
        }
        if let Some(isa) = Avx2::detect() {
            // SAFETY: as above.
            unsafe { avx2::<CLIP>(isa, c, s, n, nan, (kp, kn)) };
            return true;
        }
    }
    let _ = (c, s, n, nan, kp, kn);
    false
}

/// [`hard_targets_one_log`] on AVX2 wherever the CPU has it, AVX-512 or not, for tests.
#[cfg(all(test, target_arch = "x86_64"))]
pub(super) fn hard_targets_one_log_avx2<const CLIP: bool>(
    c: &Consts<f32>,
    s: &mut Scratch<f32>,
    n: usize,
    nan: bool,
) -> bool {
    let (Some(isa), Some(kp), Some(kn)) = (
        Avx2::detect_any(),
        c.gp.integer_value(),
        c.gn.integer_value(),
    ) else {
        return false;
    };
    // SAFETY: the token exists only where the CPU has AVX2 and FMA.
    unsafe { avx2::<CLIP>(isa, c, s, n, nan, (kp, kn)) };
    true
}
