//! Data-parallel loops on the calling thread and a rayon pool, as many threads in all as
//! torch's intra-op pool.
//!
//! Work is cut into chunks whose size does not depend on the thread count, and per-chunk
//! results come back in chunk order, so reductions give the same bits on 1 or N threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The number of threads q2l's kernels use: `torch.get_num_threads()`.
pub fn num_threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("q2l-worker-{i}"))
                .build();
            // Building a pool only fails if the OS refuses threads; run inline then.
            Arc::new(pool.unwrap_or_else(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .use_current_thread()
                    .build()
                    .expect("a one-thread pool")
            }))
        })
        .clone()
}

/// Runs `f(chunk)` for every chunk index in `0..chunks` and returns the results in order.
///
/// Runs on the calling thread when `parallel` is false, there is one chunk, or torch is
/// set to one thread. Otherwise the calling thread takes chunks too, beside `threads - 1`
/// pool workers: workers asleep since the last call take a while to wake (0.3-0.4 ms on a
/// 2-core EPYC VM after a 1 ms pause, a third of a (128, 9605) loss), and the caller does
/// the chunks a late worker would have done meanwhile.
pub fn map_chunks<T, F>(chunks: usize, parallel: bool, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync + Send,
{
    let threads = num_threads();
    if !parallel || chunks <= 1 || threads == 1 {
        return (0..chunks).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(chunks));
    let work = || {
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= chunks {
                break;
            }
            mine.push((k, f(k)));
        }
        done.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
    };
    pool(threads - 1).in_place_scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| work());
        }
        work();
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_unstable_by_key(|&(k, _)| k);
    done.into_iter().map(|(_, v)| v).collect()
}

/// A raw pointer that may cross threads; the user guarantees disjoint access.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);

// SAFETY: only used to hand disjoint sub-slices of one buffer to different chunks.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The sub-slice `[start, start + len)`.
    ///
    /// # Safety
    /// The range must lie inside the buffer and no other live slice may overlap it.
    pub unsafe fn slice_mut<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        if len == 0 {
            return &mut [];
        }
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order() {
        let out = map_chunks(100, true, |i| i * 2);
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }
}
