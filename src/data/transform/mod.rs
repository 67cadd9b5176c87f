//! Image transforms: a validated list of operations ending in a fixed-size tensor layout.

pub mod affine;
pub mod color;
pub mod crop;
#[cfg(target_arch = "x86_64")]
mod layout_avx2;
pub mod ops;
pub mod randaugment;

use super::image::Image;
use super::profile::{timed, Stage};
use super::resize::Window;
use super::rng::Rng;
use crate::bail;
use crate::error::Result;
pub use crop::{multi_scale_box, random_crop_box};
pub use ops::{
    CenterCrop, Cutout, HorizontalFlip, MultiScaleCrop, Op, RandomResizedCrop, Resize, Size,
};
pub use randaugment::RandAugment;

/// The tensor a sample becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// float32 CHW, `(x / 255 - mean) / std`.
    Normalize { mean: [f32; 3], std: [f32; 3] },
    /// uint8 CHW, to be normalised on the accelerator.
    Uint8,
}

impl Output {
    /// The layout named `name` (`"float32"`, normalised with `mean` and `std`, or `"uint8"`).
    pub fn new(name: &str, mean: Option<[f32; 3]>, std: Option<[f32; 3]>) -> Result<Self> {
        match (name, mean, std) {
            ("float32", Some(mean), Some(std)) => Ok(Output::Normalize { mean, std }),
            ("float32", _, _) => bail!("output 'float32' needs mean and std"),
            ("uint8", _, _) => Ok(Output::Uint8),
            (other, _, _) => bail!("output must be 'float32' or 'uint8', got {other:?}"),
        }
    }
}

/// A validated transform: operations, then the output layout, with a known output size.
#[derive(Clone, Debug)]
pub struct Pipeline {
    ops: Vec<Op>,
    output: Output,
    width: usize,
    height: usize,
    /// Normalisation as `v * scale + bias` (one rounding), and the same as tables.
    scale: [f32; 3],
    bias: [f32; 3],
    luts: [[f32; 256]; 3],
}

impl Pipeline {
    /// Checks the operations and works out the output size.
    ///
    /// The first operation must fix the size (`Resize`, `RandomResizedCrop` or
    /// `MultiScaleCrop`) so that every sample of a batch has the same shape.
    pub fn new(ops: Vec<Op>, output: Output) -> Result<Self> {
        let mut size: Option<Size> = None;
        for (i, op) in ops.iter().enumerate() {
            op.check(size)
                .map_err(|e| crate::Error::value(format!("transform {i}: {e}")))?;
            size = op.fixed_size().or(size);
            if size.is_none() {
                bail!(
                    "transform {i}: the first transform must be Resize, RandomResizedCrop or \
                     MultiScaleCrop (it fixes the batch's image size), got {}",
                    op.name()
                );
            }
        }
        let Some(Size { width, height }) = size else {
            bail!("a pipeline needs an operation that fixes the size (Resize, RandomResizedCrop or MultiScaleCrop): batches need one image size");
        };
        let (scale, bias) = normalization(&output)?;
        Ok(Pipeline {
            ops,
            luts: std::array::from_fn(|c| {
                std::array::from_fn(|v| (v as f32).mul_add(scale[c], bias[c]))
            }),
            scale,
            bias,
            output,
            width,
            height,
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
    pub fn augment(&self, img: Image, rng: &mut Rng) -> Result<Image> {
        let first = self.window(img.width, img.height, rng).apply(&img)?;
        self.finish(first, rng)
    }

    /// The window the first operation (which crops and resizes, [`Pipeline::new`] checks)
    /// takes of a `width x height` image: a decoder that knows it can skip the rest.
    pub fn window(&self, width: usize, height: usize, rng: &mut Rng) -> Window {
        self.ops[0]
            .window(width, height, rng)
            .expect("Pipeline::new checks that the first operation fixes the size")
    }

    /// Runs the operations after the first on the image its window gave.
    pub fn finish(&self, mut img: Image, rng: &mut Rng) -> Result<Image> {
        timed(Stage::Augment, || {
            for op in &self.ops[1..] {
                img = op.apply(img, rng)?;
            }
            Ok(img)
        })
    }

    /// Writes `img` (already of the output size) as float32 CHW.
    pub fn write_f32(&self, img: &Image, out: &mut [f32]) {
        let plane = self.width * self.height;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if layout_avx2::available() && img.data.len() == 3 * plane && out.len() == 3 * plane {
            // SAFETY: the features are checked, the lengths just above.
            done = unsafe { layout_avx2::write_f32(&img.data, out, plane, self.scale, self.bias) };
        }
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let [lr, lg, lb] = &self.luts;
        for (i, p) in img.data.chunks_exact(3).enumerate().skip(done) {
            r[i] = lr[p[0] as usize];
            g[i] = lg[p[1] as usize];
            b[i] = lb[p[2] as usize];
        }
    }

    /// Writes `img` (already of the output size) as uint8 CHW.
    pub fn write_u8(&self, img: &Image, out: &mut [u8]) {
        let plane = self.width * self.height;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if layout_avx2::available() && img.data.len() == 3 * plane && out.len() == 3 * plane {
            // SAFETY: the features are checked, the lengths just above.
            done = unsafe { layout_avx2::write_u8(&img.data, out, plane) };
        }
        for (i, p) in img.data.chunks_exact(3).enumerate().skip(done) {
            out[i] = p[0];
            out[plane + i] = p[1];
            out[2 * plane + i] = p[2];
        }
    }
}

/// Per channel, `(scale, bias)` with `(v / 255 - mean) / std = v * scale + bias`, each
/// rounded once to float32 from double precision.
fn normalization(output: &Output) -> Result<([f32; 3], [f32; 3])> {
    let (mut scale, mut bias) = ([0f32; 3], [0f32; 3]);
    if let Output::Normalize { mean, std } = output {
        for c in 0..3 {
            // An infinite std would silently give all-zero inputs; NaN fails `> 0.0`.
            if !(std[c] > 0.0 && std[c].is_finite() && mean[c].is_finite()) {
                bail!(
                    "normalisation std must be positive and finite and mean finite, \
                     got mean {mean:?} std {std:?}"
                );
            }
            scale[c] = (1.0 / (255.0 * std[c] as f64)) as f32;
            bias[c] = (-(mean[c] as f64) / std[c] as f64) as f32;
        }
    }
    Ok((scale, bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_need_a_size_first() {
        let flip = Op::HorizontalFlip(HorizontalFlip { p: 0.5 });
        assert!(Pipeline::new(vec![flip], Output::Uint8).is_err());
        assert!(Pipeline::new(vec![], Output::Uint8).is_err());
        let size = |height, width| Size { height, width };
        let resize = Op::Resize(Resize { size: size(4, 8) });
        let crop = |s| Op::CenterCrop(CenterCrop { size: s });
        let p = Pipeline::new(vec![resize.clone(), crop(size(4, 4))], Output::Uint8).unwrap();
        assert_eq!(p.shape(), (3, 4, 4));
        let err = Pipeline::new(vec![resize, crop(size(5, 4))], Output::Uint8).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("transform 1: CenterCrop 5x4 does not fit"),
            "{err}"
        );
    }

    #[test]
    fn layouts_match_the_formula_for_every_size() {
        let output = Output::new(
            "float32",
            Some([0.485, 0.456, 0.406]),
            Some([0.229, 0.224, 0.225]),
        )
        .unwrap();
        for (w, h) in [(1, 1), (5, 3), (16, 1), (37, 5), (448, 448)] {
            let size = Size {
                height: h,
                width: w,
            };
            let ops = vec![Op::Resize(Resize { size })];
            let f = Pipeline::new(ops.clone(), output.clone()).unwrap();
            let u = Pipeline::new(ops, Output::Uint8).unwrap();
            let data: Vec<u8> = (0..w * h * 3)
                .map(|v| ((v * 7 + v / 3) % 256) as u8)
                .collect();
            let img = Image::from_rgb(w, h, data.clone());
            let (mut floats, mut bytes) = (vec![0f32; w * h * 3], vec![0u8; w * h * 3]);
            f.write_f32(&img, &mut floats);
            u.write_u8(&img, &mut bytes);
            for (i, p) in data.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    let [mean, std] = [[0.485, 0.456, 0.406][c], [0.229, 0.224, 0.225][c]];
                    let exact = (p[c] as f64 / 255.0 - mean) / std;
                    let got = floats[c * w * h + i];
                    assert_eq!(got, f.luts[c][p[c] as usize], "{w}x{h} pixel {i}");
                    assert!((got as f64 - exact).abs() < 1e-6, "{got} vs {exact}");
                    assert_eq!(bytes[c * w * h + i], p[c]);
                }
            }
        }
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
            let op = Cutout {
                factor: 0.5,
                holes: 1,
                fill: Some([0, 0, 0]),
                p: 1.0,
            };
            op.paint(&mut img, &mut rng);
        }
        assert_eq!(img.data.chunks(3).filter(|p| p[0] == 0).count(), 2500);
    }
}
