//! Simulated partial annotation: a copy of a dataset with some of its annotations unknown.
//!
//! CSL (Ben-Baruch et al. 2022) evaluates partial-label losses by removing annotations of
//! a fully annotated set at random; this is that removal, reproducible from a seed.

use super::Dataset;
use crate::bail;
use crate::data::rng::Rng;
use crate::error::Result;

impl Dataset {
    /// A copy in which `round(fraction * n)` of the `n` known targets (1 or 0), chosen
    /// uniformly at random from `seed`, become unknown (-1). Positives and negatives are
    /// hidden alike; targets that were already unknown stay so.
    pub fn with_hidden_annotations(&self, fraction: f64, seed: u64) -> Result<Dataset> {
        if !(0.0..=1.0).contains(&fraction) {
            bail!("fraction must be in [0, 1], got {fraction}");
        }
        let mut known: Vec<u32> = (0..self.targets.len() as u32)
            .filter(|&i| self.targets[i as usize] >= 0)
            .collect();
        let hide = (fraction * known.len() as f64).round() as usize;
        let mut rng = Rng::keyed(&[seed, 0x0041_dde2]);
        // A partial Fisher-Yates shuffle: the first `hide` entries are a uniform sample.
        for i in 0..hide {
            let j = i + rng.below(known.len() - i);
            known.swap(i, j);
        }
        let mut d = self.clone();
        for &i in &known[..hide] {
            d.targets[i as usize] = -1;
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::scenes;

    fn known(d: &Dataset) -> usize {
        d.targets().iter().filter(|&&t| t >= 0).count()
    }

    #[test]
    fn hides_the_asked_fraction_and_keeps_the_rest() {
        let d = scenes::generated(50, 32, 1, "train", 1, 4).unwrap();
        let n = known(&d);
        let h = d.with_hidden_annotations(0.3, 7).unwrap();
        assert_eq!(known(&h), n - (0.3 * n as f64).round() as usize);
        for (a, b) in d.targets().iter().zip(h.targets()) {
            assert!(*b == -1 || a == b);
        }
        assert_eq!(
            h.targets(),
            d.with_hidden_annotations(0.3, 7).unwrap().targets()
        );
        assert_ne!(
            h.targets(),
            d.with_hidden_annotations(0.3, 8).unwrap().targets()
        );
        assert_eq!(known(&d.with_hidden_annotations(1.0, 0).unwrap()), 0);
        assert_eq!(
            d.with_hidden_annotations(0.0, 0).unwrap().targets(),
            d.targets()
        );
        assert!(d.with_hidden_annotations(1.5, 0).is_err());
        assert!(d.with_hidden_annotations(f64::NAN, 0).is_err());
        // Hiding again hides among the still-known targets only.
        assert_eq!(
            known(&h.with_hidden_annotations(0.5, 1).unwrap()),
            known(&h) - (0.5 * known(&h) as f64).round() as usize
        );
    }
}
