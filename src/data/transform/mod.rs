//! Image transforms: a validated list of operations ending in a fixed-size tensor layout.

pub mod affine;
pub mod color;
pub mod crop;
pub mod randaugment;

use super::image::Image;
use super::resize::resize;
use super::rng::Rng;
use crate::bail;
use crate::error::Result;
pub use crop::{multi_scale_box, random_crop_box};
pub use randaugment::RandAugment;

/// ImageNet channel means and standard deviations (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How Cutout fills its holes.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    /// One random colour per hole (the official CutoutPIL's choice).
    Random,
    Constant([u8; 3]),
}

/// One step of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Squash to `width x height` (PIL bilinear with antialiasing).
    Resize {
        width: usize,
        height: usize,
    },
    /// torchvision's `RandomResizedCrop`: area fraction in `scale`, aspect in `ratio`.
    RandomResizedCrop {
        width: usize,
        height: usize,
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    /// ML-GCN's `MultiScaleCrop`: a crop whose sides are `scales` x the shorter side (the two
    /// scale indices at most `max_distort` apart), at a random position or, with `fix_crop`, at
    /// one of 13 fixed positions; then resized.
    MultiScaleCrop {
        width: usize,
        height: usize,
        scales: Vec<f64>,
        max_distort: usize,
        fix_crop: bool,
    },
    /// The central `width x height` window (the image must be at least that large).
    CenterCrop {
        width: usize,
        height: usize,
    },
    /// Mirror with probability `p`.
    HorizontalFlip {
        p: f64,
    },
    /// `holes` squares of side `factor x` image side, centres uniform, clipped at the border.
    Cutout {
        holes: usize,
        factor: f64,
        fill: Fill,
        p: f64,
    },
    RandAugment(RandAugment),
}

/// The tensor a sample becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// float32 CHW, `(x / 255 - mean) / std`.
    Normalize { mean: [f32; 3], std: [f32; 3] },
    /// uint8 CHW, to be normalised on the accelerator.
    Uint8,
}

/// A validated transform: operations, then the output layout, with a known output size.
#[derive(Clone, Debug)]
pub struct Pipeline {
    ops: Vec<Op>,
    output: Output,
    width: usize,
    height: usize,
    luts: [[f32; 256]; 3],
}

impl Pipeline {
    /// Checks the operations and works out the output size.
    ///
    /// The first operation must fix the size (`Resize` or `RandomResizedCrop`) so that every
    /// sample of a batch has the same shape.
    pub fn new(ops: Vec<Op>, output: Output) -> Result<Self> {
        let mut size: Option<(usize, usize)> = None;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::MultiScaleCrop { scales, .. }
                    if scales.is_empty() || scales.iter().any(|s| !(*s > 0.0 && *s <= 1.0)) =>
                {
                    bail!("transform {i}: MultiScaleCrop scales must be in (0, 1], got {scales:?}")
                }
                Op::Resize { width, height }
                | Op::RandomResizedCrop { width, height, .. }
                | Op::MultiScaleCrop { width, height, .. } => {
                    if *width == 0 || *height == 0 {
                        bail!("transform {i}: output size must be positive, got {width}x{height}");
                    }
                    if let Op::RandomResizedCrop { scale, ratio, .. } = op {
                        if !(0.0 < scale.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
                            bail!("transform {i}: RandomResizedCrop scale must satisfy 0 < min <= max <= 1, got {scale:?}");
                        }
                        if !(0.0 < ratio.0 && ratio.0 <= ratio.1) {
                            bail!("transform {i}: RandomResizedCrop ratio must satisfy 0 < min <= max, got {ratio:?}");
                        }
                    }
                    size = Some((*width, *height));
                }
                Op::CenterCrop { width, height } => match size {
                    Some((w, h)) if *width <= w && *height <= h && *width > 0 && *height > 0 => {
                        size = Some((*width, *height))
                    }
                    Some((w, h)) => {
                        bail!("transform {i}: CenterCrop {width}x{height} does not fit in {w}x{h}")
                    }
                    None => bail!(
                        "transform {i}: CenterCrop needs a Resize or RandomResizedCrop before it"
                    ),
                },
                Op::HorizontalFlip { p } | Op::Cutout { p, .. } if !(0.0..=1.0).contains(p) => {
                    bail!("transform {i}: probability must be in [0, 1], got {p}")
                }
                Op::Cutout { holes, factor, .. }
                    if *holes == 0 || !(*factor > 0.0 && *factor <= 1.0) =>
                {
                    bail!("transform {i}: Cutout needs holes >= 1 and 0 < factor <= 1, got {holes} and {factor}")
                }
                Op::RandAugment(ra) if ra.bins < 2 || ra.magnitude >= ra.bins => {
                    bail!("transform {i}: RandAugment magnitude must be below num_magnitude_bins ({} >= {})", ra.magnitude, ra.bins)
                }
                _ => {}
            }
            if size.is_none() {
                bail!("transform {i}: the first transform must be Resize, RandomResizedCrop or MultiScaleCrop (it fixes the batch's image size)");
            }
        }
        let Some((width, height)) = size else {
            bail!("a transform needs a Resize or RandomResizedCrop: batches need one image size");
        };
        let mut luts = [[0f32; 256]; 3];
        if let Output::Normalize { mean, std } = &output {
            for c in 0..3 {
                if !(std[c] > 0.0) || !mean[c].is_finite() {
                    bail!("normalisation std must be positive and mean finite, got mean {mean:?} std {std:?}");
                }
                for (v, l) in luts[c].iter_mut().enumerate() {
                    *l = ((v as f64 / 255.0 - mean[c] as f64) / std[c] as f64) as f32;
                }
            }
        }
        Ok(Pipeline {
            ops,
            output,
            width,
            height,
            luts,
        })
    }

    /// Output `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (3, self.height, self.width)
    }

    /// The output layout.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Runs the operations; the result has the pipeline's output size.
    pub fn augment(&self, mut img: Image, rng: &mut Rng) -> Image {
        for op in &self.ops {
            img = match op {
                Op::Resize { width, height } => resize(&img, *width, *height),
                Op::RandomResizedCrop {
                    width,
                    height,
                    scale,
                    ratio,
                } => {
                    let (x, y, w, h) = random_crop_box(img.width, img.height, *scale, *ratio, rng);
                    resize(&img.crop(x, y, w, h), *width, *height)
                }
                Op::MultiScaleCrop {
                    width,
                    height,
                    scales,
                    max_distort,
                    fix_crop,
                } => {
                    let (x, y, w, h) = multi_scale_box(
                        img.width,
                        img.height,
                        (*width, *height),
                        scales,
                        *max_distort,
                        *fix_crop,
                        rng,
                    );
                    resize(&img.crop(x, y, w, h), *width, *height)
                }
                Op::CenterCrop { width, height } => {
                    // torchvision's rounding of the top-left corner.
                    let x = ((img.width - width) as f64 / 2.0).round() as usize;
                    let y = ((img.height - height) as f64 / 2.0).round() as usize;
                    img.crop(x, y, *width, *height)
                }
                Op::HorizontalFlip { p } => {
                    if rng.chance(*p) {
                        img.flip_horizontal();
                    }
                    img
                }
                Op::Cutout {
                    holes,
                    factor,
                    fill,
                    p,
                } => {
                    if rng.chance(*p) {
                        cutout(&mut img, *holes, *factor, fill, rng);
                    }
                    img
                }
                Op::RandAugment(ra) => ra.apply(img, rng),
            };
        }
        img
    }

    /// Writes `img` (already of the output size) as float32 CHW.
    pub fn write_f32(&self, img: &Image, out: &mut [f32]) {
        let plane = self.width * self.height;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let [lr, lg, lb] = &self.luts;
        for (i, p) in img.data.chunks_exact(3).enumerate() {
            r[i] = lr[p[0] as usize];
            g[i] = lg[p[1] as usize];
            b[i] = lb[p[2] as usize];
        }
    }

    /// Writes `img` (already of the output size) as uint8 CHW.
    pub fn write_u8(&self, img: &Image, out: &mut [u8]) {
        let plane = self.width * self.height;
        for (i, p) in img.data.chunks_exact(3).enumerate() {
            out[i] = p[0];
            out[plane + i] = p[1];
            out[2 * plane + i] = p[2];
        }
    }
}

/// Paints `holes` squares (side `factor x` the image side, per axis) at uniform centres.
pub fn cutout(img: &mut Image, holes: usize, factor: f64, fill: &Fill, rng: &mut Rng) {
    let (w, h) = (img.width, img.height);
    let (cw, ch) = (
        (factor * w as f64 + 0.5) as usize,
        (factor * h as f64 + 0.5) as usize,
    );
    for _ in 0..holes {
        let (xc, yc) = (rng.below(w), rng.below(h));
        let (x0, x1) = (xc.saturating_sub(cw / 2), (xc + cw - cw / 2).min(w));
        let (y0, y1) = (yc.saturating_sub(ch / 2), (yc + ch - ch / 2).min(h));
        let rgb = match fill {
            Fill::Random => [
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ],
            Fill::Constant(c) => *c,
        };
        for y in y0..y1 {
            for x in x0..x1 {
                img.put(x, y, rgb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_need_a_size_first() {
        assert!(Pipeline::new(vec![Op::HorizontalFlip { p: 0.5 }], Output::Uint8).is_err());
        assert!(Pipeline::new(vec![], Output::Uint8).is_err());
        let p = Pipeline::new(
            vec![
                Op::Resize {
                    width: 8,
                    height: 4,
                },
                Op::CenterCrop {
                    width: 4,
                    height: 4,
                },
            ],
            Output::Uint8,
        )
        .unwrap();
        assert_eq!(p.shape(), (3, 4, 4));
    }

    #[test]
    fn cutout_area_is_the_factor_squared_inside() {
        let mut img = Image::filled(100, 100, [1, 1, 1]);
        let mut rng = Rng::keyed(&[1]);
        let (mut xc, mut yc) = (0, 0);
        while !(25..75).contains(&xc) || !(25..75).contains(&yc) {
            img = Image::filled(100, 100, [1, 1, 1]);
            let mut probe = rng.clone();
            xc = probe.below(100);
            yc = probe.below(100);
            cutout(&mut img, 1, 0.5, &Fill::Constant([0, 0, 0]), &mut rng);
        }
        assert_eq!(img.data.chunks(3).filter(|p| p[0] == 0).count(), 2500);
    }
}
