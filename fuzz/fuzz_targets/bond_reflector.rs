#![no_main]
//! Arbitrary bytes through `ironnet_fuzz::bond::reflector`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::bond::reflector(data));
