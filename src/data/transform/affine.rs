//! Affine warps with nearest-neighbour sampling, as PIL's `Image.transform(AFFINE, NEAREST)`
//! and torchvision's `F.affine` / `F.rotate` on PIL images compute them.

use crate::data::image::Image;

/// Inverse map `[a, b, c, d, e, f]`: output pixel centre `(x, y)` samples input
/// `(a x + b y + c, d x + e y + f)`.
pub type Matrix = [f64; 6];

/// torchvision's `_get_inverse_affine_matrix` (angles in degrees).
pub fn inverse_matrix(
    center: (f64, f64),
    angle: f64,
    translate: (f64, f64),
    shear: (f64, f64),
) -> Matrix {
    let rot = angle.to_radians();
    let (sx, sy) = (shear.0.to_radians(), shear.1.to_radians());
    let (cx, cy) = center;
    let (tx, ty) = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// PIL's `Image.rotate(angle)` about the centre, counter-clockwise in degrees, no expand.
pub fn rotation_matrix(width: usize, height: usize, angle: f64) -> Matrix {
    let r = -angle.to_radians();
    let round15 = |v: f64| (v * 1e15).round() / 1e15;
    let (cos, sin) = (round15(r.cos()), round15(r.sin()));
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let mut m = [cos, sin, 0.0, -sin, cos, 0.0];
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
    m
}

/// Warps `src` by the inverse map `m`; samples outside the image take `fill`.
pub fn warp_nearest(src: &Image, m: &Matrix, fill: [u8; 3]) -> Image {
    let (w, h) = (src.width, src.height);
    if m[0] == 1.0
        && m[1] == 0.0
        && m[3] == 0.0
        && m[4] == 1.0
        && m[2].fract() == 0.0
        && m[5].fract() == 0.0
    {
        return shift(src, m[2] as i64, m[5] as i64, fill);
    }
    // PIL's affine_fixed: 16.16 fixed point stepped per pixel, so that samples landing
    // exactly on a pixel edge round the same way as PIL's.
    let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
    let (a0, a1, a3, a4) = (fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4]));
    let mut row_x = fix(m[2] + m[0] * 0.5 + m[1] * 0.5);
    let mut row_y = fix(m[5] + m[3] * 0.5 + m[4] * 0.5);
    let mut out = Image::filled(w, h, fill);
    let (wf, hf) = ((w as i64) << 16, (h as i64) << 16);
    for dst in out.data.chunks_exact_mut(w * 3) {
        // The pixels whose sample lies inside the image form one run per row (the map is
        // linear): find it once instead of testing every pixel.
        let (x0, x1) = inside(row_x, a0, wf, w);
        let (y0, y1) = inside(row_y, a3, hf, w);
        let (lo, hi) = (x0.max(y0), x1.min(y1));
        if lo < hi {
            let (mut xx, mut yy) = (row_x + lo as i64 * a0, row_y + lo as i64 * a3);
            for o in dst[lo * 3..hi * 3].chunks_exact_mut(3) {
                let i = (((yy >> 16) as usize) * w + (xx >> 16) as usize) * 3;
                o.copy_from_slice(&src.data[i..i + 3]);
                xx += a0;
                yy += a3;
            }
        }
        row_x += a1;
        row_y += a4;
    }
    out
}

/// The run `[first, end)` of `i` in `0..n` for which `0 <= start + i * step < bound`.
fn inside(start: i64, step: i64, bound: i64, n: usize) -> (usize, usize) {
    let n = n as i64;
    let (first, end) = match step {
        0 if (0..bound).contains(&start) => (0, n),
        0 => (0, 0),
        s if s > 0 => (ceil_div(-start, s), ceil_div(bound - start, s)),
        s => (ceil_div(start - bound + 1, -s), (start).div_euclid(-s) + 1),
    };
    let (first, end) = (first.clamp(0, n), end.clamp(0, n));
    (first as usize, end.max(first) as usize)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// An integer translation (what torchvision's TranslateX/Y amount to): output `(x, y)` is
/// input `(x + dx, y + dy)`, copied row by row.
fn shift(src: &Image, dx: i64, dy: i64, fill: [u8; 3]) -> Image {
    let (w, h) = (src.width as i64, src.height as i64);
    let mut out = Image::filled(src.width, src.height, fill);
    let (x0, x1) = ((-dx).clamp(0, w), (w - dx).clamp(0, w));
    if x1 <= x0 {
        return out;
    }
    for y in 0..h {
        let sy = y + dy;
        if sy < 0 || sy >= h {
            continue;
        }
        let dst = ((y * w + x0) * 3) as usize;
        let from = ((sy * w + x0 + dx) * 3) as usize;
        let len = ((x1 - x0) * 3) as usize;
        out.data[dst..dst + len].copy_from_slice(&src.data[from..from + len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;

    /// PIL's loop as written: every pixel tested.
    fn reference(src: &Image, m: &Matrix, fill: [u8; 3]) -> Image {
        let (w, h) = (src.width, src.height);
        let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
        let (a0, a1, a3, a4) = (fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4]));
        let (mut row_x, mut row_y) = (
            fix(m[2] + m[0] * 0.5 + m[1] * 0.5),
            fix(m[5] + m[3] * 0.5 + m[4] * 0.5),
        );
        let mut out = Vec::new();
        for _ in 0..h {
            let (mut xx, mut yy) = (row_x, row_y);
            for _ in 0..w {
                let (px, py) = (xx >> 16, yy >> 16);
                if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                    out.extend_from_slice(&src.get(px as usize, py as usize));
                } else {
                    out.extend_from_slice(&fill);
                }
                xx += a0;
                yy += a3;
            }
            row_x += a1;
            row_y += a4;
        }
        Image::from_rgb(w, h, out)
    }

    #[test]
    fn runs_match_the_per_pixel_loop() {
        let mut rng = Rng::keyed(&[42]);
        let src = Image::from_rgb(23, 17, (0..23 * 17 * 3).map(|v| (v % 251) as u8).collect());
        for _ in 0..300 {
            let angle = rng.range(-40.0, 40.0);
            let shear = (rng.range(-20.0, 20.0), rng.range(-20.0, 20.0));
            let center = (rng.range(-5.0, 30.0), rng.range(-5.0, 20.0));
            let shift = (rng.range(-30.0, 30.0), rng.range(-20.0, 20.0));
            let m = inverse_matrix(center, angle, shift, shear);
            assert_eq!(
                warp_nearest(&src, &m, [1, 2, 3]),
                reference(&src, &m, [1, 2, 3]),
                "{m:?}"
            );
            let r = rotation_matrix(23, 17, angle);
            assert_eq!(warp_nearest(&src, &r, [0; 3]), reference(&src, &r, [0; 3]));
        }
        let flip = [-1.0, 0.0, 23.0, 0.0, 1.0, 0.0];
        assert_eq!(
            warp_nearest(&src, &flip, [0; 3]),
            reference(&src, &flip, [0; 3])
        );
    }

    #[test]
    fn identity_and_shift() {
        let src = Image::from_rgb(3, 2, (0..18).collect());
        let id = inverse_matrix((0.0, 0.0), 0.0, (0.0, 0.0), (0.0, 0.0));
        assert_eq!(warp_nearest(&src, &id, [0; 3]), src);
        let shift = inverse_matrix((1.5, 1.0), 0.0, (1.0, 0.0), (0.0, 0.0));
        let out = warp_nearest(&src, &shift, [9; 3]);
        assert_eq!(out.get(0, 0), [9; 3]);
        assert_eq!(out.get(1, 0), src.get(0, 0));
        assert_eq!(out.get(2, 1), src.get(1, 1));
        for (dx, dy) in [(-2.0, 1.0), (5.0, 0.0), (0.0, -1.0), (1.0, 1.0)] {
            let m = [1.0, 0.0, dx, 0.0, 1.0, dy];
            let mut n = m;
            n[1] = 1e-300;
            assert_eq!(
                warp_nearest(&src, &m, [7; 3]),
                warp_nearest(&src, &n, [7; 3]),
                "{dx} {dy}"
            );
        }
    }
}
