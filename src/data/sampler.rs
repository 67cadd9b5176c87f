//! Which samples each rank sees in an epoch, and in which order.
//!
//! Datasets read by index follow `DistributedSampler`; tar shards are read as streams: the
//! shards shuffled, a contiguous run of them per rank, a seeded shuffle buffer.

use std::ops::Range;

use super::dataset::Dataset;
use super::loader_options::LoaderOptions;
use super::rng::Rng;

const ORDER: u64 = 0x0dde;
const BUFFER: u64 = 0xb0ff;

/// Samples of `n` one rank sees per epoch (`DistributedSampler`'s `num_samples`).
pub fn samples_per_rank(n: usize, opts: &LoaderOptions) -> usize {
    if opts.drop_last && opts.world_size > 1 {
        n / opts.world_size
    } else {
        n.div_ceil(opts.world_size)
    }
}

/// WebDataset's buffered shuffle over a stream of indices: fill a buffer of `size`, then for
/// each new sample emit a random buffered one and put the new one in its place; finally
/// emit what is left in random order. Samples move at most about `size` places.
fn buffer_shuffle(stream: &[usize], size: usize, rng: &mut Rng) -> Vec<usize> {
    let mut out = Vec::with_capacity(stream.len());
    let mut buffer: Vec<usize> = Vec::with_capacity(size.min(stream.len()));
    for &i in stream {
        if buffer.len() < size {
            buffer.push(i);
            continue;
        }
        let k = rng.below(size);
        out.push(std::mem::replace(&mut buffer[k], i));
    }
    rng.shuffle(&mut buffer);
    out.extend(buffer);
    out
}

/// This rank's `(global position, dataset index)` order for `epoch`.
///
/// As `DistributedSampler`: shuffle the whole dataset, pad by repeating from the start (or
/// trim when dropping the last uneven samples), then take every `world_size`-th index from
/// `rank`. Tar shards are read as streams instead ([`stream_order`]).
pub fn order(dataset: &Dataset, opts: &LoaderOptions, epoch: u64) -> Vec<(usize, usize)> {
    if let Some(shards) = dataset.shards() {
        return stream_order(shards.spans(), opts, epoch);
    }
    let mut all: Vec<usize> = (0..dataset.len()).collect();
    if opts.shuffle {
        Rng::keyed(&[opts.seed, epoch, ORDER]).shuffle(&mut all);
    }
    pad(&mut all, opts);
    all.into_iter()
        .enumerate()
        .skip(opts.rank)
        .step_by(opts.world_size)
        .collect()
}

/// The order over tar shards: the shards shuffled (seeded by epoch), their samples
/// concatenated and padded as `DistributedSampler` pads, each rank a contiguous run of that
/// stream (so it reads whole shards front to back), mixed by a seeded buffer of
/// `shuffle_buffer` samples as WebDataset's `shuffle` mixes them.
fn stream_order(spans: &[Range<usize>], opts: &LoaderOptions, epoch: u64) -> Vec<(usize, usize)> {
    let mut shards: Vec<usize> = (0..spans.len()).collect();
    if opts.shuffle {
        Rng::keyed(&[opts.seed, epoch, ORDER]).shuffle(&mut shards);
    }
    let mut all: Vec<usize> = shards.iter().flat_map(|&k| spans[k].clone()).collect();
    let per = samples_per_rank(all.len(), opts);
    pad(&mut all, opts);
    let first = opts.rank * per;
    let run = &all[first..first + per];
    let mut rng = Rng::keyed(&[opts.seed, epoch, opts.rank as u64, BUFFER]);
    let order = match (opts.shuffle, opts.shuffle_buffer) {
        (true, size) if size > 1 => buffer_shuffle(run, size, &mut rng),
        _ => run.to_vec(),
    };
    let positions = first..first + per;
    positions.zip(order).collect()
}

/// Pads `all` (the whole dataset, in order) by repeating from its start up to
/// `samples_per_rank * world_size` samples, or trims it to that.
fn pad(all: &mut Vec<usize>, opts: &LoaderOptions) {
    let n = all.len();
    let total = samples_per_rank(n, opts) * opts.world_size;
    let mut k = 0;
    while all.len() < total {
        all.push(all[k % n]);
        k += 1;
    }
    all.truncate(total);
}
