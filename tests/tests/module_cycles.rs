//! Inside a crate, top-level modules form a graph too: `a` depends on `b`
//! when code of `a` (any file under `src/a.rs` or `src/a/`) names
//! `crate::b`. A cycle in that graph means two modules cannot be read,
//! tested or moved apart; this test fails on any cycle (a strongly
//! connected set of modules) in the library crates, except the ones listed
//! in `KNOWN`, which must shrink, never grow.
//!
//! Comments and a file's trailing `#[cfg(test)] mod tests` are ignored:
//! a test module may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crate source directories checked, relative to the workspace root.
const CRATES: &[&str] = &[
    "engine/ir/src",
    "engine/oci/src",
    "frontends/dockerfile/src",
    "frontends/toml/src",
    "cache/src",
    "engine/layers/src",
    "engine/sandbox/src",
    "engine/export/src",
    "engine/registry/src",
    "engine/solver/src",
    "engine/cli/src",
];

/// Cycles that exist today and are being taken apart (issue 11). Each
/// entry is one strongly connected set, sorted. The test fails when one of
/// them is gone (remove it here) or when any other appears.
const KNOWN: &[(&str, &[&str])] = &[(
    "engine/solver/src",
    &["build", "cache_share", "image", "run"],
)];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Top-level module name → its source files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable source dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut m: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let first = first.to_string_lossy();
        let top = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        let is_root = rel.components().count() == 1 && (top == "lib" || top == "main");
        // `src/bin/*` are separate binaries, not modules of the crate.
        if is_root || top == "bin" {
            continue;
        }
        m.entry(top).or_default().push(f);
    }
    m
}

/// The code of a file without comments and without a trailing test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Modules named after `crate::` (also inside `crate::{a, b::c}` groups).
fn referenced(code: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded = rest[..i].chars().next_back().is_some_and(is_ident);
        rest = &rest[i + "crate::".len()..];
        if preceded {
            continue; // e.g. `engine_cache::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| is_ident(*c)).collect();
                if names.contains(&name) {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if names.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

/// Strongly connected sets of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let mut g = BTreeMap::new();
    for (m, files) in &mods {
        let mut deps = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).expect("readable source");
            deps.extend(referenced(&code(&text), &names));
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

#[test]
fn no_module_cycles_inside_crates() {
    let root = workspace_root();
    let mut unexpected = Vec::new();
    let mut gone = Vec::new();
    for krate in CRATES {
        let found = cycles(&module_graph(&root.join(krate)));
        let known: Vec<Vec<String>> = KNOWN
            .iter()
            .filter(|(k, _)| k == krate)
            .map(|(_, c)| c.iter().map(|s| s.to_string()).collect())
            .collect();
        for c in &found {
            if !known.contains(c) {
                unexpected.push(format!("{krate}: {}", c.join(" ↔ ")));
            }
        }
        for c in &known {
            if !found.contains(c) {
                gone.push(format!("{krate}: {}", c.join(" ↔ ")));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "module cycles (move what both sides need into a module of its own):\n{}",
        unexpected.join("\n")
    );
    assert!(
        gone.is_empty(),
        "these known cycles are gone: remove them from KNOWN in {}:\n{}",
        file!(),
        gone.join("\n")
    );
}

#[test]
fn the_detector_sees_cycles_and_groups() {
    let names: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let src = "use crate::{b::X, c};\n// crate::d in a comment\nfn f() { engine_crate::d::g(); }";
    let r = referenced(&code(src), &names);
    assert_eq!(r, ["b", "c"].iter().map(|s| s.to_string()).collect());
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}
