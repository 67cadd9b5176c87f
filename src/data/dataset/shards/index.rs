//! Reading one shard's tar headers and label members; images are only located (offset and
//! length), never read here.

use std::collections::HashSet;
use std::io::{Read, Seek};

use super::Member;
use crate::bail;
use crate::data::dataset::LabelTable;
use crate::data::dataset::OnError;
use crate::error::{Error, Result};

/// Longest member name read from a GNU long-name or pax record.
const MAX_NAME: u64 = 4096;
/// Largest pax record block read.
const MAX_PAX: u64 = 64 << 10;
/// Largest label member (`.cls`, `.json`) read.
const MAX_LABELS: u64 = 1 << 20;

/// A WebDataset member name split into its sample key and lower-case extension: the key is
/// everything before the first dot of the file name.
fn split_key(name: &str) -> Option<(&str, String)> {
    let base = name.rfind('/').map_or(0, |k| k + 1);
    let dot = base + name[base..].find('.')?;
    Some((&name[..dot], name[dot + 1..].to_ascii_lowercase()))
}

/// One sample's members as found in a shard.
#[derive(Default)]
pub(super) struct Pending {
    key: String,
    image: Option<(u64, u64, String)>,
    labels: Option<(String, Vec<u8>)>,
    cls: bool,
}

/// What indexing builds: members, targets, skips.
pub(super) struct Sink<'a> {
    pub table: &'a LabelTable,
    pub on_error: OnError,
    pub members: Vec<Member>,
    pub targets: Vec<i8>,
    pub skipped: Vec<(String, String)>,
}

impl<'a> Sink<'a> {
    /// An empty index over `table`.
    pub fn new(table: &'a LabelTable, on_error: OnError) -> Self {
        Sink {
            table,
            on_error,
            members: Vec::new(),
            targets: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds a sample, or skips or refuses it with a message naming shard and key.
    fn finish(&mut self, shard: u32, name: &str, p: Pending) -> Result<()> {
        if p.key.is_empty() {
            return Ok(());
        }
        let here = format!("{name}:{}", p.key);
        let row = self.row(&here, &p);
        let outcome = row.and_then(|row| {
            let Some((offset, len, member)) = p.image else {
                bail!("{here}: no image member (.jpg, .jpeg or .png)");
            };
            Ok((
                row,
                Member {
                    shard,
                    offset,
                    len,
                    name: member,
                },
            ))
        });
        match outcome {
            Ok((row, member)) => {
                self.targets.try_reserve(row.len()).map_err(|_| {
                    Error::Memory(format!("the targets of {} samples", self.members.len() + 1))
                })?;
                self.targets.extend(row);
                self.members.push(member);
                Ok(())
            }
            Err(e) => self.skip(here, e),
        }
    }

    fn skip(&mut self, what: String, e: Error) -> Result<()> {
        match (self.on_error, e) {
            (OnError::Skip, Error::Value(msg) | Error::Image { msg, .. }) => {
                self.skipped.push((what, msg));
                Ok(())
            }
            (_, e) => Err(e),
        }
    }

    /// The sample's target row from its `.cls` (class indices) or `.json` member.
    fn row(&self, here: &str, p: &Pending) -> Result<Vec<i8>> {
        let Some((member, bytes)) = &p.labels else {
            bail!("{here}: no labels (a .cls or .json member)");
        };
        let here = format!("{here} ({member})");
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::value(format!("{here}: labels are not UTF-8 text")))?;
        let mut row = vec![0i8; self.table.len()];
        if p.cls {
            for token in text
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
            {
                row[self.index_of(&serde_json::Value::String(token.into()), true, &here)?] = 1;
            }
            return Ok(row);
        }
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::value(format!("{here}: malformed JSON: {e}")))?;
        let (labels, unknown) = match &v {
            serde_json::Value::Array(_) => (Some(&v), None),
            serde_json::Value::Object(o) if o.contains_key("labels") => {
                (o.get("labels"), o.get("unknown"))
            }
            _ => bail!("{here}: the JSON must be a list of labels or an object with \"labels\""),
        };
        for (field, value, mark) in [("unknown", unknown, -1i8), ("labels", labels, 1)] {
            let items = match value {
                None | Some(serde_json::Value::Null) => continue,
                Some(serde_json::Value::Array(items)) => items,
                Some(_) => bail!("{here}: \"{field}\" must be a list of class names or indices"),
            };
            for item in items {
                let k = self.index_of(item, false, &here)?;
                if row[k] == -1 && mark == 1 {
                    bail!("{here}: label {item} is listed both as present and as unknown");
                }
                row[k] = mark;
            }
        }
        Ok(row)
    }

    /// A label's class index: a name in the table, or an index below the class count
    /// (`numeric`: a `.cls` token, always an index).
    fn index_of(&self, item: &serde_json::Value, numeric: bool, here: &str) -> Result<usize> {
        let n = self.table.len();
        let index = match item {
            serde_json::Value::String(s) if numeric => s.parse::<u64>().map_err(|_| {
                Error::value(format!(
                    "{here}: {s:?} is not a class index (a .cls member holds integers)"
                ))
            })?,
            serde_json::Value::String(s) => return self.table.get(s, &|| here.to_string()),
            serde_json::Value::Number(x) => x.as_u64().ok_or_else(|| {
                Error::value(format!(
                    "{here}: label {x} is not a class index (an integer >= 0)"
                ))
            })?,
            other => bail!("{here}: label {other} is neither a class name nor an index"),
        };
        if index >= n as u64 {
            bail!("{here}: class index {index} is out of range for the {n} classes of the label table");
        }
        Ok(index as usize)
    }
}

/// Reads one shard's headers and label members into `sink`.
pub(super) fn index_shard<R: Read + Seek>(
    reader: R,
    size: u64,
    shard: u32,
    name: &str,
    sink: &mut Sink,
) -> Result<()> {
    let tar_error =
        |e: std::io::Error| Error::value(format!("{name}: not a readable tar shard: {e}"));
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries_with_seek().map_err(tar_error)?.raw(true);
    let mut pending = Pending::default();
    let mut seen = HashSet::new();
    let mut long_name: Option<String> = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // The samples before a broken header are kept; the rest of the shard is lost.
                sink.finish(shard, name, std::mem::take(&mut pending))?;
                return sink.skip(name.to_string(), tar_error(e));
            }
        };
        let (offset, len) = (entry.raw_file_position(), entry.size());
        let kind = entry.header().entry_type();
        let end = offset.checked_add(len).filter(|&end| end <= size);
        if end.is_none() {
            let member = long_name
                .take()
                .unwrap_or_else(|| String::from_utf8_lossy(&entry.path_bytes()).into_owned());
            sink.finish(shard, name, std::mem::take(&mut pending))?;
            return sink.skip(
                format!("{name}:{member}"),
                Error::value(format!(
                    "{name}: truncated shard: member {member} needs bytes {offset}..{} but the file has {size}",
                    offset.saturating_add(len)
                )),
            );
        }
        if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
            let limit = if kind.is_gnu_longname() {
                MAX_NAME
            } else {
                MAX_PAX
            };
            if len > limit {
                bail!("{name}: an extended header at byte {offset} holds {len} bytes, over the limit of {limit}");
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(tar_error)?;
            long_name = if kind.is_gnu_longname() {
                Some(
                    String::from_utf8_lossy(bytes.split(|&b| b == 0).next().unwrap_or(&[]))
                        .into_owned(),
                )
            } else {
                pax_path(&bytes, name)?
            };
            continue;
        }
        if kind.is_pax_global_extensions() || kind.is_gnu_longlink() {
            continue;
        }
        if kind.is_gnu_sparse() {
            bail!("{name}: member at byte {offset} is a sparse file; shards must hold plain files");
        }
        let member = long_name
            .take()
            .unwrap_or_else(|| String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        if !kind.is_file() && !kind.is_contiguous() {
            continue; // folders, links, devices: not sample data, and never followed
        }
        let Some((key, ext)) = split_key(&member) else {
            continue;
        };
        if key != pending.key {
            sink.finish(shard, name, std::mem::take(&mut pending))?;
            if !seen.insert(key.to_string()) {
                let e = Error::value(format!(
                    "{name}: the members of sample {key} are not next to each other"
                ));
                sink.skip(format!("{name}:{key}"), e)?;
                continue;
            }
            pending.key = key.to_string();
        }
        match ext.as_str() {
            "jpg" | "jpeg" | "png" => {
                if pending.image.is_some() {
                    let e = Error::value(format!("{name}:{key}: two image members"));
                    pending.key.clear();
                    sink.skip(format!("{name}:{key}"), e)?;
                    continue;
                }
                pending.image = Some((offset, len, member.clone()));
            }
            "cls" | "json" if !pending.cls => {
                if len > MAX_LABELS {
                    bail!("{name}:{member}: a label member of {len} bytes, over the limit of {MAX_LABELS}");
                }
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(tar_error)?;
                pending.cls = ext == "cls";
                pending.labels = Some((member.clone(), bytes));
            }
            _ => {}
        }
    }
    sink.finish(shard, name, pending)
}

/// The `path` record of a pax extended header, if any; a `size` record is refused (the
/// offsets of later members would follow the plain header's size).
fn pax_path(bytes: &[u8], name: &str) -> Result<Option<String>> {
    let mut path = None;
    for record in tar::PaxExtensions::new(bytes) {
        let record =
            record.map_err(|e| Error::value(format!("{name}: malformed pax header: {e}")))?;
        match record.key_bytes() {
            b"path" => path = Some(String::from_utf8_lossy(record.value_bytes()).into_owned()),
            b"size" => bail!("{name}: pax size records (members over 8 GiB) are not supported"),
            _ => {}
        }
    }
    Ok(path)
}
