//! What the admin API asks of the node it serves: reloads, restarts, where the restart
//! scheduler stands, and the cluster it is in. The node's supervisor answers
//! (`node::control`); a node started on its own (tests) has nobody to answer, and the API
//! says so.
//!
//! A trait, so that `admin` needs nothing from `node`, which assembles it: the dependency
//! runs one way.

use futures_util::future::BoxFuture;

use crate::model::ask::{FromNode, Question, Reply};
use crate::model::{
    ClusterView, DrainOutcome, DrainQuery, Refusal, ReloadOutcome, RestartOutcome, RestartQuery,
    RestartStatus,
};
use crate::restart::versions::Versions;

/// An answer still to come: what was done, or why not.
pub type Answer<'a, T> = BoxFuture<'a, Result<T, Refusal>>;

/// Reloads and restarts of a running node.
pub trait Control: Send + Sync {
    /// Which configuration version every router instance runs, and the schedule.
    fn schedule(&self) -> Schedule;

    /// Reads the configuration again, and applies or stages what changed. Refused (with
    /// its problems) when the configuration is; the running one stays.
    fn reload(&self) -> Answer<'_, ReloadOutcome>;

    /// Restarts the stale router instances (of one tenant, if given); in a dry run only
    /// says what would restart and what it would drop.
    fn restart(&self, query: RestartQuery) -> Answer<'_, RestartOutcome>;

    /// Takes this node (or, in a cluster, the node named) out of service: no new
    /// connections, links and streams closed gracefully, what it has handed on.
    fn drain(&self, query: DrainQuery) -> Answer<'_, DrainOutcome>;

    /// The cluster as this node sees it (every node, alive or gone, and what each runs);
    /// `None` for a node outside a cluster.
    fn cluster(&self) -> BoxFuture<'_, Option<ClusterView>>;

    /// Asks every alive node of the cluster, this one included (refused outside one).
    fn gather(&self, question: Question) -> Answer<'_, Vec<FromNode<Reply>>>;
}

/// Where the restart scheduler stands.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Every instance's applied and latest versions.
    pub versions: Versions,
    /// The schedule, its runs and the stale instances, as `xfed status` shows them.
    pub restart: RestartStatus,
}
