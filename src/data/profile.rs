//! Time spent in each stage of the data pipeline, summed over threads, for
//! `python -m q2l.bench data --profile`.
//!
//! Off by default: a stage then costs one relaxed atomic load. The counters are global, so
//! two loaders profiled at once add up together; the benchmark runs one at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A stage of turning a file into a batch row.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    /// Reading the file's bytes.
    Read,
    /// Decoding (for a JPEG, only the region and DCT scale the first operation needs).
    Decode,
    /// Copying out the window of what was decoded.
    Crop,
    /// Resampling to the first operation's output size.
    Resize,
    /// The operations after the first (flip, Cutout, RandAugment, ...).
    Augment,
    /// Normalising and writing channel-first into the batch tensor.
    Layout,
}

/// Every stage with the name the benchmark prints.
pub const STAGES: [(Stage, &str); 6] = [
    (Stage::Read, "read"),
    (Stage::Decode, "decode"),
    (Stage::Crop, "crop"),
    (Stage::Resize, "resize"),
    (Stage::Augment, "augment"),
    (Stage::Layout, "layout"),
];

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Runs `f`, adding its time to `stage` while profiling is on.
pub fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    NANOS[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    out
}

/// The seconds each stage took since the last call, by name; the counters restart from zero
/// and profiling is then on or off as `on` says.
pub fn take(on: bool) -> Vec<(&'static str, f64)> {
    ON.store(on, Ordering::Relaxed);
    STAGES
        .iter()
        .map(|&(stage, name)| {
            let nanos = NANOS[stage as usize].swap(0, Ordering::Relaxed);
            (name, nanos as f64 * 1e-9)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_only_while_on() {
        take(false);
        timed(Stage::Decode, || {
            std::thread::sleep(std::time::Duration::from_millis(2))
        });
        assert!(take(true).iter().all(|&(_, s)| s == 0.0));
        timed(Stage::Decode, || {
            std::thread::sleep(std::time::Duration::from_millis(2))
        });
        // Other tests decode in parallel while profiling is on, so only this stage's own
        // two milliseconds are certain.
        let got = take(false);
        assert!(got[1].1 >= 0.002, "{got:?}");
    }
}
