//! Several nodes on one etcd: the cluster's configuration, versioned and pushed once for all
//! nodes; membership under leases; what every node runs, for cluster-wide views. The full
//! picture, the key layout and who writes what: docs/CLUSTER.md.
//!
//! Only [`etcd`] speaks to etcd; the rest sees keys, values and revisions. What a node
//! publishes and the view it answers are [`crate::model::cluster`]'s types, which `xfed
//! status` reads back.
//!
//! - [`keys`]: where everything lives under `[cluster] prefix`.
//! - [`etcd`]: the operations the cluster needs, with deadlines and typed errors.
//! - [`machine`]: which `router.toml` keys are the machine's, and the document a node runs.
//! - [`snapshot`]: the configuration as a push left it, read whole at one revision.
//! - [`source`]: a snapshot as a `config::Source`, checked like a folder.
//! - [`push`]: `xfed config push`, `pull`, `diff`.
//! - [`settings`]: a node's own `[cluster]`, name and admin address, from its file alone.
//! - [`client`]: the `xfed` commands' access to a cluster, without joining it.
//! - [`rollout`]: a rolling restart's decisions, as pure functions of what nodes publish.
//! - [`relay`]: stanzas across nodes: inter-node links, and the router's way to tenants
//!   linked on other nodes.
//! - [`agent`]: a node's membership: joining, following the configuration, publishing,
//!   questions between nodes, the leader.

pub mod agent;
pub mod client;
pub mod etcd;
pub mod keys;
pub mod machine;
pub mod push;
pub mod relay;
pub mod rollout;
pub mod settings;
pub mod snapshot;
pub mod source;

pub use agent::{Agent, Host, JoinError, Report, Running};
pub use settings::Settings;
