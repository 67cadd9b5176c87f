//! The Query2Label decoder head (Liu et al. 2021) on tch ops.

mod attention;
mod head;
mod position;

pub use head::{forward, HeadConfig, HeadOutput};
pub use position::sine_encoding;
