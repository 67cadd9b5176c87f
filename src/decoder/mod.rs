//! The Query2Label decoder head (Liu et al. 2021) on tch ops.

mod attention;
mod head;
mod position;
mod weights;

pub use attention::MhaWeights;
pub use head::{forward, HeadConfig, HeadOutput};
pub use position::sine_encoding;
pub use weights::{Affine, DecoderLayer, EncoderLayer, Ffn, HeadWeights};
