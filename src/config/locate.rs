//! Where the `xfed` command finds the router file when `--config` is not given, so that it
//! works from any folder: in a checkout, and as the installed command of a system service.

use std::path::{Path, PathBuf};

/// The environment variable naming the router file.
pub const CONFIG_ENV: &str = "XFED_CONFIG";
/// The router file in a checkout of the repository, relative to the current folder.
pub const CHECKOUT_CONFIG: &str = "config/router.toml";
/// The router file of the installed service (the Debian package puts it there).
pub const SYSTEM_CONFIG: &str = "/etc/xfed/router.toml";

/// Says where the router file comes from, for `xfed --help`.
pub const CONFIG_HELP: &str = "Without --config, the router file is $XFED_CONFIG, else \
     ./config/router.toml when the current folder has one, else /etc/xfed/router.toml.";

/// The router file to use without `--config`: `$XFED_CONFIG` when set and not empty, else
/// `config/router.toml` when the current folder has one (a checkout), else
/// `/etc/xfed/router.toml` (the installed service).
pub fn default_router_path() -> PathBuf {
    choose(std::env::var_os(CONFIG_ENV).map(PathBuf::from), |p| {
        p.is_file()
    })
}

/// [`default_router_path`] with the environment and the file system given.
fn choose(from_env: Option<PathBuf>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    match from_env {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ if exists(Path::new(CHECKOUT_CONFIG)) => PathBuf::from(CHECKOUT_CONFIG),
        _ => PathBuf::from(SYSTEM_CONFIG),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_comes_first_then_the_checkout_then_the_system() {
        let env = PathBuf::from("/srv/xfed/router.toml");
        assert_eq!(choose(Some(env.clone()), |_| true), env);
        assert_eq!(
            choose(Some(PathBuf::new()), |_| true),
            PathBuf::from(CHECKOUT_CONFIG)
        );
        assert_eq!(choose(None, |_| true), PathBuf::from(CHECKOUT_CONFIG));
        assert_eq!(choose(None, |_| false), PathBuf::from(SYSTEM_CONFIG));
    }
}
