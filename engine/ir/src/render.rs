//! Text renderings of a graph: Graphviz dot, Mermaid and JSON.

use std::fmt::Write;

use serde::Serialize;

use crate::graph::{Graph, Node, NodeId, NodeMeta, Target};
use crate::op::{FileAction, Op, Source};
use crate::{NodeDigest, IR_VERSION};

fn label(node: &Node) -> String {
    let what = match &node.op {
        Op::Source(Source::Scratch) => "scratch".to_string(),
        Op::Source(Source::Image { reference, .. }) => format!("image {reference}"),
        Op::Source(Source::Layout { context, .. }) => format!("oci-layout {context}"),
        Op::Source(Source::Local { name, .. }) => format!("local {name}"),
        Op::Exec(e) => format!("exec {}", e.args.join(" ")),
        Op::File(f) => {
            let kinds: Vec<&str> = f
                .actions
                .iter()
                .map(|a| match a {
                    FileAction::Copy(_) => "copy",
                    FileAction::Mkdir { .. } => "mkdir",
                    FileAction::Mkfile { .. } => "mkfile",
                    FileAction::Rm { .. } => "rm",
                })
                .collect();
            format!("file {}", kinds.join(","))
        }
        Op::Config(c) => format!("config ({} changes)", c.changes.len()),
        Op::Image(i) => format!("image result {}", i.platform),
    };
    let name = if node.meta.name.is_empty() {
        what
    } else {
        node.meta.name.clone()
    };
    truncate(&name, 60)
}

fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

fn shape(op: &Op) -> &'static str {
    match op {
        Op::Source(_) => "cylinder",
        Op::Exec(_) => "box",
        Op::File(_) => "folder",
        Op::Config(_) => "note",
        Op::Image(_) => "doubleoctagon",
    }
}

pub fn to_dot(g: &Graph) -> String {
    let mut out =
        String::from("digraph build {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    for (id, node) in g.nodes() {
        let text = format!("{}\\n{}", escape_dot(&label(node)), node.digest.short());
        let _ = writeln!(
            out,
            "  n{} [label=\"{}\", shape={}];",
            id.0,
            text,
            shape(&node.op)
        );
    }
    for (from, to, slot) in g.edges() {
        let _ = writeln!(out, "  n{} -> n{} [label=\"{}\"];", from.0, to.0, slot);
    }
    for (i, t) in g.targets().iter().enumerate() {
        let _ = writeln!(
            out,
            "  t{i} [label=\"{}\", shape=plaintext];",
            escape_dot(&t.name)
        );
        let _ = writeln!(out, "  n{} -> t{i} [style=dashed];", t.node.0);
    }
    out.push_str("}\n");
    out
}

fn escape_dot(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn to_mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    for (id, node) in g.nodes() {
        let text = label(node).replace('"', "#quot;");
        let (open, close) = match node.op {
            Op::Source(_) => ("[(", ")]"),
            Op::Image(_) => ("{{", "}}"),
            _ => ("[", "]"),
        };
        let _ = writeln!(out, "  n{}{}\"{}\"{}", id.0, open, text, close);
    }
    for (from, to, _) in g.edges() {
        let _ = writeln!(out, "  n{} --> n{}", from.0, to.0);
    }
    for (i, t) in g.targets().iter().enumerate() {
        let _ = writeln!(out, "  t{i}([\"{}\"])", t.name.replace('"', "#quot;"));
        let _ = writeln!(out, "  n{} -.-> t{i}", t.node.0);
    }
    out
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    version: u32,
    nodes: Vec<JsonNode<'a>>,
    targets: Vec<JsonTarget<'a>>,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    id: u32,
    digest: NodeDigest,
    #[serde(flatten)]
    op: &'a Op,
    inputs: Vec<u32>,
    #[serde(flatten)]
    meta: &'a NodeMeta,
}

#[derive(Serialize)]
struct JsonTarget<'a> {
    name: &'a str,
    node: u32,
    digest: NodeDigest,
}

pub fn to_json(g: &Graph) -> String {
    let doc = JsonGraph {
        version: IR_VERSION,
        nodes: g
            .nodes()
            .map(|(id, n)| JsonNode {
                id: id.0,
                digest: n.digest,
                op: &n.op,
                inputs: n.inputs.iter().map(|i: &NodeId| i.0).collect(),
                meta: &n.meta,
            })
            .collect(),
        targets: g
            .targets()
            .iter()
            .map(|t: &Target| JsonTarget {
                name: &t.name,
                node: t.node.0,
                digest: g.node(t.node).digest,
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
