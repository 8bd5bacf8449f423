#![no_main]
//! Arbitrary frames through `ironnet_fuzz::dp::pipeline`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::dp::pipeline(data));
