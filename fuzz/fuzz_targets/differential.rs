#![no_main]
//! See `xfed_fuzz::differential::check` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| xfed_fuzz::differential::check(data));
