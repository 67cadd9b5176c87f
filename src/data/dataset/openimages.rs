//! Open Images style image-level labels: `ImageID, LabelName, Confidence` rows.

use std::collections::HashMap;
use std::path::Path;

use super::{Dataset, LabelTable, Source};
use crate::bail;
use crate::error::{try_filled, Error, Result};

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let file = crate::data::file::open_regular(path)?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    Error::value(format!("{}:{line}: malformed CSV: {e}", path.display()))
}

/// Reads a class-descriptions CSV (`LabelName,DisplayName`, header optional): MIDs and names.
fn descriptions(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let (mut mids, mut names) = (Vec::new(), Vec::new());
    for (k, rec) in reader(path)?.records().enumerate() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        if k == 0 && rec.get(0) == Some("LabelName") {
            continue;
        }
        if rec.len() < 2 {
            bail!(
                "{}:{}: expected LabelName,DisplayName",
                path.display(),
                k + 1
            );
        }
        mids.push(rec[0].to_string());
        names.push(rec[1].to_string());
    }
    Ok((mids, names))
}

/// One label row: the image's row, the class MID, the confidence (0 or 1), the line.
struct Row {
    image: usize,
    label: String,
    confidence: i8,
    line: u64,
}

/// Reads the label rows, and the image IDs in order of first appearance.
fn label_rows(path: &Path) -> Result<(Vec<Row>, Vec<String>)> {
    let mut rdr = reader(path)?;
    let mut records = rdr.records();
    let header = match records.next() {
        Some(r) => r.map_err(|e| csv_error(path, e))?,
        None => bail!("{}: empty file", path.display()),
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(ci), Some(cl), Some(cc)) = (col("ImageID"), col("LabelName"), col("Confidence"))
    else {
        bail!(
            "{}:1: header must name ImageID, LabelName and Confidence columns",
            path.display()
        );
    };
    let mut rows = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut image_row: HashMap<String, usize> = HashMap::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let (Some(id), Some(label), Some(conf)) = (rec.get(ci), rec.get(cl), rec.get(cc)) else {
            bail!(
                "{}:{line}: missing ImageID, LabelName or Confidence",
                path.display()
            );
        };
        let confidence = match conf.trim() {
            "1" | "1.0" => 1,
            "0" | "0.0" => 0,
            other => bail!(
                "{}:{line}: Confidence must be 0 or 1, got {other:?}",
                path.display()
            ),
        };
        let next = images.len();
        let image = *image_row.entry(id.to_string()).or_insert_with(|| {
            images.push(id.to_string());
            next
        });
        rows.push(Row {
            image,
            label: label.to_string(),
            confidence,
            line,
        });
    }
    Ok((rows, images))
}

/// The label table from a class-descriptions file: MIDs, and display names (a repeated
/// display name gets its MID appended).
fn named_classes(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let (mids, names) = descriptions(path)?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    names.iter().for_each(|n| *seen.entry(n).or_default() += 1);
    let names = names
        .iter()
        .zip(&mids)
        .map(|(n, m)| {
            if seen[n.as_str()] > 1 {
                format!("{n} ({m})")
            } else {
                n.clone()
            }
        })
        .collect();
    Ok((mids, names))
}

/// Reads human-verified image labels; images are `<image_dir>/<ImageID>.jpg`.
///
/// Confidence 1 is a positive, 0 a verified negative, and a class not mentioned for an
/// image is unknown (-1). With `classes_csv` the label table is that file's classes in its
/// order, named by display name (a repeated display name gets its MID appended), and a
/// label outside it is an error; without it, the MIDs found, sorted.
pub fn open_images(
    labels_csv: &Path,
    image_dir: &Path,
    classes_csv: Option<&Path>,
) -> Result<Dataset> {
    let (rows, images) = label_rows(labels_csv)?;
    let (mids, names) = match classes_csv {
        Some(p) => named_classes(p)?,
        None => {
            let mut mids: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
            mids.sort();
            mids.dedup();
            (mids.clone(), mids)
        }
    };
    let table = LabelTable::new(mids)?;
    let nc = table.len();
    let mut targets = try_filled(&[images.len(), nc], -1i8, "the targets (images x classes)")?;
    for row in &rows {
        let c = table.get(&row.label, &|| {
            format!("{}:{}", labels_csv.display(), row.line)
        })?;
        targets[row.image * nc + c] = row.confidence;
    }
    let paths = images
        .iter()
        .map(|id| image_dir.join(format!("{id}.jpg")))
        .collect();
    Dataset::new(names, targets, Source::Files(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;

    #[test]
    fn confidence_and_unmentioned_labels() {
        let dir = TempDir::new();
        let labels = dir.write(
            "labels.csv",
            "ImageID,Source,LabelName,Confidence\nimg1,verification,/m/cat,1\n\
             img1,verification,/m/dog,0\nimg2,crowdsource,/m/dog,1\n",
        );
        let d = open_images(&labels, dir.path(), None).unwrap();
        assert_eq!(d.classes(), ["/m/cat", "/m/dog"]);
        assert_eq!((d.target(0), d.target(1)), (&[1i8, 0][..], &[-1i8, 1][..]));
        let classes = dir.write(
            "classes.csv",
            "LabelName,DisplayName\n/m/dog,Dog\n/m/cat,Cat\n",
        );
        let named = open_images(&labels, dir.path(), Some(&classes)).unwrap();
        assert_eq!(named.classes(), ["Dog", "Cat"]);
        assert_eq!(named.target(0), &[0i8, 1][..]);
        let bad = dir.write("bad.csv", "ImageID,LabelName,Confidence\nimg1,/m/cat,0.5\n");
        let err = open_images(&bad, dir.path(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("bad.csv:2: Confidence must be 0 or 1"),
            "{err}"
        );
    }
}
