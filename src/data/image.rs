//! The decoded image every stage of the pipeline works on.

use ndarray::{s, ArrayView3};

use crate::error::{Error, Result};

/// The bytes of a `width x height` RGB image, or an [`Error::Memory`] where that overflows.
pub fn pixels(width: usize, height: usize) -> Result<usize> {
    width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| Error::Memory(format!("a {width}x{height} image does not fit in memory")))
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`H x W x 3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Image {
    /// A `width x height` image filled with one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&rgb);
        }
        Image {
            width,
            height,
            data,
        }
    }

    /// Wraps interleaved RGB bytes; `data.len()` must be `width * height * 3`.
    pub fn from_rgb(width: usize, height: usize, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width * height * 3);
        Image {
            width,
            height,
            data,
        }
    }

    /// Expands one grey channel to RGB.
    pub fn from_gray(width: usize, height: usize, gray: &[u8]) -> Self {
        let mut data = Vec::with_capacity(gray.len() * 3);
        for &v in gray {
            data.extend_from_slice(&[v, v, v]);
        }
        Image {
            width,
            height,
            data,
        }
    }

    /// The pixel at `(x, y)`.
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at `(x, y)`.
    #[inline]
    pub fn put(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// The pixels as an `H x W x 3` array view.
    pub fn view(&self) -> Result<ArrayView3<'_, u8>> {
        ArrayView3::from_shape((self.height, self.width, 3), &self.data)
            .map_err(|e| Error::Internal(format!("a {}x{} image: {e}", self.width, self.height)))
    }

    /// The `w x h` window whose top-left corner is `(x, y)`: a slice of [`Image::view`],
    /// copied. A window that does not lie inside is an error.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Result<Image> {
        if x.saturating_add(w) > self.width || y.saturating_add(h) > self.height {
            return Err(Error::Internal(format!(
                "a {w}x{h} window at ({x}, {y}) outside a {}x{} image",
                self.width, self.height
            )));
        }
        let window = self.view()?.slice_move(s![y..y + h, x..x + w, ..]);
        let mut data = Vec::with_capacity(w * h * 3);
        // Each row of the window is adjacent in memory: copied a row at a time.
        for row in window.outer_iter() {
            match row.to_slice() {
                Some(row) => data.extend_from_slice(row),
                None => data.extend(row.iter()),
            }
        }
        Ok(Image::from_rgb(w, h, data))
    }

    /// Mirrors left and right in place.
    pub fn flip_horizontal(&mut self) {
        let w = self.width;
        for row in self.data.chunks_exact_mut(w * 3) {
            for x in 0..w / 2 {
                let (a, b) = (x * 3, (w - 1 - x) * 3);
                for c in 0..3 {
                    row.swap(a + c, b + c);
                }
            }
        }
    }

    /// ITU-R 601-2 luma as PIL's `convert("L")` computes it.
    #[inline]
    pub fn luma(rgb: [u8; 3]) -> u8 {
        let l = rgb[0] as u32 * 19595 + rgb[1] as u32 * 38470 + rgb[2] as u32 * 7471;
        ((l + 0x8000) >> 16) as u8
    }
}
