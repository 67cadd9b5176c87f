//! Parameters looked up by name: each weight's shape and device checked once, and the
//! names used remembered, so a forward refuses a missing, misshaped or unknown weight by
//! name (see `HeadWeights::resolve` and ML-Decoder's `Weights::resolve`).

use std::collections::{HashMap, HashSet};

use tch::Tensor;

use super::attention::MhaWeights;
use crate::bail;
use crate::error::Result;
use crate::tensor::{same_device, shape_str};

/// A `weight` and `bias` pair: `nn.Linear`, `nn.LayerNorm` or a 1x1 `nn.Conv2d`.
pub struct Affine<'a> {
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
}

/// The position-wise feed-forward block: `linear2(relu(linear1(x)))`.
pub struct Ffn<'a> {
    pub linear1: Affine<'a>,
    pub linear2: Affine<'a>,
}

/// Looks names up in a parameter map, checking shapes and devices against `reference`,
/// and remembers which names were used.
pub(super) struct Lookup<'a> {
    params: &'a HashMap<String, Tensor>,
    reference: &'a Tensor,
    used: HashSet<&'a str>,
}

impl<'a> Lookup<'a> {
    pub(super) fn new(params: &'a HashMap<String, Tensor>, reference: &'a Tensor) -> Self {
        Lookup {
            params,
            reference,
            used: HashSet::new(),
        }
    }

    /// The size of a parameter's dimension `dim`, 0 when it is absent (the lookup that
    /// follows names it).
    pub(super) fn size(&self, name: &str, dim: usize) -> i64 {
        self.params
            .get(name)
            .and_then(|t| t.size().get(dim).copied())
            .unwrap_or(0)
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    /// Refuses the first (by name) parameter no lookup used.
    pub(super) fn finish(&self) -> Result<()> {
        if let Some(extra) = self
            .params
            .keys()
            .filter(|n| !self.used.contains(n.as_str()))
            .min()
        {
            bail!("unexpected parameter {extra:?} for this head configuration");
        }
        Ok(())
    }

    pub(super) fn get(&mut self, name: &str, shape: &[i64]) -> Result<&'a Tensor> {
        let Some((key, t)) = self.params.get_key_value(name) else {
            bail!("missing parameter {name:?}");
        };
        if t.size() != shape {
            bail!(
                "parameter {name:?} has shape {}, expected {}",
                shape_str(&t.size()),
                shape_str(shape)
            );
        }
        same_device(t, name, self.reference, "features")?;
        self.used.insert(key.as_str());
        Ok(t)
    }

    pub(super) fn affine(
        &mut self,
        prefix: &str,
        weight: &[i64],
        bias: &[i64],
    ) -> Result<Affine<'a>> {
        Ok(Affine {
            weight: self.get(&format!("{prefix}.weight"), weight)?,
            bias: self.get(&format!("{prefix}.bias"), bias)?,
        })
    }

    pub(super) fn norm(&mut self, prefix: &str, d: i64) -> Result<Affine<'a>> {
        self.affine(prefix, &[d], &[d])
    }

    pub(super) fn mha(&mut self, prefix: &str, d: i64) -> Result<MhaWeights<'a>> {
        Ok(MhaWeights {
            in_w: self.get(&format!("{prefix}.in_proj_weight"), &[3 * d, d])?,
            in_b: self.get(&format!("{prefix}.in_proj_bias"), &[3 * d])?,
            out_w: self.get(&format!("{prefix}.out_proj.weight"), &[d, d])?,
            out_b: self.get(&format!("{prefix}.out_proj.bias"), &[d])?,
        })
    }

    pub(super) fn ffn(&mut self, prefix: &str, d: i64, ff: i64) -> Result<Ffn<'a>> {
        Ok(Ffn {
            linear1: self.affine(&format!("{prefix}.linear1"), &[ff, d], &[ff])?,
            linear2: self.affine(&format!("{prefix}.linear2"), &[d, ff], &[d])?,
        })
    }
}
