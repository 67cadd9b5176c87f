//! Fuzz target `list`: see `harness::list`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::list(data));
