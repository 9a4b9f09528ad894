//! What `xfed reload`, `xfed restart` and `xfed drain` print: the changes a reload found and what it did
//! with them, and what a restart restarted (or, in a dry run, would), with a NODE column in
//! a cluster's dry run and the rollout a cluster's restart asked for.

use std::fmt::Write;

use super::semicolons;
use crate::admin::table::{Align, Table};
use crate::model::{DrainOutcome, ReloadOutcome, RestartOutcome};

/// `xfed reload` as text.
pub fn reload_table(v: &ReloadOutcome) -> String {
    let mut s = String::new();
    if v.changes.is_empty() {
        let _ = writeln!(s, "configuration unchanged (version {})", v.version);
        return s;
    }
    let state = if v.applied {
        "applied"
    } else {
        "staged until `xfed restart` or the schedule"
    };
    let _ = writeln!(s, "configuration version {}: {state}", v.version);
    for c in &v.changes {
        let _ = writeln!(
            s,
            "  {}: {} ({})",
            c.instance,
            semicolons(&c.what),
            c.action
        );
    }
    for r in v.restarted.iter().flatten() {
        let _ = writeln!(
            s,
            "  restarted {}: {} link(s), {} stream(s) dropped",
            r.change.instance, r.links, r.streams
        );
    }
    s
}

/// `xfed drain` as text.
pub fn drain_table(v: &DrainOutcome) -> String {
    let took = v.took_ms as f64 / 1000.0;
    let state = match &v.left {
        None => format!("idle after {took:.1} s"),
        Some(left) => format!("not idle after {took:.1} s: {left} left"),
    };
    format!(
        "node {} drained: {} component link(s) and {} s2s stream(s) closed; {state}\n\
         it takes no new connections until it is restarted\n",
        v.node, v.links_closed, v.streams_closed
    )
}

/// `xfed restart` as a table; in a cluster, the rolling restart it started or every
/// node's dry run.
pub fn restart_table(v: &RestartOutcome) -> String {
    if let Some(r) = &v.rollout {
        return super::cluster::rollout_started(r);
    }
    let sets: Vec<(Option<&str>, &[crate::model::RestartRow])> = if v.nodes.is_empty() {
        vec![(None, &v.restarted)]
    } else {
        v.nodes
            .iter()
            .map(|n| (Some(n.node.as_str()), n.restarted.as_slice()))
            .collect()
    };
    let mut s = String::new();
    for n in v.nodes.iter().filter(|n| n.error.is_some()) {
        let _ = writeln!(s, "{}: {}", n.node, n.error.as_deref().unwrap_or(""));
    }
    if sets.iter().all(|(_, rows)| rows.is_empty()) {
        s.push_str("nothing is stale\n");
        return s;
    }
    let verb = if v.dry_run { "WOULD DROP" } else { "DROPPED" };
    let mut columns = vec![];
    if !v.nodes.is_empty() {
        columns.push(("NODE", Align::Left));
    }
    columns.extend([
        ("INSTANCE", Align::Left),
        (verb, Align::Left),
        ("ACTION", Align::Left),
        ("CHANGES", Align::Left),
    ]);
    let mut table = Table::new(&columns);
    for (node, r) in sets
        .iter()
        .flat_map(|(n, rows)| rows.iter().map(move |r| (n, r)))
    {
        let mut row: Vec<String> = node.iter().map(|n| n.to_string()).collect();
        row.extend([
            r.change.instance.clone(),
            format!("{} link(s), {} stream(s)", r.links, r.streams),
            r.change.action.clone(),
            semicolons(&r.change.what),
        ]);
        table.row(row);
    }
    s.push_str(&table.render());
    s
}
