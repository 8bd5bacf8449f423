#![no_main]
//! A virtio-net header and a frame through `ironnet_fuzz::overlay::offload`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironnet_fuzz::overlay::offload(data));
