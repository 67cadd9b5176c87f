//! The operations of a pipeline, one struct each, with the names and fields of the Python
//! classes in `q2l.data.transforms` (the bindings read those objects' attributes into them).
//!
//! Each operation checks its own parameters ([`Op::check`]) and knows what it does to an
//! image ([`Op::apply`]); [`Pipeline`](super::Pipeline) only tracks the output size.

use super::crop::{multi_scale_box, random_crop_box};
use super::randaugment::RandAugment;
use crate::bail;
use crate::data::image::Image;
use crate::data::resize::Window;
use crate::data::rng::Rng;
use crate::error::Result;

/// An output size, `(height, width)` as torchvision orders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub height: usize,
    pub width: usize,
}

/// Squash to `size` (PIL bilinear with antialiasing).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct Resize {
    pub size: Size,
}

/// torchvision's `RandomResizedCrop`: area fraction in `scale`, aspect in `ratio`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct RandomResizedCrop {
    pub size: Size,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

/// ML-GCN's `MultiScaleCrop`: a crop whose sides are `scales` x the shorter side (the two
/// scale indices at most `max_distort` apart), at a random position or, with `fix_crop`, at
/// one of 13 fixed positions; then resized to `size`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct MultiScaleCrop {
    pub size: Size,
    pub scales: Vec<f64>,
    pub max_distort: usize,
    pub fix_crop: bool,
}

/// The central `size` window (the image must be at least that large).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct CenterCrop {
    pub size: Size,
}

/// Mirror left-right with probability `p`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct HorizontalFlip {
    pub p: f64,
}

/// Cutout as Query2Label intends it: `holes` squares of side `factor x` the image side (per
/// axis), centres uniform, clipped at the border, applied with probability `p`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct Cutout {
    pub factor: f64,
    pub holes: usize,
    /// `None`: one random colour per hole (the official `CutoutPIL`'s choice).
    pub fill: Option<[u8; 3]>,
    pub p: f64,
}

/// One step of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Resize(Resize),
    RandomResizedCrop(RandomResizedCrop),
    MultiScaleCrop(MultiScaleCrop),
    CenterCrop(CenterCrop),
    HorizontalFlip(HorizontalFlip),
    Cutout(Cutout),
    RandAugment(RandAugment),
}

fn probability(p: f64, what: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        bail!("{what} probability p must be in [0, 1], got {p}");
    }
    Ok(())
}

impl Size {
    /// Checks that the size is positive and within the decoder's default pixel limit (PIL's
    /// decompression-bomb threshold): no model takes larger images, and a mistyped size would
    /// otherwise ask for more memory than the machine has. `what` names the operation.
    pub fn check(self, what: &str) -> Result<()> {
        let (h, w) = (self.height, self.width);
        if w == 0 || h == 0 {
            bail!("{what} size must be positive, got {h}x{w}");
        }
        let limit = crate::data::decode::DEFAULT_MAX_PIXELS;
        if w.checked_mul(h).is_none_or(|n| n > limit) {
            bail!(
                "{what} size {h}x{w} is {} pixels, over the limit of {limit} pixels per image",
                (h as u128) * (w as u128)
            );
        }
        Ok(())
    }
}

impl Op {
    /// The Python class name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Resize(_) => "Resize",
            Op::RandomResizedCrop(_) => "RandomResizedCrop",
            Op::MultiScaleCrop(_) => "MultiScaleCrop",
            Op::CenterCrop(_) => "CenterCrop",
            Op::HorizontalFlip(_) => "HorizontalFlip",
            Op::Cutout(_) => "Cutout",
            Op::RandAugment(_) => "RandAugment",
        }
    }

    /// The size every image has after this operation, if it fixes one.
    pub fn fixed_size(&self) -> Option<Size> {
        match self {
            Op::Resize(Resize { size })
            | Op::RandomResizedCrop(RandomResizedCrop { size, .. })
            | Op::MultiScaleCrop(MultiScaleCrop { size, .. })
            | Op::CenterCrop(CenterCrop { size }) => Some(*size),
            _ => None,
        }
    }

    /// Checks the parameters; `before` is the image size the previous operations fix.
    pub fn check(&self, before: Option<Size>) -> Result<()> {
        let name = self.name();
        match self {
            Op::Resize(op) => op.size.check(name),
            Op::RandomResizedCrop(op) => {
                op.size.check(name)?;
                let (scale, ratio) = (op.scale, op.ratio);
                if !(0.0 < scale[0] && scale[0] <= scale[1] && scale[1] <= 1.0) {
                    bail!("{name} scale must satisfy 0 < min <= max <= 1, got {scale:?}");
                }
                if !(0.0 < ratio[0] && ratio[0] <= ratio[1]) {
                    bail!("{name} ratio must satisfy 0 < min <= max, got {ratio:?}");
                }
                Ok(())
            }
            Op::MultiScaleCrop(op) => {
                op.size.check(name)?;
                if op.scales.is_empty() || op.scales.iter().any(|s| !(*s > 0.0 && *s <= 1.0)) {
                    bail!("{name} scales must be in (0, 1], got {:?}", op.scales);
                }
                Ok(())
            }
            Op::CenterCrop(op) => {
                op.size.check(name)?;
                match before {
                    Some(b) if op.size.width <= b.width && op.size.height <= b.height => Ok(()),
                    Some(b) => bail!(
                        "{name} {}x{} does not fit in the {}x{} image before it",
                        op.size.height,
                        op.size.width,
                        b.height,
                        b.width
                    ),
                    None => bail!("{name} needs an operation that fixes the size before it"),
                }
            }
            Op::HorizontalFlip(op) => probability(op.p, name),
            Op::Cutout(op) => {
                probability(op.p, name)?;
                if op.holes == 0 || !(op.factor > 0.0 && op.factor <= 1.0) {
                    bail!(
                        "{name} needs holes >= 1 and 0 < factor <= 1, got {} and {}",
                        op.holes,
                        op.factor
                    );
                }
                Ok(())
            }
            Op::RandAugment(op) => op.check(),
        }
    }

    /// For the operations that crop and resize (`Resize`, `RandomResizedCrop`,
    /// `MultiScaleCrop`), the window they take of a `width x height` image, drawing from `rng`
    /// what `apply` would draw; `None` for the others.
    pub fn window(&self, width: usize, height: usize, rng: &mut Rng) -> Option<Window> {
        let (size, (x, y, w, h)) = match self {
            Op::Resize(op) => (op.size, (0, 0, width, height)),
            Op::RandomResizedCrop(op) => {
                let (scale, ratio) = ((op.scale[0], op.scale[1]), (op.ratio[0], op.ratio[1]));
                (op.size, random_crop_box(width, height, scale, ratio, rng))
            }
            Op::MultiScaleCrop(op) => {
                let out = (op.size.width, op.size.height);
                let (scales, distort) = (&op.scales, op.max_distort);
                let b = multi_scale_box(width, height, out, scales, distort, op.fix_crop, rng);
                (op.size, b)
            }
            _ => return None,
        };
        Some(Window {
            x,
            y,
            width: w,
            height: h,
            out_width: size.width,
            out_height: size.height,
        })
    }

    /// Applies the operation to one image.
    pub fn apply(&self, img: Image, rng: &mut Rng) -> Result<Image> {
        Ok(match self {
            Op::Resize(_) | Op::RandomResizedCrop(_) | Op::MultiScaleCrop(_) => {
                match self.window(img.width, img.height, rng) {
                    Some(window) => window.apply(&img)?,
                    None => img,
                }
            }
            Op::CenterCrop(op) => {
                let Size { width, height } = op.size;
                // torchvision's rounding of the top-left corner.
                let x = ((img.width - width) as f64 / 2.0).round() as usize;
                let y = ((img.height - height) as f64 / 2.0).round() as usize;
                img.crop(x, y, width, height)?
            }
            Op::HorizontalFlip(op) => {
                let mut img = img;
                if rng.chance(op.p) {
                    img.flip_horizontal();
                }
                img
            }
            Op::Cutout(op) => {
                let mut img = img;
                if rng.chance(op.p) {
                    op.paint(&mut img, rng);
                }
                img
            }
            Op::RandAugment(op) => op.apply(img, rng),
        })
    }
}

impl Cutout {
    /// Paints the holes, unconditionally (the caller has drawn `p`).
    pub fn paint(&self, img: &mut Image, rng: &mut Rng) {
        let (w, h) = (img.width, img.height);
        let cw = (self.factor * w as f64 + 0.5) as usize;
        let ch = (self.factor * h as f64 + 0.5) as usize;
        for _ in 0..self.holes {
            let (xc, yc) = (rng.below(w), rng.below(h));
            let (x0, x1) = (xc.saturating_sub(cw / 2), (xc + cw - cw / 2).min(w));
            let (y0, y1) = (yc.saturating_sub(ch / 2), (yc + ch - ch / 2).min(h));
            let rgb = self.fill.unwrap_or_else(|| {
                [
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ]
            });
            for y in y0..y1 {
                for x in x0..x1 {
                    img.put(x, y, rgb);
                }
            }
        }
    }
}
