//! The crate's layout as `src/lib.rs` describes it holds in the code: every module is in its
//! layout list, a module uses only those listed above it, and no two files import each
//! other (a module's own file and its child modules excepted: they are one piece).
//!
//! Imports are read from the source text: every `crate::…` and `super::…` path (with
//! `{…}` groups), and paths through a file's own child modules, resolved to the file of the
//! longest module prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path, e.g. `["s2s", "stream"]`; the crate root is `[]`.
type ModPath = Vec<String>;

struct Crate {
    /// Each source file (relative to `src/`) and its module path.
    files: BTreeMap<PathBuf, ModPath>,
    /// Module path → file.
    modules: BTreeMap<ModPath, PathBuf>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(src().join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

/// The text without comments (so prose naming a module is not an import).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a file is by its place: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn place(rel: &Path) -> ModPath {
    let mut parts: ModPath = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path.strip_prefix(src()).expect("under src").to_path_buf());
        }
    }
}

impl Crate {
    fn read() -> Crate {
        let mut paths = Vec::new();
        walk(&src(), &mut paths);
        let mut files: BTreeMap<PathBuf, ModPath> =
            paths.iter().map(|p| (p.clone(), place(p))).collect();
        // `#[path = "x.rs"] mod y;` makes x.rs the module y of the declaring file.
        for p in &paths {
            let text = code(&read(p));
            let mut rest = text.as_str();
            while let Some(at) = rest.find("#[path = \"") {
                rest = &rest[at + 10..];
                let target = &rest[..rest.find('"').expect("closing quote")];
                let name = rest
                    .find("mod ")
                    .map(|m| ident(&rest[m + 4..]))
                    .expect("a mod after #[path]");
                let dir = p.parent().unwrap_or(Path::new(""));
                let child = normalize(&dir.join(target));
                // Relative to the declaring file's folder; the module is the file's child.
                let mut module = place(p);
                module.push(name.to_owned());
                files.insert(child, module);
            }
        }
        let modules = files.iter().map(|(f, m)| (m.clone(), f.clone())).collect();
        Crate { files, modules }
    }

    /// The file that defines what `path` names: its longest prefix that is a module.
    fn resolve(&self, path: &[String]) -> Option<&PathBuf> {
        (1..=path.len())
            .rev()
            .find_map(|k| self.modules.get(&path[..k]))
    }

    /// The files `file` imports (itself and the crate root left out).
    fn imports(&self, file: &Path) -> BTreeSet<PathBuf> {
        let me = &self.files[file];
        let text = code(&read(file));
        let kids: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
                let l = l.strip_prefix("pub(super) ").unwrap_or(l);
                let l = l.strip_prefix("pub ").unwrap_or(l);
                l.strip_prefix("mod ")
                    .filter(|r| r.trim_end().ends_with(';'))
                    .map(|r| ident(r).to_owned())
            })
            .collect();
        let mut paths: Vec<ModPath> = Vec::new();
        for (root, base) in [("crate::", Vec::new()), ("super::", parent(me))] {
            for (at, _) in text.match_indices(root) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                paths.extend(expand(&base, &text[at + root.len()..]));
            }
        }
        for kid in &kids {
            let needle = format!("{kid}::");
            for (at, _) in text.match_indices(&needle) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut base = me.clone();
                base.push(kid.clone());
                paths.extend(expand(&base, &text[at + needle.len()..]));
            }
        }
        paths
            .iter()
            .filter_map(|p| self.resolve(p))
            .filter(|f| f.as_path() != file && !self.files[*f].is_empty())
            .cloned()
            .collect()
    }
}

fn parent(m: &ModPath) -> ModPath {
    m[..m.len().saturating_sub(1)].to_vec()
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The identifier `s` starts with.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The module paths written at `rest` (just after `crate::`, `super::` or `kid::`), from
/// `base`: `a::b::C` is one, `{a, b::c}` several, and leading `super::`s climb from `base`.
fn expand(base: &ModPath, rest: &str) -> Vec<ModPath> {
    let mut path = base.clone();
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            return group[..end]
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .flat_map(|item| expand(&path, item))
                .collect();
        }
        let name = ident(rest);
        if name.is_empty() {
            return vec![path];
        }
        if name == "super" {
            path = parent(&path);
        } else if name == "self" {
            // `super::{self, x}`: the module itself.
        } else {
            path.push(name.to_owned());
        }
        rest = &rest[name.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![path],
        }
    }
}

/// The modules in `lib.rs`'s layout list, in order, and those it declares.
fn layout() -> (Vec<String>, BTreeSet<String>) {
    let lib = read(Path::new("lib.rs"));
    let listed = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .map(|l| ident(l).to_owned())
        .collect();
    let declared = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| ident(l).to_owned())
        .collect();
    (listed, declared)
}

#[test]
fn every_module_is_in_the_layout_list_once() {
    let (listed, declared) = layout();
    let set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(set.len(), listed.len(), "listed twice: {listed:?}");
    assert_eq!(set, declared, "lib.rs's layout list and its modules differ");
}

#[test]
fn modules_use_only_those_listed_above_them() {
    let krate = Crate::read();
    let (listed, _) = layout();
    let rank = |m: &ModPath| {
        m.first()
            .and_then(|top| listed.iter().position(|l| l == top))
    };
    let mut wrong = Vec::new();
    for (file, module) in &krate.files {
        let Some(mine) = rank(module) else { continue };
        for import in krate.imports(file) {
            let theirs = rank(&krate.files[&import]).expect("a listed module");
            if theirs > mine {
                wrong.push(format!("{} uses {}", file.display(), import.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layout:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let krate = Crate::read();
    let imports: BTreeMap<&PathBuf, BTreeSet<PathBuf>> = krate
        .files
        .keys()
        .filter(|f| f.as_path() != Path::new("main.rs"))
        .map(|f| (f, krate.imports(f)))
        .collect();
    let mut cycles = Vec::new();
    for (a, theirs) in &imports {
        for b in theirs {
            let (ma, mb) = (&krate.files[*a], &krate.files[b]);
            let family = parent(ma) == *mb || parent(mb) == *ma;
            if a.as_path() < b.as_path()
                && !family
                && imports.get(b).is_some_and(|i| i.contains(*a))
            {
                cycles.push(format!("{} <-> {}", a.display(), b.display()));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}

/// The reader of imports finds what it must: a crate path, a group, a `super` and a child
/// module's path each resolve to the file that defines them.
#[test]
fn imports_are_read_from_every_form_of_path() {
    let krate = Crate::read();
    let of = |f: &str| krate.imports(Path::new(f));
    let node = of("node.rs");
    for f in ["config/mod.rs", "routing/mod.rs", "s2s/federation.rs"] {
        assert!(node.contains(Path::new(f)), "node.rs uses {f}: {node:?}");
    }
    let stream = of("s2s/stream/sm.rs");
    assert!(
        stream.contains(Path::new("s2s/stream/mod.rs")),
        "{stream:?}"
    );
    let reader = of("xmpp/reader.rs");
    for f in ["xmpp/header.rs", "xmpp/restricted.rs", "xmpp/wellformed.rs"] {
        assert!(
            reader.contains(Path::new(f)),
            "xmpp/reader.rs uses {f}: {reader:?}"
        );
    }
}
