//! The `xfed` command: parses the arguments and runs one subcommand of [`cli`], the
//! binary's own modules.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::{admin, checks, out, run};
use xfed::model::{DrainQuery, RestartQuery};

/// mimalloc: thread-local free lists make the small allocations of the hot path (a stanza's
/// bytes and attributes, queue entries) cheaper than glibc's malloc, measured in the
/// federation benchmark (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = out::Out::default();
    let done = match cli.command {
        #[cfg(feature = "cluster")]
        Command::Run { config } if cli::cluster::is_cluster(&config) => cli::cluster::run(&config),
        #[cfg(feature = "cluster")]
        Command::CheckConfig { config } if cli::cluster::is_cluster(&config) => {
            cli::cluster::check_config(&mut out, &config)
        }
        #[cfg(feature = "cluster")]
        Command::Config { command, config } => cli::cluster::config(&mut out, command, &config),
        Command::Run { config } => run::run(&config),
        Command::CheckConfig { config } => checks::check_config(&mut out, &config),
        Command::Status { node } => admin::status(&mut out, &node),
        Command::Connections {
            node,
            tenant,
            domain,
            cluster,
        } => admin::connections(&mut out, &node, tenant, domain, cluster),
        Command::CloseConnection { id, node } => admin::close_connection(&mut out, &node, id),
        Command::Reload { node } => admin::reload(&mut out, &node),
        Command::Drain { node, on_node } => {
            admin::drain(&mut out, &node, DrainQuery { node: on_node })
        }
        Command::Restart {
            node,
            tenant,
            on_node,
            dry_run,
        } => admin::restart(
            &mut out,
            &node,
            RestartQuery {
                tenant,
                node: on_node,
                dry_run,
            },
        ),
        Command::Events {
            node,
            since,
            tenant,
            limit,
            cluster,
        } => admin::events(&mut out, &node, since, tenant, limit, cluster),
        Command::LogLevel { level, node } => admin::log_level(&mut out, &node, level),
        Command::CheckDns {
            domain,
            all,
            config,
            nameserver,
        } => checks::check_dns(&mut out, domain, all, &config, nameserver),
        Command::CheckCert { config } => checks::check_cert(&mut out, &config),
        Command::Csr {
            key,
            config,
            name,
            tenant,
            out: file,
        } => checks::csr(
            &mut out,
            &key,
            &config,
            &name,
            tenant.as_deref(),
            file.as_ref(),
        ),
    };
    out::finish(done, &mut out)
}
