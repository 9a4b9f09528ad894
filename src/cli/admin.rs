//! The subcommands that ask a running node through its admin API: `status`, `connections`,
//! `close-connection`, `reload`, `restart`, `events`, `log-level`. Each reads the answer
//! into its [`xfed::model`] type and prints it as a table, or with `--json` prints the JSON
//! as the API answered it.

use std::io::{self, Write};
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::args::NodeArgs;
use super::out::{stderr, Out};
use super::{BAD_CONFIG, BAD_USAGE};
use xfed::admin::client::{self, AdminClient, ClientError};
use xfed::config;
use xfed::model::{
    Closed, ConnectionsQuery, DrainQuery, EventsQuery, LogLevel, Refusal, RestartQuery,
};

impl NodeArgs {
    fn client(&self) -> Result<AdminClient, ClientError> {
        match (&self.admin, &self.token_file) {
            (Some(url), Some(token)) => AdminClient::from_args(url, token),
            #[cfg(feature = "cluster")]
            _ if super::cluster::is_cluster(&self.config) => {
                super::cluster::admin_client(&self.config)
            }
            _ => AdminClient::from_config(&self.config),
        }
    }
}

/// `xfed status`.
pub fn status(out: &mut Out, node: &NodeArgs) -> io::Result<ExitCode> {
    show(out, node, |c| c.get("/api/status"), client::status_table)
}

/// `xfed connections`.
pub fn connections(
    out: &mut Out,
    node: &NodeArgs,
    tenant: Option<String>,
    domain: Option<String>,
    cluster: bool,
) -> io::Result<ExitCode> {
    let query = ConnectionsQuery {
        tenant,
        domain: domain.map(|d| config::domain_key(&d).into_owned()),
        cluster,
    };
    let path = client::with_query("/api/connections", &query);
    if cluster {
        return show(
            out,
            node,
            |c| c.get(&path?),
            client::cluster_connections_table,
        );
    }
    show(
        out,
        node,
        |c| c.get(&client::with_query("/api/connections", &query)?),
        client::connections_table,
    )
}

/// `xfed close-connection`.
pub fn close_connection(out: &mut Out, node: &NodeArgs, id: u64) -> io::Result<ExitCode> {
    show(
        out,
        node,
        |c| c.post(&format!("/api/connections/{id}/close")),
        |c: &Closed| format!("closing connection {}\n", c.closed),
    )
}

/// `xfed reload`: exit 2 when the node refuses the configuration (it keeps running the one
/// it has).
pub fn reload(out: &mut Out, node: &NodeArgs) -> io::Result<ExitCode> {
    let client = match node.client() {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match client.post("/api/reload") {
        Err(ClientError::Refused { status: 422, body }) => {
            match serde_json::from_str::<Refusal>(&body) {
                Ok(refusal) => {
                    for p in &refusal.problems {
                        stderr!("{p}");
                    }
                    stderr!("xfed: {}", refusal.error);
                }
                Err(_) => stderr!("xfed: {body}"),
            }
            Ok(ExitCode::from(BAD_CONFIG))
        }
        answer => print(out, node, answer, client::reload_table),
    }
}

/// `xfed restart`.
pub fn restart(out: &mut Out, node: &NodeArgs, query: RestartQuery) -> io::Result<ExitCode> {
    show(
        out,
        node,
        |c| c.post(&client::with_query("/api/restart", &query)?),
        client::restart_table,
    )
}

/// `xfed drain`: waits for the node to be idle (a node gives up after 30 s and says what
/// is left; asking another node through etcd adds its own wait).
pub fn drain(out: &mut Out, node: &NodeArgs, query: DrainQuery) -> io::Result<ExitCode> {
    show(
        out,
        node,
        |c| {
            c.post_waiting(
                &client::with_query("/api/drain", &query)?,
                std::time::Duration::from_secs(60),
            )
        },
        client::drain_table,
    )
}

/// `xfed events`; `since` as operators write it (a time or an age).
pub fn events(
    out: &mut Out,
    node: &NodeArgs,
    since: Option<String>,
    tenant: Option<String>,
    limit: Option<usize>,
    cluster: bool,
) -> io::Result<ExitCode> {
    let since = match since
        .map(|s| client::parse_since(&s, chrono::Utc::now()))
        .transpose()
    {
        Ok(since) => since,
        Err(e) => {
            stderr!("xfed: {e}");
            return Ok(ExitCode::from(BAD_USAGE));
        }
    };
    let query = EventsQuery {
        since,
        tenant,
        limit,
        cluster,
    };
    if cluster {
        let path = client::with_query("/api/events", &query);
        return show(out, node, |c| c.get(&path?), client::cluster_events_table);
    }
    show(
        out,
        node,
        |c| c.get(&client::with_query("/api/events", &query)?),
        client::events_table,
    )
}

/// `xfed log-level [LEVEL]`.
pub fn log_level(out: &mut Out, node: &NodeArgs, level: Option<String>) -> io::Result<ExitCode> {
    let shown = |l: &LogLevel| {
        format!(
            "federation log ({}): {}\nfilter: {}\n",
            l.target, l.federation, l.filter
        )
    };
    match level {
        Some(l) => show(out, node, |c| c.post(&format!("/api/log-level/{l}")), shown),
        None => show(out, node, |c| c.get("/api/log-level"), shown),
    }
}

/// Makes one call and prints its answer.
fn show<T: DeserializeOwned>(
    out: &mut Out,
    node: &NodeArgs,
    call: impl FnOnce(&AdminClient) -> Result<Value, ClientError>,
    table: impl FnOnce(&T) -> String,
) -> io::Result<ExitCode> {
    let answer = node.client().and_then(|c| call(&c));
    print(out, node, answer, table)
}

/// Prints an answer: as the API gave it with `--json`, else read as `T` and as a table.
fn print<T: DeserializeOwned>(
    out: &mut Out,
    node: &NodeArgs,
    answer: Result<Value, ClientError>,
    table: impl FnOnce(&T) -> String,
) -> io::Result<ExitCode> {
    let answer = match answer {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    if node.json {
        writeln!(out, "{answer:#}")?;
        return Ok(ExitCode::SUCCESS);
    }
    match client::read::<T>(answer) {
        Ok(v) => {
            write!(out, "{}", table(&v))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

fn failed(e: ClientError) -> io::Result<ExitCode> {
    stderr!("xfed: {e}");
    Ok(ExitCode::FAILURE)
}
