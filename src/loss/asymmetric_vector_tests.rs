//! The explicit-vector asymmetric loss against the scalar kernel it stands in for, on
//! AVX-512 and AVX2 wherever the CPU has them.

use super::asymmetric_block::{Consts, Scratch, BLOCK};
use super::asymmetric_kernel::scalar_hard_targets_one_log as scalar;
use super::asymmetric_vector::{self as vector, Width};
use super::options::AslOptions;
use crate::simd::{level, Level};

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

/// The instruction sets to test: the widest this CPU has, and AVX2 on AVX-512 machines too.
fn widths() -> Vec<Width> {
    match level() {
        Level::Avx512 => vec![Width::Widest, Width::Avx2],
        Level::Avx2 => vec![Width::Widest],
        Level::Baseline => vec![],
    }
}

/// Every specialisation: the presets' exponent pairs and others, clipping or not, the focal
/// weight's gradient or not.
fn options() -> impl Iterator<Item = AslOptions> {
    let pairs = [(1.0, 4.0), (0.0, 4.0), (0.0, 2.0), (3.0, 1.0), (2.0, 0.0)];
    pairs.into_iter().flat_map(|(gp, gn)| {
        [(0.0, false), (0.0, true), (0.05, false), (0.05, true)].map(|(clip, disable)| AslOptions {
            gamma_pos: gp,
            gamma_neg: gn,
            clip,
            disable_torch_grad_focal_loss: disable,
            ..AslOptions::default()
        })
    })
}

/// Asserts the vector block's losses and gradients within 2e-6 of the scalar block's.
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

/// One case of [`vectors_match_the_scalar_kernel`].
fn scratch_case<const CLIP: bool>(o: &AslOptions, n: usize, nan: bool, width: Width) {
    let c = Consts::<f32>::new(o, 0.5);
    let (mut v, mut s) = (block(n as u32, nan), block(n as u32, nan));
    scalar::<f32, CLIP>(&c, &mut s, n, nan);
    assert!(vector::hard_targets_one_log::<CLIP>(
        &c, &mut v, n, nan, width
    ));
    close(&v, &s, n, &format!("{o:?} n {n} {width:?}"));
}

/// The vector path agrees with the scalar one within a few ulp (relative 2e-6, above 1e-24
/// in magnitude) for each specialisation, with NaN logits, and with a partial last vector.
#[test]
fn vectors_match_the_scalar_kernel() {
    for o in options() {
        for (n, nan) in [(BLOCK, false), (77, false), (BLOCK, true)] {
            for width in widths() {
                if o.clip > 0.0 {
                    scratch_case::<true>(&o, n, nan, width);
                } else {
                    scratch_case::<false>(&o, n, nan, width);
                }
            }
        }
    }
}

/// One case of [`inputs_straight_to_the_gradient_match_the_scratch_path`].
fn from_inputs_case<const CLIP: bool>(o: &AslOptions, width: Width) {
    let c = Consts::<f32>::new(o, 0.5);
    let mut s = block(3, false);
    s.w.fill(1.0);
    let (x, mut y) = (s.x, s.y);
    scalar::<f32, CLIP>(&c, &mut s, BLOCK, false);
    let sum: f64 = s.l.iter().map(|&l| l as f64).sum();
    let ignored = y.iter().filter(|&&t| t == -1.0).count() as u32;
    let mut g = [f32::NAN; BLOCK];
    let d = vector::hard_targets_from_inputs::<CLIP>(&c, &x, &y, &mut g, width)
        .expect("a plain block goes straight through");
    let case = format!("{o:?} {width:?}");
    assert_eq!(d.ignored, ignored, "{case}");
    let close_sum = (d.sum - sum).abs() <= 1e-5 * sum.abs();
    assert!(close_sum, "{case}: {} vs {sum}", d.sum);
    for i in 0..BLOCK {
        let ok = (g[i] - s.g[i]).abs() <= 2e-6 * s.g[i].abs().max(1e-24);
        let (xi, yi, gi, si) = (x[i], y[i], g[i], s.g[i]);
        assert!(ok, "grad {i} (x {xi}, y {yi}) {case}: {gi} vs {si}");
    }
    // A block with a NaN logit or a target outside {0, 1, -1} is left to the scratch
    // path, which counts them.
    let mut xn = x;
    xn[BLOCK - 1] = f32::NAN;
    let y5 = y[5];
    for (xs, t) in [(&xn, y5), (&x, 0.5), (&x, 2.0)] {
        y[5] = t;
        let taken = vector::hard_targets_from_inputs::<CLIP>(&c, xs, &y, &mut g, width);
        assert!(taken.is_none(), "target {t} {case}");
    }
}

/// Unit-weighted blocks read straight from `f32` inputs give the scratch path's
/// gradient (within a few ulp), loss sum and count of -1 targets, on AVX-512 and AVX2.
#[test]
fn inputs_straight_to_the_gradient_match_the_scratch_path() {
    for o in options() {
        for width in widths() {
            if o.clip > 0.0 {
                from_inputs_case::<true>(&o, width);
            } else {
                from_inputs_case::<false>(&o, width);
            }
        }
    }
}

/// The whole kernel takes blocks straight from the inputs while they are plain and the
/// scratch path after one that is not: over spans with soft targets, bad targets, NaN
/// logits and -1 targets part-way through, it returns the scratch path's gradient and
/// counts (asking for per-element losses forces that path everywhere).
#[test]
fn the_kernel_counts_alike_whichever_path_a_block_takes() {
    use super::asymmetric_kernel::run;
    let n = 3 * 128 * BLOCK + 77;
    let mut state = 7u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / 16_777_216.0
    };
    let mut x: Vec<f32> = (0..n).map(|_| (next() - 0.5) * 20.0).collect();
    let mut y: Vec<f32> = (0..n)
        .map(|_| match next() {
            r if r < 0.05 => 1.0,
            r if r < 0.97 => 0.0,
            _ => -1.0,
        })
        .collect();
    // In the first span: a soft target, then a NaN logit; in the second, a bad target.
    (y[40 * BLOCK + 3], x[41 * BLOCK + 9]) = (0.25, f32::NAN);
    y[128 * BLOCK + 70 * BLOCK] = 3.0;
    let o = AslOptions::default();
    let (mut g_direct, mut g_scratch) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut losses = vec![0.0f32; n];
    let a = run::<f32, f32>(&o, &x, &y, None, 0.5, Some(&mut g_direct), None);
    let b = run::<f32, f32>(
        &o,
        &x,
        &y,
        None,
        0.5,
        Some(&mut g_scratch),
        Some(&mut losses),
    );
    assert_eq!(
        (a.annotated, a.nan_logits, a.bad_targets),
        (b.annotated, b.nan_logits, b.bad_targets)
    );
    assert_eq!((a.nan_logits, a.bad_targets), (1, 1));
    // The NaN logit's loss is NaN, and so is the sum.
    assert!(a.sum.is_nan() && b.sum.is_nan());
    for i in 0..n {
        let (p, q) = (g_direct[i], g_scratch[i]);
        let ok = (p - q).abs() <= 2e-6 * q.abs().max(1e-24) || (p.is_nan() && q.is_nan());
        assert!(ok, "grad {i} (x {}, y {}): {p} vs {q}", x[i], y[i]);
    }
}
