#![no_main]
//! Random operation sequences against the ip_pool allocator, checked against a model.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::alloc::ip_pool(data));
