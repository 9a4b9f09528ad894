//! The one way into a [`Config`]: [`check`] a [`Source`] against every rule.

use std::net::SocketAddr;
use std::path::Path;

use super::file::RouterFile;
use super::parse::{parse, parse_salvaging};
use super::reader::Reader;
use super::router::node;
use super::source::{clean, folder_of, Dir, Source};
use super::tenants::tenants;
use super::{Config, ConfigError, ConfigErrors, Secret};

/// Reads the router document and every tenant document from `source`, with the files they
/// refer to, and checks them as a whole: the configuration, carrying the checked bytes of
/// its certificates, keys, CAs and CRLs, or every problem found.
pub fn check(source: &dyn Source) -> Result<Config, ConfigErrors> {
    let mut reader = Reader::new(source);
    let router = reader.router();
    // Past a bad value: it is reported, its default stands in, and the checking goes on.
    let (file, mut errs) = parse_salvaging::<RouterFile>(&router);
    let Some(file) = file else {
        return Err(ConfigErrors(errs));
    };
    let node = node(&router.name, file, &mut reader, &mut errs);
    let tenants = tenants(&node.tenants_dir, &router.name, &mut reader, &mut errs);
    match node.config {
        Some(config) if errs.is_empty() => Ok(Config {
            tenants,
            files: reader.into_files(),
            ..config
        }),
        _ => Err(ConfigErrors(errs)),
    }
}

/// [`check`] of the configuration on disk whose router document is `router_path`.
pub fn load(router_path: &Path) -> Result<Config, ConfigErrors> {
    check(&Dir::new(router_path))
}

/// Only where a node's admin API listens and its token, from the router file alone: the
/// commands that talk to a running node must reach it even while a tenant file is broken
/// (to be told that a reload is refused, for one).
pub fn admin_endpoint(router_path: &Path) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    endpoint(&Dir::new(router_path))
}

/// [`admin_endpoint`] of any source (a cluster's: its token is in etcd).
pub fn endpoint(source: &dyn Source) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    let reader = Reader::new(source);
    let router = reader.router();
    let file: RouterFile = parse(&router)?;
    let token = match &file.admin.token_file {
        Some(p) => Some(
            reader
                .secret(&clean(&folder_of(&router.name).join(p)), "admin.token_file")
                .map_err(|r| ConfigError::new(&router.name, "admin.token_file", r))?,
        ),
        None => None,
    };
    Ok((file.listen.admin, token))
}
