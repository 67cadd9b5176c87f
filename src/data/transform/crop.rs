//! Random crop geometry: torchvision's `RandomResizedCrop` and ML-GCN's `MultiScaleCrop`.

use crate::data::rng::Rng;

/// torchvision's `RandomResizedCrop.get_params`: `(x, y, w, h)`.
pub fn random_crop_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let area = (width * height) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.range(scale.0, scale.1);
        let aspect = rng.range(lr0, lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            return (rng.below(width - w + 1), rng.below(height - h + 1), w, h);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (
            width,
            ((width as f64 / ratio.0).round() as usize).clamp(1, height),
        )
    } else if in_ratio > ratio.1 {
        (
            ((height as f64 * ratio.1).round() as usize).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// ML-GCN's `MultiScaleCrop` box `(x, y, w, h)` for an image `width x height` and an output
/// `size = (w, h)`: sides within 3 pixels of the output's snap to it.
pub fn multi_scale_box(
    width: usize,
    height: usize,
    size: (usize, usize),
    scales: &[f64],
    max_distort: usize,
    fix_crop: bool,
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let base = width.min(height) as f64;
    let sides: Vec<usize> = scales
        .iter()
        .map(|s| ((base * s) as usize).max(1))
        .collect();
    let snap = |x: usize, target: usize| if x.abs_diff(target) < 3 { target } else { x };
    let mut pairs = Vec::new();
    for (i, &h) in sides.iter().enumerate() {
        for (j, &w) in sides.iter().enumerate() {
            if i.abs_diff(j) <= max_distort {
                pairs.push((snap(w, size.0).min(width), snap(h, size.1).min(height)));
            }
        }
    }
    let (w, h) = pairs[rng.below(pairs.len())];
    if !fix_crop {
        return (rng.below(width - w + 1), rng.below(height - h + 1), w, h);
    }
    let (ws, hs) = ((width - w) / 4, (height - h) / 4);
    let offsets = [
        (0, 0),
        (4, 0),
        (0, 4),
        (4, 4),
        (2, 2),
        (0, 2),
        (4, 2),
        (2, 4),
        (2, 0),
        (1, 1),
        (3, 1),
        (1, 3),
        (3, 3),
    ];
    let (ox, oy) = offsets[rng.below(offsets.len())];
    (ox * ws, oy * hs, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_scale_boxes_fit_and_use_the_scales() {
        let mut rng = Rng::keyed(&[3]);
        let scales = [1.0, 0.875, 0.75, 0.66];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let (x, y, w, h) = multi_scale_box(640, 480, (448, 448), &scales, 1, true, &mut rng);
            assert!(x + w <= 640 && y + h <= 480);
            seen.insert((w, h));
        }
        // 4 scales, neighbours only: 4 + 2 * 3 = 10 (w, h) pairs; 0.875 * 480 = 420 stays.
        assert_eq!(seen.len(), 10);
        assert!(seen.contains(&(480, 480)) && seen.contains(&(316, 360)));
    }
}
