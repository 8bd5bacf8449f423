#![no_main]
//! Arbitrary bytes through `ironnet_fuzz::overlay::dhcpv6`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::overlay::dhcpv6(data));
