//! The hyper-parameters of the heads that their weights do not show.

/// The architecture of a head.
#[derive(Clone, Debug)]
pub struct HeadConfig {
    /// Model width d.
    pub d_model: i64,
    /// Attention heads (d must be divisible by it).
    pub nhead: i64,
    /// Encoder layers over the image tokens.
    pub num_encoder_layers: i64,
    /// Decoder layers of the label queries.
    pub num_decoder_layers: i64,
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

/// The hyper-parameters of an ML-Decoder that its weights do not show.
#[derive(Clone, Debug)]
pub struct MlDecoderConfig {
    /// Attention heads (8 in the official module).
    pub nhead: i64,
    /// Dropout of the attention weights, the residual branches and the FFN.
    pub dropout: f64,
}
