//! The head's parameters as typed structs, resolved from their names in one place.
//!
//! The names are those of `Query2LabelHead.named_parameters()` (the official model's, without
//! its `module.transformer.` prefix). [`HeadWeights::resolve`] looks every weight up once per
//! forward, checks its shape and device, and refuses a missing, misshaped or unknown one by
//! name; the forward then only reads fields. The tensors stay the caller's, so autograd
//! records every op on them.

use std::collections::HashMap;

use tch::Tensor;

use super::attention::MhaWeights;
use super::config::HeadConfig;
use super::group_fc::Classifier;
use super::lookup::{Affine, Ffn, Lookup};
use crate::bail;
use crate::error::Result;

/// One encoder layer: self-attention, then the FFN, each with its LayerNorm.
pub struct EncoderLayer<'a> {
    pub self_attn: MhaWeights<'a>,
    pub norm1: Affine<'a>,
    pub ffn: Ffn<'a>,
    pub norm2: Affine<'a>,
}

/// One decoder layer: optional self-attention among the queries (with `norm1`),
/// cross-attention over the image (`norm2`), the FFN (`norm3`).
pub struct DecoderLayer<'a> {
    pub self_attn: Option<(MhaWeights<'a>, Affine<'a>)>,
    pub multihead_attn: MhaWeights<'a>,
    pub norm2: Affine<'a>,
    pub ffn: Ffn<'a>,
    pub norm3: Affine<'a>,
}

/// Every weight of a head.
pub struct HeadWeights<'a> {
    /// The 1x1 convolution C -> d, when the head has one.
    pub input_proj: Option<Affine<'a>>,
    /// `[K, d]`: the label queries' positional embedding.
    pub query_embed: &'a Tensor,
    pub encoder: Vec<EncoderLayer<'a>>,
    /// The encoder's final LayerNorm (pre-norm heads with an encoder only).
    pub encoder_norm: Option<Affine<'a>>,
    pub decoder: Vec<DecoderLayer<'a>>,
    pub decoder_norm: Affine<'a>,
    /// Per-label (`fc.W`, `fc.b`) or grouped (`fc.weight`, `fc.bias`) classifier.
    pub fc: Classifier<'a>,
}

/// The layers of a head, looked up as [`Lookup`] looks up their blocks.
impl<'a> Lookup<'a> {
    fn encoder_layer(&mut self, pre: &str, d: i64, ff: i64) -> Result<EncoderLayer<'a>> {
        Ok(EncoderLayer {
            self_attn: self.mha(&format!("{pre}.self_attn"), d)?,
            norm1: self.norm(&format!("{pre}.norm1"), d)?,
            ffn: self.ffn(pre, d, ff)?,
            norm2: self.norm(&format!("{pre}.norm2"), d)?,
        })
    }

    fn decoder_layer(
        &mut self,
        pre: &str,
        d: i64,
        ff: i64,
        self_attn: bool,
    ) -> Result<DecoderLayer<'a>> {
        let self_attn = if self_attn {
            let attn = self.mha(&format!("{pre}.self_attn"), d)?;
            Some((attn, self.norm(&format!("{pre}.norm1"), d)?))
        } else {
            None
        };
        Ok(DecoderLayer {
            self_attn,
            multihead_attn: self.mha(&format!("{pre}.multihead_attn"), d)?,
            norm2: self.norm(&format!("{pre}.norm2"), d)?,
            ffn: self.ffn(pre, d, ff)?,
            norm3: self.norm(&format!("{pre}.norm3"), d)?,
        })
    }
}

impl<'a> HeadWeights<'a> {
    /// Resolves the weights of a head of architecture `cfg` with `channels` input channels,
    /// all on the device of `features`.
    pub fn resolve(
        params: &'a HashMap<String, Tensor>,
        cfg: &HeadConfig,
        channels: i64,
        features: &'a Tensor,
    ) -> Result<Self> {
        let d = cfg.d_model;
        let mut p = Lookup::new(params, features);
        // The FFN width and the number of queries are the only sizes not in the config.
        let ff = p.size("decoder.layers.0.linear1.weight", 0);
        let queries = p.size("query_embed.weight", 0);
        let input_proj = if let Some(proj) = params.get("input_proj.weight") {
            let expected = proj.size().get(1).copied().unwrap_or(0);
            if expected != channels {
                bail!("features have {channels} channels but the head expects {expected}");
            }
            Some(p.affine("input_proj", &[d, channels, 1, 1], &[d])?)
        } else if channels != d {
            bail!("features have {channels} channels but the head expects {d}");
        } else {
            None
        };
        let query_embed = p.get("query_embed.weight", &[queries, d])?;
        let encoder = (0..cfg.num_encoder_layers)
            .map(|i| p.encoder_layer(&format!("encoder.layers.{i}"), d, ff))
            .collect::<Result<Vec<_>>>()?;
        let encoder_norm = if cfg.pre_norm && cfg.num_encoder_layers > 0 {
            Some(p.norm("encoder.norm", d)?)
        } else {
            None
        };
        let decoder = (0..cfg.num_decoder_layers)
            .map(|i| {
                let keep = if i == 0 {
                    cfg.keep_first_self_attn
                } else {
                    cfg.keep_other_self_attn
                };
                p.decoder_layer(&format!("decoder.layers.{i}"), d, ff, keep)
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_norm = p.norm("decoder.norm", d)?;
        let fc = if p.has("fc.weight") {
            Classifier::grouped(&mut p, "fc.weight", "fc.bias", queries, d)?
        } else {
            Classifier::PerLabel(Affine {
                weight: p.get("fc.W", &[1, queries, d])?,
                bias: p.get("fc.b", &[1, queries])?,
            })
        };
        p.finish()?;
        Ok(HeadWeights {
            input_proj,
            query_embed,
            encoder,
            encoder_norm,
            decoder,
            decoder_norm,
            fc,
        })
    }
}
