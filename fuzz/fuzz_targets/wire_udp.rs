#![no_main]
//! Arbitrary bytes through `ironnet_fuzz::overlay::udp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::overlay::udp(data));
