//! The classifiers that turn decoder outputs into logits.
//!
//! Query2Label gives each label a query and a linear map of its own. ML-Decoder (Ridnik et
//! al. 2023) decodes G < K group queries and maps each group's output to `ceil(K / G)`
//! logits (its "group fully-connected" layer), so the decoder's cost no longer grows with
//! K. Its zero-shot mode shares one map among all queries instead.

use tch::{Kind, Tensor};

use super::lookup::{Affine, Lookup};
use crate::bail;
use crate::error::Result;
use crate::tensor::shape_str;

/// How decoder outputs `h` [B, Q, d] become logits [B, K].
pub enum Classifier<'a> {
    /// Query2Label's `GroupWiseLinear`, Q = K: `logit_k = <W_k, h_k> + b_k` with `W [1, K, d]`
    /// and `b [1, K]`.
    PerLabel(Affine<'a>),
    /// ML-Decoder's group FC, Q = G: `W [G, d, f]` maps group g's output to logits
    /// `g * f .. (g + 1) * f`; the first K of the `G * f` are kept and `b [K]` added.
    Grouped(Affine<'a>),
    /// ML-Decoder's zero-shot classifier, Q = K: one `W [d, 1]` for every query, `b [1]`.
    Shared(Affine<'a>),
}

/// `ceil(K / G)`: logits per group, as ML-Decoder computes it (`int(K / G + 0.999)`, which
/// is the ceiling for every K below 1000 G).
pub fn duplicate_factor(num_classes: i64, groups: i64) -> i64 {
    (num_classes + groups - 1) / groups
}

impl<'a> Classifier<'a> {
    /// Resolves a grouped classifier over `groups` queries of width `d`: K is the bias's
    /// length, and the weight must be `[G, d, ceil(K / G)]`.
    pub(super) fn grouped(
        p: &mut Lookup<'a>,
        weight: &str,
        bias: &str,
        groups: i64,
        d: i64,
    ) -> Result<Self> {
        let k = p.size(bias, 0);
        if k < groups {
            bail!(
                "{bias} has {k} classes but there are {groups} group queries; \
                 a grouped head needs num_groups <= num_classes"
            );
        }
        let f = duplicate_factor(k, groups);
        Ok(Classifier::Grouped(Affine {
            weight: p.get(weight, &[groups, d, f])?,
            bias: p.get(bias, &[k])?,
        }))
    }

    /// The logits `[B, K]` of decoder outputs `h` `[B, Q, d]`.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        let size = h.size();
        if size.len() != 3 {
            bail!(
                "decoder outputs must be [B, Q, d], got {}",
                shape_str(&size)
            );
        }
        let b = size[0];
        match self {
            Classifier::PerLabel(fc) => Ok(h
                .f_mul(fc.weight)?
                .f_sum_dim_intlist(-1, false, None::<Kind>)?
                .f_add(fc.bias)?),
            Classifier::Grouped(fc) => {
                let k = fc.bias.size()[0];
                // One batched matmul over the groups: [G, B, d] x [G, d, f] -> [G, B, f]
                // (the official code loops over the groups in Python).
                let out = h.f_transpose(0, 1)?.f_bmm(fc.weight)?.f_transpose(0, 1)?;
                let out = out.f_reshape([b, -1])?;
                let out = if out.size()[1] > k {
                    out.f_narrow(1, 0, k)?
                } else {
                    out
                };
                Ok(out.f_add(fc.bias)?)
            }
            Classifier::Shared(fc) => {
                Ok(h.f_matmul(fc.weight)?.f_reshape([b, -1])?.f_add(fc.bias)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_factor_is_the_ceiling() {
        assert_eq!(duplicate_factor(80, 80), 1);
        assert_eq!(duplicate_factor(9605, 100), 97);
        assert_eq!(duplicate_factor(1000, 100), 10);
        assert_eq!(duplicate_factor(101, 100), 2);
        for k in 1..3000 {
            for g in [1, 7, 100] {
                if g <= k {
                    let official = (k as f64 / g as f64 + 0.999) as i64;
                    if k < 1000 * g {
                        assert_eq!(duplicate_factor(k, g), official, "{k} {g}");
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_logits_by_hand() {
        // G = 2 groups of f = 2 logits, K = 3: group 0 gives logits 0 and 1, group 1 gives
        // logit 2 (its second output is cut).
        let h = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -1.0]).view([1, 2, 2]);
        let w = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 2.0, 5.0, 1.0, 5.0]).view([2, 2, 2]);
        let b = Tensor::from_slice(&[0.5f32, 0.0, -1.0]);
        let fc = Classifier::Grouped(Affine {
            weight: &w,
            bias: &b,
        });
        let got = fc.logits(&h).unwrap();
        let want = Tensor::from_slice(&[1.5f32, 2.0, 4.0]).view([1, 3]);
        assert!(got.allclose(&want, 1e-6, 1e-6, false), "{got}");
    }
}
