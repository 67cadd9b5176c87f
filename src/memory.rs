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
/// `[ptr, ptr + len)` must lie inside one live allocation (or `len` be 0).
pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: `[start, end)` lies inside `[ptr, ptr + len)`, which the caller keeps
            // inside a live allocation; MADV_HUGEPAGE changes no contents (tests check both).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors from empty (no pointer to advise) to several huge pages, each written whole
    /// and read back: the advice covers only their own memory and changes no contents.
    #[test]
    fn advised_tensors_hold_what_is_written() {
        for numel in [0i64, 1, 1000, (2 << 20) / 4 + 3, 3 * (2 << 20) / 4 + 1] {
            for kind in [Kind::Float, Kind::Uint8, Kind::Double] {
                let mut t = empty_cpu(&[numel], kind).unwrap();
                assert_eq!(t.size(), [numel]);
                assert_eq!(t.kind(), kind);
                let _ = t.f_fill_(7).unwrap();
                assert_eq!(t.f_eq(7).unwrap().f_all().unwrap().int64_value(&[]), 1);
            }
        }
    }

    /// Ranges shorter than a huge page, or not containing an aligned one, are left alone.
    #[test]
    fn short_and_unaligned_ranges_are_no_ops() {
        let mut v = vec![1u8; 3 << 20];
        let p = v.as_mut_ptr();
        advise_huge_pages(std::ptr::null_mut(), 0);
        advise_huge_pages(p, 0);
        advise_huge_pages(p, 4096);
        // SAFETY: 1 + (3 MiB - 2) stays inside `v`.
        advise_huge_pages(unsafe { p.add(1) }, v.len() - 2);
        assert!(v.iter().all(|&b| b == 1));
    }
}
