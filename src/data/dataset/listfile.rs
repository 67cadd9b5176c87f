//! Users' own data: CSV or JSON Lines files that list an image path and its label names.

use std::path::{Path, PathBuf};

use super::{under, Dataset, LabelTable, Source};
use crate::bail;
use crate::data::file::read_text;
use crate::error::{try_filled, Error, Result};

/// One listed image: its path, its positive labels, its unknown labels, and its line.
struct Entry {
    path: PathBuf,
    labels: Vec<String>,
    unknown: Vec<String>,
    line: usize,
}

fn split_names(field: &str, sep: char) -> Vec<String> {
    field
        .split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn read_csv(path: &Path, image_root: &Path, sep: char) -> Result<Vec<Entry>> {
    let file = crate::data::file::open_regular(path)?;
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = rdr
        .headers()
        .map_err(|e| Error::value(format!("{}:1: malformed CSV header: {e}", path.display())))?
        .clone();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let (Some(ci), Some(cl)) = (col(&["image", "path", "file"]), col(&["labels", "label"])) else {
        bail!(
            "{}:1: the header must have an image column (image, path or file) and a labels column",
            path.display()
        );
    };
    let cu = col(&["unknown", "ignore"]);
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::value(format!("{}:{line}: malformed CSV row: {e}", path.display()))
        })?;
        let line = rec.position().map_or(0, |p| p.line()) as usize;
        let image = rec[ci].trim();
        if image.is_empty() {
            bail!("{}:{line}: empty image path", path.display());
        }
        out.push(Entry {
            path: under(image_root, image),
            labels: split_names(&rec[cl], sep),
            unknown: cu.map(|c| split_names(&rec[c], sep)).unwrap_or_default(),
            line,
        });
    }
    Ok(out)
}

fn names_field(
    v: Option<&serde_json::Value>,
    key: &str,
    where_: &dyn Fn() -> String,
) -> Result<Vec<String>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|x| {
                x.as_str().map(String::from).ok_or_else(|| {
                    Error::value(format!("{}: \"{key}\" must hold strings", where_()))
                })
            })
            .collect(),
        Some(_) => bail!("{}: \"{key}\" must be a list of label names", where_()),
    }
}

fn read_jsonl(path: &Path, image_root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (k, raw) in read_text(path)?.lines().enumerate() {
        let line = k + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let here = || format!("{}:{line}", path.display());
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::value(format!("{}: malformed JSON: {e}", here())))?;
        let image = v
            .get("image")
            .or_else(|| v.get("path"))
            .and_then(|x| x.as_str());
        let Some(image) = image.filter(|s| !s.is_empty()) else {
            bail!(
                "{}: each line needs an \"image\" (or \"path\") string",
                here()
            );
        };
        out.push(Entry {
            path: under(image_root, image),
            labels: names_field(v.get("labels"), "labels", &here)?,
            unknown: names_field(v.get("unknown"), "unknown", &here)?,
            line,
        });
    }
    Ok(out)
}

/// Reads a list file: `.csv` (header with `image` and `labels` columns, names separated by
/// `sep`, optional `unknown` column) or `.jsonl` (`{"image": ..., "labels": [...],
/// "unknown": [...]}`). Paths are relative to `image_root`.
///
/// With `classes`, that is the label table and any other name is an error naming its line;
/// without, the table is every name found, sorted. An image with no labels is all-negative.
pub fn list_file(
    path: &Path,
    image_root: &Path,
    classes: Option<Vec<String>>,
    sep: char,
) -> Result<Dataset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let entries = match ext.as_str() {
        "csv" => read_csv(path, image_root, sep)?,
        "jsonl" | "ndjson" => read_jsonl(path, image_root)?,
        _ => bail!("{}: list files must end in .csv or .jsonl", path.display()),
    };
    let classes = match classes {
        Some(c) => c,
        None => {
            let mut all: Vec<String> = entries
                .iter()
                .flat_map(|e| e.labels.iter().chain(&e.unknown).cloned())
                .collect();
            all.sort();
            all.dedup();
            all
        }
    };
    let table = LabelTable::new(classes)?;
    let nc = table.len();
    let mut targets = try_filled(&[entries.len(), nc], 0i8, "the targets (images x classes)")?;
    for (r, e) in entries.iter().enumerate() {
        let here = || format!("{}:{}", path.display(), e.line);
        for name in &e.unknown {
            targets[r * nc + table.get(name, &here)?] = -1;
        }
        for name in &e.labels {
            let cell = &mut targets[r * nc + table.get(name, &here)?];
            if *cell == -1 {
                // Refused rather than guessed: either reading hides an annotation error.
                bail!(
                    "{}: label {name:?} is listed both as present and as unknown",
                    here()
                );
            }
            *cell = 1;
        }
    }
    let paths = entries.into_iter().map(|e| e.path).collect();
    Dataset::new(table.into_classes(), targets, Source::Files(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;

    #[test]
    fn csv_and_jsonl_lists() {
        let dir = TempDir::new();
        let csv = dir.write(
            "train.csv",
            "image,labels,unknown\na.jpg,cat;dog,\n\"b, c.jpg\",,bird\n",
        );
        let d = list_file(&csv, dir.path(), None, ';').unwrap();
        assert_eq!(d.classes(), ["bird", "cat", "dog"]);
        assert_eq!(
            (d.target(0), d.target(1)),
            (&[0i8, 1, 1][..], &[-1i8, 0, 0][..])
        );
        assert!(d.paths().unwrap()[1].ends_with("b, c.jpg"));
        let jsonl = dir.write(
            "train.jsonl",
            "{\"image\": \"a.jpg\", \"labels\": [\"cat\"], \"unknown\": [\"dog\"]}\n{\"image\": \"b.jpg\", \"labels\": []}\n",
        );
        let classes = vec!["dog".to_string(), "cat".to_string()];
        let d = list_file(&jsonl, dir.path(), Some(classes), ';').unwrap();
        assert_eq!((d.target(0), d.target(1)), (&[-1i8, 1][..], &[0i8, 0][..]));
        let unknown = dir.write("u.csv", "image,labels\na.jpg,cat;horse\n");
        let err = list_file(&unknown, dir.path(), Some(vec!["cat".into()]), ';')
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("u.csv:2") && err.contains("horse"), "{err}");
    }
}
