//! Writes any dataset as WebDataset shards that [`shards`](super::shards::shards) reads back.
//!
//! Each sample becomes `KEY.jpg` or `KEY.png` and `KEY.json` (`{"labels": [...], "unknown":
//! [...]}`, class names); image files are copied byte for byte, generated and in-memory
//! images are stored as PNG (lossless). A `classes.txt` beside the shards holds the label table.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bail;
use crate::data::dataset::{Dataset, Source};
use crate::data::decode::{sniff, Format};
use crate::error::{Error, Result};

/// How [`write_shards`] cuts a dataset into shards.
pub struct ShardLayout {
    /// Shard files are `PREFIX-000000.tar`, `PREFIX-000001.tar`, ...
    pub prefix: String,
    /// Samples per shard at most.
    pub samples_per_shard: usize,
    /// Bytes per shard at most (a sample larger than this gets a shard of its own).
    pub max_shard_bytes: u64,
}

/// Writes `dataset` into `dir` as shards and returns their paths. Each shard is written under
/// a temporary name and renamed when complete, so an interrupted run leaves no short shard.
pub fn write_shards(dataset: &Dataset, dir: &Path, layout: &ShardLayout) -> Result<Vec<PathBuf>> {
    if layout.samples_per_shard == 0 || layout.max_shard_bytes == 0 {
        bail!("samples_per_shard and max_shard_bytes must be >= 1");
    }
    if layout.prefix.is_empty() || layout.prefix.contains(['/', '\\', '\0']) {
        bail!(
            "prefix must be a non-empty file name without '/', got {:?}",
            layout.prefix
        );
    }
    if let Some(bad) = dataset.classes().iter().find(|c| c.contains(['\n', '\r'])) {
        bail!("class name {bad:?} holds a line break and cannot be written to classes.txt");
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let classes = dir.join("classes.txt");
    std::fs::write(&classes, dataset.classes().join("\n") + "\n").map_err(io(&classes))?;
    let width = dataset.len().to_string().len().max(6);
    let mut written = Vec::new();
    let mut shard: Option<Open> = None;
    for i in 0..dataset.len() {
        let (bytes, ext) = image_bytes(dataset, i)?;
        let labels = labels_json(dataset, i);
        let size = 1024 + bytes.len() as u64 + labels.len() as u64;
        let full = shard.as_ref().is_some_and(|s| {
            s.samples >= layout.samples_per_shard
                || (s.samples > 0 && s.bytes + size > layout.max_shard_bytes)
        });
        if full {
            written.push(shard.take().map_or(Ok(PathBuf::new()), Open::close)?);
        }
        if shard.is_none() {
            let path = dir.join(format!("{}-{:06}.tar", layout.prefix, written.len()));
            shard = Some(Open::create(path)?);
        }
        let s = shard.as_mut().expect("opened above");
        let key = format!("{i:0width$}");
        s.append(&format!("{key}.{ext}"), &bytes)?;
        s.append(&format!("{key}.json"), labels.as_bytes())?;
        s.samples += 1;
        s.bytes += size;
    }
    if let Some(s) = shard {
        written.push(s.close()?);
    }
    Ok(written)
}

/// Sample `i`'s image as file bytes and extension: the original file where there is one.
fn image_bytes(dataset: &Dataset, i: usize) -> Result<(Vec<u8>, &'static str)> {
    let stored = match &dataset.source {
        Source::Files(paths) => Some(crate::data::file::read_file(&paths[i])?),
        Source::Shards(s) => Some(s.read(i)?),
        _ => None,
    };
    match stored {
        Some(bytes) => match sniff(&bytes) {
            Some(Format::Jpeg) => Ok((bytes, "jpg")),
            Some(Format::Png) => Ok((bytes, "png")),
            None => bail!("{}: not a JPEG or PNG file", dataset.name(i)),
        },
        None => {
            let img = dataset.load(i)?.image;
            Ok((crate::data::decode::encode_png(&img)?, "png"))
        }
    }
}

fn labels_json(dataset: &Dataset, i: usize) -> String {
    let names = |value: i8| -> Vec<&str> {
        let row = dataset.target(i).iter().zip(dataset.classes());
        row.filter(|(&t, _)| t == value)
            .map(|(_, c)| c.as_str())
            .collect()
    };
    serde_json::json!({ "labels": names(1), "unknown": names(-1) }).to_string()
}

/// A shard being written.
struct Open {
    path: PathBuf,
    partial: PathBuf,
    builder: tar::Builder<std::io::BufWriter<std::fs::File>>,
    samples: usize,
    bytes: u64,
}

impl Open {
    fn create(path: PathBuf) -> Result<Self> {
        let partial = path.with_extension("tar.partial");
        let file = std::fs::File::create(&partial).map_err(|source| Error::Io {
            path: partial.clone(),
            source,
        })?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(Open {
            path,
            partial,
            builder,
            samples: 0,
            bytes: 0,
        })
    }

    fn append(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, name, data)
            .map_err(|source| Error::Io {
                path: self.partial.clone(),
                source,
            })
    }

    fn close(self) -> Result<PathBuf> {
        let io = |source| Error::Io {
            path: self.partial.clone(),
            source,
        };
        let mut out = self.builder.into_inner().map_err(io)?;
        out.flush().map_err(io)?;
        std::fs::rename(&self.partial, &self.path).map_err(io)?;
        Ok(self.path)
    }
}
