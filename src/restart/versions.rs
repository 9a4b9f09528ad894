//! Configuration versions: every accepted configuration that changes something is a new
//! version number; each router instance has the version it runs (applied) and the latest
//! version of its own scope. An instance whose two differ is stale.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{digest, Change, Instance};
use crate::config::Config;

/// One instance's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceVersion {
    /// The version it runs.
    pub applied: u64,
    /// The latest version of its scope.
    pub latest: u64,
    /// The digest of its latest configuration (`None`: removed, stops at its restart).
    pub digest: Option<String>,
    /// What the staged changes are, in words; empty when current.
    pub pending: Vec<String>,
}

impl InstanceVersion {
    pub fn is_stale(&self) -> bool {
        self.applied != self.latest
    }
}

/// Every instance's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// The latest configuration version.
    pub latest: u64,
    pub instances: BTreeMap<Instance, InstanceVersion>,
}

impl Versions {
    /// Version 1: `config` as started, every instance current.
    pub fn new(config: &Config) -> Self {
        Self::new_at(config, 1)
    }

    /// Version `number` (a cluster's: the etcd revision of the push): `config` as started,
    /// every instance current.
    pub fn new_at(config: &Config, number: u64) -> Self {
        let mut instances = BTreeMap::new();
        for instance in instances_of(config) {
            instances.insert(
                instance.clone(),
                InstanceVersion {
                    applied: number,
                    latest: number,
                    digest: digest(config, &instance),
                    pending: Vec::new(),
                },
            );
        }
        Self {
            latest: number,
            instances,
        }
    }

    /// Records an accepted configuration with `changes` (from the latest one): a new version
    /// when anything changed. Answers the version.
    pub fn accept(&mut self, config: &Config, changes: &[Change]) -> u64 {
        self.accept_as(config, changes, None)
    }

    /// [`Versions::accept`], numbering the new version `number` when given (a cluster's
    /// versions are etcd's revisions, the same on every node) instead of the next one.
    pub fn accept_as(&mut self, config: &Config, changes: &[Change], number: Option<u64>) -> u64 {
        if changes.is_empty() {
            return self.latest;
        }
        self.latest = number.unwrap_or(self.latest + 1);
        for change in changes {
            let entry = self
                .instances
                .entry(change.instance.clone())
                .or_insert(InstanceVersion {
                    applied: 0,
                    latest: 0,
                    digest: None,
                    pending: Vec::new(),
                });
            entry.latest = self.latest;
            entry.digest = digest(config, &change.instance);
            entry.pending.extend(change.what.iter().cloned());
        }
        self.latest
    }

    /// `instance` now runs its latest version (a removed tenant is forgotten).
    pub fn applied(&mut self, instance: &Instance) {
        if let Some(v) = self.instances.get_mut(instance) {
            if v.digest.is_none() {
                self.instances.remove(instance);
            } else {
                v.applied = v.latest;
                v.pending.clear();
            }
        }
    }

    /// The stale instances.
    pub fn stale(&self) -> Vec<&Instance> {
        self.instances
            .iter()
            .filter(|(_, v)| v.is_stale())
            .map(|(i, _)| i)
            .collect()
    }
}

fn instances_of(config: &Config) -> Vec<Instance> {
    std::iter::once(Instance::Node)
        .chain(
            config
                .tenants
                .iter()
                .map(|t| Instance::Tenant(t.name.clone())),
        )
        .collect()
}
