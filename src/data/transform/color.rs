//! Pixel-value operations of RandAugment, each reproducing PIL's `ImageEnhance` / `ImageOps`
//! (which torchvision's RandAugment calls on PIL images).

use crate::data::image::Image;

#[inline(always)]
fn mix(d: f32, v: u8, f: f32) -> u8 {
    let t = d + f * (v as f32 - d);
    // Truncating, as PIL's blend. SAFETY: finite inputs and the clamp keep `t` in 0..=255;
    // the unchecked cast is what lets the loop vectorise.
    unsafe { t.clamp(0.0, 255.0).to_int_unchecked::<i32>() as u8 }
}

/// PIL's `Image.blend(degenerate, img, factor)` with a per-byte degenerate image.
fn blend(img: &mut Image, degenerate: &[u8], factor: f64) {
    let f = factor as f32;
    for (v, &d) in img.data.iter_mut().zip(degenerate) {
        *v = mix(d as f32, *v, f);
    }
}

/// PIL's `Image.blend` with a constant degenerate image.
fn blend_const(img: &mut Image, degenerate: u8, factor: f64) {
    let (f, d) = (factor as f32, degenerate as f32);
    img.data.iter_mut().for_each(|v| *v = mix(d, *v, f));
}

/// `ImageEnhance.Brightness(img).enhance(factor)`.
pub fn brightness(img: &mut Image, factor: f64) {
    blend_const(img, 0, factor);
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the greyscale image.
pub fn color(img: &mut Image, factor: f64) {
    let mut gray = vec![0u8; img.data.len()];
    for (g, p) in gray.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
        let l = Image::luma([p[0], p[1], p[2]]);
        g.copy_from_slice(&[l, l, l]);
    }
    blend(img, &gray, factor);
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the rounded mean grey level.
pub fn contrast(img: &mut Image, factor: f64) {
    let n = (img.data.len() / 3).max(1);
    let sum: u64 = img
        .data
        .chunks_exact(3)
        .map(|p| Image::luma([p[0], p[1], p[2]]) as u64)
        .sum();
    let mean = (sum as f64 / n as f64 + 0.5) as u8;
    blend_const(img, mean, factor);
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with PIL's SMOOTH filter output
/// (3x3 kernel of ones with 5 in the centre, over 13; the border is left as is).
pub fn sharpness(img: &mut Image, factor: f64) {
    let (w, h) = (img.width, img.height);
    let mut smooth = img.data.clone();
    if w >= 3 && h >= 3 {
        let stride = w * 3;
        // Vertical sums of three rows, then horizontal sums of three of those.
        let mut col = vec![0u16; stride];
        for y in 1..h - 1 {
            let (up, mid, down) = (
                &img.data[(y - 1) * stride..y * stride],
                &img.data[y * stride..(y + 1) * stride],
                &img.data[(y + 1) * stride..(y + 2) * stride],
            );
            for i in 0..stride {
                col[i] = up[i] as u16 + mid[i] as u16 + down[i] as u16;
            }
            let out = &mut smooth[y * stride..(y + 1) * stride];
            for i in 3..stride - 3 {
                let s = (col[i - 3] + col[i] + col[i + 3]) as f32 + 4.0 * mid[i] as f32;
                out[i] = (s / 13.0 + 0.5).min(255.0) as u8;
            }
        }
    }
    blend(img, &smooth, factor);
}

fn apply_lut(img: &mut Image, lut: &[[u8; 256]; 3]) {
    for p in img.data.chunks_exact_mut(3) {
        for c in 0..3 {
            p[c] = lut[c][p[c] as usize];
        }
    }
}

fn histograms(img: &Image) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for p in img.data.chunks_exact(3) {
        for c in 0..3 {
            h[c][p[c] as usize] += 1;
        }
    }
    h
}

/// `ImageOps.posterize(img, bits)`.
pub fn posterize(img: &mut Image, bits: u32) {
    let mask = !((1u32 << (8 - bits.min(8))) - 1) as u8;
    img.data.iter_mut().for_each(|v| *v &= mask);
}

/// `ImageOps.solarize(img, threshold)`: inverts values at or above the threshold.
pub fn solarize(img: &mut Image, threshold: f64) {
    img.data.iter_mut().for_each(|v| {
        if *v as f64 >= threshold {
            *v = 255 - *v
        }
    });
}

/// `ImageOps.autocontrast(img)`: per channel, stretch [min, max] to [0, 255].
pub fn autocontrast(img: &mut Image) {
    let h = histograms(img);
    let mut lut = [[0u8; 256]; 3];
    for c in 0..3 {
        let lo = h[c].iter().position(|&n| n > 0).unwrap_or(0);
        let hi = h[c].iter().rposition(|&n| n > 0).unwrap_or(255);
        for (i, l) in lut[c].iter_mut().enumerate() {
            *l = if hi <= lo {
                i as u8
            } else {
                let scale = 255.0 / (hi - lo) as f64;
                let v = (i as f64 * scale - lo as f64 * scale) as i64;
                v.clamp(0, 255) as u8
            };
        }
    }
    apply_lut(img, &lut);
}

/// `ImageOps.equalize(img)`: per-channel histogram equalisation.
pub fn equalize(img: &mut Image) {
    let h = histograms(img);
    let mut lut = [[0u8; 256]; 3];
    for c in 0..3 {
        let used: Vec<u64> = h[c].iter().copied().filter(|&n| n > 0).collect();
        let step = if used.len() <= 1 {
            0
        } else {
            (used.iter().sum::<u64>() - used[used.len() - 1]) / 255
        };
        let mut n = step / 2;
        for (i, l) in lut[c].iter_mut().enumerate() {
            *l = match n.checked_div(step) {
                None => i as u8,
                Some(q) => {
                    n += h[c][i];
                    q.min(255) as u8
                }
            };
        }
    }
    apply_lut(img, &lut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_one_is_identity() {
        let src = Image::from_rgb(4, 3, (0..36).map(|v| (v * 7) as u8).collect());
        for op in [brightness, color, contrast, sharpness] {
            let mut img = src.clone();
            op(&mut img, 1.0);
            assert_eq!(img, src);
        }
    }

    #[test]
    fn luts() {
        let mut img = Image::from_rgb(2, 1, vec![0, 100, 200, 255, 10, 180]);
        posterize(&mut img, 4);
        assert_eq!(img.data, [0, 96, 192, 240, 0, 176]);
        solarize(&mut img, 128.0);
        assert_eq!(img.data, [0, 96, 63, 15, 0, 79]);
    }
}
