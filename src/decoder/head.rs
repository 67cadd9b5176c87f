//! The Query2Label head: input projection, positional encoding, Transformer encoder,
//! label-query decoder and group-wise linear classifier, as one forward on tch ops.
//!
//! Parameters arrive by name, with the names of the official model (without its
//! `module.transformer.` prefix), so autograd records every op on the caller's tensors.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::bail;
use crate::error::Result;
use crate::tensor::{float_kind, same_device, shape_str};

use super::attention::{cross_attention, dropout, linear, self_attention, MhaWeights};
use super::position::sine_encoding;

/// The architecture of a head.
#[derive(Clone, Debug)]
pub struct HeadConfig {
    /// Model width d.
    pub d_model: i64,
    /// Attention heads (d must be divisible by it).
    pub nhead: i64,
    /// Encoder layers over the image tokens.
    pub enc_layers: i64,
    /// Decoder layers of the label queries.
    pub dec_layers: i64,
    /// Dropout of attention weights, residual branches and the FFN.
    pub dropout: f64,
    /// Pre-norm layers instead of the official post-norm.
    pub pre_norm: bool,
    /// Keep self-attention among label queries in the first decoder layer.
    pub keep_first_self_attn: bool,
    /// Keep it in the other decoder layers.
    pub keep_other_self_attn: bool,
    /// Temperature of the sine positional encoding.
    pub temperature: f64,
}

/// What a forward returns.
pub struct HeadOutput {
    /// `[B, K]` logits.
    pub logits: Tensor,
    /// Per decoder layer, the head-averaged cross-attention `[B, K, H, W]`, when asked.
    pub attention: Vec<Tensor>,
}

/// Named parameters with checked lookup.
pub struct Params<'a>(pub &'a HashMap<String, Tensor>);

impl Params<'_> {
    fn get(&self, name: &str) -> Result<&Tensor> {
        match self.0.get(name) {
            Some(t) => Ok(t),
            None => bail!("missing parameter {name:?}"),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn mha(&self, prefix: &str) -> Result<MhaWeights<'_>> {
        Ok(MhaWeights {
            in_w: self.get(&format!("{prefix}.in_proj_weight"))?,
            in_b: self.get(&format!("{prefix}.in_proj_bias"))?,
            out_w: self.get(&format!("{prefix}.out_proj.weight"))?,
            out_b: self.get(&format!("{prefix}.out_proj.bias"))?,
        })
    }

    fn norm(&self, x: &Tensor, prefix: &str, d: i64) -> Result<Tensor> {
        let w = self.get(&format!("{prefix}.weight"))?;
        let b = self.get(&format!("{prefix}.bias"))?;
        Ok(x.f_layer_norm([d], Some(w), Some(b), 1e-5, true)?)
    }

    fn ffn(&self, x: &Tensor, prefix: &str, cfg: &HeadConfig, train: bool) -> Result<Tensor> {
        let h = linear(
            x,
            self.get(&format!("{prefix}.linear1.weight"))?,
            Some(self.get(&format!("{prefix}.linear1.bias"))?),
        )?;
        // dropout then relu equals relu then dropout (the mask scales by a positive
        // constant), but this way relu's saved output is linear2's saved input: one
        // activation kept for backward instead of two.
        let h = dropout(&h, cfg.dropout, train)?.f_relu()?;
        linear(
            &h,
            self.get(&format!("{prefix}.linear2.weight"))?,
            Some(self.get(&format!("{prefix}.linear2.bias"))?),
        )
    }

    /// The residual self-attention block `x + attn(x + pos, x)` of layer `prefix`, with
    /// its LayerNorm `norm` before (pre-norm) or after (post-norm, official).
    fn self_attn_block(
        &self,
        x: &Tensor,
        pos: &Tensor,
        prefix: &str,
        norm: &str,
        cfg: &HeadConfig,
        train: bool,
    ) -> Result<Tensor> {
        let attn = self.mha(&format!("{prefix}.self_attn"))?;
        let norm = format!("{prefix}.{norm}");
        let run =
            |x: &Tensor| self_attention(&x.f_add(pos)?, x, &attn, cfg.nhead, cfg.dropout, train);
        if cfg.pre_norm {
            let a = run(&self.norm(x, &norm, cfg.d_model)?)?;
            Ok(x.f_add(&dropout(&a, cfg.dropout, train)?)?)
        } else {
            let a = run(x)?;
            self.norm(
                &x.f_add(&dropout(&a, cfg.dropout, train)?)?,
                &norm,
                cfg.d_model,
            )
        }
    }

    /// The residual FFN block of layer `prefix`, with its LayerNorm `norm` before or after.
    fn ffn_block(
        &self,
        x: &Tensor,
        prefix: &str,
        norm: &str,
        cfg: &HeadConfig,
        train: bool,
    ) -> Result<Tensor> {
        let norm = format!("{prefix}.{norm}");
        if cfg.pre_norm {
            let f = self.ffn(&self.norm(x, &norm, cfg.d_model)?, prefix, cfg, train)?;
            Ok(x.f_add(&dropout(&f, cfg.dropout, train)?)?)
        } else {
            let f = self.ffn(x, prefix, cfg, train)?;
            self.norm(
                &x.f_add(&dropout(&f, cfg.dropout, train)?)?,
                &norm,
                cfg.d_model,
            )
        }
    }
}

fn check_input(x: &Tensor, p: &Params, cfg: &HeadConfig) -> Result<(i64, i64, i64, i64)> {
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
    if cfg.d_model % cfg.nhead != 0 || cfg.d_model % 2 != 0 {
        bail!(
            "d_model ({}) must be even and divisible by nhead ({})",
            cfg.d_model,
            cfg.nhead
        );
    }
    let expected = match p.0.get("input_proj.weight") {
        Some(wt) => wt.size()[1],
        None => cfg.d_model,
    };
    if c != expected {
        bail!("features have {c} channels but the head expects {expected}");
    }
    // Dtypes may differ under autocast; the Python module checks them outside it.
    for (name, t) in p.0.iter() {
        same_device(t, name, x, "features")?;
    }
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
    let p = Params(params);
    let (b, _c, h, w) = check_input(x, &p, cfg)?;
    let d = cfg.d_model;
    let x = if p.has("input_proj.weight") {
        x.f_conv2d(
            p.get("input_proj.weight")?,
            p.0.get("input_proj.bias"),
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )?
    } else {
        x.shallow_clone()
    };
    // [B, d, H, W] -> [B, HW, d]
    let src = x.f_flatten(2, 3)?.f_transpose(1, 2)?;
    let kind = src.f_kind()?;
    let pos = sine_encoding(h, w, d, cfg.temperature, kind, src.device())?.f_unsqueeze(0)?;
    let drop = |t: Tensor| -> Result<Tensor> { dropout(&t, cfg.dropout, train) };

    let mut memory = src;
    for i in 0..cfg.enc_layers {
        let pre = format!("encoder.layers.{i}");
        memory = p.self_attn_block(&memory, &pos, &pre, "norm1", cfg, train)?;
        memory = p.ffn_block(&memory, &pre, "norm2", cfg, train)?;
    }
    if cfg.pre_norm && cfg.enc_layers > 0 {
        memory = p.norm(&memory, "encoder.norm", d)?;
    }

    let query_pos = p.get("query_embed.weight")?.f_unsqueeze(0)?; // [1, K, d]
    let k = query_pos.size()[1];
    let key_in = memory.f_add(&pos)?;
    // The target starts at zero, so the first layer's queries do not depend on the image:
    // it runs on a batch of one and broadcasts.
    let mut tgt = query_pos.f_zeros_like()?;
    let mut attention = Vec::new();
    for i in 0..cfg.dec_layers {
        let pre = format!("decoder.layers.{i}");
        let keep_self = if i == 0 {
            cfg.keep_first_self_attn
        } else {
            cfg.keep_other_self_attn
        };
        if keep_self {
            tgt = p.self_attn_block(&tgt, &query_pos, &pre, "norm1", cfg, train)?;
        }
        let cross = p.mha(&format!("{pre}.multihead_attn"))?;
        let q_in = if cfg.pre_norm {
            p.norm(&tgt, &format!("{pre}.norm2"), d)?
        } else {
            tgt.shallow_clone()
        };
        let (a, weights) = cross_attention(
            &q_in.f_add(&query_pos)?,
            &key_in,
            &memory,
            &cross,
            cfg.nhead,
            cfg.dropout,
            train,
            want_attention,
        )?;
        if let Some(wt) = weights {
            attention.push(wt.f_view([b, k, h, w])?);
        }
        tgt = tgt.f_add(&drop(a)?)?;
        if !cfg.pre_norm {
            tgt = p.norm(&tgt, &format!("{pre}.norm2"), d)?;
        }
        tgt = p.ffn_block(&tgt, &pre, "norm3", cfg, train)?;
    }
    let hs = p.norm(&tgt, "decoder.norm", d)?; // [B or 1, K, d]
    let hs = if hs.size()[0] != b {
        hs.f_expand([b, k, d], false)?
    } else {
        hs
    };
    let wfc = p.get("fc.W")?; // [1, K, d]
    let logits = hs
        .f_mul(wfc)?
        .f_sum_dim_intlist(-1, false, None::<Kind>)?
        .f_add(p.get("fc.b")?)?;
    Ok(HeadOutput { logits, attention })
}
