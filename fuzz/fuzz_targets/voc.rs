//! Fuzz target `voc`: see `harness::voc`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::voc(data));
