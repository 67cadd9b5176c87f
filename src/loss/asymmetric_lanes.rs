//! The asymmetric loss's common case, one vector at a time: hard targets (0, 1, -1),
//! integer exponents, a normal `eps`, `f32` compute; the asymmetric kernel's
//! `hard_targets_one_log` with every intermediate in registers. [`super::asymmetric_vector`]
//! picks the instruction set and the specialisation.
//!
//! Why not leave it to LLVM: the auto-vectorised loops pass each intermediate through the
//! stack block and have neither FMA (the baseline build must not change results) nor
//! `vscalefps`, and the kernel is bound by its instruction count. Here one pass per
//! vector computes the loss and gradient; results are within a few ulp of the scalar form.

use crate::vector::{exp_nonpositive, ln_normal, F32s, Isa, Lanes};

use super::asymmetric_block::{Consts, Scratch};

/// `K` for an exponent known only at run time.
pub(super) const DYNAMIC: u8 = u8::MAX;

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

/// The options as vectors, made once per call.
#[derive(Clone, Copy)]
struct Splats<F> {
    zero: F,
    one: F,
    eps: F,
    clip: F,
    gp: F,
    gn: F,
    gf: F,
}

impl<F: F32s> Splats<F> {
    #[inline(always)]
    fn new<I: Isa<F = F>>(isa: I, c: &Consts<f32>) -> Self {
        Splats {
            zero: isa.splat(0.0),
            one: isa.splat(1.0),
            eps: isa.splat(c.eps),
            clip: isa.splat(c.clip),
            gp: isa.splat(c.gp_value),
            gn: isa.splat(c.gn_value),
            gf: isa.splat(c.grad_factor),
        }
    }
}

/// One vector's loss and gradient along the logit, both negated and unweighted, for logits
/// `x` and targets `y` (0, 1, or anything else for no loss), with integer exponents `kp`
/// (positives) and `kn` (negatives), fixed at compile time as `KP` and `KN` unless
/// `DYNAMIC`.
#[inline(always)]
fn element<I: Isa, const CLIP: bool, const FOCAL: bool, const KP: u8, const KN: u8>(
    isa: I,
    v: &Splats<I::F>,
    (kp, kn): (u8, u8),
    x: I::F,
    y: I::F,
) -> (I::F, I::F) {
    let Splats {
        zero,
        one,
        eps,
        clip,
        gp,
        gn,
        ..
    } = *v;
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
    // `max` also maps a NaN probability (of a NaN logit, blended by the caller) to eps.
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
    (fw * lc, g)
}

/// The elements `[0, n)` of `s` (loss to `s.l`, gradient to `s.g`). Lanes past `n` in the
/// last vector compute on whatever the block holds there and are not read.
#[inline(always)]
pub(super) fn hard_targets<
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
    k: (u8, u8),
) {
    let v = Splats::new(isa, c);
    let lanes = I::LANES;
    let inputs = s.x.chunks_exact(lanes).zip(s.y.chunks_exact(lanes));
    let inputs = inputs.zip(s.w.chunks_exact(lanes));
    let outputs = s.l.chunks_exact_mut(lanes).zip(s.g.chunks_exact_mut(lanes));
    for (((xs, ys), ws), (ls, gs)) in inputs.zip(outputs).take(n.div_ceil(lanes)) {
        let (x, y, w) = (isa.load(xs), isa.load(ys), isa.load(ws));
        let (l, g) = element::<I, CLIP, FOCAL, KP, KN>(isa, &v, k, x, y);
        let (l, g) = if NAN {
            // The negation below keeps a NaN a NaN.
            let nan = x.is_nan();
            (I::F::select(nan, x, l), I::F::select(nan, x, g))
        } else {
            (l, g)
        };
        let nw = -w;
        (l * nw).store(ls);
        (g * (nw * v.gf)).store(gs);
    }
}

/// What [`hard_targets_direct`] counted of a block it took.
pub(super) struct Direct {
    /// The sum of the losses.
    pub(super) sum: f64,
    /// Targets -1.
    pub(super) ignored: u32,
}

/// A block straight from `f32` logits and targets to the gradient `g`, without the scratch
/// block and the census: for unit class weights and no per-element losses. `None` if the
/// block holds a NaN logit or a target other than 0, 1 and -1 (the scratch path counts and
/// reports those); `g` then holds partial results, to be overwritten.
#[inline(always)]
pub(super) fn hard_targets_direct<
    I: Isa,
    const CLIP: bool,
    const FOCAL: bool,
    const KP: u8,
    const KN: u8,
>(
    isa: I,
    c: &Consts<f32>,
    x: &[f32],
    y: &[f32],
    g: &mut [f32],
    k: (u8, u8),
) -> Option<Direct> {
    let v = Splats::new(isa, c);
    let lanes = I::LANES;
    let (minus_one, minus_gf) = (isa.splat(-1.0), -v.gf);
    // Per-lane tallies, counted once at the end: a lane's count of -1 targets stays far
    // below 2^24, so the `f32` sum is exact.
    let (mut sum, mut ignored, mut odd) = (v.zero, v.zero, v.zero.lt(v.zero));
    for ((xs, ys), gs) in x
        .chunks_exact(lanes)
        .zip(y.chunks_exact(lanes))
        .zip(g.chunks_exact_mut(lanes))
    {
        let (x, y) = (isa.load(xs), isa.load(ys));
        let (l, d) = element::<I, CLIP, FOCAL, KP, KN>(isa, &v, k, x, y);
        let skip = y.eq(minus_one);
        ignored = ignored + I::F::select(skip, v.one, v.zero);
        odd = odd | !(y.eq(v.zero) | y.eq(v.one) | skip) | x.is_nan();
        sum = sum - l;
        (d * minus_gf).store(gs);
    }
    let ignored = isa.sum_f64(ignored) as u32;
    let odd = odd.count();
    (odd == 0).then(|| Direct {
        sum: isa.sum_f64(sum),
        ignored,
    })
}
