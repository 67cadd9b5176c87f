//! The horizontal pass of [`resize`](super::resize) on AVX2, bit-equal to the scalar pass.
//!
//! PIL's 22-bit coefficients do not fit the 16-bit multiplies that make a resize fast, so
//! each coefficient `c` is split as `c = hi * 2^11 + lo` (both below 2^12; bilinear weights are
//! never negative): two `vpmaddwd` give `sum(p * hi)` and `sum(p * lo)` for a pair of taps, and
//! `(sum_hi << 11) + sum_lo` is the exact 32-bit sum the scalar code forms. One 256-bit
//! register holds two output pixels (one per 128-bit lane); each lane reads 16 bytes, five RGB
//! pixels, so taps go five at a time. The vertical pass splits the same way and takes 16
//! columns of two rows per step, the sums kept in registers across all taps.

use std::arch::x86_64::*;

use super::resize_taps::{Taps, PRECISION_BITS};

/// Taps read from one 16-byte load.
const PER_LOAD: usize = 5;
const SPLIT: u32 = 11;

/// Whether this CPU has AVX2 (checked once).
pub(super) fn available() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2"))
}

/// `pshufb` masks: for tap pair `p` of a load, the 16-bit lanes `(R_a, R_b, G_a, G_b, B_a, B_b,
/// 0, 0)` of pixels `a = 2p` and `b = 2p + 1` (`b = 5` is past the load: zero).
fn masks() -> [[u8; 16]; 3] {
    let mut out = [[0x80u8; 16]; 3];
    for (p, mask) in out.iter_mut().enumerate() {
        for (pixel, slot) in [(2 * p, 0), (2 * p + 1, 1)] {
            if pixel >= PER_LOAD {
                continue;
            }
            for ch in 0..3 {
                mask[4 * ch + 2 * slot] = (3 * pixel + ch) as u8;
            }
        }
    }
    out
}

/// The coefficient registers: for each pair of outputs, each load and each tap pair, the high
/// and low halves as 16 lanes of `i16` (the first output's in the low 128 bits).
fn coefficients(t: &Taps, starts: &[usize], loads: usize) -> Vec<[i16; 16]> {
    let out_w = starts.len();
    let mut regs = Vec::with_capacity(out_w.div_ceil(2) * loads * 3 * 2);
    let coeff = |xx: usize, tap: usize| -> i32 {
        let (xmin, n) = t.bounds[xx];
        // Taps are stored from xmin; a start shifted left moves them right.
        let shift = xmin - starts[xx];
        match tap.checked_sub(shift) {
            Some(j) if j < n => t.coeffs[xx * t.ksize + j],
            _ => 0,
        }
    };
    for pair in (0..out_w).step_by(2) {
        for load in 0..loads {
            for p in 0..3 {
                let (mut hi, mut lo) = ([0i16; 16], [0i16; 16]);
                for (lane, xx) in [pair, pair + 1].into_iter().enumerate() {
                    if xx >= out_w {
                        continue;
                    }
                    for (slot, tap) in [(0, 2 * p), (1, 2 * p + 1)] {
                        if tap >= PER_LOAD {
                            continue;
                        }
                        let c = coeff(xx, load * PER_LOAD + tap);
                        for ch in 0..3 {
                            hi[8 * lane + 2 * ch + slot] = (c >> SPLIT) as i16;
                            lo[8 * lane + 2 * ch + slot] = (c & ((1 << SPLIT) - 1)) as i16;
                        }
                    }
                }
                regs.push(hi);
                regs.push(lo);
            }
        }
    }
    regs
}

/// Horizontal pass of rows `rows` of the `width`-pixel RGB image `data` into `out`
/// (`out_w` pixels per row). Returns `false`, writing nothing, where it does not apply
/// (more taps than pixels); the caller then runs the scalar pass.
///
/// # Safety
/// The CPU must have AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn horizontal(
    data: &[u8],
    width: usize,
    rows: std::ops::Range<usize>,
    t: &Taps,
    out: &mut [u8],
    out_w: usize,
) -> bool {
    if t.ksize > width {
        return false;
    }
    let loads = t.ksize.div_ceil(PER_LOAD);
    // As the scalar pass: taps that would run off the row start further left.
    let starts: Vec<usize> = t
        .bounds
        .iter()
        .map(|&(xmin, _)| xmin.min(width - t.ksize))
        .collect();
    let regs = coefficients(t, &starts, loads);
    let masks = masks().map(|m| _mm256_broadcastsi128_si256(_mm_loadu_si128(m.as_ptr().cast())));
    let half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    let stride = width * 3;
    for (oy, y) in rows.enumerate() {
        let row_start = y * stride;
        let dst = &mut out[oy * out_w * 3..(oy + 1) * out_w * 3];
        for pair in (0..out_w).step_by(2) {
            let second = (pair + 1).min(out_w - 1);
            let last_read =
                row_start + starts[pair].max(starts[second]) * 3 + (loads - 1) * 15 + 16;
            if last_read > data.len() {
                // The last pixels of the image: 16-byte loads would read past its end.
                scalar(data, row_start, t, pair..out_w, dst);
                break;
            }
            let regs = &regs[(pair / 2) * loads * 6..];
            let (mut sum_hi, mut sum_lo) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for load in 0..loads {
                let at = |xx: usize| data.as_ptr().add(row_start + starts[xx] * 3 + load * 15);
                let px = _mm256_loadu2_m128i(at(second).cast(), at(pair).cast());
                for (p, mask) in masks.iter().enumerate() {
                    let x = _mm256_shuffle_epi8(px, *mask);
                    let k = load * 6 + p * 2;
                    let hi = _mm256_loadu_si256(regs[k].as_ptr().cast());
                    let lo = _mm256_loadu_si256(regs[k + 1].as_ptr().cast());
                    sum_hi = _mm256_add_epi32(sum_hi, _mm256_madd_epi16(x, hi));
                    sum_lo = _mm256_add_epi32(sum_lo, _mm256_madd_epi16(x, lo));
                }
            }
            let sum = _mm256_add_epi32(_mm256_slli_epi32::<{ SPLIT as i32 }>(sum_hi), sum_lo);
            let sum = _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(_mm256_add_epi32(sum, half));
            let bytes = _mm256_packus_epi16(_mm256_packs_epi32(sum, sum), _mm256_setzero_si256());
            let first = (_mm256_extract_epi32::<0>(bytes) as u32).to_le_bytes();
            dst[pair * 3..pair * 3 + 3].copy_from_slice(&first[..3]);
            if pair + 1 < out_w {
                let next = (_mm256_extract_epi32::<4>(bytes) as u32).to_le_bytes();
                dst[pair * 3 + 3..pair * 3 + 6].copy_from_slice(&next[..3]);
            }
        }
    }
    true
}

/// The same arithmetic one pixel at a time, for outputs whose loads would leave the image.
fn scalar(
    data: &[u8],
    row_start: usize,
    t: &Taps,
    outputs: std::ops::Range<usize>,
    dst: &mut [u8],
) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for xx in outputs {
        let (xmin, n) = t.bounds[xx];
        let k = &t.coeffs[xx * t.ksize..xx * t.ksize + n];
        let px = &data[row_start + xmin * 3..row_start + (xmin + n) * 3];
        let mut acc = [half; 3];
        for (&c, p) in k.iter().zip(px.chunks_exact(3)) {
            for ch in 0..3 {
                acc[ch] += p[ch] as i32 * c;
            }
        }
        for ch in 0..3 {
            dst[xx * 3 + ch] = (acc[ch] >> PRECISION_BITS).clamp(0, 255) as u8;
        }
    }
}

/// Vertical pass: output row `yy` of `out` from rows `ymin - offset ..` of `src` (`stride`
/// bytes per row), for every output row of `t`; bit-equal to the scalar pass.
///
/// # Safety
/// The CPU must have AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn vertical(src: &[u8], stride: usize, t: &Taps, offset: usize, out: &mut [u8]) {
    let half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    let wide = stride / 16 * 16;
    for (yy, &(ymin, n)) in t.bounds.iter().enumerate() {
        let k = &t.coeffs[yy * t.ksize..yy * t.ksize + n];
        let row = |j: usize| &src[(ymin + j - offset) * stride..(ymin + j - offset + 1) * stride];
        // Tap pairs as (row a, row b, hi pair, lo pair); an odd last tap pairs with weight 0.
        let pairs: Vec<(&[u8], &[u8], __m256i, __m256i)> = (0..n)
            .step_by(2)
            .map(|j| {
                let (ca, cb) = (k[j], if j + 1 < n { k[j + 1] } else { 0 });
                let b = if j + 1 < n { j + 1 } else { j };
                let pair = |f: fn(i32) -> i32| {
                    let packed = (f(ca) as u16 as u32) | ((f(cb) as u16 as u32) << 16);
                    _mm256_set1_epi32(packed as i32)
                };
                (
                    row(j),
                    row(b),
                    pair(|c| c >> SPLIT),
                    pair(|c| c & ((1 << SPLIT) - 1)),
                )
            })
            .collect();
        let dst = &mut out[yy * stride..(yy + 1) * stride];
        for x in (0..wide).step_by(16) {
            let zero = _mm256_setzero_si256();
            let (mut hi_a, mut hi_b, mut lo_a, mut lo_b) = (zero, zero, zero, zero);
            for &(a, b, hi, lo) in &pairs {
                let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.as_ptr().add(x).cast()));
                let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.as_ptr().add(x).cast()));
                // Columns 0-3 | 8-11 and 4-7 | 12-15, each (a, b) next to each other.
                let (first, second) = (_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b));
                hi_a = _mm256_add_epi32(hi_a, _mm256_madd_epi16(first, hi));
                hi_b = _mm256_add_epi32(hi_b, _mm256_madd_epi16(second, hi));
                lo_a = _mm256_add_epi32(lo_a, _mm256_madd_epi16(first, lo));
                lo_b = _mm256_add_epi32(lo_b, _mm256_madd_epi16(second, lo));
            }
            let sum = |hi: __m256i, lo: __m256i| {
                let s = _mm256_add_epi32(_mm256_slli_epi32::<{ SPLIT as i32 }>(hi), lo);
                _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(_mm256_add_epi32(s, half))
            };
            let words = _mm256_packs_epi32(sum(hi_a, lo_a), sum(hi_b, lo_b));
            let bytes = _mm256_packus_epi16(words, words);
            let bytes = _mm256_permute4x64_epi64::<0b1000>(bytes);
            _mm_storeu_si128(
                dst.as_mut_ptr().add(x).cast(),
                _mm256_castsi256_si128(bytes),
            );
        }
        for (x, o) in dst.iter_mut().enumerate().skip(wide) {
            let mut acc = 1i32 << (PRECISION_BITS - 1);
            for (j, &c) in k.iter().enumerate() {
                acc += row(j)[x] as i32 * c;
            }
            *o = (acc >> PRECISION_BITS).clamp(0, 255) as u8;
        }
    }
}
