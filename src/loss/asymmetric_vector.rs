//! The asymmetric loss's common case in explicit vectors: hard targets (0, 1, -1), integer
//! exponents, a normal `eps`, `f32` compute. It is [`super::asymmetric_kernel`]'s
//! `hard_targets_one_log` with every intermediate in registers.
//!
//! Why not leave it to LLVM: the auto-vectorised loops pass each intermediate through the
//! stack block and have neither FMA (the baseline build must not change results) nor
//! `vscalefps`, and the kernel is bound by its instruction count. Here one pass per
//! vector computes the loss and gradient; results are within a few ulp of the scalar form.

use crate::vector::{exp_nonpositive, ln_normal, F32s, Isa};

#[cfg(target_arch = "x86_64")]
use crate::vector::{Avx2, Avx512};

use super::asymmetric_kernel::{Consts, Scratch};

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
fn on<I: Isa, const CLIP: bool, const FOCAL: bool>(
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
    if c.focal != 0.0 {
        on::<_, CLIP, true>(isa, c, s, n, nan, k)
    } else {
        on::<_, CLIP, false>(isa, c, s, n, nan, k)
    }
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
    if c.focal != 0.0 {
        on::<_, CLIP, true>(isa, c, s, n, nan, k)
    } else {
        on::<_, CLIP, false>(isa, c, s, n, nan, k)
    }
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

#[cfg(test)]
mod tests {
    use super::super::asymmetric_kernel::{self as kernel, Consts, Scratch, BLOCK};
    use super::super::options::AslOptions;

    /// A block of logits over [-30, 30] (and some beyond the exp's range), targets 0, 1
    /// and -1, weights in [0, 2]; with `nan`, a few NaN logits.
    fn block(seed: u32, nan: bool) -> Box<Scratch<f32>> {
        let mut s = Scratch::<f32>::new();
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / 16_777_216.0
        };
        for i in 0..BLOCK {
            s.x[i] = (next() - 0.5) * 60.0;
            let r = next();
            s.y[i] = if r < 0.3 {
                1.0
            } else if r < 0.9 {
                0.0
            } else {
                -1.0
            };
            s.w[i] = 2.0 * next();
        }
        (s.x[7], s.x[40], s.x[41]) = (120.0, -95.0, 0.0);
        if nan {
            (s.x[3], s.x[100]) = (f32::NAN, f32::NAN);
        }
        s
    }

    /// The vector path agrees with the scalar one within a few ulp (relative 2e-6, above 1e-24
    /// in magnitude) for each specialisation: exponents of the presets and others, clipping or
    /// not, the focal weight's gradient or not, NaN logits, and a partial last vector.
    #[test]
    fn vectors_match_the_scalar_kernel() {
        for (gp, gn) in [(1.0, 4.0), (0.0, 4.0), (0.0, 2.0), (3.0, 1.0), (2.0, 0.0)] {
            for clip in [0.0, 0.05] {
                for disable in [false, true] {
                    for (n, nan) in [(BLOCK, false), (77, false), (BLOCK, true)] {
                        let o = AslOptions {
                            gamma_pos: gp,
                            gamma_neg: gn,
                            clip,
                            disable_torch_grad_focal_loss: disable,
                            ..AslOptions::default()
                        };
                        let c = Consts::<f32>::new(&o, 0.5);
                        let mut v = block(n as u32, nan);
                        let mut s = block(n as u32, nan);
                        let done = if clip > 0.0 {
                            kernel::scalar_hard_targets_one_log::<true>(&c, &mut s, n, nan);
                            super::hard_targets_one_log::<true>(&c, &mut v, n, nan)
                        } else {
                            kernel::scalar_hard_targets_one_log::<false>(&c, &mut s, n, nan);
                            super::hard_targets_one_log::<false>(&c, &mut v, n, nan)
                        };
                        if !done {
                            // No AVX2 here: nothing to compare.
                            return;
                        }
                        close(
                            &v,
                            &s,
                            n,
                            &format!("gp {gp} gn {gn} clip {clip} disable {disable}"),
                        );
                        // The AVX2 code too, where the dispatch above chose AVX-512.
                        if let Some(isa) = super::Avx2::detect_any() {
                            let mut v2 = block(n as u32, nan);
                            let k = (gp as u8, gn as u8);
                            // SAFETY: the token proves AVX2 and FMA.
                            unsafe {
                                if clip > 0.0 {
                                    super::avx2::<true>(isa, &c, &mut v2, n, nan, k);
                                } else {
                                    super::avx2::<false>(isa, &c, &mut v2, n, nan, k);
                                }
                            }
                            close(&v2, &s, n, &format!("avx2 gp {gp} gn {gn} clip {clip}"));
                        }
                    }
                }
            }
        }
    }

    fn close(v: &Scratch<f32>, s: &Scratch<f32>, n: usize, case: &str) {
        for i in 0..n {
            for (what, a, b) in [("loss", v.l[i], s.l[i]), ("grad", v.g[i], s.g[i])] {
                let ok = (a - b).abs() <= 2e-6 * b.abs().max(1e-24) || (a.is_nan() && b.is_nan());
                assert!(
                    ok,
                    "{what} {i} (x {}, y {}) {case}: {a} vs {b}",
                    s.x[i], s.y[i]
                );
            }
        }
    }
}
