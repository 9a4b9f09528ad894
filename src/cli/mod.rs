//! The `xfed` binary's own modules: what each subcommand does with the library and what it
//! prints. Nothing here is used by the library; `main.rs` parses the arguments and calls one
//! of these.
//!
//! - [`args`]: the subcommands and their arguments;
//! - [`admin`]: the subcommands that ask a running node through its admin API;
//! - [`checks`]: `check-config`, `check-dns`, `check-cert`, `csr`: no node needed;
//! - [`run`]: running a node, and the signals it acts on;
//! - `cluster` (cargo feature `cluster`): a node of a cluster, and `config push | pull |
//!   diff`;
//! - [`out`]: standard output, and how `xfed` ends when nobody reads it any more.
//!
//! Exit statuses: 0 done; 1 failed (or a check found problems); 2 a configuration refused
//! or arguments that make no sense; 141 standard output closed before `xfed` was done
//! ([`out`]).

pub mod admin;
pub mod args;
pub mod checks;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod out;
pub mod run;

use std::path::Path;
use std::process::ExitCode;

use xfed::config::{self, Config, ConfigErrors};

use out::stderr;

/// Exit status for a refused configuration.
pub const BAD_CONFIG: u8 = 2;
/// Exit status for arguments that make no sense (as clap uses).
pub const BAD_USAGE: u8 = 2;

/// What is said of a refused configuration after its problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing: the problems are the answer.
    Listed,
    /// How many there were.
    Counted,
    /// How many there were, and that the node does not start.
    NotStarting,
    /// How many there were, and that a push wrote nothing (`xfed config push`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    NotPushed,
}

/// Loads the configuration at `path`. When it is refused, says why on standard error (one
/// line per problem, then what `refused` asks for) and answers the exit status for it.
pub fn load_config(path: &Path, refused: Refused) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errs| refuse(&errs, refused))
}

/// Says why a configuration is refused on standard error — one `file[:line]: key: reason`
/// line per problem, then what `refused` asks for — and answers the exit status for it.
pub fn refuse(errs: &ConfigErrors, refused: Refused) -> ExitCode {
    stderr!("{errs}");
    let n = errs.0.len();
    match refused {
        Refused::Listed => {}
        Refused::Counted => stderr!("configuration refused: {n} problem(s)"),
        Refused::NotStarting => {
            stderr!("configuration refused: {n} problem(s); not starting")
        }
        Refused::NotPushed => stderr!("push refused: {n} problem(s); nothing was written"),
    }
    ExitCode::from(BAD_CONFIG)
}
