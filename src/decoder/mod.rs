//! The Query2Label decoder head (Liu et al. 2021) and ML-Decoder (Ridnik et al. 2023) on
//! tch ops.

mod attention;
mod config;
mod dropout;
mod group_fc;
mod head;
mod lookup;
mod ml_decoder;
mod position;
mod weights;

pub use attention::MhaWeights;
pub use config::{HeadConfig, MlDecoderConfig};
pub use dropout::dropout;
pub use group_fc::{duplicate_factor, Classifier};
pub use head::{forward, HeadOutput};
pub use lookup::{Affine, Ffn};
pub use ml_decoder::ml_decoder_forward;
pub use position::sine_encoding;
pub use weights::{DecoderLayer, EncoderLayer, HeadWeights};
