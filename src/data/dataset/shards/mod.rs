//! WebDataset shards: tar files whose members `key.ext` group into samples, an image
//! (`.jpg`, `.jpeg`, `.png`) and its labels (`.cls` or `.json`).
//!
//! Opening a set of shards reads every tar header and every label member once, seeking past
//! the images; an image is then read from its shard at its offset, never unpacked.

mod braces;
mod index;
pub mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Dataset, LabelTable, Source};
use crate::bail;
use crate::data::dataset::OnError;
use crate::data::file::open_regular;
use crate::error::{Error, Result};
pub use braces::{expand_braces, MAX_SHARDS};
use index::{index_shard, Sink};

/// Where each sample's image lies: its shard, byte range and member name.
pub struct Shards {
    paths: Vec<PathBuf>,
    members: Vec<Member>,
    spans: Vec<Range<usize>>,
    skipped: Vec<(String, String)>,
}

/// A sample's image member: its shard, byte range and name inside the shard.
struct Member {
    shard: u32,
    offset: u64,
    len: u64,
    name: String,
}

impl Shards {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sample `i` in messages: `shard.tar:key.jpg`.
    pub fn name(&self, i: usize) -> String {
        let m = &self.members[i];
        format!("{}:{}", self.paths[m.shard as usize].display(), m.name)
    }

    /// The samples of each shard, as index ranges in shard order (empty shards included).
    pub fn spans(&self) -> &[Range<usize>] {
        &self.spans
    }

    /// The shard files, in the order given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Samples (or whole shard tails) left out under `OnError::Skip`: name and reason.
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    /// The bytes of sample `i`'s image, read from its shard.
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let m = &self.members[i];
        let path = &self.paths[m.shard as usize];
        let file = open_regular(path)?;
        let mut bytes = Vec::new();
        usize::try_from(m.len)
            .ok()
            .and_then(|n| bytes.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                Error::Memory(format!("cannot hold {} ({} bytes)", self.name(i), m.len))
            })?;
        bytes.resize(m.len as usize, 0);
        file.read_exact_at(&mut bytes, m.offset)
            .map_err(|e| Error::Io {
                path: path.clone(),
                source: std::io::Error::new(e.kind(), format!("member {}: {e}", m.name)),
            })?;
        Ok(bytes)
    }
}

/// A dataset over WebDataset shards, each pattern brace-expanded, in the order given.
///
/// Labels are class names or indices into `classes`. Under `OnError::Skip` a sample without
/// an image or labels, or with a label outside the table, and the rest of a truncated or
/// damaged shard, are left out and listed in [`Shards::skipped`]; otherwise each is an error
/// naming the shard and member.
pub fn shards(patterns: &[String], classes: Vec<String>, on_error: OnError) -> Result<Dataset> {
    let mut paths = Vec::new();
    for p in patterns {
        for path in expand_braces(p)? {
            if paths.len() >= MAX_SHARDS {
                bail!("the shard patterns name more than {MAX_SHARDS} shards");
            }
            paths.push(PathBuf::from(path));
        }
    }
    if paths.is_empty() {
        bail!("no shards given");
    }
    let table = LabelTable::new(classes)?;
    let mut sink = Sink::new(&table, on_error);
    let mut spans = Vec::with_capacity(paths.len());
    for (k, path) in paths.iter().enumerate() {
        let file = open_regular(path)?;
        let size = file
            .metadata()
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let start = sink.members.len();
        let reader = std::io::BufReader::with_capacity(16 << 10, file);
        index_shard(
            reader,
            size,
            k as u32,
            &path.display().to_string(),
            &mut sink,
        )?;
        spans.push(start..sink.members.len());
    }
    let Sink {
        members,
        targets,
        skipped,
        ..
    } = sink;
    if members.is_empty() {
        bail!(
            "the shards hold no samples{}",
            skipped.first().map_or(String::new(), |(what, why)| format!(
                " (first left out: {what}: {why})"
            ))
        );
    }
    let shards = Shards {
        paths,
        members,
        spans,
        skipped,
    };
    Dataset::new(
        table.into_classes(),
        targets,
        Source::Shards(Arc::new(shards)),
    )
}

/// Indexes one in-memory shard (the fuzz target's entry point): the samples found, or the
/// first error.
pub fn index_bytes(bytes: &[u8], classes: Vec<String>, on_error: OnError) -> Result<usize> {
    let table = LabelTable::new(classes)?;
    let mut sink = Sink::new(&table, on_error);
    index_shard(
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
        0,
        "shard",
        &mut sink,
    )?;
    Ok(sink.members.len())
}

/// Reads a label table: one class name per line (blank lines ignored).
pub fn read_classes(path: &Path) -> Result<Vec<String>> {
    let text = crate::data::file::read_text(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
pub(crate) mod tests;
