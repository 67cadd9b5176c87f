//! The fused CPU kernel of the asymmetric loss: one pass over the logits and targets that
//! writes the per-element gradient and returns the loss sum, with no autograd intermediates.
//!
//! Data are processed in blocks of `BLOCK` elements, converted to the compute type in
//! stack arrays and run through a few short, branch-free loops (so that LLVM vectorises
//! them); loop-invariant choices (gamma values, clipping) are hoisted out of the loops.

use crate::math::Real;
use crate::parallel::{map_chunks, SendPtr};
use crate::simd;
use crate::tensor::{ComputeIo, Element, FloatElement};

use super::asymmetric_block::{Consts, Pow, Scratch, BLOCK};
use super::asymmetric_vector::{self, Width};
use super::options::AslOptions;

/// Elements per parallel task; fixed so that sums do not depend on the thread count.
const CHUNK: usize = 128 * BLOCK;

/// What one pass counted, besides the gradient it wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Sum of the (class-weighted) per-element losses.
    pub sum: f64,
    /// Number of targets other than -1.
    pub annotated: u64,
    /// Number of NaN logits.
    pub nan_logits: u64,
    /// Number of targets that are neither -1 nor in [0, 1].
    pub bad_targets: u64,
}

impl Stats {
    fn add(mut self, o: Stats) -> Stats {
        self.sum += o.sum;
        self.annotated += o.annotated;
        self.nan_logits += o.nan_logits;
        self.bad_targets += o.bad_targets;
        self
    }
}

/// Sum with 16 independent accumulators, so that the loop vectorises.
#[inline(always)]
fn block_sum<R: Real>(v: &[R]) -> f64 {
    let mut acc = [R::ZERO; 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..16 {
            acc[k] += c[k];
        }
    }
    let mut total = 0.0f64;
    for a in acc {
        total += a.to_f64();
    }
    for &r in rest {
        total += r.to_f64();
    }
    total
}

/// `log(max(p, eps))` and its derivative in x, from `lsp = log p` and `sn = 1 - p`.
#[inline(always)]
fn positive_log<R: Real>(c: &Consts<R>, lsp: R, sn: R) -> (R, R) {
    (
        lsp.max(c.log_eps),
        if lsp >= c.log_eps { sn } else { R::ZERO },
    )
}

/// For a negative: `log(max(p_m, eps))` with `p_m = min(1 - p + clip, 1)`, its derivative
/// in x, and the derivative of `q = 1 - p_m` in x.
#[inline(always)]
fn negative_log<R: Real, const CLIP: bool>(c: &Consts<R>, p: R, sn: R, lsn: R) -> (R, R, R) {
    let le = c.log_eps;
    if CLIP {
        let pm_raw = sn + c.clip;
        let pm = pm_raw.min(R::ONE);
        let lpm = pm.ln();
        let dln = if pm_raw < R::ONE && lpm >= le {
            -(p * sn) / pm
        } else {
            R::ZERO
        };
        let dq = if p > c.clip { p * sn } else { R::ZERO };
        (lpm.max(le), dln, dq)
    } else {
        (lsn.max(le), if lsn >= le { -p } else { R::ZERO }, p * sn)
    }
}

/// Counts of the targets of a block: soft (in (0, 1)), ignored (-1), invalid; NaN logits.
#[derive(Default)]
struct Census {
    soft: u32,
    ignored: u32,
    bad: u32,
    nan: u32,
}

/// The block's census. Most blocks hold only targets 0 and 1 and no NaN logit: one scan
/// with two comparisons per element says so, and only other blocks count in full.
#[inline(always)]
fn census<R: Real>(s: &Scratch<R>, n: usize) -> Census {
    let mut plain = 0u32;
    for i in 0..n {
        let y = s.y[i];
        plain += ((y == R::ZERO || y == R::ONE) && !s.x[i].is_nan()) as u32;
    }
    if plain == n as u32 {
        return Census::default();
    }
    let mut c = Census::default();
    for i in 0..n {
        let y = s.y[i];
        let hard = y == R::ZERO || y == R::ONE;
        let ign = y == -R::ONE;
        let in_between = y > R::ZERO && y < R::ONE;
        c.soft += in_between as u32;
        c.ignored += ign as u32;
        c.bad += !(hard || ign || in_between) as u32;
        c.nan += s.x[i].is_nan() as u32;
    }
    c
}

/// `p`, `sigmoid(-x)`, both log-sigmoids and the focal base `q` of each logit, sharing one
/// `exp(-|x|)`.
#[inline(always)]
fn sigmoids<R: Real, const CLIP: bool>(c: &Consts<R>, s: &mut Scratch<R>, n: usize) {
    for i in 0..n {
        let x = s.x[i];
        let t = (-x.abs()).exp();
        let inv = R::ONE / (R::ONE + t);
        let pos = x >= R::ZERO;
        let p = if pos { inv } else { t * inv };
        s.p[i] = p;
        s.sn[i] = if pos { t * inv } else { inv };
        let l1 = t.ln_1p_unit();
        s.lsp[i] = x.min(R::ZERO) - l1;
        s.lsn[i] = (-x).min(R::ZERO) - l1;
        s.q[i] = if CLIP { (p - c.clip).max(R::ZERO) } else { p };
    }
}

/// Targets 0, 1 and -1 only: each element takes the positive or the negative branch, and
/// the focal weights are computed for whole rows at once (integer exponents by
/// multiplication).
#[inline(always)]
fn hard_targets<R: Real, const CLIP: bool>(c: &Consts<R>, s: &mut Scratch<R>, n: usize) {
    if CLIP && matches!(c.gn, Pow::Real(_)) {
        for i in 0..n {
            s.lq[i] = s.q[i].ln();
        }
    }
    let (gp, gn, focal) = (c.gp_value, c.gn_value, c.focal);
    c.gp.apply(&s.sn[..n], &s.lsn[..n], &mut s.wp[..n]);
    let log_q = if CLIP { &s.lq[..n] } else { &s.lsp[..n] };
    c.gn.apply(&s.q[..n], log_q, &mut s.wn[..n]);
    if CLIP {
        c.gn.apply_lower(&s.q[..n], &s.wn[..n], &mut s.wn1[..n]);
    }
    for i in 0..n {
        let (x, y, p, sn) = (s.x[i], s.y[i], s.p[i], s.sn[i]);
        let (wp, wn) = (s.wp[i], s.wn[i]);
        let (lp, dlp) = positive_log(c, s.lsp[i], sn);
        let (ln, dln, dq) = negative_log::<R, CLIP>(c, p, sn, s.lsn[i]);
        let dwp = focal * (-gp * p * wp);
        let dwn = if CLIP {
            focal * gn * s.wn1[i] * dq
        } else {
            focal * gn * sn * wn
        };
        let lpos = -(wp * lp);
        let gpos = -(dwp * lp + wp * dlp);
        let lneg = -(wn * ln);
        let gneg = -(dwn * ln + wn * dln);
        let (l, g) = if y == R::ONE {
            (lpos, gpos)
        } else if y == R::ZERO {
            (lneg, gneg)
        } else {
            (R::ZERO, R::ZERO)
        };
        let (l, g) = if x.is_nan() { (x, x) } else { (l, g) };
        s.l[i] = l * s.w[i];
        s.g[i] = g * (s.w[i] * c.grad_factor);
    }
}

/// Targets 0, 1 and -1 with integer exponents and a normal `eps`: an element needs the log
/// of one probability only (`p` for a positive, the shifted `1 - p` for a negative), so one
/// `ln` replaces the two log-sigmoids. It is the official code's log of the probability
/// clamped at `eps`, so its argument is a normal number; `eps = 0` needs the log-sigmoids,
/// whose logs stay finite.
///
/// The work is split into short loops (exp; sigmoid; ln; focal weights; the rest) through
/// the scratch block: one loop with the whole chain is bound by its latency, as out-of-order
/// execution overlaps too few of its iterations; short loops overlap many. The exponents'
/// `match` is hoisted out of the loops ([`Pow::apply`]), a block without NaN logits skips
/// their blend (`NAN`), and without `FOCAL` (`disable_torch_grad_focal_loss`, as the ASL
/// preset) the focal weights' derivatives are not computed.
#[inline(always)]
fn hard_targets_one_log<R: Real, const CLIP: bool, const NAN: bool, const FOCAL: bool>(
    c: &Consts<R>,
    s: &mut Scratch<R>,
    n: usize,
) {
    let (gp, gn) = (c.gp_value, c.gn_value);
    for i in 0..n {
        s.lsn[i] = (-s.x[i].abs()).exp_nonpositive();
    }
    for i in 0..n {
        let (x, t) = (s.x[i], s.lsn[i]);
        let inv = R::ONE / (R::ONE + t);
        let pos = x >= R::ZERO;
        let p = if pos { inv } else { t * inv };
        let sn = if pos { t * inv } else { inv };
        // A negative's probability `pm` and focal base `q`, with the margin when clipping.
        let (pm_raw, q) = if CLIP {
            (sn + c.clip, (p - c.clip).max(R::ZERO))
        } else {
            (sn, p)
        };
        s.p[i] = p;
        s.sn[i] = sn;
        s.q[i] = q;
        s.pm[i] = pm_raw;
        s.lq[i] = if s.y[i] == R::ONE {
            p
        } else {
            pm_raw.min(R::ONE)
        };
    }
    for i in 0..n {
        // `max` also maps a NaN probability (of a NaN logit, reported below) to eps.
        s.lsp[i] = s.lq[i].max(c.eps).ln_normal();
    }
    // The logs are not read: integer exponents multiply.
    c.gp.apply(&s.sn[..n], &s.lsn[..n], &mut s.wp[..n]);
    c.gn.apply(&s.q[..n], &s.lsn[..n], &mut s.wn[..n]);
    if CLIP && FOCAL {
        c.gn.apply_lower(&s.q[..n], &s.wn[..n], &mut s.wn1[..n]);
    }
    for i in 0..n {
        let (x, y, p, sn, lc) = (s.x[i], s.y[i], s.p[i], s.sn[i], s.lsp[i]);
        let (wp, wn) = (s.wp[i], s.wn[i]);
        let psn = p * sn;
        // The clamp passes the gradient where the probability is at least eps.
        let kept = s.lq[i] >= c.eps;
        let dwp = if FOCAL { -gp * p * wp } else { R::ZERO };
        let (dwn, dln) = if CLIP {
            let pm_raw = s.pm[i];
            let dln = if pm_raw < R::ONE && kept {
                -psn / pm_raw
            } else {
                R::ZERO
            };
            let dwn = if FOCAL {
                gn * s.wn1[i] * if p > c.clip { psn } else { R::ZERO }
            } else {
                R::ZERO
            };
            (dwn, dln)
        } else {
            let dwn = if FOCAL { gn * sn * wn } else { R::ZERO };
            (dwn, if kept { -p } else { R::ZERO })
        };
        let dlp = if kept { sn } else { R::ZERO };
        let (l, g) = if y == R::ONE {
            (-(wp * lc), -(dwp * lc + wp * dlp))
        } else if y == R::ZERO {
            (-(wn * lc), -(dwn * lc + wn * dln))
        } else {
            (R::ZERO, R::ZERO)
        };
        let (l, g) = if NAN && x.is_nan() { (x, x) } else { (l, g) };
        s.l[i] = l * s.w[i];
        s.g[i] = g * (s.w[i] * c.grad_factor);
    }
}

/// The scalar [`hard_targets_one_log`] with its specialisation chosen at run time: for
/// blocks the vector form does not take, and to test that form against.
#[inline(always)]
pub(super) fn scalar_hard_targets_one_log<R: Real, const CLIP: bool>(
    c: &Consts<R>,
    s: &mut Scratch<R>,
    n: usize,
    nan: bool,
) {
    match (nan, c.focal != R::ZERO) {
        (false, false) => hard_targets_one_log::<R, CLIP, false, false>(c, s, n),
        (false, true) => hard_targets_one_log::<R, CLIP, false, true>(c, s, n),
        (true, false) => hard_targets_one_log::<R, CLIP, true, false>(c, s, n),
        (true, true) => hard_targets_one_log::<R, CLIP, true, true>(c, s, n),
    }
}

/// Some soft targets in (0, 1): both branches mixed as the official code mixes them, with
/// the focal weight `b^gamma` computed per element.
#[inline(always)]
fn soft_targets<R: Real, const CLIP: bool>(c: &Consts<R>, s: &mut Scratch<R>, n: usize) {
    let (gp, gn, focal) = (c.gp_value, c.gn_value, c.focal);
    for i in 0..n {
        let (x, y, p, sn, q) = (s.x[i], s.y[i], s.p[i], s.sn[i], s.q[i]);
        let ny = R::ONE - y;
        let b = y * sn + ny * q;
        let gam = gp * y + gn * ny;
        let w = if b > R::ZERO {
            (gam * b.ln()).exp()
        } else if gam == R::ZERO {
            R::ONE
        } else {
            R::ZERO
        };
        let (lp, dlp) = positive_log(c, s.lsp[i], sn);
        let (ln, dln, dq) = negative_log::<R, CLIP>(c, p, sn, s.lsn[i]);
        let db = ny * dq - y * p * sn;
        let dw = if b > R::ZERO {
            focal * gam * w * db / b
        } else {
            R::ZERO
        };
        let big_l = y * lp + ny * ln;
        let d_big_l = y * dlp + ny * dln;
        let (l, g) = if y == -R::ONE {
            (R::ZERO, R::ZERO)
        } else {
            (-(w * big_l), -(dw * big_l + w * d_big_l))
        };
        let (l, g) = if x.is_nan() { (x, x) } else { (l, g) };
        s.l[i] = l * s.w[i];
        s.g[i] = g * (s.w[i] * c.grad_factor);
    }
}

/// The compute types' route to [`asymmetric_vector`], the explicit-vector form of
/// [`hard_targets_one_log`]: `f32` takes it, other types keep the defaults (nothing done).
pub(crate) trait Vectorised: Real {
    /// Runs [`hard_targets_one_log`]'s block in explicit vectors where this type and the
    /// CPU have them; false (nothing done) otherwise.
    #[inline(always)]
    fn hard_targets_vector<const CLIP: bool>(
        _c: &Consts<Self>,
        _s: &mut Scratch<Self>,
        _n: usize,
        _nan: bool,
    ) -> bool {
        false
    }

    /// A block from logits `x` and targets `y` straight to the gradient `g`, unweighted and
    /// without per-element losses, where the storage types are `f32`, the CPU has vectors and
    /// the block is plain (targets 0, 1 and -1, no NaN logit): its loss sum and targets -1.
    /// `None` otherwise, `g` then to be overwritten.
    #[inline(always)]
    fn hard_targets_from_inputs<X: Element, Y: Element, const CLIP: bool>(
        _c: &Consts<Self>,
        _x: &[X],
        _y: &[Y],
        _g: &mut [X],
    ) -> Option<(f64, u32)> {
        None
    }
}

impl Vectorised for f32 {
    #[inline(always)]
    fn hard_targets_vector<const CLIP: bool>(
        c: &Consts<f32>,
        s: &mut Scratch<f32>,
        n: usize,
        nan: bool,
    ) -> bool {
        asymmetric_vector::hard_targets_one_log::<CLIP>(c, s, n, nan, Width::Widest)
    }

    #[inline(always)]
    fn hard_targets_from_inputs<X: Element, Y: Element, const CLIP: bool>(
        c: &Consts<f32>,
        x: &[X],
        y: &[Y],
        g: &mut [X],
    ) -> Option<(f64, u32)> {
        let (x, y, g) = (X::as_f32(x)?, Y::as_f32(y)?, X::as_f32_mut(g)?);
        let d = asymmetric_vector::hard_targets_from_inputs::<CLIP>(c, x, y, g, Width::Widest)?;
        Some((d.sum, d.ignored))
    }
}

/// `f64` has no explicit-vector form: its blocks take the scalar kernel.
impl Vectorised for f64 {}

/// Loss and gradient of the first `n` elements of the scratch block.
#[inline(always)]
fn block<R: Vectorised, const CLIP: bool>(c: &Consts<R>, s: &mut Scratch<R>, n: usize) -> Stats {
    let counts = census(s, n);
    if counts.soft == 0 && c.one_log {
        let nan = counts.nan != 0;
        if !R::hard_targets_vector::<CLIP>(c, s, n, nan) {
            scalar_hard_targets_one_log::<R, CLIP>(c, s, n, nan);
        }
    } else if counts.soft == 0 {
        sigmoids::<R, CLIP>(c, s, n);
        hard_targets::<R, CLIP>(c, s, n);
    } else {
        sigmoids::<R, CLIP>(c, s, n);
        soft_targets::<R, CLIP>(c, s, n);
    }
    Stats {
        sum: block_sum(&s.l[..n]),
        annotated: (n as u32 - counts.ignored) as u64,
        nan_logits: counts.nan as u64,
        bad_targets: counts.bad as u64,
    }
}

/// Runs the flat range `[start, start + len)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn span<X: FloatElement, Y: Element, const CLIP: bool>(
    c: &Consts<X::Compute>,
    x: &[X],
    y: &[Y],
    class_weight: Option<&[X::Compute]>,
    start: usize,
    grad: Option<&mut [X]>,
    mut loss: Option<&mut [X::Compute]>,
) -> Stats
where
    X::Compute: Vectorised,
{
    let mut s = Scratch::<X::Compute>::new();
    let mut stats = Stats::default();
    let mut grad = grad;
    // Blocks skip the scratch arrays while they are plain; after one that is not, the
    // span's data are likely not (soft targets, say), and the rest take the scratch path.
    let mut direct = class_weight.is_none() && loss.is_none() && c.one_log;
    let mut off = 0;
    while off < x.len() {
        let n = BLOCK.min(x.len() - off);
        if let (true, Some(g)) = (direct, grad.as_deref_mut()) {
            let (xs, ys, gs) = (&x[off..off + n], &y[off..off + n], &mut g[off..off + n]);
            if let Some((sum, ignored)) =
                X::Compute::hard_targets_from_inputs::<X, Y, CLIP>(c, xs, ys, gs)
            {
                stats = stats.add(Stats {
                    sum,
                    annotated: (n as u32 - ignored) as u64,
                    ..Stats::default()
                });
                off += n;
                continue;
            }
            direct = false;
        }
        X::Compute::load(&x[off..off + n], &mut s.x[..n]);
        X::Compute::load(&y[off..off + n], &mut s.y[..n]);
        if let Some(w) = class_weight {
            let mut col = (start + off) % w.len();
            for slot in &mut s.w[..n] {
                *slot = w[col];
                col += 1;
                if col == w.len() {
                    col = 0;
                }
            }
        }
        stats = stats.add(block::<X::Compute, CLIP>(c, &mut s, n));
        if let Some(g) = grad.as_deref_mut() {
            X::from_compute(&s.g[..n], &mut g[off..off + n]);
        }
        if let Some(l) = loss.as_deref_mut() {
            l[off..off + n].copy_from_slice(&s.l[..n]);
        }
        off += n;
    }
    stats
}

/// Computes the loss sum (and optionally per-element losses and gradients) of `x`
/// against `y`, both flat row-major arrays of rows of `class_weight.len()` (or any)
/// columns. `class_weight` is indexed by flat position modulo its length; gradients
/// are multiplied by `grad_factor`.
pub fn run<X: FloatElement, Y: Element>(
    opts: &AslOptions,
    x: &[X],
    y: &[Y],
    class_weight: Option<&[X::Compute]>,
    grad_factor: f64,
    grad: Option<&mut [X]>,
    loss: Option<&mut [X::Compute]>,
) -> Stats
where
    X::Compute: Vectorised,
{
    let c = Consts::<X::Compute>::new(opts, grad_factor);
    let total = x.len();
    let chunks = total.div_ceil(CHUNK);
    let grad_ptr = grad.map(|g| SendPtr(g.as_mut_ptr()));
    let loss_ptr = loss.map(|l| SendPtr(l.as_mut_ptr()));
    let clip = opts.clip > 0.0;
    let parts = map_chunks(chunks, total >= 2 * CHUNK, |k| {
        let start = k * CHUNK;
        let len = CHUNK.min(total - start);
        // SAFETY: chunks are disjoint ranges of buffers of length `total`.
        let g = grad_ptr.map(|p| unsafe { p.slice_mut(start, len) });
        let l = loss_ptr.map(|p| unsafe { p.slice_mut(start, len) });
        let (xs, ys) = (&x[start..start + len], &y[start..start + len]);
        simd::dispatch(
            #[inline(always)]
            || {
                if clip {
                    span::<X, Y, true>(&c, xs, ys, class_weight, start, g, l)
                } else {
                    span::<X, Y, false>(&c, xs, ys, class_weight, start, g, l)
                }
            },
        )
    });
    parts.into_iter().fold(Stats::default(), Stats::add)
}
