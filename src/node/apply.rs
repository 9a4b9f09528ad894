//! Applying a tenant-level configuration change to a running node, disturbing only what the
//! change touches (see [`crate::restart::plan`]).

use std::collections::HashSet;
use std::sync::Arc;

use super::Node;
use crate::config::{Config, TenantConfig};
use crate::restart::plan::{Action, Change, Instance};
use crate::routing::{policy, ConnectionControl, TenantView};
use crate::tenant::{ControlLinks, ListLinks, Stop, TenantActor, TenantEntry, UpdateConfig};

/// What applying one change disconnected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// Component links closed (they reconnect).
    pub links: usize,
    /// s2s streams closed (the next stanza opens a new one).
    pub streams: usize,
}

impl Node {
    /// Applies the tenant changes among `changes`, moving the node to `new`'s tenants.
    /// Stops and restarts go first, so a domain moving between tenants is free when its new
    /// owner starts. Answers what each change disconnected.
    ///
    /// When a tenant's certificate or names come, go or change, the TLS configuration is
    /// rebuilt first (new streams present the new certificate; a development certificate
    /// names the new names); if it cannot be, nothing is applied.
    pub async fn apply_tenants(
        &mut self,
        new: &Config,
        changes: &[Change],
    ) -> Result<Vec<(Change, Dropped)>, String> {
        type Certified = (String, Option<crate::config::CertPaths>, Vec<String>);
        let certs = |c: &Config| -> Vec<Certified> {
            c.tenants
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.tls.clone(),
                        t.all_domains().map(str::to_owned).collect(),
                    )
                })
                .collect()
        };
        if certs(&self.config) != certs(new) || changes.iter().any(Change::renews_certificate) {
            let tls = crate::s2s::tls::TlsContext::new(new, &self.certificate)?;
            self.s2s().tls.store(Arc::new(tls));
        }
        let mut list: Vec<TenantEntry> = self.tenants.load().as_ref().clone();
        let mut ordered: Vec<&Change> = changes
            .iter()
            .filter(|c| matches!(c.instance, Instance::Tenant(_)))
            .collect();
        ordered.sort_by_key(|c| !matches!(c.action, Action::StopTenant | Action::RestartTenant));
        let mut out = Vec::new();
        for change in ordered {
            let Instance::Tenant(name) = &change.instance else {
                continue;
            };
            let position = list.iter().position(|(_, s)| &s.name == name);
            let fresh = new.tenant(name).cloned().map(Arc::new);
            // Decided on the tenant as it runs, before the change.
            let hit = position.map(|i| closes(change, &list[i].1.view(), fresh.as_deref()));
            let mut dropped = Dropped::default();
            match (change.action, position, fresh) {
                (Action::StopTenant, Some(i), _) => {
                    let (addr, slot) = list.remove(i);
                    dropped.links = close_links(&addr).await;
                    self.router.uninstall(&slot);
                    addr.do_send(Stop);
                }
                (Action::RestartTenant, Some(i), Some(cfg)) => {
                    let (addr, slot) = list[i].clone();
                    dropped.links = close_links(&addr).await;
                    self.router.uninstall(&slot);
                    addr.do_send(Stop);
                    list[i] = self.start_tenant(cfg);
                }
                (Action::StartTenant, None, Some(cfg)) => list.push(self.start_tenant(cfg)),
                (Action::UpdateFederation, Some(i), Some(cfg)) => {
                    let _ = list[i].0.send(UpdateConfig(cfg)).await;
                }
                (action, _, _) => {
                    tracing::warn!(instance = %change.instance, ?action, "change does not match the running tenants; skipped");
                    continue;
                }
            }
            if let Some(hit) = hit {
                dropped.streams = self.close_streams(&*hit);
            }
            // Its settings changed: what failed before is worth trying again at once.
            let federation = self.side.load().federation.clone();
            let domains = new
                .tenant(name)
                .into_iter()
                .chain(self.config.tenant(name))
                .flat_map(|t| t.all_domains());
            for d in domains {
                federation.forget_failures(d);
            }
            out.push((change.clone(), dropped));
        }
        list.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        self.tenants.store(Arc::new(list));
        self.config.tenants = new.tenants.clone();
        Ok(out)
    }

    /// What applying `change` (towards `new`) would disconnect.
    pub async fn predict(&self, new: &Config, change: &Change) -> Dropped {
        let s2s = self.s2s();
        let all_streams = s2s.streams.len();
        match change.action {
            Action::RestartNode => {
                return Dropped {
                    links: self.link_count().await,
                    streams: all_streams,
                };
            }
            Action::RestartFederation => {
                return Dropped {
                    links: 0,
                    streams: all_streams,
                }
            }
            _ => {}
        }
        let Instance::Tenant(name) = &change.instance else {
            return Dropped::default();
        };
        let entry = self
            .tenants
            .load()
            .iter()
            .find(|(_, s)| &s.name == name)
            .cloned();
        let Some((addr, slot)) = entry else {
            return Dropped::default();
        };
        let links = match change.action {
            Action::StopTenant | Action::RestartTenant => {
                addr.send(ListLinks).await.map_or(0, |l| l.len())
            }
            _ => 0,
        };
        let hit = closes(change, &slot.view(), new.tenant(name));
        Dropped {
            links,
            streams: self.streams_where(&*hit).len(),
        }
    }

    /// Component links up, all tenants.
    pub async fn link_count(&self) -> usize {
        let mut links = 0;
        for (addr, _) in self.tenants.load().iter() {
            links += addr.send(ListLinks).await.map_or(0, |l| l.len());
        }
        links
    }

    fn start_tenant(&self, cfg: Arc<TenantConfig>) -> TenantEntry {
        let (addr, slot) = TenantActor::start(cfg, self.observer.clone());
        self.router.install(slot.clone());
        (addr, slot)
    }

    /// The s2s streams with a pair `(local, remote)` for which `hit` holds.
    fn streams_where(
        &self,
        hit: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<actix::Recipient<ConnectionControl>> {
        self.s2s()
            .streams
            .iter()
            .filter(|e| e.pairs.iter().any(|p| hit(&p.local, &p.remote)))
            .map(|e| e.control.clone())
            .collect()
    }

    /// Closes those streams gracefully; answers how many.
    fn close_streams(&self, hit: &dyn Fn(&str, &str) -> bool) -> usize {
        let streams = self.streams_where(hit);
        for control in &streams {
            control.do_send(ConnectionControl::Retire("restart"));
        }
        streams.len()
    }
}

/// Tells every link of a tenant to close; answers how many there were.
async fn close_links(addr: &actix::Addr<TenantActor>) -> usize {
    addr.send(ControlLinks(ConnectionControl::Retire("restart")))
        .await
        .unwrap_or(0)
}

/// A test on a stream's (local, remote) domain pairs.
type PairTest = Box<dyn Fn(&str, &str) -> bool>;

/// Which of a tenant's s2s streams `change` closes, given the tenant as it runs (`view`) and
/// as it will be (`new`): a test on a stream's (local, remote) pairs. Applying a change and
/// predicting what it drops (`xfed restart --dry-run`) both ask this.
fn closes(change: &Change, view: &TenantView, new: Option<&TenantConfig>) -> PairTest {
    let owned = view.owned.clone();
    match (change.action, new) {
        (Action::StopTenant, _) => Box::new(move |l, _| owned.contains(l)),
        (Action::RestartTenant, Some(cfg)) => {
            // A new certificate: every stream of the tenant presented the old one.
            let kept: HashSet<String> = if change.renews_certificate() {
                HashSet::new()
            } else {
                cfg.all_domains().map(str::to_owned).collect()
            };
            Box::new(move |l, _| owned.contains(l) && !kept.contains(l))
        }
        (Action::UpdateFederation, Some(cfg)) => {
            let (before, after) = (view.config.clone(), cfg.clone());
            Box::new(move |l, r| owned.contains(l) && federation_changed(&before, &after, r))
        }
        _ => Box::new(|_, _| false),
    }
}

/// Does a stream to `remote` need closing after the tenant's federation settings went from
/// `old` to `new`: refused now, or its static route changed?
fn federation_changed(old: &TenantConfig, new: &TenantConfig, remote: &str) -> bool {
    !policy::permits(&new.privacy, &new.static_routes, remote)
        || old.static_routes.for_domain(remote) != new.static_routes.for_domain(remote)
}
