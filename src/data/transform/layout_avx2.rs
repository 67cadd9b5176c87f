//! The batch layout on AVX2: interleaved RGB bytes to channel-first planes, as bytes or as
//! normalised floats (`v * scale + bias`, fused, exactly as the scalar tables hold it).

use std::arch::x86_64::*;

/// Whether this CPU has AVX2 and FMA (checked once).
pub(super) fn available() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// `pshufb` masks gathering channel `c` of 16 pixels from three 16-byte loads: byte `k` of
/// the result is channel `c` of pixel `k` where that pixel's byte lies in the load, else 0.
fn masks() -> [[[u8; 16]; 3]; 3] {
    let mut out = [[[0x80u8; 16]; 3]; 3];
    for (c, per_load) in out.iter_mut().enumerate() {
        for byte in (c..48).step_by(3) {
            per_load[byte / 16][byte / 3] = (byte % 16) as u8;
        }
    }
    out
}

/// Channel planes of the first `n - n % 16` pixels of `rgb`; returns how many pixels it did
/// (the caller does the rest). `emit(c, k, bytes)` receives channel `c` of pixels `k..k + 16`.
#[inline(always)]
unsafe fn planes(rgb: &[u8], mut emit: impl FnMut(usize, usize, __m128i)) -> usize {
    let n = rgb.len() / 3 / 16 * 16;
    let masks = masks().map(|per_load| per_load.map(|m| _mm_loadu_si128(m.as_ptr().cast())));
    for k in (0..n).step_by(16) {
        let p = rgb.as_ptr().add(3 * k);
        let loads = [0, 16, 32].map(|o| _mm_loadu_si128(p.add(o).cast()));
        for (c, m) in masks.iter().enumerate() {
            let bytes = _mm_or_si128(
                _mm_or_si128(
                    _mm_shuffle_epi8(loads[0], m[0]),
                    _mm_shuffle_epi8(loads[1], m[1]),
                ),
                _mm_shuffle_epi8(loads[2], m[2]),
            );
            emit(c, k, bytes);
        }
    }
    n
}

/// Writes `rgb` (interleaved) as three planes of `plane` floats, `v * scale[c] + bias[c]`
/// with one rounding; returns the pixels done.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`available`]); `out` holds `3 * plane` floats and `rgb`
/// `3 * plane` bytes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn write_f32(
    rgb: &[u8],
    out: &mut [f32],
    plane: usize,
    scale: [f32; 3],
    bias: [f32; 3],
) -> usize {
    let scale = scale.map(|s| _mm256_set1_ps(s));
    let bias = bias.map(|b| _mm256_set1_ps(b));
    let dst = out.as_mut_ptr();
    planes(&rgb[..3 * plane], |c, k, bytes| {
        for (half, shifted) in [(0, bytes), (8, _mm_srli_si128::<8>(bytes))] {
            let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(shifted));
            let v = _mm256_fmadd_ps(v, scale[c], bias[c]);
            _mm256_storeu_ps(dst.add(c * plane + k + half), v);
        }
    })
}

/// Writes `rgb` (interleaved) as three planes of `plane` bytes; returns the pixels done.
///
/// # Safety
/// As [`write_f32`], with `out` holding `3 * plane` bytes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn write_u8(rgb: &[u8], out: &mut [u8], plane: usize) -> usize {
    let dst = out.as_mut_ptr();
    planes(&rgb[..3 * plane], |c, k, bytes| {
        _mm_storeu_si128(dst.add(c * plane + k).cast(), bytes)
    })
}
