//! The hyper-parameters of the heads that their weights do not show, declared once: the
//! Python heads take their defaults from here and check them through [`Checked`].

use crate::bail;
use crate::error::Result;
use crate::options::{in_range, positive, Checked};

crate::options! {
    /// The architecture of a Query2Label head; the defaults are the paper's COCO model.
    pub struct HeadConfig {
        /// Transformer width d; even, and divisible by `nhead`.
        d_model: i64 = 2048,
        /// Attention heads.
        nhead: i64 = 4,
        /// Encoder layers over the image tokens (0: none).
        num_encoder_layers: i64 = 1,
        /// Decoder layers of the label queries.
        num_decoder_layers: i64 = 2,
        /// Dropout in attention, residual branches and FFN.
        dropout: f64 = 0.1,
        /// Pre-norm layers (the official model is post-norm).
        pre_norm: bool = false,
        /// Keep self-attention among the queries in decoder layer 1 (the official model
        /// removes it).
        keep_first_self_attn: bool = false,
        /// Keep it in the other decoder layers (removed officially).
        keep_other_self_attn: bool = false,
        /// Temperature of the sine positional encoding.
        temperature: f64 = 10000.0,
    }
}

impl Checked for HeadConfig {
    fn check(&self) -> Result<()> {
        // Each of the model's feature sizes must allow one parameter tensor.
        positive("d_model", self.d_model)?;
        positive("nhead", self.nhead)?;
        heads_divide(self.d_model, self.nhead, true)?;
        if self.num_encoder_layers < 0 {
            bail!(
                "num_encoder_layers must be >= 0, got {}",
                self.num_encoder_layers
            );
        }
        positive("num_decoder_layers", self.num_decoder_layers)?;
        in_range("dropout", self.dropout, 0.0, 1.0, false)?;
        if self.temperature <= 0.0 {
            bail!("temperature must be > 0, got {}", self.temperature);
        }
        Ok(())
    }
}

crate::options! {
    /// The attention of an ML-Decoder head; the defaults are the official module's.
    pub struct MlDecoderConfig {
        /// Decoder width E (official `decoder_embedding`); divisible by `nhead`.
        d_model: i64 = 768,
        /// Attention heads.
        nhead: i64 = 8,
        /// Dropout in attention, residual branches and FFN.
        dropout: f64 = 0.1,
    }
}

impl Checked for MlDecoderConfig {
    fn check(&self) -> Result<()> {
        positive("d_model", self.d_model)?;
        positive("nhead", self.nhead)?;
        heads_divide(self.d_model, self.nhead, false)?;
        in_range("dropout", self.dropout, 0.0, 1.0, false)
    }
}

/// Refuses a width that `nhead` attention heads (and, with `even`, the sine encoding's two
/// halves) do not divide.
fn heads_divide(d_model: i64, nhead: i64, even: bool) -> Result<()> {
    if d_model % nhead != 0 || (even && d_model % 2 != 0) {
        let what = if even {
            "even and divisible"
        } else {
            "divisible"
        };
        bail!("d_model ({d_model}) must be {what} by nhead ({nhead})");
    }
    Ok(())
}
