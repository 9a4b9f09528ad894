//! The checks behind xfed's fuzz targets, shared with the regression test of the main crate
//! (`tests/fuzz_regressions.rs` includes this file), so every input kept in `fuzz/corpus`
//! and `fuzz/regressions` is replayed by `cargo test` through the very same checks.
//!
//! Each module has a `check(data)` that panics when a property fails; see docs/FUZZING.md.

pub mod config;
pub mod differential;
pub mod reader;
pub mod s2s;
pub mod stanza;
