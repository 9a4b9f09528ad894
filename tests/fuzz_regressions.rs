//! Every input of the fuzz corpus (`fuzz/corpus/<target>/`) and every input a fuzzer ever
//! found failing (`fuzz/regressions/<target>/`) replayed through the same checks as the fuzz
//! targets, so a defect once fixed cannot come back unnoticed. The checks live in the fuzz
//! crate (`fuzz/src/`) and are included here as source; docs/FUZZING.md describes them.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod xfed_fuzz;

use std::cell::Cell;
use std::path::{Path, PathBuf};

thread_local! {
    /// Set while this thread runs a check on an input.
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_none_or(|e| e != "md"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `check` on every input of `target`; fails naming each input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    // A failing input's panic is collected and reported below, once: the hook stays quiet
    // for panics of this thread while it replays.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !REPLAYING.with(Cell::get) {
                default(info);
            }
        }));
    });
    let mut failed = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for path in inputs(kind, target) {
            // A folder is a sequence of inputs replayed in order (see xfed_fuzz::s2s).
            let data: Vec<Vec<u8>> = if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                    .expect("read a sequence")
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                files.sort();
                files
                    .iter()
                    .map(|f| std::fs::read(f).expect("read an input"))
                    .collect()
            } else {
                vec![std::fs::read(&path).expect("read an input")]
            };
            count += 1;
            REPLAYING.with(|r| r.set(true));
            let result = std::panic::catch_unwind(|| data.iter().for_each(|d| check(d)));
            REPLAYING.with(|r| r.set(false));
            if let Err(e) = result {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failed.push(format!("{}: {why}", path.display()));
            }
        }
    }
    assert!(count > 0, "no inputs for {target}");
    assert!(
        failed.is_empty(),
        "{} of {count} inputs fail:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn reader_inputs() {
    replay("reader", xfed_fuzz::reader::check);
}

#[test]
fn stanza_inputs() {
    replay("stanza", xfed_fuzz::stanza::check);
}

#[test]
fn differential_inputs() {
    replay("differential", xfed_fuzz::differential::check);
}

#[test]
fn config_inputs() {
    replay("config", xfed_fuzz::config::check);
}

#[test]
fn s2s_inputs() {
    // Each input waits 30 ms for the node's answers before our end of input.
    replay("s2s", |data| {
        xfed_fuzz::s2s::check_settled(data, std::time::Duration::from_millis(30))
    });
}
