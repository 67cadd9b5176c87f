//! Average precision per class, under the three definitions the field reports.

use crate::bail;
use crate::error::Result;

use super::columns::for_each_class;
use super::sort::Ranked;
use crate::array::Inputs;

crate::choices! {
    /// Which average precision.
    pub enum ApDefinition("definition") {
        /// VOC all-point interpolated AP: the mean over positives of the highest precision
        /// at any rank at or below theirs. Query2Label's `voc_mAP` reports it.
        Voc = "voc",
        /// The mean of the precisions at each positive's rank, not interpolated. ASL,
        /// ML-Decoder and mmpretrain report it.
        NonInterpolated = "noninterpolated",
        /// The step-wise AP over distinct thresholds, tied scores grouped:
        /// `sum_n (R_n - R_{n-1}) P_n`. scikit-learn and torchmetrics report it.
        Step = "step",
    }
}

crate::choices! {
    /// What a class without any positive gets.
    pub enum EmptyPolicy("empty") {
        /// NaN, so the mean is NaN too (Query2Label's code).
        Nan = "nan",
        /// 0, counted in the mean (ASL's code).
        Zero = "zero",
        /// NaN, and left out of the mean; a mean over no class at all is an error.
        Skip = "skip",
    }
}

crate::options! {
    /// Options of the average precision: which one, and what a class without positives gets.
    pub struct ApOptions {
        /// "voc" (Query2Label), "noninterpolated" (ASL, ML-Decoder, mmpretrain) or "step"
        /// (scikit-learn, torchmetrics).
        definition: ApDefinition = ApDefinition::Voc,
        /// What a class without any positive gets: "nan" (Query2Label's code), "zero" (ASL's)
        /// or "skip" (NaN, and left out of the mean).
        empty: EmptyPolicy = EmptyPolicy::Nan,
    }
}

impl crate::options::Checked for ApOptions {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl EmptyPolicy {
    /// The per-class APs with a class without positives (`None`) as NaN or 0.
    pub fn fill(self, aps: &[Option<f64>]) -> Vec<f64> {
        let fill = if self == EmptyPolicy::Zero {
            0.0
        } else {
            f64::NAN
        };
        aps.iter().map(|ap| ap.unwrap_or(fill)).collect()
    }

    /// The mean of the per-class APs: the mAP. With `Skip` it leaves classes without
    /// positives out, and is an error when no class has one (there is no mAP to report).
    pub fn mean(self, aps: &[Option<f64>]) -> Result<f64> {
        let counted = match self {
            EmptyPolicy::Skip => aps.iter().flatten().copied().collect(),
            _ => self.fill(aps),
        };
        if counted.is_empty() {
            bail!("no class has a positive target: mAP is undefined (empty='skip')");
        }
        Ok(counted.iter().sum::<f64>() / counted.len() as f64)
    }
}

/// The AP of one ranked column, or `None` when it has no positive.
///
/// Ties: `Step` groups tied scores; the other two take tied samples in sample order.
pub fn ranked_ap(r: &Ranked, def: ApDefinition) -> Option<f64> {
    let n = r.labels.len();
    let positives = r.labels.iter().map(|&l| l as u64).sum::<u64>();
    if positives == 0 {
        return None;
    }
    let p = positives as f64;
    let sum = match def {
        ApDefinition::NonInterpolated => {
            let (mut tp, mut sum) = (0u64, 0.0);
            for (k, &l) in r.labels.iter().enumerate() {
                if l == 1 {
                    tp += 1;
                    sum += tp as f64 / (k + 1) as f64;
                }
            }
            sum
        }
        ApDefinition::Voc => {
            let (mut tp, mut best, mut sum) = (positives, 0.0f64, 0.0);
            for k in (0..n).rev() {
                best = best.max(tp as f64 / (k + 1) as f64);
                if r.labels[k] == 1 {
                    sum += best;
                    tp -= 1;
                }
            }
            sum
        }
        ApDefinition::Step => {
            let (mut tp, mut tp_prev, mut sum) = (0u64, 0u64, 0.0);
            for k in 0..n {
                tp += r.labels[k] as u64;
                if k + 1 == n || r.keys[k + 1] != r.keys[k] {
                    sum += (tp - tp_prev) as f64 * (tp as f64 / (k + 1) as f64);
                    tp_prev = tp;
                }
            }
            sum
        }
    };
    Some(sum / p)
}

/// Per-class AP of `scores` [N, C] against `targets` [N, C] (1, 0, or -1 to ignore);
/// `None` for classes without a positive.
pub fn average_precision(inputs: &Inputs<'_>, def: ApDefinition) -> Result<Vec<Option<f64>>> {
    for_each_class(inputs, |r| ranked_ap(r, def))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sort::key_f64;

    fn ranked(scores: &[f64], labels: &[u8]) -> Ranked {
        let mut r = Ranked::default();
        for (&s, &l) in scores.iter().zip(labels) {
            r.push(key_f64(s), l);
        }
        r.sort();
        r
    }

    #[test]
    fn empty_policies() {
        let aps = [Some(0.5), None, Some(1.0)];
        let zero = EmptyPolicy::Zero;
        assert_eq!((zero.fill(&aps)[1], zero.mean(&aps).unwrap()), (0.0, 0.5));
        let skip = EmptyPolicy::Skip;
        assert!(skip.fill(&aps)[1].is_nan() && skip.mean(&aps).unwrap() == 0.75);
        assert!(EmptyPolicy::Nan.mean(&aps).unwrap().is_nan());
        assert!(skip.mean(&[None, None]).is_err());
        assert!(EmptyPolicy::Nan.mean(&[None, None]).unwrap().is_nan());
        assert!("all".parse::<EmptyPolicy>().is_err());
        for name in EmptyPolicy::NAMES {
            assert!(name.parse::<EmptyPolicy>().is_ok());
        }
        for name in ApDefinition::NAMES {
            assert!(name.parse::<ApDefinition>().is_ok());
        }
    }

    #[test]
    fn hand_computed_cases() {
        // Ranks: + - + -  -> precisions at positives 1/1 and 2/3.
        let r = ranked(&[0.9, 0.8, 0.7, 0.1], &[1, 0, 1, 0]);
        let ni = ranked_ap(&r, ApDefinition::NonInterpolated).unwrap();
        assert!((ni - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
        assert!((ranked_ap(&r, ApDefinition::Voc).unwrap() - ni).abs() < 1e-15);
        assert!((ranked_ap(&r, ApDefinition::Step).unwrap() - ni).abs() < 1e-15);
        // - + + : interpolation lifts the first positive's precision 1/2 to 2/3.
        let r = ranked(&[0.9, 0.8, 0.7], &[0, 1, 1]);
        assert!(
            (ranked_ap(&r, ApDefinition::NonInterpolated).unwrap() - (0.5 + 2.0 / 3.0) / 2.0).abs()
                < 1e-15
        );
        assert!((ranked_ap(&r, ApDefinition::Voc).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        // A tie of one positive and one negative at the top: step AP groups them.
        let r = ranked(&[0.9, 0.9, 0.1], &[1, 0, 1]);
        assert!(
            (ranked_ap(&r, ApDefinition::Step).unwrap() - (0.5 * 0.5 + 0.5 * 2.0 / 3.0)).abs()
                < 1e-15
        );
        assert!(
            (ranked_ap(&r, ApDefinition::NonInterpolated).unwrap() - (1.0 + 2.0 / 3.0) / 2.0).abs()
                < 1e-15
        );
        assert_eq!(
            ranked_ap(&ranked(&[0.3, 0.2], &[0, 0]), ApDefinition::Voc),
            None
        );
    }
}
