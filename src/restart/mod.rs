//! Versioned configuration and restarts of only the stale router instances: what a change
//! touches ([`plan`]), which instances run which version ([`versions`]), and when staged
//! changes apply ([`schedule`], in UTC, on a clock tests control). The actor that drives
//! them over a running node is [`crate::node::supervisor`].

pub mod plan;
pub mod schedule;
pub mod versions;
