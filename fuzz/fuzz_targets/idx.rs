//! Fuzz target `idx`: see `harness::idx`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::idx(data));
