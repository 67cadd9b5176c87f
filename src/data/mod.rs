//! The multi-label image data pipeline: datasets, decoding, transforms and the loader.

pub mod dataset;
pub mod decode;
pub mod image;
pub mod jpeg;
pub mod loader;
pub mod resize;
pub mod rng;
pub mod transform;

pub use dataset::{Dataset, Source};
pub use image::Image;
pub use loader::{Batch, Loader, LoaderOptions, OnError};
pub use transform::{Op, Output, Pipeline};
