//! Multi-label datasets: a label table, a target matrix, and where each image comes from.
//!
//! Targets are `1` (present), `0` (absent) and `-1` (unknown / not annotated).

pub mod coco;
pub mod fashion;
mod hidden;
pub mod idx;
pub mod listfile;
pub mod nuswide;
pub mod openimages;
pub mod scenes;
pub mod shards;
pub mod voc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::decode::{decode, decode_window, read_image, read_image_window, DecodeOptions, Decoded};
use super::image::Image;
use super::resize::Window;

use crate::array::Matrix;
use crate::bail;
use crate::error::Result;
use ndarray::ArrayViewD;

crate::choices! {
    /// What to do with a sample that cannot be read or decoded: the loader's images, a shard
    /// reader's members.
    pub enum OnError("on_error") {
        /// Stop with an exception naming the file.
        Raise = "raise",
        /// Leave the sample out of its batch and report it with the batch.
        Skip = "skip",
    }
}

/// A generated sample's labelled boxes: `(class, [x0, y0, x1, y1])` in pixels.
pub type Boxes = Vec<(usize, [f32; 4])>;

/// The largest `images x classes` target table a generated dataset may have (4 GiB of int8).
const MAX_TARGETS: usize = 1 << 32;

/// Checks a generated dataset's sizes before anything is built: a `size x size` canvas within
/// the decoder's default pixel limit, and `len x classes` targets within [`MAX_TARGETS`].
pub(crate) fn check_generated(len: usize, size: usize, classes: usize) -> Result<()> {
    let limit = super::decode::DEFAULT_MAX_PIXELS;
    if size.checked_mul(size).is_none_or(|n| n > limit) {
        bail!("scene size {size} gives {size}x{size} pixels, over the limit of {limit} per image");
    }
    if len.checked_mul(classes).is_none_or(|n| n > MAX_TARGETS) {
        bail!("{len} scenes x {classes} labels is over the limit of {MAX_TARGETS} targets");
    }
    Ok(())
}

/// Where a dataset's pixels come from.
#[derive(Clone)]
pub enum Source {
    /// Image files, one per sample.
    Files(Vec<PathBuf>),
    /// One contiguous `N x H x W x C` uint8 array, `C` 1 or 3.
    Memory {
        pixels: Arc<Vec<u8>>,
        height: usize,
        width: usize,
        channels: usize,
    },
    /// Procedurally rendered scenes.
    Scenes(scenes::Scenes),
    /// Scenes composed from Fashion-MNIST items.
    Fashion(Arc<fashion::FashionScenes>),
    /// Images inside WebDataset tar shards.
    Shards(Arc<shards::Shards>),
}

/// A labelled multi-label dataset.
#[derive(Clone)]
pub struct Dataset {
    classes: Vec<String>,
    targets: Vec<i8>,
    source: Source,
    len: usize,
    /// How image files are decoded (pixel limit, strictness).
    pub decode: DecodeOptions,
}

/// Builds target rows from label names, with one table of class names.
pub struct LabelTable {
    classes: Vec<String>,
    index: HashMap<String, usize>,
}

impl LabelTable {
    /// A table over `classes` in the given order; names must be unique.
    pub fn new(classes: Vec<String>) -> Result<Self> {
        let mut index = HashMap::with_capacity(classes.len());
        for (i, c) in classes.iter().enumerate() {
            if index.insert(c.clone(), i).is_some() {
                bail!("class name {c:?} appears twice in the label table");
            }
        }
        Ok(LabelTable { classes, index })
    }

    /// The index of `name`, or an error naming `what` (a file and line).
    pub fn get(&self, name: &str, what: &dyn Fn() -> String) -> Result<usize> {
        match self.index.get(name) {
            Some(&i) => Ok(i),
            None => bail!(
                "{}: unknown class {name:?} (not among the {} classes of the label table)",
                what(),
                self.classes.len()
            ),
        }
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn into_classes(self) -> Vec<String> {
        self.classes
    }
}

impl Dataset {
    /// Assembles a dataset; `targets` is `len x classes.len()` row-major.
    pub fn new(classes: Vec<String>, targets: Vec<i8>, source: Source) -> Result<Self> {
        let len = match &source {
            Source::Files(p) => p.len(),
            Source::Memory {
                pixels,
                height,
                width,
                channels,
            } => pixels.len() / (height * width * channels).max(1),
            Source::Scenes(s) => s.len,
            Source::Fashion(f) => f.len(),
            Source::Shards(s) => s.len(),
        };
        if len == 0 {
            bail!("the dataset is empty: no images were found");
        }
        if classes.is_empty() {
            bail!("the dataset has no classes");
        }
        if targets.len() != len * classes.len() {
            bail!(
                "targets hold {} values, expected {len} images x {} classes",
                targets.len(),
                classes.len()
            );
        }
        Ok(Dataset {
            classes,
            targets,
            source,
            len,
            decode: DecodeOptions::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The whole `len x classes` target matrix.
    pub fn targets(&self) -> &[i8] {
        &self.targets
    }

    /// Sample `i`'s target row.
    pub fn target(&self, i: usize) -> &[i8] {
        let c = self.classes.len();
        &self.targets[i * c..(i + 1) * c]
    }

    /// A name for sample `i` in messages: its path, or its index in a generated set.
    pub fn name(&self, i: usize) -> String {
        match &self.source {
            Source::Files(p) => p[i].display().to_string(),
            Source::Shards(s) => s.name(i),
            _ => format!("sample {i}"),
        }
    }

    /// The file paths, when the images are files.
    pub fn paths(&self) -> Option<&[PathBuf]> {
        match &self.source {
            Source::Files(p) => Some(p),
            _ => None,
        }
    }

    /// The shards, when the images live in tar shards.
    pub fn shards(&self) -> Option<&shards::Shards> {
        match &self.source {
            Source::Shards(s) => Some(s),
            _ => None,
        }
    }

    /// Decodes or renders sample `i` as RGB, with any warning of a lenient decode.
    pub fn load(&self, i: usize) -> Result<Decoded> {
        if i >= self.len {
            bail!(
                "index {i} out of range for a dataset of {} images",
                self.len
            );
        }
        let image = match &self.source {
            Source::Files(p) => return read_image(&p[i], &self.decode),
            Source::Shards(s) => return decode(&self.read_member(s, i)?, &s.name(i), &self.decode),
            Source::Memory {
                pixels,
                height,
                width,
                channels,
            } => {
                let n = height * width * channels;
                let px = &pixels[i * n..(i + 1) * n];
                if *channels == 1 {
                    Image::from_gray(*width, *height, px)
                } else {
                    Image::from_rgb(*width, *height, px.to_vec())
                }
            }
            Source::Scenes(s) => s.render(i).0,
            Source::Fashion(f) => f.render(i)?.0,
        };
        Ok(Decoded {
            image,
            warning: None,
        })
    }

    /// Sample `i` through `window` (given the image's size): image files are decoded only as
    /// far as the window needs ([`decode_window`](super::decode::decode_window)).
    pub fn load_window(
        &self,
        i: usize,
        window: &mut dyn FnMut(usize, usize) -> Window,
    ) -> Result<Decoded> {
        match (&self.source, i < self.len) {
            (Source::Files(p), true) => return read_image_window(&p[i], &self.decode, window),
            (Source::Shards(s), true) => {
                let bytes = self.read_member(s, i)?;
                return decode_window(&bytes, &s.name(i), &self.decode, window);
            }
            _ => {}
        }
        let full = self.load(i)?;
        let (w, h) = (full.image.width, full.image.height);
        Ok(Decoded {
            image: window(w, h).apply(&full.image)?,
            warning: full.warning,
        })
    }

    fn read_member(&self, s: &shards::Shards, i: usize) -> Result<Vec<u8>> {
        super::profile::timed(super::profile::Stage::Read, || s.read(i))
    }

    /// The labelled boxes `(class, x0, y0, x1, y1)` of a generated sample, in pixels.
    pub fn objects(&self, i: usize) -> Result<Vec<(usize, [f32; 4])>> {
        if i >= self.len {
            bail!(
                "index {i} out of range for a dataset of {} images",
                self.len
            );
        }
        match &self.source {
            Source::Scenes(s) => Ok(s.render(i).1),
            Source::Fashion(f) => Ok(f.render(i)?.1),
            _ => bail!("object boxes are only known for generated scenes"),
        }
    }
}

/// A dataset over an in-memory `n x height x width x channels` uint8 array (channels 1 or 3).
pub fn from_memory(
    pixels: Vec<u8>,
    shape: [usize; 4],
    targets: Vec<i8>,
    classes: Vec<String>,
) -> Result<Dataset> {
    let [n, height, width, channels] = shape;
    if channels != 1 && channels != 3 {
        bail!("images must have 1 or 3 channels, got {channels}");
    }
    if n == 0 || height == 0 || width == 0 {
        bail!("the image array is empty (shape {shape:?})");
    }
    if pixels.len() != n * height * width * channels {
        bail!(
            "the image array holds {} bytes, shape {shape:?} needs {}",
            pixels.len(),
            n * height * width * channels
        );
    }
    if let Some(bad) = targets.iter().find(|&&t| !(-1..=1).contains(&t)) {
        bail!("targets must be 1, 0 or -1, found {bad}");
    }
    LabelTable::new(classes.clone())?;
    Dataset::new(
        classes,
        targets,
        Source::Memory {
            pixels: Arc::new(pixels),
            height,
            width,
            channels,
        },
    )
}

/// An in-memory dataset from uint8 images `[N, H, W]` or `[N, H, W, C]` (any strides) and
/// `[N, C]` targets of 1, 0 and -1 in any element type.
pub fn from_arrays(
    images: ArrayViewD<'_, u8>,
    targets: Matrix<'_>,
    classes: Vec<String>,
) -> Result<Dataset> {
    let s = images.shape();
    if !(s.len() == 3 || s.len() == 4) {
        bail!("images must be uint8 [N, H, W] or [N, H, W, C], got shape {s:?}");
    }
    let (n, c) = targets.dim();
    if n != s[0] || c != classes.len() {
        bail!(
            "targets must be [N, C] = [{}, {}], got [{n}, {c}]",
            s[0],
            classes.len()
        );
    }
    let labels = targets.ternary()?;
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(images.len())
        .map_err(|_| crate::Error::Memory(format!("a copy of images {s:?}")))?;
    match images.as_slice() {
        Some(p) => pixels.extend_from_slice(p),
        None => pixels.extend(images.iter().copied()),
    }
    let dims = |i: usize| s.get(i).copied().unwrap_or(1);
    from_memory(
        pixels,
        [dims(0), dims(1), dims(2), dims(3)],
        labels,
        classes,
    )
}

/// Joins `rel` under `root` unless it is absolute.
pub(crate) fn under(root: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Fixture folders for the readers' unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh folder under the system's temporary directory, removed when dropped.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("q2l-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `text` to `rel` (creating its folders) and returns the full path.
        pub fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_arrays_checks_and_converts() {
        let images = ndarray::Array3::<u8>::zeros((2, 4, 5)).into_dyn();
        let targets = ndarray::array![[1f32, 0.], [-1., 1.]];
        let two = || vec!["a".to_string(), "b".to_string()];
        let d = from_arrays(images.view(), Matrix::F32(targets.view()), two()).unwrap();
        assert_eq!(
            (d.len(), d.target(0), d.target(1)),
            (2, &[1i8, 0][..], &[-1i8, 1][..])
        );
        assert_eq!(d.load(1).unwrap().image.width, 5);
        // Reversed rows (a negative stride) are read in their logical order.
        let flipped = targets.slice(ndarray::s![..;-1, ..]);
        let d = from_arrays(images.view(), Matrix::F32(flipped), two()).unwrap();
        assert_eq!(d.target(0), &[-1i8, 1][..]);
        let soft = ndarray::array![[1f32, 0.5], [0., 0.]];
        let err = from_arrays(images.view(), Matrix::F32(soft.view()), two())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("found 0.5 at index [0, 1]"),
            "{err}"
        );
        let err = from_arrays(images.view(), Matrix::F32(targets.view()), vec!["a".into()])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("targets must be [N, C] = [2, 1]"),
            "{err}"
        );
    }
}
