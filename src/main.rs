//! The `xfed` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xfed::config;
use xfed::node::Node;

/// xfed: a multitenant XMPP federation router.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Run {
        /// The node's router file; tenant files are found through its `tenants_dir`.
        #[arg(long, default_value = "config/router.toml")]
        config: PathBuf,
    },
    /// Check the configuration without starting: exit 0 with a summary, or 2 with one line
    /// per problem (file, key, reason).
    CheckConfig {
        #[arg(long, default_value = "config/router.toml")]
        config: PathBuf,
    },
}

/// Exit status for a refused configuration.
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.summary());
                ExitCode::SUCCESS
            }
            Err(errs) => {
                eprintln!("{errs}");
                eprintln!("configuration refused: {} problem(s)", errs.0.len());
                ExitCode::from(BAD_CONFIG)
            }
        },
        Command::Run { config } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(errs) => {
                    eprintln!("{errs}");
                    eprintln!(
                        "configuration refused: {} problem(s); not starting",
                        errs.0.len()
                    );
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            xfed::telemetry::init();
            run(cfg)
        }
    }
}

fn run(cfg: config::Config) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let node = Node::start(cfg).await?;
        wait_for_signal().await;
        node.shutdown().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("xfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
