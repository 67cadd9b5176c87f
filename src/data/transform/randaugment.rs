//! RandAugment (Cubuk et al. 2020) with torchvision's operation table and magnitude bins.

use super::{affine, color};
use crate::data::image::Image;
use crate::data::rng::Rng;

/// Declares the operations once: the enum, the table in torchvision's order, and the names.
macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// torchvision's RandAugment operations.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Operation { $($op),* }

        /// Every operation, indexable by torchvision's op index.
        pub const OPERATIONS: &[Operation] = &[$(Operation::$op),*];

        /// torchvision's name of each operation of [`OPERATIONS`].
        pub const NAMES: &[&str] = &[$(stringify!($op)),*];
    };
}

operations!(
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
);

impl std::str::FromStr for Operation {
    type Err = crate::Error;

    /// The operation of torchvision's name.
    fn from_str(name: &str) -> crate::Result<Self> {
        match NAMES.iter().position(|n| *n == name) {
            Some(k) => Ok(OPERATIONS[k]),
            None => Err(crate::Error::value(format!(
                "unknown RandAugment operation {name:?}; known: {NAMES:?}"
            ))),
        }
    }
}

/// RandAugment's settings: `num_ops` operations of strength `magnitude` out of
/// `num_magnitude_bins` (torchvision's names).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(pyo3::FromPyObject))]
pub struct RandAugment {
    pub num_ops: usize,
    pub magnitude: usize,
    pub num_magnitude_bins: usize,
    pub fill: [u8; 3],
}

impl Operation {
    /// The magnitude of bin `m` of `bins` for an image `w x h`, and whether its sign is random.
    pub fn magnitude(self, m: usize, bins: usize, w: usize, h: usize) -> (f64, bool) {
        let lin = |hi: f64| {
            if bins > 1 {
                hi * m as f64 / (bins - 1) as f64
            } else {
                0.0
            }
        };
        use Operation::*;
        match self {
            Identity | AutoContrast | Equalize => (0.0, false),
            ShearX | ShearY => (lin(0.3), true),
            TranslateX => (lin(150.0 / 331.0 * w as f64), true),
            TranslateY => (lin(150.0 / 331.0 * h as f64), true),
            Rotate => (lin(30.0), true),
            Brightness | Color | Contrast | Sharpness => (lin(0.9), true),
            Posterize => {
                let step = if bins > 1 {
                    (bins - 1) as f64 / 4.0
                } else {
                    1.0
                };
                (8.0 - (m as f64 / step).round_ties_even(), false)
            }
            Solarize => (255.0 - lin(255.0), false),
        }
    }

    /// Applies the operation with signed magnitude `mag`.
    pub fn apply(self, img: Image, mag: f64, fill: [u8; 3]) -> Image {
        use Operation::*;
        let (w, h) = (img.width, img.height);
        let warp = |m: affine::Matrix| affine::warp_nearest(&img, &m, fill);
        let mut img = match self {
            ShearX => {
                return warp(affine::inverse_matrix(
                    (0.0, 0.0),
                    0.0,
                    (0.0, 0.0),
                    (mag.atan().to_degrees(), 0.0),
                ))
            }
            ShearY => {
                return warp(affine::inverse_matrix(
                    (0.0, 0.0),
                    0.0,
                    (0.0, 0.0),
                    (0.0, mag.atan().to_degrees()),
                ))
            }
            TranslateX => {
                return warp(affine::inverse_matrix(
                    (w as f64 / 2.0, h as f64 / 2.0),
                    0.0,
                    (mag.trunc(), 0.0),
                    (0.0, 0.0),
                ))
            }
            TranslateY => {
                return warp(affine::inverse_matrix(
                    (w as f64 / 2.0, h as f64 / 2.0),
                    0.0,
                    (0.0, mag.trunc()),
                    (0.0, 0.0),
                ))
            }
            Rotate => return warp(affine::rotation_matrix(w, h, mag)),
            _ => img,
        };
        match self {
            Brightness => color::brightness(&mut img, 1.0 + mag),
            Color => color::color(&mut img, 1.0 + mag),
            Contrast => color::contrast(&mut img, 1.0 + mag),
            Sharpness => color::sharpness(&mut img, 1.0 + mag),
            Posterize => color::posterize(&mut img, mag as u32),
            Solarize => color::solarize(&mut img, mag),
            AutoContrast => color::autocontrast(&mut img),
            Equalize => color::equalize(&mut img),
            _ => {}
        }
        img
    }
}

impl RandAugment {
    /// Checks that the magnitude is one of the bins.
    pub fn check(&self) -> crate::Result<()> {
        if self.num_magnitude_bins < 2 || self.magnitude >= self.num_magnitude_bins {
            crate::bail!(
                "RandAugment magnitude must be below num_magnitude_bins (>= 2), got {} and {}",
                self.magnitude,
                self.num_magnitude_bins
            );
        }
        Ok(())
    }

    /// Draws `num_ops` operations (with replacement) and applies them in turn.
    pub fn apply(&self, mut img: Image, rng: &mut Rng) -> Image {
        for _ in 0..self.num_ops {
            let op = OPERATIONS[rng.below(OPERATIONS.len())];
            let (mut mag, signed) = op.magnitude(
                self.magnitude,
                self.num_magnitude_bins,
                img.width,
                img.height,
            );
            if signed && rng.chance(0.5) {
                mag = -mag;
            }
            img = op.apply(img, mag, self.fill);
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_magnitudes_at_9_of_31() {
        let m = |op: Operation| op.magnitude(9, 31, 331, 100).0;
        assert!((m(Operation::ShearX) - 0.09).abs() < 1e-12);
        assert!((m(Operation::TranslateX) - 45.0).abs() < 1e-9);
        assert!((m(Operation::Rotate) - 9.0).abs() < 1e-12);
        assert_eq!(m(Operation::Posterize), 7.0);
        assert!((m(Operation::Solarize) - 178.5).abs() < 1e-9);
    }
}
