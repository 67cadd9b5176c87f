//! Batch memory used again: CPU tensors over buffers that return to their pool when torch
//! frees them.
//!
//! A loader writes a fresh batch of tens of megabytes every step. Fresh memory costs the
//! kernel a zeroed page at each first write (2 MiB at a time with huge pages) and an unmap
//! when the consumer drops the batch. On a 2-core EPYC that was a quarter of the training
//! transform's time at 448 (writing a row: 0.3-1.7 ms fresh, 0.08 ms into a used buffer).
//! tch's `from_blob` takes no deleter, so `buffer_pool.cpp` makes the tensor with one: torch
//! calls [`release`] when the storage dies, on whichever thread drops the last reference.

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::sync::{Arc, Mutex, PoisonError};

use tch::{Kind, Tensor};
use torch_sys::C_tensor;

use crate::error::{Error, Result};
use crate::memory::{advise_huge_pages, empty_cpu};

extern "C" {
    fn q2l_tensor_over(
        data: *mut c_void,
        dims: *const i64,
        ndims: usize,
        scalar_type: libc::c_int,
        release: extern "C" fn(*mut c_void),
        ctx: *mut c_void,
    ) -> *mut C_tensor;
}

/// Huge pages are 2 MiB; buffers at least that large are aligned to them.
const HUGE: usize = 2 << 20;

/// Memory from the global allocator, freed on drop.
struct Buffer {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for Buffer {}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc(layout)` and is freed once, here.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// The buffers waiting to be used again.
struct Free {
    buffers: Vec<Buffer>,
    keep: usize,
    open: bool,
}

/// What torch holds for each tensor it was given: the buffer and the way back.
struct Lease {
    free: Arc<Mutex<Free>>,
    buffer: Buffer,
}

/// Hands out uninitialised CPU tensors over buffers it takes back when torch frees them;
/// keeps at most `keep` idle buffers. Dropping the pool frees its idle buffers, and buffers
/// still in tensors are then freed when those tensors are.
pub struct BufferPool {
    free: Arc<Mutex<Free>>,
}

impl BufferPool {
    /// A pool that keeps up to `keep` idle buffers.
    pub fn new(keep: usize) -> Self {
        let free = Free {
            // Full capacity now: `release` must not allocate.
            buffers: Vec::with_capacity(keep),
            keep,
            open: true,
        };
        BufferPool {
            free: Arc::new(Mutex::new(free)),
        }
    }

    /// An uninitialised contiguous CPU tensor of `shape` and `kind` (uint8 or float32; other
    /// kinds get fresh memory). Its contents may be an earlier tensor's.
    pub fn tensor(&self, shape: &[i64], kind: Kind) -> Result<Tensor> {
        let scalar_type = match kind {
            Kind::Uint8 => 0,
            Kind::Float => 6,
            _ => return empty_cpu(shape, kind),
        };
        let bytes = shape
            .iter()
            .try_fold(kind.elt_size_in_bytes(), |acc, &d| {
                usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
            })
            .ok_or_else(|| Error::value(format!("no tensor of shape {shape:?}")))?;
        if bytes == 0 {
            return empty_cpu(shape, kind);
        }
        let buffer = match self.take(bytes) {
            Some(b) => b,
            None => allocate(bytes)?,
        };
        let ptr = buffer.ptr;
        let lease = Box::into_raw(Box::new(Lease {
            free: self.free.clone(),
            buffer,
        }));
        // SAFETY: `ptr` holds at least `bytes`, the tensor's size; torch owns `lease` from
        // here and hands it to `release` once (on failure perhaps never: a leak, not a
        // double free).
        let t = unsafe {
            q2l_tensor_over(
                ptr.cast(),
                shape.as_ptr(),
                shape.len(),
                scalar_type,
                release,
                lease.cast(),
            )
        };
        if t.is_null() {
            return Err(Error::Memory(format!(
                "torch could not make a tensor of shape {shape:?} over a batch buffer"
            )));
        }
        // SAFETY: a new handle from `q2l_tensor_over`, owned by the returned tensor.
        Ok(unsafe { Tensor::from_ptr(t) })
    }

    /// An idle buffer of at least `bytes`, if one is waiting (a smaller one is freed).
    fn take(&self, bytes: usize) -> Option<Buffer> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let i = free.buffers.iter().position(|b| b.layout.size() >= bytes);
        match i {
            Some(i) => Some(free.buffers.swap_remove(i)),
            None => {
                // The batch grew: the waiting ones would never fit again.
                let stale = std::mem::take(&mut free.buffers);
                let keep = free.keep;
                free.buffers.reserve_exact(keep);
                drop(free);
                drop(stale);
                None
            }
        }
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.open = false;
        let idle = std::mem::take(&mut free.buffers);
        drop(free);
        drop(idle);
    }
}

/// `bytes` of fresh memory, huge-page aligned and advised when at least one huge page.
fn allocate(bytes: usize) -> Result<Buffer> {
    let align = if bytes >= HUGE { HUGE } else { 64 };
    let layout = Layout::from_size_align(bytes, align)
        .map_err(|_| Error::Memory(format!("a batch buffer of {bytes} bytes")))?;
    // SAFETY: `layout` has a non-zero size (the caller checks `bytes > 0`).
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        return Err(Error::Memory(format!(
            "could not allocate a batch buffer of {bytes} bytes"
        )));
    }
    advise_huge_pages(ptr, bytes);
    Ok(Buffer { ptr, layout })
}

/// torch's deleter for a pooled tensor: the buffer goes back to its pool if the pool is open
/// and has room, else it is freed. Allocates nothing and cannot panic (it runs inside C++).
extern "C" fn release(ctx: *mut c_void) {
    // SAFETY: `ctx` is the `Box<Lease>` that `BufferPool::tensor` gave torch, released once.
    let Lease { free, buffer } = *unsafe { Box::from_raw(ctx.cast::<Lease>()) };
    let mut guard = free.lock().unwrap_or_else(PoisonError::into_inner);
    let spare = if guard.open && guard.buffers.len() < guard.keep {
        guard.buffers.push(buffer);
        None
    } else {
        Some(buffer)
    };
    drop(guard);
    drop(spare);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(pool: &BufferPool) -> usize {
        pool.free.lock().unwrap().buffers.len()
    }

    #[test]
    fn buffers_come_back_when_the_last_view_dies() {
        let pool = BufferPool::new(2);
        let a = pool.tensor(&[4, 3, 5, 5], Kind::Float).unwrap();
        let ptr = a.data_ptr();
        let view = a.f_select(0, 1).unwrap();
        drop(a);
        assert_eq!(idle(&pool), 0, "a view still holds the storage");
        drop(view);
        assert_eq!(idle(&pool), 1);
        // The same memory again, for the same size or a smaller one.
        let b = pool.tensor(&[2, 3, 5, 5], Kind::Float).unwrap();
        assert_eq!(b.data_ptr(), ptr);
        assert_eq!(idle(&pool), 0);
        let _ = b.shallow_clone().f_fill_(2.5).unwrap();
        assert_eq!(
            b.f_sum(Kind::Double).unwrap().double_value(&[]),
            2.5 * 150.0
        );
    }

    #[test]
    fn idle_buffers_are_capped_and_freed_with_the_pool() {
        let pool = BufferPool::new(2);
        let shape = [3i64, (HUGE / 4 + 7) as i64];
        let ts: Vec<Tensor> = (0..4)
            .map(|_| pool.tensor(&shape, Kind::Uint8).unwrap())
            .collect();
        drop(ts);
        assert_eq!(idle(&pool), 2);
        // A larger batch frees the idle ones, which can never hold it.
        let big = pool
            .tensor(&[4, (HUGE / 4 + 7) as i64], Kind::Uint8)
            .unwrap();
        assert_eq!(idle(&pool), 0);
        let kept = pool.tensor(&[1, 8], Kind::Float).unwrap();
        drop(pool);
        // Released after the pool closed: freed, not kept (valgrind checks the frees).
        drop(big);
        let _ = kept.shallow_clone().f_fill_(1.0).unwrap();
        drop(kept);
    }

    #[test]
    fn other_kinds_and_empty_shapes_get_fresh_tensors() {
        let pool = BufferPool::new(1);
        for (shape, kind) in [(vec![2i64, 0], Kind::Float), (vec![3], Kind::Double)] {
            let t = pool.tensor(&shape, kind).unwrap();
            assert_eq!((t.size(), t.kind()), (shape, kind));
        }
        assert!(pool.tensor(&[-1], Kind::Float).is_err());
        assert!(pool.tensor(&[i64::MAX, 4], Kind::Float).is_err());
        assert_eq!(idle(&pool), 0);
    }
}
