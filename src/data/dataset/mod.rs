//! Multi-label datasets: a label table, a target matrix, and where each image comes from.
//!
//! Targets are `1` (present), `0` (absent) and `-1` (unknown / not annotated).

pub mod coco;
pub mod fashion;
pub mod idx;
pub mod listfile;
pub mod nuswide;
pub mod openimages;
pub mod scenes;
pub mod voc;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::decode::{read_image, DecodeOptions, Decoded};
use super::image::Image;
use crate::bail;
use crate::error::Result;

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

    pub fn source(&self) -> &Source {
        &self.source
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
            Source::Fashion(f) => f.render(i).0,
        };
        Ok(Decoded {
            image,
            warning: None,
        })
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
            Source::Fashion(f) => Ok(f.render(i).1),
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

/// Joins `rel` under `root` unless it is absolute.
pub(crate) fn under(root: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Reads a text file, naming it on failure.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    open_regular(path)?
        .read_to_string(&mut text)
        .map_err(|source| crate::Error::Io {
            path: path.into(),
            source,
        })?;
    Ok(text)
}

/// Opens an annotation file for reading. Anything but a regular file (a named pipe, a
/// device) is refused before it is opened: reading a pipe would block forever.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File> {
    let io = |source| crate::Error::Io {
        path: path.into(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        )));
    }
    if !meta.is_file() {
        bail!(
            "{}: not a regular file (a named pipe, socket or device); refusing to read it",
            path.display()
        );
    }
    std::fs::File::open(path).map_err(io)
}
