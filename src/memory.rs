//! Fresh CPU output tensors backed by transparent huge pages.
//!
//! A kernel's output (a loss gradient, a batch of images) is a fresh allocation of up to
//! tens of megabytes each call. glibc maps blocks over 32 MiB, and blocks it returned to the
//! system, anew each time, and the first write to each 4 KiB page then faults: on a 2-core
//! EPYC, writing a fresh (1024, 9605) float32 tensor took 11.6 ms against 0.4 ms for the same
//! write into a reused one. Asking for huge pages faults once per 2 MiB instead.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// An uninitialised CPU tensor of `shape` and `kind`, advised as huge pages (on Linux).
pub fn empty_cpu(shape: &[i64], kind: Kind) -> Result<Tensor> {
    let t = Tensor::f_empty(shape, (kind, Device::Cpu))?;
    let bytes = t.numel() * kind.elt_size_in_bytes();
    advise_huge_pages(t.data_ptr() as *mut u8, bytes);
    Ok(t)
}

/// Asks Linux to back the 2 MiB-aligned interior of `[ptr, ptr + len)` with transparent huge
/// pages (a no-op below 2 MiB, elsewhere than Linux, or where huge pages are off).
pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the live allocation; the advice changes no contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}
