//! The Query2Label head: input projection, positional encoding, Transformer encoder,
//! label-query decoder and group-wise linear classifier, as one forward on tch ops.
//!
//! Parameters arrive by name, with the names of the official model (without its
//! `module.transformer.` prefix), and are resolved into typed structs (`weights.rs`); the
//! ops run on the caller's tensors, so autograd records every one.

use std::collections::HashMap;

use tch::Tensor;

use crate::bail;
use crate::error::Result;
use crate::tensor::{float_kind, shape_str};

use super::attention::{cross_attention, linear, self_attention, MhaWeights};
use super::config::HeadConfig;
use super::dropout::dropout;
use super::lookup::{Affine, Ffn};
use super::position::sine_encoding;
use super::weights::HeadWeights;
use crate::options::Checked;

/// What a forward returns.
pub struct HeadOutput {
    /// `[B, K]` logits.
    pub logits: Tensor,
    /// Per decoder layer, the head-averaged cross-attention `[B, Q, H, W]` of the Q queries
    /// (K labels, or G groups), when asked.
    pub attention: Vec<Tensor>,
}

pub(super) fn norm(x: &Tensor, n: &Affine, d: i64) -> Result<Tensor> {
    Ok(x.f_layer_norm([d], Some(n.weight), Some(n.bias), 1e-5, true)?)
}

/// The FFN `linear2(dropout(relu(linear1(x))))`.
pub(super) fn ffn(x: &Tensor, f: &Ffn, p: f64, train: bool) -> Result<Tensor> {
    let h = linear(x, f.linear1.weight, Some(f.linear1.bias))?;
    // dropout then relu equals relu then dropout (the mask scales by a positive constant),
    // but this way relu's saved output is linear2's saved input: one activation kept for
    // backward instead of two.
    let h = dropout(&h, p, train)?.f_relu()?;
    linear(&h, f.linear2.weight, Some(f.linear2.bias))
}

/// A residual block `x + dropout(branch(x))` with its LayerNorm before the branch
/// (pre-norm) or after the sum (post-norm, the official layout).
fn residual(
    x: &Tensor,
    n: &Affine,
    cfg: &HeadConfig,
    train: bool,
    mut branch: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let d = cfg.d_model;
    if cfg.pre_norm {
        let b = branch(&norm(x, n, d)?)?;
        Ok(x.f_add(&dropout(&b, cfg.dropout, train)?)?)
    } else {
        let b = branch(x)?;
        norm(&x.f_add(&dropout(&b, cfg.dropout, train)?)?, n, d)
    }
}

/// Self-attention with queries and keys `x + pos`, values `x`.
fn self_attn(
    x: &Tensor,
    pos: &Tensor,
    w: &MhaWeights,
    cfg: &HeadConfig,
    train: bool,
) -> Result<Tensor> {
    self_attention(&x.f_add(pos)?, x, w, cfg.nhead, cfg.dropout, train)
}

fn check_input(x: &Tensor, cfg: &HeadConfig) -> Result<(i64, i64, i64, i64)> {
    float_kind(x, "features")?;
    let size = x.size();
    if size.len() != 4 {
        bail!(
            "features must have shape [batch, channels, height, width], got {}",
            shape_str(&size)
        );
    }
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    if b == 0 || h == 0 || w == 0 {
        bail!("features must be non-empty, got shape {}", shape_str(&size));
    }
    cfg.check()?;
    Ok((b, c, h, w))
}

/// The forward pass. `train` enables dropout (torch's RNG, so `torch.manual_seed`
/// reproduces it); `want_attention` also returns the cross-attention maps.
pub fn forward(
    x: &Tensor,
    params: &HashMap<String, Tensor>,
    cfg: &HeadConfig,
    train: bool,
    want_attention: bool,
) -> Result<HeadOutput> {
    let (b, c, h, w) = check_input(x, cfg)?;
    // Dtypes may differ under autocast; the Python module checks them outside it.
    let weights = HeadWeights::resolve(params, cfg, c, x)?;
    let x = match &weights.input_proj {
        Some(p) => x.f_conv2d(p.weight, Some(p.bias), [1, 1], [0, 0], [1, 1], 1)?,
        None => x.shallow_clone(),
    };
    // [B, d, H, W] -> [B, HW, d]
    let src = x.f_flatten(2, 3)?.f_transpose(1, 2)?;
    let pos = sine_encoding(
        h,
        w,
        cfg.d_model,
        cfg.temperature,
        src.f_kind()?,
        src.device(),
    )?
    .f_unsqueeze(0)?;
    let memory = encode(src, &pos, &weights, cfg, train)?;
    let (hs, attention) = decode(&memory, &pos, &weights, cfg, train, want_attention)?;
    let k = hs.size()[1];
    let attention = attention
        .into_iter()
        .map(|a| Ok(a.f_view([b, k, h, w])?))
        .collect::<Result<Vec<_>>>()?;
    let hs = if hs.size()[0] != b {
        hs.f_expand([b, k, cfg.d_model], false)?
    } else {
        hs
    };
    let logits = weights.fc.logits(&hs)?;
    Ok(HeadOutput { logits, attention })
}

/// The encoder over the image tokens `src` [B, HW, d].
fn encode(
    src: Tensor,
    pos: &Tensor,
    w: &HeadWeights,
    cfg: &HeadConfig,
    train: bool,
) -> Result<Tensor> {
    let mut memory = src;
    for layer in &w.encoder {
        memory = residual(&memory, &layer.norm1, cfg, train, |x| {
            self_attn(x, pos, &layer.self_attn, cfg, train)
        })?;
        memory = residual(&memory, &layer.norm2, cfg, train, |x| {
            ffn(x, &layer.ffn, cfg.dropout, train)
        })?;
    }
    match &w.encoder_norm {
        Some(n) => norm(&memory, n, cfg.d_model),
        None => Ok(memory),
    }
}

/// The label-query decoder: the normalised outputs `[B or 1, K, d]` and, when asked, each
/// layer's head-averaged cross-attention `[B, K, HW]`.
fn decode(
    memory: &Tensor,
    pos: &Tensor,
    w: &HeadWeights,
    cfg: &HeadConfig,
    train: bool,
    want_attention: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let query_pos = w.query_embed.f_unsqueeze(0)?; // [1, K, d]
    let key_in = memory.f_add(pos)?;
    // The target starts at zero, so the first layer's queries do not depend on the image:
    // it runs on a batch of one and broadcasts.
    let mut tgt = query_pos.f_zeros_like()?;
    let mut attention = Vec::new();
    for layer in &w.decoder {
        if let Some((attn, n)) = &layer.self_attn {
            tgt = residual(&tgt, n, cfg, train, |x| {
                self_attn(x, &query_pos, attn, cfg, train)
            })?;
        }
        tgt = residual(&tgt, &layer.norm2, cfg, train, |x| {
            let q = x.f_add(&query_pos)?;
            let (a, weights) = cross_attention(
                &q,
                &key_in,
                memory,
                &layer.multihead_attn,
                cfg.nhead,
                cfg.dropout,
                train,
                want_attention,
            )?;
            attention.extend(weights);
            Ok(a)
        })?;
        tgt = residual(&tgt, &layer.norm3, cfg, train, |x| {
            ffn(x, &layer.ffn, cfg.dropout, train)
        })?;
    }
    Ok((norm(&tgt, &w.decoder_norm, cfg.d_model)?, attention))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn t(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    /// A post-norm head with d = 2, one decoder layer, no encoder, K = 2, whose attention and
    /// FFN weights are zero: every LayerNorm of a zero vector gives its bias, so the logits
    /// are `fc.W_k . decoder.norm.bias + fc.b_k` whatever the image.
    fn tiny_head() -> (HashMap<String, Tensor>, HeadConfig) {
        let z = |shape: &[i64]| Tensor::zeros(shape, (Kind::Float, tch::Device::Cpu));
        let mut p = HashMap::new();
        let mut put = |name: &str, v: Tensor| {
            p.insert(name.to_string(), v);
        };
        put("query_embed.weight", t(&[0.3, -0.2, 0.1, 0.4], &[2, 2]));
        let pre = "decoder.layers.0";
        put(&format!("{pre}.multihead_attn.in_proj_weight"), z(&[6, 2]));
        put(&format!("{pre}.multihead_attn.in_proj_bias"), z(&[6]));
        put(&format!("{pre}.multihead_attn.out_proj.weight"), z(&[2, 2]));
        put(&format!("{pre}.multihead_attn.out_proj.bias"), z(&[2]));
        put(&format!("{pre}.linear1.weight"), z(&[3, 2]));
        put(&format!("{pre}.linear1.bias"), t(&[1.0, 2.0, 3.0], &[3]));
        put(&format!("{pre}.linear2.weight"), z(&[2, 3]));
        put(&format!("{pre}.linear2.bias"), z(&[2]));
        for norm in ["norm2", "norm3"] {
            put(&format!("{pre}.{norm}.weight"), t(&[1.0, 1.0], &[2]));
            put(&format!("{pre}.{norm}.bias"), z(&[2]));
        }
        put("decoder.norm.weight", t(&[1.0, 1.0], &[2]));
        put("decoder.norm.bias", t(&[1.0, 2.0], &[2]));
        put("fc.W", t(&[1.0, 1.0, 2.0, -1.0], &[1, 2, 2]));
        put("fc.b", t(&[0.5, 0.0], &[1, 2]));
        let cfg = HeadConfig {
            d_model: 2,
            nhead: 1,
            num_encoder_layers: 0,
            num_decoder_layers: 1,
            dropout: 0.0,
            ..HeadConfig::default()
        };
        (p, cfg)
    }

    fn logits(p: &HashMap<String, Tensor>, cfg: &HeadConfig) -> Result<Vec<f32>> {
        let x = Tensor::randn([2, 2, 2, 3], (Kind::Float, tch::Device::Cpu));
        let out = forward(&x, p, cfg, false, true)?;
        assert_eq!(out.attention.len(), 1);
        assert_eq!(out.attention[0].size(), vec![2, 2, 2, 3]);
        let v = out.logits.flatten(0, -1);
        Ok((0..4).map(|i| v.double_value(&[i]) as f32).collect())
    }

    #[test]
    fn hand_computed_logits() {
        let (mut p, cfg) = tiny_head();
        // 1 + 2 + 0.5 and 2 - 2 + 0, for both images.
        assert_eq!(logits(&p, &cfg).unwrap(), vec![3.5, 0.0, 3.5, 0.0]);
        // A cross-attention output bias [1, -1] reaches the queries: after three LayerNorms
        // of [1, -1] (unit variance already) the decoder output is [1, -1] + [1, 2].
        p.insert(
            "decoder.layers.0.multihead_attn.out_proj.bias".into(),
            t(&[1.0, -1.0], &[2]),
        );
        let got = logits(&p, &cfg).unwrap();
        for (g, want) in got.iter().zip([3.5, 3.0, 3.5, 3.0]) {
            assert!((g - want).abs() < 1e-4, "{got:?}");
        }
    }

    fn copy(p: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        p.iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    }

    #[test]
    fn weights_are_named_when_missing_misshaped_or_unexpected() {
        let (p, cfg) = tiny_head();
        let err = |p: &HashMap<String, Tensor>| logits(p, &cfg).unwrap_err().to_string();
        let mut missing = copy(&p);
        missing.remove("fc.b");
        assert_eq!(err(&missing), "missing parameter \"fc.b\"");
        let mut misshaped = copy(&p);
        misshaped.insert("decoder.norm.bias".into(), t(&[1.0, 2.0, 3.0], &[3]));
        assert_eq!(
            err(&misshaped),
            "parameter \"decoder.norm.bias\" has shape [3], expected [2]"
        );
        let mut extra = copy(&p);
        extra.insert("encoder.layers.0.norm1.weight".into(), t(&[1.0, 1.0], &[2]));
        assert!(err(&extra).starts_with("unexpected parameter \"encoder.layers.0.norm1.weight\""));
    }
}
