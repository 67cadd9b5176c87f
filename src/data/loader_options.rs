//! The loader's options: ordering, batching, sharding over ranks, threads, bad images.

use super::dataset::OnError;
use crate::bail;
use crate::error::Result;

crate::options! {
    /// How a loader orders, batches, shards and prepares a dataset.
    pub struct LoaderOptions {
        /// Images per batch.
        batch_size: usize = 64,
        /// A new order each epoch.
        shuffle: bool = false,
        /// Drop the last incomplete batch.
        drop_last: bool = false,
        /// Seeds orders and augmentations (the same on every rank).
        seed: u64 = 0,
        /// Decoding and augmenting threads (`q2l.data.Loader`'s default: one per CPU this
        /// process may use).
        num_threads: usize = 1,
        /// Finished batches kept ready ahead of the consumer.
        prefetch: usize = 2,
        /// This process's shard, as `DistributedSampler`'s rank (padding included).
        rank: usize = 0,
        /// The number of shards.
        world_size: usize = 1,
        /// "raise" stops at an unreadable image with an exception naming it; "skip" leaves
        /// it out of its batch and reports it.
        on_error: OnError = OnError::Raise,
        /// Tar shards only: samples held in the seeded shuffle buffer (0: shards are shuffled
        /// but read in order).
        shuffle_buffer: usize = 1000,
    }
}

/// More threads than any machine has cores cannot help, and each costs a stack.
const MAX_THREADS: usize = 1024;
/// Batches kept ready ahead; the memory they hold is checked in [`Loader::new`].
const MAX_PREFETCH: usize = 1024;
/// Samples in the shuffle buffer at most (indices only: 8 bytes each).
const MAX_SHUFFLE_BUFFER: usize = 1 << 24;

impl crate::options::Checked for LoaderOptions {
    fn check(&self) -> Result<()> {
        for (name, v) in [
            ("batch_size", self.batch_size),
            ("num_threads", self.num_threads),
            ("prefetch", self.prefetch),
            ("world_size", self.world_size),
        ] {
            if v == 0 {
                bail!("{name} must be >= 1, got 0");
            }
        }
        for (name, v, max) in [
            ("num_threads", self.num_threads, MAX_THREADS),
            ("prefetch", self.prefetch, MAX_PREFETCH),
            ("shuffle_buffer", self.shuffle_buffer, MAX_SHUFFLE_BUFFER),
        ] {
            if v > max {
                bail!("{name} must be <= {max}, got {v}");
            }
        }
        if self.rank >= self.world_size {
            bail!(
                "rank must be in [0, world_size), got rank {} of {}",
                self.rank,
                self.world_size
            );
        }
        Ok(())
    }
}
