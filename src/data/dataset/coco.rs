//! MS-COCO instances annotations (2014 / 2017) as multi-label targets.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{under, Dataset, Source};
use crate::bail;
use crate::data::file::read_text;
use crate::error::{try_filled, Result};

#[derive(Deserialize)]
struct Instances {
    images: Vec<ImageEntry>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct ImageEntry {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct Annotation {
    image_id: u64,
    category_id: u64,
}

#[derive(Deserialize)]
struct Category {
    id: u64,
    name: String,
}

/// Reads `instances_*.json`; images are looked up under `image_dir`.
///
/// Classes are ordered by ascending category id (80 for COCO, ids 1..90 with gaps).
/// `annotated_only = false` keeps every listed image (Query2Label's protocol: 40,504
/// val2014 images, the unannotated ones with all-zero targets); `true` keeps images with
/// at least one annotation (ASL / ML-Decoder: 40,137).
pub fn coco(annotations: &Path, image_dir: &Path, annotated_only: bool) -> Result<Dataset> {
    let text = read_text(annotations)?;
    let doc: Instances = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => bail!("{}: not a COCO instances file: {e}", annotations.display()),
    };
    let mut cats: Vec<&Category> = doc.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    let mut column = HashMap::with_capacity(cats.len());
    for (i, c) in cats.iter().enumerate() {
        if column.insert(c.id, i).is_some() {
            bail!(
                "{}: category id {} appears twice",
                annotations.display(),
                c.id
            );
        }
    }
    let mut row = HashMap::with_capacity(doc.images.len());
    for (i, img) in doc.images.iter().enumerate() {
        if row.insert(img.id, i).is_some() {
            bail!(
                "{}: image id {} appears twice",
                annotations.display(),
                img.id
            );
        }
    }
    let nc = cats.len();
    let mut targets = try_filled(
        &[doc.images.len(), nc],
        0i8,
        "the targets (images x classes)",
    )?;
    let mut annotated = vec![false; doc.images.len()];
    for (k, a) in doc.annotations.iter().enumerate() {
        let Some(&r) = row.get(&a.image_id) else {
            bail!(
                "{}: annotation {k} refers to image id {}, which is not in \"images\"",
                annotations.display(),
                a.image_id
            );
        };
        let Some(&c) = column.get(&a.category_id) else {
            bail!(
                "{}: annotation {k} has unknown category id {} (not in \"categories\")",
                annotations.display(),
                a.category_id
            );
        };
        targets[r * nc + c] = 1;
        annotated[r] = true;
    }
    let mut paths = Vec::new();
    let mut kept = Vec::new();
    for (i, img) in doc.images.iter().enumerate() {
        if annotated_only && !annotated[i] {
            continue;
        }
        paths.push(under(image_dir, &img.file_name));
        kept.extend_from_slice(&targets[i * nc..(i + 1) * nc]);
    }
    let classes = cats.iter().map(|c| c.name.clone()).collect();
    Dataset::new(classes, kept, Source::Files(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;

    #[test]
    fn labels_by_category_id_and_annotated_only() {
        let dir = TempDir::new();
        let json = dir.write(
            "instances.json",
            r#"{"images": [{"id": 10, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}],
                "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}],
                "annotations": [{"image_id": 10, "category_id": 90}, {"image_id": 10, "category_id": 1}]}"#,
        );
        let all = coco(&json, dir.path(), false).unwrap();
        assert_eq!(all.classes(), ["person", "toothbrush"]);
        let row = |d: &Dataset, name: &str| {
            let i = d
                .paths()
                .unwrap()
                .iter()
                .position(|p| p.ends_with(name))
                .unwrap();
            d.target(i).to_vec()
        };
        assert_eq!(
            (row(&all, "a.jpg"), row(&all, "b.jpg")),
            (vec![1, 1], vec![0, 0])
        );
        assert_eq!(coco(&json, dir.path(), true).unwrap().len(), 1);
        let bad = dir.write("bad.json", r#"{"images": [}"#);
        assert!(coco(&bad, dir.path(), false)
            .err()
            .unwrap()
            .to_string()
            .contains("not a COCO instances file"));
    }
}
