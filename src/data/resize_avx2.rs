//! The passes of [`resize`](super::resize) on AVX2, bit-equal to the scalar passes.
//!
//! PIL's 22-bit coefficients do not fit the 16-bit multiplies that make a resize fast, so
//! each coefficient `c` is split as `c = hi * 2^11 + lo` (both below 2^12; bilinear weights are
//! never negative): two `vpmaddwd` give `sum(p * hi)` and `sum(p * lo)` for a pair of taps, and
//! `(sum_hi << 11) + sum_lo` is the exact 32-bit sum the scalar code forms.
//!
//! Horizontal: one 256-bit register holds two output pixels (one per 128-bit lane). Taps go in
//! pairs, as many as the widest output needs (not the filter's bound, which is up to twice
//! that), two pairs per 16-byte load of four RGB pixels. Four rows are done at once: they
//! share each output's coefficients and their sums are independent chains.
//!
//! Vertical: 16 columns of two rows per step, the sums kept in registers across all taps.

use std::arch::x86_64::*;

use super::resize_taps::{Taps, PRECISION_BITS};

/// Pixels a 16-byte load gives the horizontal pass: two tap pairs.
const PER_LOAD: usize = 4;
const SPLIT: u32 = 11;
/// Rows the horizontal pass does at once.
const ROWS: usize = 4;

/// Whether this CPU has AVX2 (checked once).
pub(super) fn available() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2"))
}

/// `pshufb` masks: for tap pair `m` of a load, the 16-bit lanes `(R_a, R_b, G_a, G_b, B_a, B_b,
/// 0, 0)` of its pixels `a = 2m` and `b = 2m + 1`.
fn masks() -> [[u8; 16]; 2] {
    let mut out = [[0x80u8; 16]; 2];
    for (m, mask) in out.iter_mut().enumerate() {
        for (pixel, slot) in [(2 * m, 0), (2 * m + 1, 1)] {
            for ch in 0..3 {
                mask[4 * ch + 2 * slot] = (3 * pixel + ch) as u8;
            }
        }
    }
    out
}

/// The coefficient registers: for each pair of outputs and each of `pairs` tap pairs, the
/// high and low halves as 16 lanes of `i16` (the first output's in the low 128 bits).
fn coefficients(t: &Taps, starts: &[usize], pairs: usize) -> Vec<[i16; 16]> {
    let out_w = starts.len();
    let mut regs = Vec::with_capacity(out_w.div_ceil(2) * pairs * 2);
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
        for q in 0..pairs {
            let (mut hi, mut lo) = ([0i16; 16], [0i16; 16]);
            for (lane, xx) in [pair, pair + 1].into_iter().enumerate() {
                if xx >= out_w {
                    continue;
                }
                for slot in 0..2 {
                    let c = coeff(xx, 2 * q + slot);
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
    let taps = t.bounds.iter().map(|b| b.1).max().unwrap_or(0);
    if taps == 0 || taps > width {
        return false;
    }
    // As the scalar pass: taps that would run off the row start further left.
    let starts: Vec<usize> = t
        .bounds
        .iter()
        .map(|&(xmin, _)| xmin.min(width - taps))
        .collect();
    let pairs = taps.div_ceil(2);
    let pass = Pass {
        data,
        stride: width * 3,
        t,
        regs: coefficients(t, &starts, pairs),
        starts,
        pairs,
        out_w,
    };
    let row_bytes = out_w * 3;
    let mut y = rows.start;
    for block in out[..rows.len() * row_bytes].chunks_mut(ROWS * row_bytes) {
        let n = block.len() / row_bytes;
        match n {
            ROWS => pass.block::<ROWS>(y, block),
            3 => pass.block::<3>(y, block),
            2 => pass.block::<2>(y, block),
            _ => pass.block::<1>(y, block),
        }
        y += n;
    }
    true
}

/// What every block of rows of one horizontal pass shares.
struct Pass<'a> {
    data: &'a [u8],
    stride: usize,
    t: &'a Taps,
    regs: Vec<[i16; 16]>,
    starts: Vec<usize>,
    pairs: usize,
    out_w: usize,
}

impl Pass<'_> {
    /// Rows `y..y + R` into `dst` (`R` output rows).
    ///
    /// # Safety
    /// The CPU must have AVX2 (the caller, [`horizontal`], is compiled for it); rows
    /// `y..y + R` lie inside `data`, and `dst` holds `R` rows of `out_w` pixels.
    #[inline(always)]
    unsafe fn block<const R: usize>(&self, y: usize, dst: &mut [u8]) {
        let (data, starts, pairs, out_w) = (self.data, &self.starts, self.pairs, self.out_w);
        let masks =
            masks().map(|m| _mm256_broadcastsi128_si256(_mm_loadu_si128(m.as_ptr().cast())));
        let half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
        let row_bytes = out_w * 3;
        let last_load = (pairs - 1) / 2 * PER_LOAD * 3;
        // Output pairs whose 16-byte loads stay inside `data` on the block's last row (and so
        // on every row above it): all but the image's last few pixels.
        let last_row = (y + R - 1) * self.stride;
        let fits = |pair: usize| {
            let second = (pair + 1).min(out_w - 1);
            last_row + starts[pair].max(starts[second]) * 3 + last_load + 16 <= data.len()
        };
        let mut end = out_w.div_ceil(2) * 2;
        while end > 0 && !fits(end - 2) {
            end -= 2;
        }
        let base = data.as_ptr().add(y * self.stride);
        for pair in (0..end).step_by(2) {
            let (a, b) = (starts[pair] * 3, starts[(pair + 1).min(out_w - 1)] * 3);
            let k = self.regs.as_ptr().add(pair / 2 * pairs * 2);
            let (mut his, mut los) = ([_mm256_setzero_si256(); R], [_mm256_setzero_si256(); R]);
            for r in 0..R {
                let row = base.add(r * self.stride);
                let mut px = _mm256_setzero_si256();
                for q in 0..pairs {
                    if q % 2 == 0 {
                        let at = q / 2 * PER_LOAD * 3;
                        // SAFETY: `pair < end`, so `fits` checked that these 16 bytes lie in
                        // `data` on the block's last row, and so on this one.
                        px = _mm256_loadu2_m128i(row.add(b + at).cast(), row.add(a + at).cast());
                    }
                    let x = _mm256_shuffle_epi8(px, masks[q % 2]);
                    let hi = _mm256_loadu_si256(k.add(2 * q).cast());
                    let lo = _mm256_loadu_si256(k.add(2 * q + 1).cast());
                    his[r] = _mm256_add_epi32(his[r], _mm256_madd_epi16(x, hi));
                    los[r] = _mm256_add_epi32(los[r], _mm256_madd_epi16(x, lo));
                }
            }
            for r in 0..R {
                let sum = _mm256_add_epi32(_mm256_slli_epi32::<{ SPLIT as i32 }>(his[r]), los[r]);
                let sum =
                    _mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(_mm256_add_epi32(sum, half));
                let bytes =
                    _mm256_packus_epi16(_mm256_packs_epi32(sum, sum), _mm256_setzero_si256());
                let first = _mm256_extract_epi32::<0>(bytes);
                let next = _mm256_extract_epi32::<4>(bytes);
                // SAFETY: pixel `pair` of row `r` of `dst`; the 4-byte stores below reach at
                // most the first byte of pixel `pair + 2`, which exists (else the exact copies
                // run). The tests' blocks of 1 to 4 rows end at every row length they try.
                let at = dst.as_mut_ptr().add(r * row_bytes + pair * 3);
                if pair + 2 < out_w {
                    // Four bytes each: the fourth is the next pixel's, written after.
                    at.cast::<i32>().write_unaligned(first);
                    at.add(3).cast::<i32>().write_unaligned(next);
                } else {
                    let at = std::slice::from_raw_parts_mut(at, row_bytes - pair * 3);
                    at[..3].copy_from_slice(&first.to_le_bytes()[..3]);
                    if pair + 1 < out_w {
                        at[3..6].copy_from_slice(&next.to_le_bytes()[..3]);
                    }
                }
            }
        }
        if end < out_w {
            for r in 0..R {
                // The last pixels of the image: 16-byte loads would read past its end.
                let row = &mut dst[r * row_bytes..(r + 1) * row_bytes];
                scalar(data, (y + r) * self.stride, self.t, end..out_w, row);
            }
        }
    }
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
