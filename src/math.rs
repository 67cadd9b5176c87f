//! Scalar arithmetic that the fused kernels are generic over.
//!
//! `f32` uses branch-free polynomial `exp` and `ln` (Cephes-style range reduction, about
//! 1 ulp) written so that LLVM vectorises the kernels' inner loops; `libm` calls would keep
//! them scalar. `f64` uses the standard library: it serves gradchecks, not speed.

// `x != x` is the NaN test that LLVM vectorises (`is_nan` is a call in the baseline build),
// and the polynomial constants keep the digits they are published with.
#![allow(clippy::eq_op, clippy::excessive_precision)]

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The floating-point type a kernel computes in.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + AddAssign
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    /// The smallest positive normal value.
    const MIN_POSITIVE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn abs(self) -> Self;
    fn is_nan(self) -> bool;

    /// `ln(1 + t)`, accurate for small `t` (t >= 0).
    #[inline(always)]
    fn ln_1p(self) -> Self {
        let u = Self::ONE + self;
        let d = u - Self::ONE;
        // Goldberg's correction: the rounding error of 1 + t cancels in ln(u) * t / (u - 1).
        if d == Self::ZERO {
            self
        } else {
            u.ln() * (self / d)
        }
    }

    /// `e^x` for `x <= 0` (or NaN); may be faster than [`Real::exp`].
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        self.exp()
    }

    /// `ln(x)` for a normal, positive, finite `x`; may be faster than [`Real::ln`].
    #[inline(always)]
    fn ln_normal(self) -> Self {
        self.ln()
    }

    /// `ln(1 + t)` for `t` in [0, 1]; may be faster than [`Real::ln_1p`].
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        self.ln_1p()
    }

    #[inline(always)]
    fn min(self, other: Self) -> Self {
        if self < other {
            self
        } else {
            other
        }
    }

    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        ln_f32(self)
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        exp_nonpositive_f32(self)
    }
    #[inline(always)]
    fn ln_normal(self) -> Self {
        ln_scaled_f32(self, 0)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        ln_1p_f32(self)
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        ln_1p_unit_f32(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::from_bits(self.to_bits() & 0x7fff_ffff)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self != self
    }
}

/// ln 2 split in two, `LN2_HI` exact in few bits, for the range reductions (Cody-Waite).
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// `exp`'s polynomial: `e^r = 1 + r + r^2 (EXP[0] + EXP[1] r + ... + EXP[5] r^5)`.
pub(crate) const EXP: [f32; 6] = [
    5.000_000_1e-1,
    1.666_666_5e-1,
    4.166_579_6e-2,
    8.333_452e-3,
    1.398_199_9e-3,
    1.987_569_2e-4,
];
/// `ln`'s polynomial: `ln(1 + f) = f - f^2/2 + f^3 (LN[0] + LN[1] f + ... + LN[8] f^8)`.
pub(crate) const LN: [f32; 9] = [
    3.333_333_1e-1,
    -2.499_999_4e-1,
    2.000_071_4e-1,
    -1.666_805_8e-1,
    1.424_932_3e-1,
    -1.242_014_1e-1,
    1.167_699_9e-1,
    -1.151_461e-1,
    7.037_683_6e-2,
];

/// `e^x` for `f32`, branch-free.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let out = exp_clamped_f32(x.clamp(-87.33, 88.37));
    let out = if x < -87.33 { 0.0 } else { out };
    let out = if x > 88.37 { f32::INFINITY } else { out };
    if x != x {
        x
    } else {
        out
    }
}

/// `e^x` for `f32` and `x <= 0`, branch-free: [`exp_f32`] without the overflow checks.
#[inline(always)]
pub fn exp_nonpositive_f32(x: f32) -> f32 {
    let out = exp_clamped_f32(x.max(-87.33));
    let out = if x < -87.33 { 0.0 } else { out };
    if x != x {
        x
    } else {
        out
    }
}

/// `e^x` for `x` in [-87.33, 88.37].
#[inline(always)]
fn exp_clamped_f32(xc: f32) -> f32 {
    // Round to nearest by the 1.5 * 2^23 trick: `round_ties_even` is a libm call
    // without SSE4.1, which would keep the baseline build from vectorising.
    let n = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = xc - n * LN2_HI - n * LN2_LO;
    // Estrin's scheme rather than Horner's: the kernels that call this are bound by the
    // latency of the polynomial's dependency chain, which this halves.
    let r2 = r * r;
    let r4 = r2 * r2;
    let p01 = EXP[0] + EXP[1] * r;
    let p23 = EXP[2] + EXP[3] * r;
    let p45 = EXP[4] + EXP[5] * r;
    let p = (p01 + p23 * r2) + p45 * r4;
    let y = p * r2 + r + 1.0;
    // 2^n from the bits of n + 127 + 2^23, whose low mantissa bits hold n + 127 (in
    // [1, 254] after the clamp): `n as i32` saturates and maps NaN to 0, which LLVM
    // compiles lane by lane, in scalar code, inside the vector loops.
    let scale = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    y * scale
}

/// The polynomial of `ln(1 + f) = f - f^2/2 + f^3 P(f)` for `f` in [sqrt(1/2) - 1, sqrt(2) - 1].
#[inline(always)]
fn ln_poly(f: f32) -> f32 {
    // Estrin's scheme, as in `exp_f32`.
    let f2 = f * f;
    let f4 = f2 * f2;
    let p01 = LN[0] + LN[1] * f;
    let p23 = LN[2] + LN[3] * f;
    let p45 = LN[4] + LN[5] * f;
    let p67 = LN[6] + LN[7] * f;
    let lo = p01 + p23 * f2;
    let hi = p45 + p67 * f2;
    (lo + hi * f4) + LN[8] * (f4 * f4)
}

/// `ln(1 + t)` for `f32` and `t` in [0, 1] (the range of `exp(-|x|)` in log-sigmoid):
/// branch-free, with neither a division nor the rounded sum `1 + t`.
#[inline(always)]
pub fn ln_1p_unit_f32(t: f32) -> f32 {
    let big = t > std::f32::consts::SQRT_2 - 1.0;
    // For t above sqrt(2) - 1, 1 + t = 2 (1 + f) with f = (t - 1) / 2.
    let f = if big { (t - 1.0) * 0.5 } else { t };
    let z = f * f;
    let r = f + (f * z * ln_poly(f) - 0.5 * z);
    if big {
        r + std::f32::consts::LN_2
    } else {
        r
    }
}

/// `ln(1 + t)` for `f32` and any `t >= 0`.
#[inline(always)]
pub fn ln_1p_f32(t: f32) -> f32 {
    let r = ln_1p_unit_f32(t);
    if t > 1.0 || t != t {
        // Outside the unit interval: the general (slower) route, rare in the kernels.
        let u = 1.0 + t;
        ln_f32(u) * (t / (u - 1.0))
    } else {
        r
    }
}

/// Natural logarithm for `f32`, branch-free; `ln(0) = -inf`, negative input gives NaN.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let tiny = x < f32::MIN_POSITIVE;
    let xs = if tiny { x * 8_388_608.0 } else { x };
    let out = ln_scaled_f32(xs, if tiny { 23 } else { 0 });
    let out = if x == 0.0 { f32::NEG_INFINITY } else { out };
    let out = if x == f32::INFINITY { x } else { out };
    if x < 0.0 || x != x {
        f32::NAN
    } else {
        out
    }
}

/// `ln(xs) - scale * ln(2)` for a normal, positive, finite `xs`.
#[inline(always)]
fn ln_scaled_f32(xs: f32, scale: i32) -> f32 {
    // Offsetting the bits by those of sqrt(1/2) splits `xs = 2^e (1 + m)` with `1 + m` in
    // [sqrt(1/2), sqrt(2)) by integer arithmetic alone: no compare and select per element.
    const SQRT_HALF_BITS: i32 = 0x3f35_04f3;
    let ix = (xs.to_bits() as i32).wrapping_sub(SQRT_HALF_BITS);
    let e = (ix >> 23) - scale;
    let m = f32::from_bits(((ix & 0x007f_ffff) + SQRT_HALF_BITS) as u32) - 1.0;
    let z = m * m;
    let ef = e as f32;
    let y = m * z * ln_poly(m) + ef * LN2_LO - 0.5 * z;
    m + y + ef * LN2_HI
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    #[test]
    fn exp_matches_std_to_two_ulp() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp_f32(x), want));
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(200.0), f32::INFINITY);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn the_narrow_exp_and_ln_equal_the_general_ones_on_their_ranges() {
        let mut x = -100.0f32;
        while x <= 0.0 {
            assert_eq!(
                exp_nonpositive_f32(x).to_bits(),
                exp_f32(x).to_bits(),
                "exp({x})"
            );
            x += 0.000_913;
        }
        assert_eq!(exp_nonpositive_f32(0.0), 1.0);
        assert!(exp_nonpositive_f32(f32::NAN).is_nan());
        let mut bits = f32::MIN_POSITIVE.to_bits();
        while bits < f32::MAX.to_bits() {
            let x = f32::from_bits(bits);
            assert_eq!(x.ln_normal().to_bits(), ln_f32(x).to_bits(), "ln({x})");
            bits += 1009;
        }
    }

    #[test]
    fn ln_matches_std_to_two_ulp() {
        let mut worst = 0;
        // Walk the bit patterns, so denormals are covered and the loop always advances.
        let mut bits = 1u32;
        while bits < 0x7f00_0000 {
            let x = f32::from_bits(bits);
            let want = (x as f64).ln() as f32;
            worst = worst.max(ulps(ln_f32(x), want));
            bits += 997;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(1.0), 0.0);
        assert!(ln_f32(-1.0).is_nan());
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn ln_1p_matches_std_on_the_unit_interval() {
        let mut worst = 0;
        let mut bits = 1u32;
        while bits <= 1.0f32.to_bits() {
            let t = f32::from_bits(bits);
            let want = (t as f64).ln_1p() as f32;
            worst = worst.max(ulps(ln_1p_unit_f32(t), want));
            bits += 101;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(ln_1p_unit_f32(0.0), 0.0);
    }

    #[test]
    fn ln_1p_is_accurate_for_tiny_and_large_arguments() {
        for &t in &[1e-30f32, 1e-10, 1e-7, 3e-4, 0.5, 1.0, 3.0, 1e6] {
            let want = (t as f64).ln_1p();
            let got = Real::ln_1p(t) as f64;
            assert!(((got - want) / want).abs() < 3e-7, "t={t}: {got} vs {want}");
        }
    }
}
