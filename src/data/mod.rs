//! The multi-label image data pipeline: datasets, decoding, transforms and the loader.

pub mod dataset;
pub mod decode;
pub mod file;
pub mod image;
pub mod jpeg;
pub mod jpeg_encode;
pub mod loader;
pub mod npy;
pub mod profile;
pub mod resize;
pub mod rng;
#[cfg(test)]
mod seeds;
pub mod transform;

pub use dataset::{Dataset, Source};
pub use image::Image;
pub use loader::{Batch, Loader, LoaderOptions, OnError};
pub use transform::{Op, Output, Pipeline};
