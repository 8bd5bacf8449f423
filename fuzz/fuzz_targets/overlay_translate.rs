#![no_main]
//! IPv4 <-> IPv6 translation: refused changes nothing; success leaves valid checksums.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::overlay::translation(data));
