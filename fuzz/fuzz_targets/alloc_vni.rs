#![no_main]
//! Random operation sequences against the vni allocator, checked against a model.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::alloc::vni(data));
