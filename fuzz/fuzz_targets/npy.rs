//! Fuzz target `npy`: see `harness::npy`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::npy(data));
