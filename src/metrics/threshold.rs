//! Threshold and top-k metrics: per-class counts, the CP/CR/CF1/OP/OR/OF1 summary, and a
//! per-class threshold search that maximises F1.

use ndarray::{s, ArrayView2};

use crate::bail;
use crate::error::Result;
use crate::parallel::map_chunks;
use crate::tensor::Element;

use super::columns::map_classes;
use crate::array::{rows_while, with_matrix, with_scores, Inputs};

/// Rows per parallel task.
const ROWS: usize = 2048;

/// How a score becomes a positive prediction.
#[derive(Clone, Debug)]
pub enum Decision {
    /// `score >= threshold`, one threshold for all classes or one per class.
    Threshold(Vec<f64>),
    /// The `k` highest scores of each sample (ties: lower class index first).
    TopK(usize),
}

/// Per-class confusion counts (targets of -1 left out).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub tp: Vec<u64>,
    pub fp: Vec<u64>,
    pub fn_: Vec<u64>,
    /// Annotated positives per class.
    pub support: Vec<u64>,
}

/// CP, CR, CF1, OP, OR, OF1 and the per-class values they come from.
///
/// A 0/0 precision, recall or F1 counts as 0 (scikit-learn's `zero_division=0`); CF1 is
/// the F1 of CP and CR, as in the ML-GCN / Query2Label convention.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub cp: f64,
    pub cr: f64,
    pub cf1: f64,
    pub op: f64,
    pub or: f64,
    pub of1: f64,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub f1: Vec<f64>,
    pub counts: Counts,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn harmonic(p: f64, r: f64) -> f64 {
    ratio(2.0 * p * r, p + r)
}

impl Counts {
    fn zeros(c: usize) -> Self {
        Counts {
            tp: vec![0; c],
            fp: vec![0; c],
            fn_: vec![0; c],
            support: vec![0; c],
        }
    }

    fn add(mut self, o: &Counts) -> Self {
        for i in 0..self.tp.len() {
            self.tp[i] += o.tp[i];
            self.fp[i] += o.fp[i];
            self.fn_[i] += o.fn_[i];
            self.support[i] += o.support[i];
        }
        self
    }

    /// The summary metrics of these counts.
    pub fn summarize(&self) -> Summary {
        let c = self.tp.len();
        let mut s = Summary {
            counts: self.clone(),
            ..Summary::default()
        };
        for i in 0..c {
            let (tp, fp, fn_) = (self.tp[i] as f64, self.fp[i] as f64, self.fn_[i] as f64);
            s.precision.push(ratio(tp, tp + fp));
            s.recall.push(ratio(tp, tp + fn_));
            s.f1.push(ratio(2.0 * tp, 2.0 * tp + fp + fn_));
        }
        s.cp = s.precision.iter().sum::<f64>() / c as f64;
        s.cr = s.recall.iter().sum::<f64>() / c as f64;
        s.cf1 = harmonic(s.cp, s.cr);
        let tp: u64 = self.tp.iter().sum();
        let fp: u64 = self.fp.iter().sum();
        let fn_: u64 = self.fn_.iter().sum();
        s.op = ratio(tp as f64, (tp + fp) as f64);
        s.or = ratio(tp as f64, (tp + fn_) as f64);
        s.of1 = harmonic(s.op, s.or);
        s
    }
}

/// Per-class counts of `scores` [N, C] against `targets` [N, C] under `decision`.
pub fn counts(c: &Inputs<'_>, decision: &Decision) -> Result<Counts> {
    match decision {
        Decision::Threshold(t) if t.len() != 1 && t.len() != c.cols => {
            bail!(
                "thresholds must be one number or one per class ({}), got {}",
                c.cols,
                t.len()
            )
        }
        Decision::Threshold(t) if t.iter().any(|v| v.is_nan()) => {
            bail!("thresholds must not be NaN")
        }
        Decision::TopK(k) if *k == 0 || *k > c.cols => {
            bail!("k must be in [1, num_classes = {}], got {k}", c.cols)
        }
        _ => {}
    }
    let chunks = c.rows.div_ceil(ROWS);
    let big = c.rows * c.cols >= 1 << 16;
    let parts = with_scores!(c.scores, x: X => with_matrix!(c.targets, y: Y => {
        map_chunks(chunks, big, |k| count_rows::<X, Y>(x, y, k, decision))
    }));
    let mut total = Counts::zeros(c.cols);
    for part in parts {
        match part {
            Some(p) => total = total.add(&p),
            None => {
                // Re-run the checks that name the culprit.
                map_classes(c, |_, _| ())?;
                bail!("invalid scores or targets");
            }
        }
    }
    Ok(total)
}

fn count_rows<X: Element, Y: Element>(
    x: ArrayView2<'_, X>,
    y: ArrayView2<'_, Y>,
    k: usize,
    d: &Decision,
) -> Option<Counts> {
    let (rows, cols) = x.dim();
    let mut out = Counts::zeros(cols);
    let (mut s, mut t) = (vec![0f64; cols], vec![0f64; cols]);
    let mut pred = vec![false; cols];
    let mut order: Vec<usize> = (0..cols).collect();
    let block = s![k * ROWS..((k + 1) * ROWS).min(rows), ..];
    let whole = rows_while(x.slice(block), y.slice(block), |xr, yr| {
        X::to_f64_slice(xr, &mut s);
        Y::to_f64_slice(yr, &mut t);
        if s.iter().any(|v| v.is_nan()) {
            return false;
        }
        match d {
            Decision::Threshold(th) => {
                for j in 0..cols {
                    pred[j] = s[j] >= th[if th.len() == 1 { 0 } else { j }];
                }
            }
            Decision::TopK(kk) => {
                order.iter_mut().enumerate().for_each(|(j, o)| *o = j);
                let by_score = |a: &usize, b: &usize| s[*b].total_cmp(&s[*a]).then(a.cmp(b));
                if *kk < cols {
                    order.select_nth_unstable_by(*kk - 1, by_score);
                }
                pred.iter_mut().for_each(|p| *p = false);
                for &j in &order[..*kk] {
                    pred[j] = true;
                }
            }
        }
        for j in 0..cols {
            let (positive, predicted) = match t[j] {
                1.0 => (true, pred[j]),
                0.0 => (false, pred[j]),
                -1.0 => continue,
                _ => return false,
            };
            out.support[j] += positive as u64;
            out.tp[j] += (positive && predicted) as u64;
            out.fp[j] += (!positive && predicted) as u64;
            out.fn_[j] += (positive && !predicted) as u64;
        }
        true
    });
    whole.then_some(out)
}

/// For each class, the threshold (predict `score >= threshold`) that maximises F1 on
/// these scores, and that F1. A class without positives gets `+inf` and F1 0.
pub fn best_f1_thresholds(inputs: &Inputs<'_>) -> Result<Vec<(f64, f64)>> {
    map_classes(inputs, |r, from_key| {
        let n = r.labels.len();
        let positives = r.labels.iter().map(|&l| l as u64).sum::<u64>();
        if positives == 0 {
            return (f64::INFINITY, 0.0);
        }
        let (mut tp, mut best, mut at) = (0u64, -1.0f64, 0usize);
        for k in 0..n {
            tp += r.labels[k] as u64;
            if k + 1 == n || r.keys[k + 1] != r.keys[k] {
                let f1 = 2.0 * tp as f64 / (positives as f64 + (k + 1) as f64);
                if f1 > best {
                    best = f1;
                    at = k;
                }
            }
        }
        (from_key(r.score_key(at)), best)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Matrix;
    use ndarray::{array, Array2};

    fn arrays() -> (Array2<f32>, Array2<f32>) {
        let scores = array![[0.9f32, 0.1], [0.8, 0.7], [0.2, 0.6]];
        let targets = array![[1f32, 0.], [0., 1.], [1., -1.]];
        (scores, targets)
    }

    fn inputs<'a>(a: &'a (Array2<f32>, Array2<f32>)) -> Inputs<'a> {
        Inputs::new(Matrix::F32(a.0.view()), Matrix::F32(a.1.view())).unwrap()
    }

    #[test]
    fn threshold_counts_by_hand() {
        // Class 0 predicts rows 0 and 1 (targets 1, 0) and misses row 2: tp 1, fp 1, fn 1.
        // Class 1 predicts rows 1 and 2; row 2 is ignored (-1): tp 1, fp 0, fn 0.
        let a = arrays();
        let i = inputs(&a);
        let sum = counts(&i, &Decision::Threshold(vec![0.5]))
            .unwrap()
            .summarize();
        assert_eq!(
            (sum.counts.tp.clone(), sum.counts.fp.clone()),
            (vec![1, 1], vec![1, 0])
        );
        assert_eq!(
            (sum.counts.fn_.clone(), sum.counts.support.clone()),
            (vec![1, 0], vec![2, 1])
        );
        assert!((sum.cp - 0.75).abs() < 1e-12 && (sum.cr - 0.75).abs() < 1e-12);
        assert!((sum.op - 2.0 / 3.0).abs() < 1e-12 && (sum.or - 2.0 / 3.0).abs() < 1e-12);
        assert!((sum.cf1 - 0.75).abs() < 1e-12);
    }

    #[test]
    fn top_k_and_per_class_thresholds() {
        // Top 1: row 0 -> class 0 (tp), row 1 -> class 0 (fp), row 2 -> class 1 (ignored).
        let a = arrays();
        let i = inputs(&a);
        let c = counts(&i, &Decision::TopK(1)).unwrap();
        assert_eq!(
            (c.tp.clone(), c.fp.clone(), c.fn_.clone()),
            (vec![1, 0], vec![1, 0], vec![1, 1])
        );
        // A threshold per class: class 1 at 0.75 no longer predicts row 1.
        let c = counts(&i, &Decision::Threshold(vec![0.5, 0.75])).unwrap();
        assert_eq!((c.tp[1], c.fn_[1]), (0, 1));
        assert!(counts(&i, &Decision::Threshold(vec![0.5, 0.5, 0.5])).is_err());
    }

    #[test]
    fn best_thresholds_reach_the_best_f1() {
        let a = arrays();
        let i = inputs(&a);
        let best = best_f1_thresholds(&i).unwrap();
        // Class 0: predicting rows 0 and 2 only is impossible (0.2 < 0.8), so the best is
        // threshold 0.2 (all three: tp 2, fp 1, F1 0.8). Class 1: 0.7 alone, F1 1.
        assert!((best[0].1 - 0.8).abs() < 1e-12, "{best:?}");
        assert!((best[1].1 - 1.0).abs() < 1e-12, "{best:?}");
        assert!((best[1].0 - 0.7).abs() < 1e-6, "{best:?}");
    }
}
