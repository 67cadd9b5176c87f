//! Procedurally rendered multi-label scenes: textured shapes on cluttered backgrounds.
//!
//! Each scene is a pure function of (seed, split, index), so a dataset of any size costs
//! no storage and renders identically on every thread and machine.

use std::f64::consts::PI;

use super::{Dataset, Source};
use crate::bail;
use crate::data::image::Image;
use crate::data::rng::Rng;
use crate::error::Result;

/// The object classes, in label order.
pub const SCENE_CLASSES: [&str; 10] = [
    "circle", "square", "triangle", "star", "ring", "cross", "hexagon", "crescent", "diamond",
    "arrow",
];

/// A generated dataset's settings.
#[derive(Clone, Debug)]
pub struct Scenes {
    pub len: usize,
    pub size: usize,
    pub seed: u64,
    /// 0 for training scenes, 1 for validation scenes: disjoint random streams.
    pub split: u64,
    pub min_objects: usize,
    pub max_objects: usize,
}

#[derive(Clone, Debug)]
struct Object {
    class: usize,
    cx: f64,
    cy: f64,
    r: f64,
    angle: f64,
    colors: [[f64; 3]; 2],
    texture: usize,
    period: f64,
    tex_angle: f64,
}

fn random_color(rng: &mut Rng) -> [f64; 3] {
    let h = rng.range(0.0, 6.0);
    let (s, v) = (rng.range(0.5, 1.0), rng.range(0.55, 1.0));
    let f = h - h.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let rgb = match h as usize {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    rgb.map(|c| c * 255.0)
}

/// Signed distance (in units of the object radius; negative inside) of a convex polygon
/// with `n` sides and apothem `a`, rotated by `phase`.
fn polygon(u: f64, v: f64, n: usize, a: f64, phase: f64) -> f64 {
    (0..n)
        .map(|k| {
            let t = phase + 2.0 * PI * k as f64 / n as f64;
            u * t.cos() + v * t.sin() - a
        })
        .fold(f64::MIN, f64::max)
}

fn boxed(u: f64, v: f64, hu: f64, hv: f64) -> f64 {
    (u.abs() - hu).max(v.abs() - hv)
}

/// The signed distance of class `class` at local coordinates `(u, v)`.
fn shape(class: usize, u: f64, v: f64) -> f64 {
    let len = (u * u + v * v).sqrt();
    match class {
        0 => len - 0.9,
        1 => boxed(u, v, 0.72, 0.72),
        2 => polygon(u, v, 3, 0.5, -PI / 2.0),
        3 => {
            let m = (v.atan2(u) / (2.0 * PI / 5.0)).rem_euclid(1.0);
            len - (0.4 + 0.55 * (2.0 * m - 1.0).abs())
        }
        4 => (len - 0.7).abs() - 0.2,
        5 => boxed(u, v, 0.9, 0.28).min(boxed(u, v, 0.28, 0.9)),
        6 => polygon(u, v, 6, 0.8, 0.0),
        7 => (len - 0.9).max(0.72 - ((u - 0.4).powi(2) + v * v).sqrt()),
        8 => (u.abs() * 0.95 + v.abs() * 0.5 - 0.95 * 0.5) / (0.95f64.powi(2) + 0.25).sqrt(),
        _ => boxed(u + 0.35, v, 0.55, 0.2).min(polygon(u - 0.3, v, 3, 0.3, PI)),
    }
}

impl Scenes {
    /// The objects of scene `i` (the same on every call).
    fn layout(&self, i: usize) -> (Vec<Object>, Rng) {
        let mut rng = Rng::keyed(&[self.seed, self.split, i as u64, 0x5ce9e]);
        let span = self.max_objects - self.min_objects + 1;
        let count = self.min_objects + rng.below(span);
        let s = self.size as f64;
        let mut objects: Vec<Object> = Vec::with_capacity(count);
        for _ in 0..count {
            let r = s * rng.range(0.11, 0.2);
            let (mut cx, mut cy) = (0.0, 0.0);
            // Rejection sampling keeps occlusion partial; the last draw wins if all fail.
            for _ in 0..30 {
                cx = rng.range(r * 0.8, s - r * 0.8);
                cy = rng.range(r * 0.8, s - r * 0.8);
                if objects
                    .iter()
                    .all(|o| ((o.cx - cx).powi(2) + (o.cy - cy).powi(2)).sqrt() > 0.85 * (o.r + r))
                {
                    break;
                }
            }
            objects.push(Object {
                class: rng.below(SCENE_CLASSES.len()),
                cx,
                cy,
                r,
                angle: rng.range(0.0, 2.0 * PI),
                colors: [random_color(&mut rng), random_color(&mut rng)],
                texture: rng.below(4),
                period: rng.range(0.25, 0.5),
                tex_angle: rng.range(0.0, PI),
            });
        }
        (objects, rng)
    }

    /// Scene `i`'s multi-hot target.
    pub fn target(&self, i: usize) -> Vec<i8> {
        let mut t = vec![0i8; SCENE_CLASSES.len()];
        for o in self.layout(i).0 {
            t[o.class] = 1;
        }
        t
    }

    /// Renders scene `i`: the image and each object's class and box `[x0, y0, x1, y1]`.
    pub fn render(&self, i: usize) -> (Image, super::Boxes) {
        let (objects, mut rng) = self.layout(i);
        let n = self.size;
        let mut img = background(n, &mut rng);
        for o in &objects {
            draw(&mut img, o);
        }
        let boxes = objects
            .iter()
            .map(|o| {
                (
                    o.class,
                    [
                        (o.cx - o.r) as f32,
                        (o.cy - o.r) as f32,
                        (o.cx + o.r) as f32,
                        (o.cy + o.r) as f32,
                    ],
                )
            })
            .collect();
        (img, boxes)
    }
}

fn background(n: usize, rng: &mut Rng) -> Image {
    let (c0, c1) = (
        random_color(rng).map(|c| c * 0.6),
        random_color(rng).map(|c| c * 0.6),
    );
    let g = 5;
    let noise: Vec<f64> = (0..(g + 1) * (g + 1))
        .map(|_| rng.range(-40.0, 40.0))
        .collect();
    let dir = rng.range(0.0, 2.0 * PI);
    let (dx, dy) = (dir.cos(), dir.sin());
    let mut data = Vec::with_capacity(n * n * 3);
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f64 / n as f64, y as f64 / n as f64);
            let t = ((fx - 0.5) * dx + (fy - 0.5) * dy + 0.5).clamp(0.0, 1.0);
            let (gx, gy) = (fx * g as f64, fy * g as f64);
            let (ix, iy) = ((gx as usize).min(g - 1), (gy as usize).min(g - 1));
            let (ax, ay) = (gx - ix as f64, gy - iy as f64);
            let at = |a: usize, b: usize| noise[b * (g + 1) + a];
            let nz = at(ix, iy) * (1.0 - ax) * (1.0 - ay)
                + at(ix + 1, iy) * ax * (1.0 - ay)
                + at(ix, iy + 1) * (1.0 - ax) * ay
                + at(ix + 1, iy + 1) * ax * ay;
            for c in 0..3 {
                data.push((c0[c] * (1.0 - t) + c1[c] * t + nz).clamp(0.0, 255.0) as u8);
            }
        }
    }
    let mut img = Image::from_rgb(n, n, data);
    // Clutter: thin segments that belong to no class.
    for _ in 0..4 + rng.below(8) {
        let (x0, y0) = (rng.range(0.0, n as f64), rng.range(0.0, n as f64));
        let (a, len) = (rng.range(0.0, 2.0 * PI), rng.range(0.1, 0.4) * n as f64);
        let col = random_color(rng).map(|c| c as u8);
        let width = (n as f64 / 150.0).max(1.0);
        let steps = (len * 2.0) as usize;
        for k in 0..steps {
            let t = k as f64 / 2.0;
            let (px, py) = (x0 + a.cos() * t, y0 + a.sin() * t);
            for oy in 0..width as usize {
                let (xx, yy) = (px as i64, py as i64 + oy as i64);
                if xx >= 0 && yy >= 0 && (xx as usize) < n && (yy as usize) < n {
                    img.put(xx as usize, yy as usize, col);
                }
            }
        }
    }
    img
}

fn draw(img: &mut Image, o: &Object) {
    let n = img.width;
    let (sin, cos) = o.angle.sin_cos();
    let (ts, tc) = o.tex_angle.sin_cos();
    let x0 = (o.cx - o.r - 1.0).max(0.0) as usize;
    let y0 = (o.cy - o.r - 1.0).max(0.0) as usize;
    let x1 = ((o.cx + o.r + 2.0) as usize).min(n);
    let y1 = ((o.cy + o.r + 2.0) as usize).min(img.height);
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = ((x as f64 + 0.5 - o.cx) / o.r, (y as f64 + 0.5 - o.cy) / o.r);
            let (u, v) = (px * cos + py * sin, -px * sin + py * cos);
            let alpha = (0.5 - shape(o.class, u, v) * o.r).clamp(0.0, 1.0);
            if alpha <= 0.0 {
                continue;
            }
            let s = (u * tc + v * ts) / o.period;
            let w = match o.texture {
                0 => 0.0,
                1 => (s.floor() as i64 & 1) as f64,
                2 => ((s.floor() + ((-u * ts + v * tc) / o.period).floor()) as i64 & 1) as f64,
                _ => ((u * tc + v * ts) * 0.5 + 0.5).clamp(0.0, 1.0),
            };
            let old = img.get(x, y);
            let mut rgb = [0u8; 3];
            for c in 0..3 {
                let col = o.colors[0][c] * (1.0 - w) + o.colors[1][c] * w;
                rgb[c] = (old[c] as f64 * (1.0 - alpha) + col * alpha)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
            img.put(x, y, rgb);
        }
    }
}

/// A dataset of `len` generated scenes of `size x size` pixels; `split` is "train" or "val".
pub fn generated(
    len: usize,
    size: usize,
    seed: u64,
    split: &str,
    min_objects: usize,
    max_objects: usize,
) -> Result<Dataset> {
    let split = match split {
        "train" => 0,
        "val" | "test" => 1,
        _ => bail!("split must be 'train', 'val' or 'test', got {split:?}"),
    };
    if size < 16 {
        bail!("scene size must be at least 16 pixels, got {size}");
    }
    if min_objects == 0 || min_objects > max_objects || max_objects > 8 {
        bail!(
            "objects per scene must satisfy 1 <= min <= max <= 8, got {min_objects}..{max_objects}"
        );
    }
    super::check_generated(len, size, SCENE_CLASSES.len())?;
    let scenes = Scenes {
        len,
        size,
        seed,
        split,
        min_objects,
        max_objects,
    };
    let targets = (0..len).flat_map(|i| scenes.target(i)).collect();
    let classes = SCENE_CLASSES.iter().map(|s| s.to_string()).collect();
    Dataset::new(classes, targets, Source::Scenes(scenes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_labelled() {
        let s = Scenes {
            len: 10,
            size: 64,
            seed: 3,
            split: 0,
            min_objects: 1,
            max_objects: 4,
        };
        let (a, boxes) = s.render(5);
        assert_eq!(a, s.render(5).0);
        assert_ne!(a, s.render(6).0);
        let t = s.target(5);
        assert!(boxes.iter().all(|(c, _)| t[*c] == 1));
        assert!((1..=4).contains(&t.iter().filter(|&&v| v == 1).count()));
    }
}
