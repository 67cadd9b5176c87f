//! Fuzz target `png`: see `harness::image`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::image(data));
