//! Fuzz target `shards`: see `harness::shards`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::shards(data));
