//! The Query2Label decoder head (Liu et al. 2021) and ML-Decoder (Ridnik et al. 2023) on
//! tch ops.

mod attention;
mod dropout;
mod group_fc;
mod head;
mod ml_decoder;
mod position;
mod weights;

pub use attention::MhaWeights;
pub use dropout::dropout;
pub use group_fc::{duplicate_factor, Classifier};
pub use head::{forward, HeadConfig, HeadOutput};
pub use ml_decoder::{ml_decoder_forward, MlDecoderConfig};
pub use position::sine_encoding;
pub use weights::{Affine, DecoderLayer, EncoderLayer, Ffn, HeadWeights};
