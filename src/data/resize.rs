//! Antialiased bilinear resizing that reproduces PIL's `Image.resize(..., BILINEAR)`.
//!
//! Same filter support, same 22-bit fixed-point coefficients, same horizontal-then-vertical
//! order with an 8-bit intermediate, so torchvision's PIL-based transforms and ours agree to
//! within rounding.

use super::image::{pixels, Image};
use super::resize_taps::{taps, Taps, PRECISION_BITS};
use crate::error::{try_zeroed, Result};

#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Taps padded to exactly `K` per output, shifted left where they would run off the row.
fn padded<const K: usize>(t: &Taps, in_size: usize) -> Vec<(usize, [i32; K])> {
    t.bounds
        .iter()
        .enumerate()
        .map(|(xx, &(xmin, n))| {
            let start = xmin.min(in_size - K);
            let mut k = [0i32; K];
            for j in 0..n {
                k[xmin - start + j] = t.coeffs[xx * t.ksize + j];
            }
            (start, k)
        })
        .collect()
}

#[inline(always)]
fn horizontal_k<const K: usize>(
    src: &Image,
    rows: std::ops::Range<usize>,
    t: &Taps,
    out: &mut [u8],
    out_w: usize,
) {
    let taps = padded::<K>(t, src.width);
    let half = 1i32 << (PRECISION_BITS - 1);
    for (oy, y) in rows.enumerate() {
        let row = &src.data[y * src.width * 3..(y + 1) * src.width * 3];
        let dst = &mut out[oy * out_w * 3..(oy + 1) * out_w * 3];
        for (o, (start, k)) in dst.chunks_exact_mut(3).zip(&taps) {
            let px = &row[start * 3..start * 3 + 3 * K];
            let (mut r, mut g, mut b) = (half, half, half);
            for j in 0..K {
                r += px[3 * j] as i32 * k[j];
                g += px[3 * j + 1] as i32 * k[j];
                b += px[3 * j + 2] as i32 * k[j];
            }
            o[0] = clip8(r);
            o[1] = clip8(g);
            o[2] = clip8(b);
        }
    }
}

#[inline(always)]
fn horizontal_any(
    src: &Image,
    rows: std::ops::Range<usize>,
    t: &Taps,
    out: &mut [u8],
    out_w: usize,
) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for (oy, y) in rows.enumerate() {
        let row = &src.data[y * src.width * 3..(y + 1) * src.width * 3];
        let dst = &mut out[oy * out_w * 3..(oy + 1) * out_w * 3];
        for (xx, &(xmin, n)) in t.bounds.iter().enumerate() {
            let k = &t.coeffs[xx * t.ksize..xx * t.ksize + n];
            let px = &row[xmin * 3..(xmin + n) * 3];
            let (mut r, mut g, mut b) = (half, half, half);
            for (&c, p) in k.iter().zip(px.chunks_exact(3)) {
                r += p[0] as i32 * c;
                g += p[1] as i32 * c;
                b += p[2] as i32 * c;
            }
            dst[xx * 3] = clip8(r);
            dst[xx * 3 + 1] = clip8(g);
            dst[xx * 3 + 2] = clip8(b);
        }
    }
}

#[inline(always)]
fn horizontal(
    src: &Image,
    rows: std::ops::Range<usize>,
    span: (f64, f64),
    out_w: usize,
) -> Result<Image> {
    let t = taps(src.width, span, out_w);
    let mut data = try_zeroed(pixels(out_w, rows.len())?, "a resize")?;
    let h = rows.len();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is checked first.
    if super::resize_avx2::available()
        && unsafe {
            super::resize_avx2::horizontal(&src.data, src.width, rows.clone(), &t, &mut data, out_w)
        }
    {
        return Ok(Image::from_rgb(out_w, h, data));
    }
    // Fixed tap counts let the compiler unroll the inner loop (about 2x here).
    match t.ksize {
        k if k > src.width => horizontal_any(src, rows, &t, &mut data, out_w),
        3 => horizontal_k::<3>(src, rows, &t, &mut data, out_w),
        5 => horizontal_k::<5>(src, rows, &t, &mut data, out_w),
        7 => horizontal_k::<7>(src, rows, &t, &mut data, out_w),
        9 => horizontal_k::<9>(src, rows, &t, &mut data, out_w),
        _ => horizontal_any(src, rows, &t, &mut data, out_w),
    }
    Ok(Image::from_rgb(out_w, h, data))
}

/// Vertical pass over `src`, whose row 0 is input row `offset` of the unresized image.
#[inline(always)]
fn vertical(src: &Image, t: &Taps, offset: usize) -> Result<Image> {
    let stride = src.width * 3;
    let out_h = t.bounds.len();
    let mut data = try_zeroed(pixels(src.width, out_h)?, "a resize")?;
    #[cfg(target_arch = "x86_64")]
    if super::resize_avx2::available() {
        // SAFETY: AVX2 is checked first.
        unsafe { super::resize_avx2::vertical(&src.data, stride, t, offset, &mut data) };
        return Ok(Image::from_rgb(src.width, out_h, data));
    }
    let mut acc = vec![0i32; stride];
    let half = 1i32 << (PRECISION_BITS - 1);
    for (yy, &(ymin, n)) in t.bounds.iter().enumerate() {
        acc.fill(half);
        for (j, &c) in t.coeffs[yy * t.ksize..yy * t.ksize + n].iter().enumerate() {
            let y = ymin + j - offset;
            let row = &src.data[y * stride..(y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * c;
            }
        }
        for (o, &a) in data[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Ok(Image::from_rgb(src.width, out_h, data))
}

/// A crop and a resize: the box at `(x, y)` of `width x height` pixels, resized to
/// `out_width x out_height`. What a pipeline's first operation does; knowing it before decoding
/// lets a JPEG decoder skip what the box leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    pub out_width: usize,
    pub out_height: usize,
}

impl Window {
    /// Crops `img` (which contains the box) and resizes the crop.
    pub fn apply(&self, img: &Image) -> Result<Image> {
        if (self.x, self.y, self.width, self.height) == (0, 0, img.width, img.height) {
            resize(img, self.out_width, self.out_height)
        } else {
            let crop = img.crop(self.x, self.y, self.width, self.height)?;
            resize(&crop, self.out_width, self.out_height)
        }
    }
}

/// Resizes to `width x height` (aspect ratio not kept) with PIL's antialiased bilinear filter.
pub fn resize(src: &Image, width: usize, height: usize) -> Result<Image> {
    let (w, h) = (src.width as f64, src.height as f64);
    resize_box(src, [0.0, 0.0, w, h], width, height)
}

/// Resizes the region `[x0, y0, x1, y1]` of `src` (fractional pixel edges, as PIL's
/// `Image.resize(size, box=...)`) to `width x height`.
pub fn resize_box(src: &Image, region: [f64; 4], width: usize, height: usize) -> Result<Image> {
    let [x0, y0, x1, y1] = region;
    let whole_x = x0 == 0.0 && x1 == src.width as f64;
    let whole_y = y0 == 0.0 && y1 == src.height as f64;
    let need_h = !(whole_x && width == src.width);
    let need_v = !(whole_y && height == src.height);
    // Integer arithmetic: the wider instruction sets give the same pixels, about 2x sooner.
    crate::simd::dispatch(|| match (need_h, need_v) {
        (false, false) => Ok(src.clone()),
        (true, false) => horizontal(src, 0..src.height, (x0, x1), width),
        (false, true) => vertical(src, &taps(src.height, (y0, y1), height), 0),
        (true, true) => {
            let tv = taps(src.height, (y0, y1), height);
            let first = tv.bounds.first().map_or(0, |b| b.0);
            let last = tv.bounds.last().map_or(0, |b| b.0 + b.1);
            let tmp = horizontal(src, first..last, (x0, x1), width)?;
            vertical(&tmp, &tv, first)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_constant() {
        let img = Image::filled(37, 23, [200, 10, 99]);
        for (w, h) in [(5, 7), (64, 64), (37, 11), (100, 23)] {
            let out = resize(&img, w, h).unwrap();
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.data.chunks(3).all(|p| p == [200, 10, 99]));
        }
    }

    #[test]
    fn unrolled_and_generic_passes_agree() {
        let data: Vec<u8> = (0..40 * 9 * 3).map(|v| ((v * 37) % 251) as u8).collect();
        let img = Image::from_rgb(40, 9, data);
        for out_w in [7, 13, 20, 39, 41, 80] {
            let t = taps(40, (0.0, 40.0), out_w);
            let mut a = vec![0u8; out_w * 9 * 3];
            let mut b = a.clone();
            horizontal_any(&img, 0..9, &t, &mut a, out_w);
            match t.ksize {
                3 => horizontal_k::<3>(&img, 0..9, &t, &mut b, out_w),
                5 => horizontal_k::<5>(&img, 0..9, &t, &mut b, out_w),
                7 => horizontal_k::<7>(&img, 0..9, &t, &mut b, out_w),
                9 => horizontal_k::<9>(&img, 0..9, &t, &mut b, out_w),
                _ => b.copy_from_slice(&a),
            }
            assert_eq!(a, b, "width 40 -> {out_w}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_horizontal_pass_equals_the_scalar_one() {
        if !crate::data::resize_avx2::available() {
            return;
        }
        // Rows h/2..h: blocks of 1 to 4 rows, the last of them ending at the image's end.
        for (w, h) in [
            (1, 3),
            (2, 2),
            (5, 4),
            (17, 6),
            (40, 9),
            (641, 3),
            (37, 14),
            (641, 10),
        ] {
            let data: Vec<u8> = (0..w * h * 3)
                .map(|v| ((v * 97 + v / 7) % 256) as u8)
                .collect();
            let img = Image::from_rgb(w, h, data);
            for out_w in [1, 2, 3, w / 3 + 1, w / 2 + 1, w, w + 1, 2 * w + 3, 448] {
                for span in [(0.0, w as f64), (0.3, w as f64 * 0.8)] {
                    let t = taps(w, span, out_w);
                    let rows = h / 2..h;
                    let mut scalar = vec![0u8; out_w * rows.len() * 3];
                    let mut simd = scalar.clone();
                    horizontal_any(&img, rows.clone(), &t, &mut scalar, out_w);
                    // SAFETY: checked above.
                    let done = unsafe {
                        crate::data::resize_avx2::horizontal(
                            &img.data, w, rows, &t, &mut simd, out_w,
                        )
                    };
                    if done {
                        assert_eq!(simd, scalar, "{w}x{h} -> {out_w}, span {span:?}");
                    } else {
                        assert!(t.ksize > w);
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_vertical_pass_equals_the_scalar_one() {
        if !crate::data::resize_avx2::available() {
            return;
        }
        for (w, h) in [(1, 1), (3, 5), (6, 17), (11, 40), (213, 427)] {
            let data: Vec<u8> = (0..w * h * 3)
                .map(|v| ((v * 89 + v / 5) % 256) as u8)
                .collect();
            let img = Image::from_rgb(w, h, data);
            for out_h in [1, 2, h / 3 + 1, h / 2 + 1, h, h + 1, 2 * h + 3] {
                for span in [(0.0, h as f64), (0.4, h as f64 * 0.7)] {
                    let t = taps(h, span, out_h);
                    let first = t.bounds[0].0;
                    let last = t.bounds.last().map_or(0, |b| b.0 + b.1);
                    let rows = Image::from_rgb(
                        w,
                        last - first,
                        img.data[first * w * 3..last * w * 3].to_vec(),
                    );
                    let simd = vertical(&rows, &t, first).unwrap();
                    let mut scalar = vec![0u8; w * out_h * 3];
                    for (yy, &(ymin, n)) in t.bounds.iter().enumerate() {
                        for x in 0..w * 3 {
                            let mut acc = 1i32 << (PRECISION_BITS - 1);
                            for j in 0..n {
                                acc += img.data[(ymin + j) * w * 3 + x] as i32
                                    * t.coeffs[yy * t.ksize + j];
                            }
                            scalar[yy * w * 3 + x] = clip8(acc);
                        }
                    }
                    assert_eq!(simd.data, scalar, "{w}x{h} -> {out_h}, span {span:?}");
                }
            }
        }
    }

    #[test]
    fn a_box_on_whole_pixels_is_a_crop_then_a_resize() {
        let data: Vec<u8> = (0..30 * 20 * 3).map(|v| ((v * 53) % 241) as u8).collect();
        let img = Image::from_rgb(30, 20, data);
        let whole = resize_box(&img, [0.0, 0.0, 30.0, 20.0], 11, 7).unwrap();
        assert_eq!(whole, resize(&img, 11, 7).unwrap());
        // Inside a crop, a box on the crop's own edges is the crop's resize.
        let crop = img.crop(4, 3, 20, 12).unwrap();
        let window = Window {
            x: 4,
            y: 3,
            width: 20,
            height: 12,
            out_width: 9,
            out_height: 5,
        };
        assert_eq!(window.apply(&img).unwrap(), resize(&crop, 9, 5).unwrap());
        assert_eq!(
            resize_box(&crop, [0.0, 0.0, 20.0, 12.0], 9, 5).unwrap(),
            resize(&crop, 9, 5).unwrap()
        );
    }

    #[test]
    fn identity_is_a_copy() {
        let img = Image::from_rgb(2, 1, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(resize(&img, 2, 1).unwrap(), img);
    }
}
