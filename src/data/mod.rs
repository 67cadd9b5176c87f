//! The multi-label image data pipeline: datasets, decoding, transforms and the loader.

pub mod dataset;
pub mod decode;
pub mod file;
pub mod image;
pub mod jpeg;
pub mod jpeg_encode;
pub mod loader;
pub mod loader_options;
pub mod npy;
pub mod profile;
pub mod resize;
#[cfg(target_arch = "x86_64")]
mod resize_avx2;
mod resize_taps;
pub mod rng;
pub mod sampler;
#[cfg(test)]
mod seeds;
pub mod transform;

pub use dataset::{Dataset, OnError, Source};
pub use image::Image;
pub use loader::{Batch, Loader};
pub use loader_options::LoaderOptions;
pub use transform::{Op, Output, Pipeline};
