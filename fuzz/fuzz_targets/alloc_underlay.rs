#![no_main]
//! Random operation sequences against the underlay allocator, checked against a model.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::alloc::underlay(data));
