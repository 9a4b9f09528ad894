//! Troubleshooting that works without a running node: `xfed check-dns`, `check-cert` and
//! `csr`.

pub mod cert;
pub mod csr;
pub mod dns;
