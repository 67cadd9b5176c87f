//! Per-class ranking: gather a class's column, drop unannotated samples, and order it by
//! descending score with a stable LSD radix sort (ties keep the sample order).

/// Monotone key of a float: larger floats give larger keys, equal floats equal keys
/// (-0.0 and 0.0 included); NaN is rejected earlier.
#[inline(always)]
pub fn key_f64(v: f64) -> u64 {
    // Adding 0.0 turns -0.0 into 0.0, so that the two tie as they compare.
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Monotone key of an `f32`, in the low 32 bits.
#[inline(always)]
pub fn key_f32(v: f32) -> u64 {
    let b = (v + 0.0).to_bits();
    (if b >> 31 == 1 { !b } else { b | (1 << 31) }) as u64
}

/// A ranked column: keys in descending score order and the labels that go with them.
#[derive(Default)]
pub struct Ranked {
    /// Sort keys of the scores, descending (equal keys mean equal scores).
    pub keys: Vec<u64>,
    /// 0/1 labels in the same order.
    pub labels: Vec<u8>,
    scratch_keys: Vec<u64>,
    scratch_labels: Vec<u8>,
}

impl Ranked {
    /// Empties the column, keeping its buffers.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.labels.clear();
    }

    /// The score key (as made by `key_f32`/`key_f64`) of the sample at rank `i`.
    #[inline(always)]
    pub fn score_key(&self, i: usize) -> u64 {
        !self.keys[i]
    }

    /// Appends one sample.
    #[inline(always)]
    pub fn push(&mut self, key: u64, label: u8) {
        // Inverted so that an ascending sort gives descending scores.
        self.keys.push(!key);
        self.labels.push(label);
    }

    /// Sorts by descending score; equal scores keep their push order.
    pub fn sort(&mut self) {
        let n = self.keys.len();
        self.scratch_keys.resize(n, 0);
        self.scratch_labels.resize(n, 0);
        for byte in 0..8 {
            let shift = byte * 8;
            let mut counts = [0usize; 256];
            for &k in &self.keys {
                counts[((k >> shift) & 0xff) as usize] += 1;
            }
            if counts.contains(&n) {
                continue;
            }
            let mut offset = 0;
            for c in counts.iter_mut() {
                let here = *c;
                *c = offset;
                offset += here;
            }
            for i in 0..n {
                let k = self.keys[i];
                let d = ((k >> shift) & 0xff) as usize;
                let at = counts[d];
                counts[d] += 1;
                self.scratch_keys[at] = k;
                self.scratch_labels[at] = self.labels[i];
            }
            std::mem::swap(&mut self.keys, &mut self.scratch_keys);
            std::mem::swap(&mut self.labels, &mut self.scratch_labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_monotone() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(key_f64(w[0]) <= key_f64(w[1]), "{:?}", w);
            assert!(key_f32(w[0] as f32) <= key_f32(w[1] as f32), "{:?}", w);
        }
    }

    #[test]
    fn signed_zeros_tie() {
        assert_eq!(key_f64(-0.0), key_f64(0.0));
        assert_eq!(key_f32(-0.0), key_f32(0.0));
    }

    #[test]
    fn sort_is_descending_and_stable() {
        let scores = [0.5f32, 0.9, 0.5, -3.0, 0.9, 2.0];
        let mut r = Ranked::default();
        for (i, &s) in scores.iter().enumerate() {
            r.push(key_f32(s), i as u8);
        }
        r.sort();
        assert_eq!(r.labels, vec![5, 1, 4, 0, 2, 3]);
    }
}
