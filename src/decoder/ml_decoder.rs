//! ML-Decoder (Ridnik et al. 2023) as its official module computes it
//! (`Alibaba-MIIL/ML_Decoder`, `src_files/ml_decoder/ml_decoder.py`): the image tokens go
//! through `embed_standart` and a ReLU; G fixed group queries (or, zero-shot, K label
//! embeddings through a shared projection and a ReLU) run decoder layers without
//! self-attention; the group FC gives the K logits.
//!
//! Parameters arrive with the official names (`MLDecoder.state_dict()` keys), so official
//! checkpoints load key for key.

use std::collections::HashMap;

use tch::Tensor;

use super::attention::{cross_attention, linear, MhaWeights};
use super::config::MlDecoderConfig;
use super::dropout::dropout;
use super::group_fc::Classifier;
use super::head::{ffn, norm};
use super::lookup::{Affine, Ffn, Lookup};
use crate::bail;
use crate::error::Result;
use crate::options::Checked;
use crate::tensor::{check_finite, float_kind, same_device, shape_str};

/// One `TransformerDecoderLayerOptimal`.
struct Layer<'a> {
    norm1: Affine<'a>,
    multihead_attn: MhaWeights<'a>,
    norm2: Affine<'a>,
    ffn: Ffn<'a>,
    norm3: Affine<'a>,
}

/// Where the queries come from.
enum Queries<'a> {
    /// `decoder.query_embed.weight` [G, E], fixed.
    Groups(&'a Tensor),
    /// Zero-shot: label embeddings [K, D] through `wordvec_proj` (absent when D = E, the
    /// official `nn.Identity`), then a ReLU.
    Embedded(&'a Tensor, Option<Affine<'a>>),
}

struct Weights<'a> {
    embed_standart: Affine<'a>,
    queries: Queries<'a>,
    layers: Vec<Layer<'a>>,
    fc: Classifier<'a>,
}

impl<'a> Weights<'a> {
    fn resolve(
        params: &'a HashMap<String, Tensor>,
        channels: i64,
        label_embeddings: Option<&'a Tensor>,
        tokens: &'a Tensor,
    ) -> Result<Self> {
        let mut p = Lookup::new(params, tokens);
        let e = p.size("decoder.embed_standart.weight", 0);
        let embed_standart = p.affine("decoder.embed_standart", &[e, channels], &[e])?;
        let ff = p.size("decoder.layers.0.linear1.weight", 0);
        let num_layers = (0..)
            .take_while(|i| p.has(&format!("decoder.layers.{i}.linear1.weight")))
            .count();
        if num_layers == 0 {
            bail!("missing parameter \"decoder.layers.0.linear1.weight\"");
        }
        let layers = (0..num_layers)
            .map(|i| {
                let pre = format!("decoder.layers.{i}");
                Ok(Layer {
                    norm1: p.norm(&format!("{pre}.norm1"), e)?,
                    multihead_attn: p.mha(&format!("{pre}.multihead_attn"), e)?,
                    norm2: p.norm(&format!("{pre}.norm2"), e)?,
                    ffn: p.ffn(&pre, e, ff)?,
                    norm3: p.norm(&format!("{pre}.norm3"), e)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (queries, fc) = match label_embeddings {
            None => {
                if p.has("wordvec_proj.weight") {
                    bail!("a zero-shot ML-Decoder needs label_embeddings");
                }
                let g = p.size("decoder.query_embed.weight", 0);
                let queries = p.get("decoder.query_embed.weight", &[g, e])?;
                let fc = Classifier::grouped(
                    &mut p,
                    "decoder.duplicate_pooling",
                    "decoder.duplicate_pooling_bias",
                    g,
                    e,
                )?;
                (Queries::Groups(queries), fc)
            }
            Some(emb) => {
                let size = emb.size();
                let width = if p.has("wordvec_proj.weight") {
                    p.size("wordvec_proj.weight", 1)
                } else {
                    e
                };
                if size.len() != 2 || size[0] == 0 || size[1] != width {
                    bail!(
                        "label_embeddings must have shape [num_labels, {width}], got {}",
                        shape_str(&size)
                    );
                }
                float_kind(emb, "label_embeddings")?;
                same_device(emb, "label_embeddings", tokens, "features")?;
                let proj = if p.has("wordvec_proj.weight") {
                    Some(p.affine("wordvec_proj", &[e, width], &[e])?)
                } else {
                    None
                };
                let fc = Classifier::Shared(Affine {
                    weight: p.get("decoder.duplicate_pooling", &[e, 1])?,
                    bias: p.get("decoder.duplicate_pooling_bias", &[1])?,
                });
                (Queries::Embedded(emb, proj), fc)
            }
        };
        p.finish()?;
        Ok(Weights {
            embed_standart,
            queries,
            layers,
            fc,
        })
    }
}

/// The image tokens `[B, T, C]` of a feature map `[B, C, H, W]` or of tokens already.
fn tokens(features: &Tensor) -> Result<Tensor> {
    float_kind(features, "features")?;
    let size = features.size();
    match size.len() {
        4 if size.iter().all(|&s| s > 0) => Ok(features.f_flatten(2, 3)?.f_transpose(1, 2)?),
        3 if size.iter().all(|&s| s > 0) => Ok(features.shallow_clone()),
        _ => bail!(
            "features must be a non-empty [batch, channels, height, width] map or \
             [batch, tokens, channels] sequence, got {}",
            shape_str(&size)
        ),
    }
}

/// The logits `[B, K]` of ML-Decoder on `features`; `label_embeddings` `[K, D]` for a
/// zero-shot head. `train` enables dropout.
pub fn ml_decoder_forward(
    features: &Tensor,
    params: &HashMap<String, Tensor>,
    label_embeddings: Option<&Tensor>,
    cfg: &MlDecoderConfig,
    train: bool,
) -> Result<Tensor> {
    let src = tokens(features)?;
    let size = src.size();
    let (b, c) = (size[0], size[2]);
    // Label embeddings come from files (float64 from numpy, say): cast once to the features'
    // dtype, and refused when not finite, which would make every logit NaN.
    let label_embeddings = match label_embeddings {
        Some(emb) => {
            float_kind(emb, "label_embeddings")?;
            check_finite(emb, "label_embeddings")?;
            Some(emb.f_to_kind(features.f_kind()?)?)
        }
        None => None,
    };
    let w = Weights::resolve(params, c, label_embeddings.as_ref(), features)?;
    let e = w.embed_standart.weight.size()[0];
    cfg.check()?;
    if e != cfg.d_model {
        bail!(
            "the weights are of a decoder of width {e}, the config says d_model {}",
            cfg.d_model
        );
    }
    let memory = linear(&src, w.embed_standart.weight, Some(w.embed_standart.bias))?.f_relu()?;
    let queries = match &w.queries {
        Queries::Groups(q) => q.shallow_clone(),
        Queries::Embedded(emb, None) => emb.f_relu()?,
        Queries::Embedded(emb, Some(proj)) => {
            linear(emb, proj.weight, Some(proj.bias))?.f_relu()?
        }
    };
    let q = queries.size()[0];
    // The queries do not depend on the image: without dropout the first layer's target runs
    // on a batch of one and broadcasts in the cross-attention.
    let mut tgt = queries.f_unsqueeze(0)?;
    let p = cfg.dropout;
    let drop = train && p > 0.0;
    for layer in &w.layers {
        // The official layer keeps `tgt + dropout(tgt)` where self-attention was.
        tgt = if drop {
            let full = tgt.f_expand([b, q, e], false)?;
            full.f_add(&dropout(&full, p, true)?)?
        } else {
            tgt.f_mul_scalar(2.0)?
        };
        tgt = norm(&tgt, &layer.norm1, e)?;
        let mha = &layer.multihead_attn;
        let (attended, _) =
            cross_attention(&tgt, &memory, &memory, mha, cfg.nhead, p, train, false)?;
        tgt = norm(&tgt.f_add(&dropout(&attended, p, train)?)?, &layer.norm2, e)?;
        let branch = ffn(&tgt, &layer.ffn, p, train)?;
        tgt = norm(&tgt.f_add(&dropout(&branch, p, train)?)?, &layer.norm3, e)?;
    }
    w.fc.logits(&tgt)
}
