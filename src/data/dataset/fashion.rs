//! Multi-label scenes composed from real Fashion-MNIST items.
//!
//! A canvas is cut into a `grid x grid` array of cells; 1 to `max_items` items go into
//! distinct cells at a random scale and offset, and the labels are the classes present.
//! Knowing each item's cell is what lets attention maps be scored against the objects.
//!
//! Two options serve experiments beyond the ten labels: `item_classes` restricts which
//! classes' items may appear (held-out classes for zero-shot tests; the label table keeps all
//! ten), and `cell_labels` makes every (class, cell) pair its own label (`10 * grid^2` labels).

use std::path::Path;

use std::sync::Arc;

use super::idx::read_idx;
use super::{Dataset, Source};
use crate::bail;
use crate::data::image::Image;
use crate::data::resize::resize;
use crate::data::rng::Rng;
use crate::error::Result;

/// Fashion-MNIST's classes, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// How many scenes, how large, and how items are placed.
#[derive(Clone, Debug)]
pub struct Layout {
    pub len: usize,
    /// Canvas side in pixels.
    pub size: usize,
    /// The canvas is `grid x grid` cells, one item at most per cell.
    pub grid: usize,
    pub min_items: usize,
    pub max_items: usize,
    pub seed: u64,
    /// Classes whose items may appear; `None` for all ten.
    pub item_classes: Option<Vec<usize>>,
    /// Labels are `class @ cell` pairs instead of classes.
    pub cell_labels: bool,
}

/// Scenes built from one split of Fashion-MNIST.
pub struct FashionScenes {
    items: Vec<u8>,
    labels: Vec<u8>,
    side: usize,
    layout: Layout,
    /// The items that may be drawn (those of `layout.item_classes`).
    pool: Vec<u32>,
}

struct Placement {
    item: usize,
    cell: usize,
    x: usize,
    y: usize,
    side: usize,
}

impl FashionScenes {
    /// Loads `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]` from
    /// `root`, where the prefix is `train` or `t10k` (split `train` or `test`).
    pub fn open(root: &Path, split: &str, layout: Layout) -> Result<Self> {
        let prefix = match split {
            "train" => "train",
            "test" => "t10k",
            _ => bail!("Fashion-MNIST split must be 'train' or 'test', got {split:?}"),
        };
        let find = |stem: String| {
            let gz = root.join(format!("{stem}.gz"));
            if gz.exists() {
                gz
            } else {
                root.join(stem)
            }
        };
        let images = read_idx(&find(format!("{prefix}-images-idx3-ubyte")))?;
        let labels = read_idx(&find(format!("{prefix}-labels-idx1-ubyte")))?;
        if images.dims.len() != 3 || images.dims[1] != images.dims[2] {
            bail!(
                "{}: expected N x side x side images, got {:?}",
                root.display(),
                images.dims
            );
        }
        if labels.dims != [images.dims[0]] {
            bail!(
                "{}: {} labels for {} images",
                root.display(),
                labels.dims.first().copied().unwrap_or(0),
                images.dims[0]
            );
        }
        if let Some(&bad) = labels
            .data
            .iter()
            .find(|&&l| l as usize >= FASHION_CLASSES.len())
        {
            bail!("{}: label {bad} outside 0..10", root.display());
        }
        Self::from_items(images.data, labels.data, images.dims[1], layout)
    }

    /// Scenes from in-memory `side x side` items and their labels.
    pub fn from_items(
        items: Vec<u8>,
        labels: Vec<u8>,
        side: usize,
        layout: Layout,
    ) -> Result<Self> {
        let Layout {
            size,
            grid,
            min_items,
            max_items,
            ..
        } = layout;
        if grid == 0 || size < grid.saturating_mul(4) {
            bail!("canvas size {size} is too small for a {grid}x{grid} grid");
        }
        let labels_per_class = if layout.cell_labels {
            grid.saturating_mul(grid)
        } else {
            1
        };
        super::check_generated(
            layout.len,
            size,
            FASHION_CLASSES.len().saturating_mul(labels_per_class),
        )?;
        if min_items == 0 || min_items > max_items || max_items > grid * grid {
            bail!("items per scene must satisfy 1 <= min <= max <= grid^2, got {min_items}..{max_items} with grid {grid}");
        }
        if labels.is_empty() || items.len() != labels.len() * side * side {
            bail!("need at least one item, and side x side pixels per label");
        }
        let mut allowed = [layout.item_classes.is_none(); FASHION_CLASSES.len()];
        for &c in layout.item_classes.iter().flatten() {
            if c >= FASHION_CLASSES.len() {
                bail!("item class {c} outside 0..{}", FASHION_CLASSES.len());
            }
            allowed[c] = true;
        }
        let pool: Vec<u32> = (0..labels.len() as u32)
            .filter(|&i| allowed.get(labels[i as usize] as usize) == Some(&true))
            .collect();
        if pool.is_empty() {
            bail!(
                "no item of the allowed classes {:?}",
                layout.item_classes.as_deref().unwrap_or(&[])
            );
        }
        Ok(FashionScenes {
            items,
            labels,
            side,
            layout,
            pool,
        })
    }

    pub fn len(&self) -> usize {
        self.layout.len
    }

    pub fn is_empty(&self) -> bool {
        self.layout.len == 0
    }

    fn layout(&self, i: usize) -> Vec<Placement> {
        let mut rng = Rng::keyed(&[self.layout.seed, i as u64, 0xfa5]);
        let count =
            self.layout.min_items + rng.below(self.layout.max_items - self.layout.min_items + 1);
        let mut cells: Vec<usize> = (0..self.layout.grid * self.layout.grid).collect();
        rng.shuffle(&mut cells);
        let cell = self.layout.size / self.layout.grid;
        cells[..count]
            .iter()
            .map(|&c| {
                let side = ((cell as f64 * rng.range(0.7, 1.0)) as usize).max(1);
                let (cx, cy) = ((c % self.layout.grid) * cell, (c / self.layout.grid) * cell);
                Placement {
                    item: self.pool[rng.below(self.pool.len())] as usize,
                    cell: c,
                    x: cx + rng.below(cell - side + 1),
                    y: cy + rng.below(cell - side + 1),
                    side,
                }
            })
            .collect()
    }

    /// The label table: the classes, or `class @ rRcC` for every class and cell.
    pub fn classes(&self) -> Vec<String> {
        let g = self.layout.grid;
        if !self.layout.cell_labels {
            return FASHION_CLASSES.iter().map(|s| s.to_string()).collect();
        }
        FASHION_CLASSES
            .iter()
            .flat_map(|c| (0..g * g).map(move |cell| format!("{c} @ r{}c{}", cell / g, cell % g)))
            .collect()
    }

    fn label(&self, p: &Placement) -> usize {
        let class = self.labels[p.item] as usize;
        if self.layout.cell_labels {
            class * self.layout.grid * self.layout.grid + p.cell
        } else {
            class
        }
    }

    /// Scene `i`'s multi-hot target.
    pub fn target(&self, i: usize) -> Vec<i8> {
        let g = self.layout.grid;
        let mut t =
            vec![0i8; FASHION_CLASSES.len() * if self.layout.cell_labels { g * g } else { 1 }];
        for p in self.layout(i) {
            t[self.label(&p)] = 1;
        }
        t
    }

    /// Renders scene `i`: the image and each item's class and cell `[x0, y0, x1, y1]`.
    pub fn render(&self, i: usize) -> Result<(Image, super::Boxes)> {
        let n = self.layout.size;
        let mut img = Image::filled(n, n, [0, 0, 0]);
        let cell = n / self.layout.grid;
        let mut boxes = Vec::new();
        for p in self.layout(i) {
            let px =
                &self.items[p.item * self.side * self.side..(p.item + 1) * self.side * self.side];
            let item = resize(&Image::from_gray(self.side, self.side, px), p.side, p.side)?;
            for y in 0..p.side {
                for x in 0..p.side {
                    let v = item.get(x, y);
                    let old = img.get(p.x + x, p.y + y);
                    img.put(
                        p.x + x,
                        p.y + y,
                        [old[0].max(v[0]), old[1].max(v[1]), old[2].max(v[2])],
                    );
                }
            }
            let (cx, cy) = ((p.x / cell) * cell, (p.y / cell) * cell);
            boxes.push((
                self.label(&p),
                [cx as f32, cy as f32, (cx + cell) as f32, (cy + cell) as f32],
            ));
        }
        Ok((img, boxes))
    }
}

impl FashionScenes {
    /// The scenes as a dataset (targets computed from the layouts, nothing rendered).
    pub fn into_dataset(self) -> Result<Dataset> {
        let targets = (0..self.layout.len).flat_map(|i| self.target(i)).collect();
        Dataset::new(self.classes(), targets, Source::Fashion(Arc::new(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 items of side 4, four of each class, each item's pixels its index.
    fn scenes(item_classes: Option<Vec<usize>>, cell_labels: bool) -> Result<FashionScenes> {
        let items = (0..40u8).flat_map(|i| [i; 16]).collect();
        let labels = (0..40u8).map(|i| i % 10).collect();
        let layout = Layout {
            len: 200,
            size: 16,
            grid: 2,
            min_items: 1,
            max_items: 4,
            seed: 3,
            item_classes,
            cell_labels,
        };
        FashionScenes::from_items(items, labels, 4, layout)
    }

    #[test]
    fn item_classes_keep_other_classes_out_and_the_label_table_whole() {
        let s = scenes(Some(vec![1, 4]), false).unwrap();
        assert_eq!(s.classes().len(), 10);
        for i in 0..s.len() {
            let t = s.target(i);
            assert!(t
                .iter()
                .enumerate()
                .all(|(c, &v)| v == 0 || c == 1 || c == 4));
            assert!(t.contains(&1));
        }
        assert!(scenes(Some(vec![10]), false).is_err());
        assert!(scenes(Some(vec![]), false).is_err());
    }

    #[test]
    fn cell_labels_name_class_and_cell() {
        let (plain, cells) = (scenes(None, false).unwrap(), scenes(None, true).unwrap());
        assert_eq!(cells.classes().len(), 40);
        assert_eq!(cells.classes()[4 * 3 + 2], "Dress @ r1c0");
        for i in 0..plain.len() {
            let (t, tc) = (plain.target(i), cells.target(i));
            // A class is present exactly when one of its cells is, and each item is one cell.
            for c in 0..10 {
                assert_eq!(t[c] == 1, tc[c * 4..c * 4 + 4].contains(&1));
            }
            let (_, boxes) = cells.render(i).unwrap();
            assert_eq!(tc.iter().filter(|&&v| v == 1).count(), boxes.len());
            for (label, b) in boxes {
                assert_eq!(tc[label], 1);
                let cell = (b[1] as usize / 8) * 2 + b[0] as usize / 8;
                assert_eq!(label % 4, cell);
            }
        }
    }
}
