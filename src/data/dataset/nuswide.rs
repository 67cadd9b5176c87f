//! NUS-WIDE (81 concepts) as released: an image list and one 0/1 label file per concept.

use std::path::Path;

use super::{under, Dataset, LabelTable, Source};
use crate::bail;
use crate::data::file::read_text;
use crate::error::Result;

/// Reads the `Train` or `Test` split of the NUS-WIDE release under `root`:
/// `Concepts81.txt`, `ImageList/<Split>Imagelist.txt` and
/// `TrainTestLabels/Labels_<concept>_<Split>.txt`. Image-list entries such as
/// `actor\0001_2124494179.jpg` are looked up under `image_dir` with `/` separators.
pub fn nus_wide(root: &Path, split: &str, image_dir: &Path) -> Result<Dataset> {
    let split = match split.to_ascii_lowercase().as_str() {
        "train" => "Train",
        "test" => "Test",
        other => bail!("NUS-WIDE split must be 'train' or 'test', got {other:?}"),
    };
    let concepts_path = root.join("Concepts81.txt");
    let concepts: Vec<String> = read_text(&concepts_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let table = LabelTable::new(concepts)?;
    let list_path = root.join("ImageList").join(format!("{split}Imagelist.txt"));
    let paths: Vec<_> = read_text(&list_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| under(image_dir, &l.replace('\\', "/")))
        .collect();
    let (n, nc) = (paths.len(), table.len());
    let mut targets = vec![0i8; n * nc];
    for (c, concept) in table.classes.iter().enumerate() {
        let path = root
            .join("TrainTestLabels")
            .join(format!("Labels_{concept}_{split}.txt"));
        let text = read_text(&path)?;
        let mut count = 0;
        for (line, value) in text
            .lines()
            .map(str::trim)
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
        {
            if count >= n {
                bail!(
                    "{}: more labels than the {n} images of {}",
                    path.display(),
                    list_path.display()
                );
            }
            targets[count * nc + c] = match value {
                "1" => 1,
                "0" => 0,
                _ => bail!(
                    "{}:{}: expected 0 or 1, got {value:?}",
                    path.display(),
                    line + 1
                ),
            };
            count += 1;
        }
        if count != n {
            bail!(
                "{}: {count} labels for the {n} images of {}",
                path.display(),
                list_path.display()
            );
        }
    }
    Dataset::new(table.into_classes(), targets, Source::Files(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;

    #[test]
    fn concepts_from_the_label_files() {
        let dir = TempDir::new();
        dir.write("Concepts81.txt", "airport\nanimal\nbeach\n");
        dir.write(
            "ImageList/TrainImagelist.txt",
            "actor\\0001_1.jpg\nsky\\0002_2.jpg\n",
        );
        for (concept, values) in [
            ("airport", "0\n1\n"),
            ("animal", "1\n1\n"),
            ("beach", "0\n0\n"),
        ] {
            dir.write(
                &format!("TrainTestLabels/Labels_{concept}_Train.txt"),
                values,
            );
        }
        let d = nus_wide(dir.path(), "train", &dir.path().join("Flickr")).unwrap();
        assert_eq!(d.classes(), ["airport", "animal", "beach"]);
        assert_eq!(
            (d.target(0), d.target(1)),
            (&[0i8, 1, 0][..], &[1i8, 1, 0][..])
        );
        assert!(d.paths().unwrap()[0].ends_with("Flickr/actor/0001_1.jpg"));
        dir.write("TrainTestLabels/Labels_beach_Train.txt", "0\n");
        let err = nus_wide(dir.path(), "train", dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("1 labels for the 2 images"), "{err}");
    }
}
