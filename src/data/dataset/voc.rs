//! Pascal VOC 2007 / 2012 classification targets from the detection annotations.

use std::path::Path;

use super::{Dataset, LabelTable, Source};
use crate::bail;
use crate::data::file::read_text;
use crate::error::Result;

/// The 20 VOC classes in the standard (alphabetical) order.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

crate::choices! {
    /// What a class seen only on `difficult` objects becomes.
    pub enum Difficult("difficult") {
        /// Unknown (-1): excluded from the loss and the metrics (the VOC evaluation's rule).
        Ignore = "ignore",
        /// Present (1).
        Positive = "positive",
        /// Absent (0).
        Negative = "negative",
    }
}

/// Reads `<root>/ImageSets/Main/<split>.txt` and each listed `Annotations/<id>.xml`;
/// images are `<root>/JPEGImages/<id>.jpg`. `root` is a `VOC2007`-style folder.
pub fn voc(root: &Path, split: &str, difficult: Difficult) -> Result<Dataset> {
    let list = root
        .join("ImageSets")
        .join("Main")
        .join(format!("{split}.txt"));
    let ids: Vec<String> = read_text(&list)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let table = LabelTable::new(VOC_CLASSES.iter().map(|s| s.to_string()).collect())?;
    let nc = table.len();
    let mut targets = Vec::with_capacity(ids.len() * nc);
    let mut paths = Vec::with_capacity(ids.len());
    for id in &ids {
        let xml_path = root.join("Annotations").join(format!("{id}.xml"));
        let xml = read_text(&xml_path)?;
        let doc = match roxmltree::Document::parse(&xml) {
            Ok(d) => d,
            Err(e) => bail!("{}: malformed XML: {e}", xml_path.display()),
        };
        let mut row = vec![0i8; nc];
        let mut hard = vec![false; nc];
        for obj in doc.descendants().filter(|n| n.has_tag_name("object")) {
            let child = |tag: &str| {
                obj.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .map(str::trim)
            };
            let Some(name) = child("name") else {
                let line = doc.text_pos_at(obj.range().start).row;
                bail!("{}:{line}: <object> without <name>", xml_path.display());
            };
            let line = doc.text_pos_at(obj.range().start).row;
            let c = table.get(name, &|| format!("{}:{line}", xml_path.display()))?;
            if child("difficult") == Some("1") {
                hard[c] = true;
            } else {
                row[c] = 1;
            }
        }
        for c in 0..nc {
            if hard[c] && row[c] == 0 {
                row[c] = match difficult {
                    Difficult::Ignore => -1,
                    Difficult::Positive => 1,
                    Difficult::Negative => 0,
                };
            }
        }
        targets.extend_from_slice(&row);
        paths.push(root.join("JPEGImages").join(format!("{id}.jpg")));
    }
    Dataset::new(table.into_classes(), targets, Source::Files(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;

    fn xml(objects: &[(&str, u8)]) -> String {
        let body: String = objects
            .iter()
            .map(|(name, difficult)| {
                format!("<object><name>{name}</name><difficult>{difficult}</difficult></object>")
            })
            .collect();
        format!("<annotation><filename>x.jpg</filename>{body}</annotation>")
    }

    #[test]
    fn difficult_policies() {
        let dir = TempDir::new();
        dir.write("ImageSets/Main/trainval.txt", "000001\n000002\n");
        dir.write("Annotations/000001.xml", &xml(&[("dog", 0), ("person", 1)]));
        dir.write("Annotations/000002.xml", &xml(&[("cat", 1), ("cat", 0)]));
        let column = |name: &str| VOC_CLASSES.iter().position(|c| *c == name).unwrap();
        for (policy, value) in [
            (Difficult::Ignore, -1),
            (Difficult::Positive, 1),
            (Difficult::Negative, 0),
        ] {
            let d = voc(dir.path(), "trainval", policy).unwrap();
            assert_eq!(d.target(0)[column("dog")], 1);
            assert_eq!(d.target(0)[column("person")], value);
            assert_eq!(d.target(0)[column("cat")], 0);
            // A class with one difficult and one plain object is simply present.
            assert_eq!(d.target(1)[column("cat")], 1);
        }
        dir.write("Annotations/000002.xml", &xml(&[("unicorn", 0)]));
        let err = voc(dir.path(), "trainval", Difficult::Ignore)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unicorn"), "{err}");
    }
}
