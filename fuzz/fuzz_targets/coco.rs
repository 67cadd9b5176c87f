//! Fuzz target `coco`: see `harness::coco`.
#![no_main]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::coco(data));
