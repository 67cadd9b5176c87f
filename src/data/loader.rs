//! The batch loader: a sampler with `DistributedSampler`'s semantics, and a producer thread
//! that decodes and augments each batch on a rayon pool while the consumer trains.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::dataset::{Dataset, OnError};
use super::loader_options::LoaderOptions;
use super::profile::{timed, Stage};
use super::rng::Rng;
use super::sampler;
use super::transform::{Output, Pipeline};
use crate::bail;
use crate::buffer_pool::BufferPool;
use crate::error::{panic_message, Error, Result};
use crate::parallel::SendPtr;

/// Refuses options whose batches would not fit in this machine's memory: the loader holds
/// up to `prefetch` finished batches, one being filled and the one the consumer has.
fn check_memory(dataset: &Dataset, pipeline: &Pipeline, opts: &LoaderOptions) -> Result<()> {
    let rows = opts
        .batch_size
        .min(sampler::samples_per_rank(dataset.len(), opts));
    let (c, h, w) = pipeline.shape();
    let elem = match pipeline.output() {
        Output::Normalize { .. } => 4,
        Output::Uint8 => 1,
    };
    let batch = [rows, c, h, w, elem]
        .iter()
        .try_fold(1u128, |acc, &v| acc.checked_mul(v as u128));
    let held = batch.and_then(|b| b.checked_mul(opts.prefetch as u128 + 2));
    let have = crate::error::machine_memory() as u128;
    if held.is_none_or(|held| held > have) {
        let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
        return Err(Error::Memory(format!(
            "batches of {rows} images of {c}x{h}x{w} ({:.1} GiB each; batch_size {}) with prefetch {} \
             would hold {:.1} GiB, more than this machine's {:.1} GiB of memory",
            gib(batch.unwrap_or(u128::MAX)),
            opts.batch_size,
            opts.prefetch,
            gib(held.unwrap_or(u128::MAX)),
            gib(have)
        )));
    }
    Ok(())
}

/// One finished batch.
pub struct Batch {
    /// `B x 3 x H x W`, float32 or uint8 as the pipeline says.
    pub images: Tensor,
    /// `B x C` float32 with 1, 0 and -1 (unknown).
    pub targets: Tensor,
    /// Dataset index of each row.
    pub indices: Vec<i64>,
    /// Samples left out under `OnError::Skip`: index and reason.
    pub skipped: Vec<(usize, String)>,
    /// Samples in the batch that a lenient decode repaired: index and what it forgave.
    pub repaired: Vec<(usize, String)>,
}

/// Batches of one dataset through one pipeline.
pub struct Loader {
    dataset: Arc<Dataset>,
    pipeline: Arc<Pipeline>,
    opts: LoaderOptions,
    pin_memory: Option<usize>,
    pool: Arc<rayon::ThreadPool>,
    buffers: Arc<BufferPool>,
}

const AUGMENT: u64 = 0xa097;

impl Loader {
    /// Checks the options and starts the worker pool; `pin_memory` page-locks batches for
    /// fast copies to that CUDA device.
    pub fn new(
        dataset: Arc<Dataset>,
        pipeline: Arc<Pipeline>,
        opts: LoaderOptions,
        pin_memory: Option<usize>,
    ) -> Result<Self> {
        crate::options::Schema::check(&opts)?;
        let default_buffer = LoaderOptions::default().shuffle_buffer;
        if dataset.shards().is_none() && opts.shuffle_buffer != default_buffer {
            bail!(
                "shuffle_buffer applies to tar shards only; this dataset is shuffled whole \
                 (leave shuffle_buffer at {default_buffer})"
            );
        }
        check_memory(&dataset, &pipeline, &opts)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.num_threads)
            .thread_name(|i| format!("q2l-data-{i}"))
            .build()
            .map_err(|e| {
                Error::Internal(format!(
                    "could not start {} data threads: {e}",
                    opts.num_threads
                ))
            })?;
        // As many buffers as `check_memory` counts: once the consumer drops a batch, its
        // buffer holds the next one, without the kernel zeroing and unmapping it in between.
        let buffers = Arc::new(BufferPool::new(opts.prefetch + 2));
        let loader = Loader {
            dataset,
            pipeline,
            opts,
            pin_memory,
            pool: Arc::new(pool),
            buffers,
        };
        if loader.is_empty() {
            bail!(
                "no batches: {} images per rank with batch_size {} and drop_last",
                loader.samples_per_rank(),
                loader.opts.batch_size
            );
        }
        Ok(loader)
    }

    /// Samples this rank sees per epoch (`DistributedSampler`'s `num_samples`).
    pub fn samples_per_rank(&self) -> usize {
        sampler::samples_per_rank(self.dataset.len(), &self.opts)
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.samples_per_rank();
        if self.opts.drop_last {
            n / self.opts.batch_size
        } else {
            n.div_ceil(self.opts.batch_size)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This rank's `(global position, dataset index)` order for `epoch` ([`sampler::order`]).
    pub fn order(&self, epoch: u64) -> Vec<(usize, usize)> {
        sampler::order(&self.dataset, &self.opts, epoch)
    }

    /// Starts producing `epoch`'s batches in the background, from batch `start` on (a run
    /// resumed mid-epoch continues with the first batch it has not seen).
    pub fn iter(&self, epoch: u64, start: usize) -> BatchIter {
        let order = self.order(epoch);
        let chunks: Vec<Vec<(usize, usize)>> = order
            .chunks(self.opts.batch_size)
            .take(self.len())
            .skip(start)
            .map(<[_]>::to_vec)
            .collect();
        let (tx, rx) = sync_channel(self.opts.prefetch.max(1));
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            dataset: self.dataset.clone(),
            pipeline: self.pipeline.clone(),
            opts: self.opts.clone(),
            pin_memory: self.pin_memory,
            pool: self.pool.clone(),
            buffers: self.buffers.clone(),
            epoch,
            cancel: cancel.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("q2l-data-producer".into())
            .spawn(move || {
                for chunk in chunks {
                    if job.cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch = job.batch(&chunk);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
        match handle {
            Ok(h) => BatchIter {
                rx: Some(rx),
                cancel,
                handle: Some(h),
                error: None,
            },
            Err(e) => BatchIter {
                rx: None,
                cancel,
                handle: None,
                error: Some(Error::Internal(format!(
                    "could not start the loader thread: {e}"
                ))),
            },
        }
    }
}

struct Job {
    dataset: Arc<Dataset>,
    pipeline: Arc<Pipeline>,
    opts: LoaderOptions,
    pin_memory: Option<usize>,
    pool: Arc<rayon::ThreadPool>,
    buffers: Arc<BufferPool>,
    epoch: u64,
    cancel: Arc<AtomicBool>,
}

impl Job {
    fn sample(
        &self,
        position: usize,
        index: usize,
    ) -> Result<(super::image::Image, Option<String>)> {
        let mut rng = Rng::keyed(&[self.opts.seed, self.epoch, position as u64, AUGMENT]);
        let pipeline = &self.pipeline;
        let loaded = self
            .dataset
            .load_window(index, &mut |w, h| pipeline.window(w, h, &mut rng))?;
        Ok((pipeline.finish(loaded.image, &mut rng)?, loaded.warning))
    }

    /// Decodes, augments and writes every sample of `chunk` into a batch, keeping the rows
    /// that succeeded (under `OnError::Skip`), then pins it if asked.
    fn batch(&self, chunk: &[(usize, usize)]) -> Result<Batch> {
        let (images, results) = self.fill(chunk)?;
        let mut keep = Vec::with_capacity(chunk.len());
        let mut skipped = Vec::new();
        let mut repaired = Vec::new();
        for (row, r) in results.into_iter().enumerate() {
            let index = chunk[row].1;
            match r {
                Ok(warning) => {
                    keep.push(row as i64);
                    repaired.extend(warning.map(|w| (index, w)));
                }
                // A bug is never skipped: it would shorten every epoch silently.
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) if self.opts.on_error == OnError::Skip => {
                    skipped.push((index, e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        let nc = self.dataset.classes().len();
        let mut targets = Vec::with_capacity(keep.len() * nc);
        let mut indices = Vec::with_capacity(keep.len());
        for &row in &keep {
            let index = chunk[row as usize].1;
            targets.extend(self.dataset.target(index).iter().map(|&t| t as f32));
            indices.push(index as i64);
        }
        let mut images = if skipped.is_empty() {
            images
        } else {
            images.f_index_select(0, &Tensor::from_slice(&keep))?
        };
        let mut targets = Tensor::f_from_slice(&targets)?.f_view([keep.len() as i64, nc as i64])?;
        if let Some(cuda) = self.pin_memory {
            images = images.f_pin_memory(Device::Cuda(cuda))?;
            targets = targets.f_pin_memory(Device::Cuda(cuda))?;
        }
        Ok(Batch {
            images,
            targets,
            indices,
            skipped,
            repaired,
        })
    }

    /// Allocates the batch tensor and has the pool write row `i` from sample `chunk[i]`;
    /// returns it with each row's outcome (the repair warning, or why it failed).
    fn fill(&self, chunk: &[(usize, usize)]) -> Result<(Tensor, Vec<Result<Option<String>>>)> {
        let (c, h, w) = self.pipeline.shape();
        let plane = c * h * w;
        let kind = match self.pipeline.output() {
            Output::Normalize { .. } => Kind::Float,
            Output::Uint8 => Kind::Uint8,
        };
        let shape = [chunk.len() as i64, c as i64, h as i64, w as i64];
        let images = self.buffers.tensor(&shape, kind)?;
        let ptr = images.data_ptr();
        let (f32_ptr, u8_ptr) = (SendPtr(ptr as *mut f32), SendPtr(ptr as *mut u8));
        let write_row = |row: usize, position: usize, index: usize| -> Result<Option<String>> {
            let (img, warning) = self.sample(position, index)?;
            // SAFETY: row `row` of the batch tensor, written by this task only.
            timed(Stage::Layout, || unsafe {
                match kind {
                    Kind::Float => self
                        .pipeline
                        .write_f32(&img, f32_ptr.slice_mut(row * plane, plane)),
                    _ => self
                        .pipeline
                        .write_u8(&img, u8_ptr.slice_mut(row * plane, plane)),
                }
            });
            Ok(warning)
        };
        let results = self.pool.install(|| {
            chunk
                .par_iter()
                .enumerate()
                .map(|(row, &(position, index))| {
                    if self.cancel.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    catch_unwind(AssertUnwindSafe(|| write_row(row, position, index)))
                        .unwrap_or_else(|panic| {
                            let why = panic_message(panic.as_ref());
                            Err(Error::Internal(format!(
                                "while preparing {}: {why}",
                                self.dataset.name(index)
                            )))
                        })
                })
                .collect()
        });
        Ok((images, results))
    }
}

/// The batches of one epoch, produced ahead by a background thread.
///
/// Dropping it stops the producer and joins it, so abandoning an epoch leaves no thread.
pub struct BatchIter {
    rx: Option<Receiver<Result<Batch>>>,
    cancel: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    error: Option<Error>,
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let item = self.rx.as_ref()?.recv().ok();
        if item.is_none() {
            // The producer hung up: the epoch is complete, unless it panicked.
            return self.finish().map(Err);
        }
        item
    }
}

impl BatchIter {
    /// Stops and joins the producer; a panic in it comes back as an `Internal` error.
    fn finish(&mut self) -> Option<Error> {
        self.cancel.store(true, Ordering::Relaxed);
        self.rx = None;
        let joined = self.handle.take()?.join();
        joined.err().map(|panic| {
            Error::Internal(format!(
                "in the loader thread: {}",
                panic_message(panic.as_ref())
            ))
        })
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Nothing is left to report to: the consumer has gone.
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fixture::TempDir;
    use crate::data::dataset::from_memory;
    use crate::data::dataset::shards::{self, tests as shard_tests, writer};
    use crate::data::transform::{Op, Resize, Size};

    /// Ten 2x2 grey images whose pixels hold their index, two classes.
    fn loader(rank: usize, world_size: usize, shuffle: bool, drop_last: bool) -> Loader {
        let pixels: Vec<u8> = (0..10u8).flat_map(|i| [i; 4]).collect();
        let targets: Vec<i8> = (0..10).flat_map(|i| [(i % 2) as i8, 1]).collect();
        let d = from_memory(
            pixels,
            [10, 2, 2, 1],
            targets,
            vec!["odd".into(), "all".into()],
        )
        .unwrap();
        let size = Size {
            height: 2,
            width: 2,
        };
        let p = Pipeline::new(vec![Op::Resize(Resize { size })], Output::Uint8).unwrap();
        let opts = LoaderOptions {
            batch_size: 3,
            shuffle,
            drop_last,
            seed: 7,
            num_threads: 2,
            prefetch: 2,
            rank,
            world_size,
            on_error: OnError::Raise,
            shuffle_buffer: 1000,
        };
        Loader::new(Arc::new(d), Arc::new(p), opts, None).unwrap()
    }

    fn indices(l: &Loader, epoch: u64) -> Vec<usize> {
        l.order(epoch).into_iter().map(|(_, i)| i).collect()
    }

    #[test]
    fn ranks_share_one_padded_shuffled_order() {
        // As DistributedSampler: 10 samples on 3 ranks -> 4 each, two repeated from the start.
        let ranks: Vec<Loader> = (0..3).map(|r| loader(r, 3, true, false)).collect();
        let orders: Vec<Vec<usize>> = ranks.iter().map(|l| indices(l, 0)).collect();
        assert!(orders.iter().all(|o| o.len() == 4));
        let mut all: Vec<usize> = orders.concat();
        all.sort();
        all.dedup();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            indices(&ranks[1], 0),
            orders[1],
            "the order is a function of (seed, epoch)"
        );
        assert_ne!(
            indices(&ranks[0], 1),
            orders[0],
            "another epoch shuffles anew"
        );
        // Without shuffling, rank r takes every third index from r.
        assert_eq!(indices(&loader(1, 3, false, false), 0), vec![1, 4, 7, 0]);
        // drop_last trims to 3 per rank instead of padding.
        assert_eq!(indices(&loader(0, 3, false, true), 0), vec![0, 3, 6]);
    }

    #[test]
    fn batches_follow_the_order() {
        let l = loader(0, 1, true, false);
        let order = indices(&l, 2);
        let batches: Vec<Batch> = l.iter(2, 0).collect::<Result<_>>().unwrap();
        assert_eq!(batches.len(), 4);
        assert_eq!(batches[3].images.size(), vec![1, 3, 2, 2]);
        let seen: Vec<i64> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(seen, order.iter().map(|&i| i as i64).collect::<Vec<_>>());
        for b in &batches {
            for (row, &index) in b.indices.iter().enumerate() {
                // Grey pixel value = index, in every channel; target "odd" = index % 2.
                assert_eq!(b.images.int64_value(&[row as i64, 2, 1, 1]), index);
                assert_eq!(b.targets.double_value(&[row as i64, 0]), (index % 2) as f64);
            }
        }
    }

    #[test]
    fn bad_options_are_refused() {
        let err = |o: LoaderOptions| {
            let l = loader(0, 1, false, false);
            Loader::new(l.dataset.clone(), l.pipeline.clone(), o, None)
                .err()
                .unwrap()
                .to_string()
        };
        let base = loader(0, 1, false, false).opts;
        assert!(err(LoaderOptions {
            batch_size: 0,
            ..base.clone()
        })
        .contains("batch_size"));
        assert!(err(LoaderOptions {
            rank: 2,
            world_size: 2,
            ..base.clone()
        })
        .contains("rank"));
        assert!(err(LoaderOptions {
            num_threads: 0,
            ..base.clone()
        })
        .contains("num_threads"));
        assert!("ignore".parse::<OnError>().is_err());
    }

    fn shard_loader(d: &Arc<Dataset>, rank: usize, shuffle: bool) -> Loader {
        let size = Size {
            height: 2,
            width: 2,
        };
        let p = Pipeline::new(vec![Op::Resize(Resize { size })], Output::Uint8).unwrap();
        let opts = LoaderOptions {
            batch_size: 2,
            shuffle,
            seed: 3,
            num_threads: 2,
            rank,
            world_size: 2,
            shuffle_buffer: 3,
            ..Default::default()
        };
        Loader::new(d.clone(), Arc::new(p), opts, None).unwrap()
    }

    fn seen(l: &Loader, epoch: u64, start: usize) -> Vec<i64> {
        let batches: Vec<_> = l.iter(epoch, start).collect::<Result<_>>().unwrap();
        batches.iter().flat_map(|b| b.indices.clone()).collect()
    }

    #[test]
    fn two_ranks_of_two_threads_see_every_sample_once_and_resume() {
        let dir = TempDir::new();
        writer::write_shards(
            &shard_tests::memory(12),
            dir.path(),
            &shard_tests::layout(3),
        )
        .unwrap();
        let pattern = dir
            .path()
            .join("train-{000000..000003}.tar")
            .display()
            .to_string();
        let d =
            Arc::new(shards::shards(&[pattern], shard_tests::classes(), OnError::Raise).unwrap());
        for shuffle in [false, true] {
            let ranks = [shard_loader(&d, 0, shuffle), shard_loader(&d, 1, shuffle)];
            for epoch in 0..3 {
                let mut all: Vec<i64> = ranks.iter().flat_map(|l| seen(l, epoch, 0)).collect();
                assert_eq!(all.len(), 12);
                all.sort();
                assert_eq!(
                    all,
                    (0..12).collect::<Vec<_>>(),
                    "shuffle {shuffle} epoch {epoch}"
                );
            }
            // Resuming at batch 2 continues with the first sample not yet seen.
            let full = seen(&ranks[1], 1, 0);
            assert_eq!(seen(&ranks[1], 1, 2), full[4..]);
        }
        let l = shard_loader(&d, 0, true);
        assert_ne!(
            seen(&l, 0, 0),
            seen(&l, 1, 0),
            "each epoch is shuffled anew"
        );
        assert_eq!(
            seen(&l, 0, 0),
            seen(&l, 0, 0),
            "and the same for the same epoch"
        );
        // Unshuffled, rank 0 reads the first two shards front to back.
        assert_eq!(
            seen(&shard_loader(&d, 0, false), 0, 0),
            (0..6).collect::<Vec<_>>()
        );
    }
}
