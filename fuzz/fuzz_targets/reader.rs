#![no_main]
//! See `xfed_fuzz::reader::check` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| xfed_fuzz::reader::check(data));
