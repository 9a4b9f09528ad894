//! The subcommands that need no running node: `check-config`, `check-dns`, `check-cert` and
//! `csr`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::out::{stderr, Out};
use super::{load_config, Refused, BAD_USAGE};
use xfed::config;

/// `xfed check-config`: a summary, or exit 2 with one line per problem.
pub fn check_config(out: &mut Out, path: &Path) -> io::Result<ExitCode> {
    match load_config(path, Refused::Counted) {
        Ok(cfg) => {
            write!(out, "{}", cfg.summary())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

/// `xfed check-cert`: each certificate's report; exit 1 when one needs fixing.
pub fn check_cert(out: &mut Out, path: &Path) -> io::Result<ExitCode> {
    let cfg = match load_config(path, Refused::Listed) {
        Ok(cfg) => cfg,
        Err(code) => return Ok(code),
    };
    let reports = xfed::check::cert::check_certificates(&cfg);
    let mut failed = false;
    for r in &reports {
        write!(out, "{}", r.text)?;
        for p in &r.problems {
            writeln!(out, "  PROBLEM: {p}")?;
        }
        failed |= !r.problems.is_empty();
        writeln!(out)?;
    }
    if failed {
        writeln!(out, "certificates need attention")?;
        Ok(ExitCode::FAILURE)
    } else {
        writeln!(out, "certificates OK")?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `xfed csr`: a signing request for the node's names (or one tenant's), on standard output
/// or into `out_file`; the names go to standard error.
pub fn csr(
    out: &mut Out,
    key: &Path,
    path: &Path,
    names: &[String],
    tenant: Option<&str>,
    out_file: Option<&PathBuf>,
) -> io::Result<ExitCode> {
    let made = config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|cfg| xfed::check::csr::csr_names(&cfg, names, tenant))
        .and_then(|names| {
            let pem = xfed::check::csr::make_csr(key, &names)?;
            Ok((names, pem))
        });
    let (names, pem) = match made {
        Ok(made) => made,
        Err(e) => {
            stderr!("xfed: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    stderr!("names: {}", names.join(", "));
    match out_file {
        Some(file) => {
            if let Err(e) = std::fs::write(file, pem) {
                stderr!("xfed: {}: {e}", file.display());
                return Ok(ExitCode::FAILURE);
            }
            stderr!("written to {}", file.display());
        }
        None => write!(out, "{pem}")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A tenant's name and its static routes for a domain.
type StaticRoutesOf = (String, Vec<config::RouteTarget>);

/// `xfed check-dns`: one domain, or every domain of every tenant (`all`); exit 1 when one
/// has no reachable server.
pub fn check_dns(
    out: &mut Out,
    domain: Option<String>,
    all: bool,
    path: &Path,
    nameservers: Vec<SocketAddr>,
) -> io::Result<ExitCode> {
    let cfg = if all || path.exists() {
        match load_config(path, Refused::Listed) {
            Ok(cfg) => Some(cfg),
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    let nameservers = match (&cfg, nameservers.is_empty()) {
        (Some(c), true) => c.dns_nameservers.clone(),
        _ => nameservers,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            stderr!("xfed: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    runtime.block_on(async move {
        let resolver = match xfed::s2s::resolve::Resolver::new(&nameservers) {
            Ok(r) => r,
            Err(e) => {
                stderr!("xfed: DNS resolver: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let mut checks: Vec<(String, Option<StaticRoutesOf>)> = Vec::new();
        match (domain, &cfg) {
            (Some(d), _) => {
                let d = match config::normalize_domain(&d) {
                    Ok(d) => d,
                    Err(why) => {
                        stderr!("xfed: {d}: {why}");
                        return Ok(ExitCode::from(BAD_USAGE));
                    }
                };
                // A tenant with static routes for it reaches it only through them.
                let routed = cfg.iter().flat_map(|c| &c.tenants).find_map(|t| {
                    t.static_routes
                        .for_domain(&d)
                        .map(|r| (t.name.clone(), r.to_vec()))
                });
                checks.push((d, routed));
            }
            (None, Some(c)) => {
                for t in &c.tenants {
                    checks.extend(t.all_domains().map(|d| (d.to_owned(), None)));
                }
            }
            (None, None) => return Ok(ExitCode::from(BAD_USAGE)),
        }
        let mut failed = 0;
        for (d, routed) in &checks {
            let routes = routed.as_ref().map(|(t, r)| (t.as_str(), r.as_slice()));
            let report = xfed::check::dns::check_domain(&resolver, d, routes).await;
            write!(out, "{}", report.text)?;
            failed += usize::from(!report.reachable);
        }
        if failed > 0 {
            writeln!(out, "{failed} of {} domain(s) not reachable", checks.len())?;
            Ok(ExitCode::FAILURE)
        } else {
            Ok(ExitCode::SUCCESS)
        }
    })
}
