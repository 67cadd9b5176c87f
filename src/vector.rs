//! Explicit `f32` vectors for the kernels whose auto-vectorised form is bound by instruction
//! count: AVX-512 (16 lanes) and AVX2 with FMA (8 lanes) behind one trait.
//!
//! A vector can only be made through its instruction set's token ([`Avx512`], [`Avx2`]),
//! and a token only where the CPU has the features ([`Avx512::detect`]); so every method is
//! safe. Code written over [`Isa`] must be `#[inline(always)]` and run inside
//! [`crate::simd::dispatch`], so that the intrinsics inline into a function compiled for
//! the features; elsewhere they are calls, correct but slow.
//!
//! Beyond what LLVM finds in scalar loops, these give fused multiply-add, `vscalefps` for
//! `2^n`, and mask registers; [`exp_nonpositive`] and [`ln_normal`] are the vector forms of
//! [`crate::math`]'s functions of the same names (same polynomials, with FMA: within 2 ulp
//! of them).

use std::ops::{Add, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

use crate::math::{EXP, LN, LN2_HI, LN2_LO};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// An instruction set: a token that proves the CPU has it, and its vector types.
pub trait Isa: Copy {
    /// `f32` lanes.
    type F: F32s<Mask = Self::M>;
    /// One bit (or lane) per `f32` lane.
    type M: Lanes;
    /// Lanes per vector.
    const LANES: usize;
    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::F;
    /// The first [`Isa::LANES`] values of `s` (panics if `s` is shorter).
    fn load(self, s: &[f32]) -> Self::F;
    /// The lanes' sum in `f64`, added in lane order.
    #[inline(always)]
    fn sum_f64(self, v: Self::F) -> f64 {
        let mut lanes = [0.0f32; 16];
        v.store(&mut lanes);
        lanes[..Self::LANES].iter().fold(0.0, |t, &l| t + l as f64)
    }
}

/// A mask: one truth value per lane of a vector.
pub trait Lanes: Copy + BitAnd<Output = Self> + BitOr<Output = Self> + Not<Output = Self> {
    /// The number of true lanes.
    fn count(self) -> u32;
}

/// A vector of `f32` lanes; comparisons are ordered (false where a lane is NaN).
pub trait F32s:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    type Mask: Copy;
    /// Writes the lanes to the start of `out` (panics if `out` is shorter).
    fn store(self, out: &mut [f32]);
    /// `self * a + b`, rounded once.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `b - self * a`, rounded once.
    fn neg_mul_add(self, a: Self, b: Self) -> Self;
    /// Lane-wise minimum; `other` where a lane is NaN.
    fn min(self, other: Self) -> Self;
    /// Lane-wise maximum; `other` where a lane is NaN.
    fn max(self, other: Self) -> Self;
    fn abs(self) -> Self;
    fn lt(self, other: Self) -> Self::Mask;
    fn gt(self, other: Self) -> Self::Mask;
    fn ge(self, other: Self) -> Self::Mask;
    fn eq(self, other: Self) -> Self::Mask;
    /// NaN lanes.
    fn is_nan(self) -> Self::Mask;
    /// `if mask { a } else { b }` per lane.
    fn select(mask: Self::Mask, a: Self, b: Self) -> Self;
    /// Rounded to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// `self * 2^n` for integral `n` in [-126, 127].
    fn scale_pow2(self, n: Self) -> Self;
    /// For a normal, positive, finite `x = 2^e (1 + m)` with `1 + m` in [sqrt(1/2),
    /// sqrt(2)): `(e, m)`.
    fn split_exponent(self) -> (Self, Self);
}

/// `e^x` for `x <= 0` (or NaN): [`crate::math::exp_nonpositive_f32`] in vectors; 0 below
/// -87.33, and NaN lanes give an unspecified value.
#[inline(always)]
pub fn exp_nonpositive<I: Isa>(isa: I, x: I::F) -> I::F {
    let lo = isa.splat(-87.33);
    let xc = x.max(lo);
    let n = (xc * isa.splat(std::f32::consts::LOG2_E)).round();
    let r = n.neg_mul_add(isa.splat(LN2_HI), xc);
    let r = n.neg_mul_add(isa.splat(LN2_LO), r);
    let r2 = r * r;
    let r4 = r2 * r2;
    let c = |i: usize| isa.splat(EXP[i]);
    let p01 = r.mul_add(c(1), c(0));
    let p23 = r.mul_add(c(3), c(2));
    let p45 = r.mul_add(c(5), c(4));
    let p = p23.mul_add(r2, p01);
    let p = p45.mul_add(r4, p);
    let y = p.mul_add(r2, r) + isa.splat(1.0);
    I::F::select(x.lt(lo), isa.splat(0.0), y.scale_pow2(n))
}

/// `ln(x)` for a normal, positive, finite `x`: [`crate::math`]'s `ln_normal` in vectors.
#[inline(always)]
pub fn ln_normal<I: Isa>(isa: I, x: I::F) -> I::F {
    let (e, m) = x.split_exponent();
    let m2 = m * m;
    let m4 = m2 * m2;
    let c = |i: usize| isa.splat(LN[i]);
    let p01 = m.mul_add(c(1), c(0));
    let p23 = m.mul_add(c(3), c(2));
    let p45 = m.mul_add(c(5), c(4));
    let p67 = m.mul_add(c(7), c(6));
    let lo = p23.mul_add(m2, p01);
    let hi = p67.mul_add(m2, p45);
    let poly = hi.mul_add(m4, lo);
    let poly = (m4 * m4).mul_add(c(8), poly);
    let y = (m * m2).mul_add(poly, e * isa.splat(LN2_LO));
    let y = m2.neg_mul_add(isa.splat(0.5), y);
    e.mul_add(isa.splat(LN2_HI), m + y)
}

macro_rules! binary_ops {
    ($t:ident, $add:ident, $sub:ident, $mul:ident, $div:ident) => {
        impl Add for $t {
            type Output = Self;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: a value of this type exists only where the CPU has its features.
                $t(unsafe { $add(self.0, o.0) })
            }
        }
        impl Sub for $t {
            type Output = Self;
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $t(unsafe { $sub(self.0, o.0) })
            }
        }
        impl Mul for $t {
            type Output = Self;
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $t(unsafe { $mul(self.0, o.0) })
            }
        }
        impl Div for $t {
            type Output = Self;
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $t(unsafe { $div(self.0, o.0) })
            }
        }
    };
}

/// Proof that the CPU has AVX-512 (F, VL, DQ, BW), FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx512(());

#[cfg(target_arch = "x86_64")]
impl Avx512 {
    /// The token, where [`crate::simd::dispatch`] runs AVX-512 code.
    pub fn detect() -> Option<Self> {
        (crate::simd::level() == crate::simd::Level::Avx512).then_some(Avx512(()))
    }
}

/// 16 `f32` lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct F32x16(__m512);

/// One bit per lane of an [`F32x16`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Mask16(__mmask16);

#[cfg(target_arch = "x86_64")]
impl Lanes for Mask16 {
    #[inline(always)]
    fn count(self) -> u32 {
        self.0.count_ones()
    }
}

#[cfg(target_arch = "x86_64")]
impl BitAnd for Mask16 {
    type Output = Self;
    #[inline(always)]
    fn bitand(self, o: Self) -> Self {
        Mask16(self.0 & o.0)
    }
}

#[cfg(target_arch = "x86_64")]
impl BitOr for Mask16 {
    type Output = Self;
    #[inline(always)]
    fn bitor(self, o: Self) -> Self {
        Mask16(self.0 | o.0)
    }
}

#[cfg(target_arch = "x86_64")]
impl Not for Mask16 {
    type Output = Self;
    #[inline(always)]
    fn not(self) -> Self {
        Mask16(!self.0)
    }
}

#[cfg(target_arch = "x86_64")]
binary_ops!(
    F32x16,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    _mm512_div_ps
);

#[cfg(target_arch = "x86_64")]
impl Neg for F32x16 {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        // SAFETY: as in `add`; flipping the sign bit is the scalar `-x`, zeros included.
        F32x16(unsafe { _mm512_xor_ps(self.0, _mm512_set1_ps(-0.0)) })
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx512 {
    type F = F32x16;
    type M = Mask16;
    const LANES: usize = 16;
    #[inline(always)]
    fn splat(self, v: f32) -> F32x16 {
        // SAFETY: the token proves the features.
        F32x16(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> F32x16 {
        let s = &s[..16];
        // SAFETY: the token proves the features; `s` holds 16 values.
        F32x16(unsafe { _mm512_loadu_ps(s.as_ptr()) })
    }
}

#[cfg(target_arch = "x86_64")]
impl F32s for F32x16 {
    type Mask = Mask16;
    // SAFETY (every method): a value of this type exists only where the CPU has AVX-512.
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..16];
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        F32x16(unsafe { _mm512_fmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn neg_mul_add(self, a: Self, b: Self) -> Self {
        F32x16(unsafe { _mm512_fnmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        F32x16(unsafe { _mm512_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        F32x16(unsafe { _mm512_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F32x16(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Mask16 {
        Mask16(unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Mask16 {
        Mask16(unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn ge(self, o: Self) -> Mask16 {
        Mask16(unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn eq(self, o: Self) -> Mask16 {
        Mask16(unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn is_nan(self) -> Mask16 {
        Mask16(unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0) })
    }
    #[inline(always)]
    fn select(mask: Mask16, a: Self, b: Self) -> Self {
        F32x16(unsafe { _mm512_mask_blend_ps(mask.0, b.0, a.0) })
    }
    #[inline(always)]
    fn round(self) -> Self {
        F32x16(unsafe {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        F32x16(unsafe { _mm512_scalef_ps(self.0, n.0) })
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // As `math::ln_scaled_f32`: offsetting the bits by those of sqrt(1/2) splits by
        // integer arithmetic alone.
        unsafe {
            let half = _mm512_set1_epi32(0x3f35_04f3);
            let ix = _mm512_sub_epi32(_mm512_castps_si512(self.0), half);
            let e = _mm512_cvtepi32_ps(_mm512_srai_epi32::<23>(ix));
            let bits = _mm512_add_epi32(_mm512_and_si512(ix, _mm512_set1_epi32(0x007f_ffff)), half);
            let m = _mm512_sub_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(1.0));
            (F32x16(e), F32x16(m))
        }
    }
}

/// Proof that the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The token, where [`crate::simd::dispatch`] runs AVX2 code.
    pub fn detect() -> Option<Self> {
        (crate::simd::level() == crate::simd::Level::Avx2).then_some(Avx2(()))
    }

    /// The token wherever the CPU has AVX2 and FMA (and F16C, which `simd::run_avx2` also
    /// compiles for), AVX-512 or not: tests run the AVX2 code on AVX-512 machines with it.
    pub fn detect_any() -> Option<Self> {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        (avx2 && is_x86_feature_detected!("f16c")).then_some(Avx2(()))
    }
}

/// 8 `f32` lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct F32x8(__m256);

/// All-ones or all-zeros lanes of an [`F32x8`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Mask8(__m256);

#[cfg(target_arch = "x86_64")]
binary_ops!(
    F32x8,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    _mm256_div_ps
);

#[cfg(target_arch = "x86_64")]
impl Lanes for Mask8 {
    #[inline(always)]
    fn count(self) -> u32 {
        // SAFETY: a value of this type exists only where the CPU has AVX2.
        unsafe { _mm256_movemask_ps(self.0) }.count_ones()
    }
}

#[cfg(target_arch = "x86_64")]
impl BitAnd for Mask8 {
    type Output = Self;
    #[inline(always)]
    fn bitand(self, o: Self) -> Self {
        // SAFETY: a value of this type exists only where the CPU has AVX2.
        Mask8(unsafe { _mm256_and_ps(self.0, o.0) })
    }
}

#[cfg(target_arch = "x86_64")]
impl BitOr for Mask8 {
    type Output = Self;
    #[inline(always)]
    fn bitor(self, o: Self) -> Self {
        // SAFETY: as in `bitand`.
        Mask8(unsafe { _mm256_or_ps(self.0, o.0) })
    }
}

#[cfg(target_arch = "x86_64")]
impl Not for Mask8 {
    type Output = Self;
    #[inline(always)]
    fn not(self) -> Self {
        // SAFETY: as in `bitand`.
        Mask8(unsafe { _mm256_xor_ps(self.0, _mm256_castsi256_ps(_mm256_set1_epi32(-1))) })
    }
}

#[cfg(target_arch = "x86_64")]
impl Neg for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        // SAFETY: as in `add`.
        F32x8(unsafe { _mm256_xor_ps(self.0, _mm256_set1_ps(-0.0)) })
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    type F = F32x8;
    type M = Mask8;
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(self, v: f32) -> F32x8 {
        // SAFETY: the token proves the features.
        F32x8(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> F32x8 {
        let s = &s[..8];
        // SAFETY: the token proves the features; `s` holds 8 values.
        F32x8(unsafe { _mm256_loadu_ps(s.as_ptr()) })
    }
}

#[cfg(target_arch = "x86_64")]
impl F32s for F32x8 {
    type Mask = Mask8;
    // SAFETY (every method): a value of this type exists only where the CPU has AVX2, FMA.
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..8];
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        F32x8(unsafe { _mm256_fmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn neg_mul_add(self, a: Self, b: Self) -> Self {
        F32x8(unsafe { _mm256_fnmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        F32x8(unsafe { _mm256_min_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        F32x8(unsafe { _mm256_max_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F32x8(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Mask8 {
        Mask8(unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Mask8 {
        Mask8(unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn ge(self, o: Self) -> Mask8 {
        Mask8(unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn eq(self, o: Self) -> Mask8 {
        Mask8(unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, o.0) })
    }
    #[inline(always)]
    fn is_nan(self) -> Mask8 {
        Mask8(unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0) })
    }
    #[inline(always)]
    fn select(mask: Mask8, a: Self, b: Self) -> Self {
        F32x8(unsafe { _mm256_blendv_ps(b.0, a.0, mask.0) })
    }
    #[inline(always)]
    fn round(self) -> Self {
        F32x8(unsafe {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn scale_pow2(self, n: Self) -> Self {
        unsafe {
            let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n.0), _mm256_set1_epi32(127));
            F32x8(_mm256_mul_ps(
                self.0,
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)),
            ))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        unsafe {
            let half = _mm256_set1_epi32(0x3f35_04f3);
            let ix = _mm256_sub_epi32(_mm256_castps_si256(self.0), half);
            let e = _mm256_cvtepi32_ps(_mm256_srai_epi32::<23>(ix));
            let bits = _mm256_add_epi32(_mm256_and_si256(ix, _mm256_set1_epi32(0x007f_ffff)), half);
            let m = _mm256_sub_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(1.0));
            (F32x8(e), F32x8(m))
        }
    }
}
