//! The tenants as a whole: every tenant document in the tenants folder checked on its own
//! (`tenant.rs`), then what only the whole set can show: unique names, and no domain or
//! alias claimed twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::TenantFile;
use super::parse::parse;
use super::reader::Reader;
use super::tenant::tenant;
use super::{ConfigError, TenantConfig};

/// The tenants of the documents in `folder` (named by the router document `router`), sorted
/// by name; every problem goes to `errs`.
pub(super) fn tenants(
    folder: &Path,
    router: &Path,
    reader: &mut Reader<'_>,
    errs: &mut Vec<ConfigError>,
) -> Vec<TenantConfig> {
    let documents = match reader.tenants(folder) {
        Ok(documents) => documents,
        Err(err) => {
            errs.push(ConfigError::new(
                router,
                "tenants_dir",
                format!("cannot read {}: {err}", folder.display()),
            ));
            return Vec::new();
        }
    };
    let mut tenants: Vec<TenantConfig> = documents
        .iter()
        .filter_map(|doc| match parse::<TenantFile>(doc) {
            Ok(raw) => tenant(&doc.name, raw, reader, errs),
            Err(err) => {
                errs.push(err);
                None
            }
        })
        .collect();
    claimed_once(&tenants, errs);
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    tenants
}

/// Each tenant name is used once, each domain and alias claimed by one tenant, once.
fn claimed_once(tenants: &[TenantConfig], errs: &mut Vec<ConfigError>) {
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut owners: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    for t in tenants {
        if let Some(first) = names.insert(t.name.clone(), t.file.clone()) {
            errs.push(ConfigError::new(
                &t.file,
                "name",
                format!(
                    "tenant name {:?} is already used by {}",
                    t.name,
                    first.display()
                ),
            ));
        }
        for (key, list) in [
            ("domains", &t.domains),
            ("chat_node_aliases", &t.chat_node_aliases),
        ] {
            for d in list {
                match owners.get(d) {
                    Some((owner, file)) if owner != &t.name => errs.push(ConfigError::new(
                        &t.file,
                        key,
                        format!(
                            "{d} is already claimed by tenant {owner} ({})",
                            file.display()
                        ),
                    )),
                    Some(_) => errs.push(ConfigError::new(
                        &t.file,
                        key,
                        format!("{d} is listed twice"),
                    )),
                    None => {
                        owners.insert(d.clone(), (t.name.clone(), t.file.clone()));
                    }
                }
            }
        }
    }
}
