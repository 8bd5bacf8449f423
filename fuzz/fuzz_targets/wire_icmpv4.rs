#![no_main]
//! Arbitrary bytes through `ironnet_fuzz::overlay::icmpv4`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::overlay::icmpv4(data));
