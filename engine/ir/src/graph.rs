//! The build graph: nodes added inputs-first (so the graph is acyclic by
//! construction), interned by digest (so identical subgraphs are one node).

use std::collections::{BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use crate::digest::NodeDigest;
use crate::op::Op;
use crate::IR_VERSION;

/// A node's index in its graph. Stable for the life of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl NodeId {
    fn ix(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
}

/// Where a node came from, for progress and errors. Not part of the digest:
/// moving an instruction to another line must not change what it builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// The step as BuildKit names it, e.g. `[build 2/3] RUN make`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub digest: NodeDigest,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub meta: NodeMeta,
}

/// A named result of the build: an image (for a Dockerfile, its target
/// stage; for the TOML frontend, each selected target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub node: NodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("node {0:?} refers to an input that does not exist yet")]
    DanglingInput(NodeId),
    #[error("unknown target `{0}`")]
    UnknownTarget(String),
}

#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: DiGraph<Node, usize>,
    by_digest: HashMap<NodeDigest, NodeId>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a node, or return the existing node with the same digest.
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        meta: NodeMeta,
    ) -> Result<NodeId, GraphError> {
        let count = self.graph.node_count() as u32;
        if let Some(bad) = inputs.iter().find(|i| i.0 >= count) {
            return Err(GraphError::DanglingInput(*bad));
        }
        let input_digests: Vec<NodeDigest> =
            inputs.iter().map(|i| self.graph[i.ix()].digest).collect();
        let digest = node_digest(&op, &input_digests);
        if let Some(existing) = self.by_digest.get(&digest) {
            return Ok(*existing);
        }
        let ix = self.graph.add_node(Node {
            digest,
            op,
            inputs: inputs.clone(),
            meta,
        });
        for (slot, input) in inputs.iter().enumerate() {
            self.graph.add_edge(input.ix(), ix, slot);
        }
        let id = NodeId(ix.index() as u32);
        self.by_digest.insert(digest, id);
        Ok(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.ix()]
    }

    /// The metadata of a node added earlier, to name it once its role is known.
    pub fn meta_mut(&mut self, id: NodeId) -> &mut NodeMeta {
        &mut self.graph[id.ix()].meta
    }

    /// Add every node of a finished graph (merging equal digests with nodes
    /// already here) and return where its targets landed.
    pub fn import(&mut self, g: &Graph) -> Vec<Target> {
        self.import_with(g, NodeMeta::clone)
    }

    /// [`import`](Self::import), giving the nodes it adds the metadata
    /// `meta` makes of theirs (nodes merged with existing ones keep the
    /// existing metadata).
    pub fn import_with(&mut self, g: &Graph, meta: impl Fn(&NodeMeta) -> NodeMeta) -> Vec<Target> {
        let mut remap: Vec<NodeId> = Vec::with_capacity(g.len());
        for (_, node) in g.nodes() {
            let inputs = node.inputs.iter().map(|i| remap[i.0 as usize]).collect();
            let id = self
                .add(node.op.clone(), inputs, meta(&node.meta))
                .expect("inputs precede users");
            remap.push(id);
        }
        g.targets()
            .iter()
            .map(|t| Target {
                name: t.name.clone(),
                node: remap[t.node.0 as usize],
            })
            .collect()
    }

    pub fn finish(self, targets: Vec<Target>) -> Graph {
        Graph {
            graph: self.graph,
            targets,
        }
        .pruned()
    }
}

/// The canonical digest of a node: a version tag, the op's canonical JSON
/// (object keys sorted), and the inputs' digests in slot order.
pub fn node_digest(op: &Op, inputs: &[NodeDigest]) -> NodeDigest {
    let mut h = blake3::Hasher::new();
    h.update(b"engine/ir/node\0");
    h.update(&IR_VERSION.to_le_bytes());
    let json = canonical_json(&op.digest_view());
    h.update(&(json.len() as u64).to_le_bytes());
    h.update(json.as_bytes());
    h.update(&(inputs.len() as u64).to_le_bytes());
    for d in inputs {
        h.update(&d.0);
    }
    NodeDigest(*h.finalize().as_bytes())
}

/// JSON with object keys sorted at every level and no insignificant space,
/// whatever serde_json's map ordering features are.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// A finished graph: only nodes that some target needs, in an order where
/// every node comes after its inputs.
#[derive(Debug, Clone)]
pub struct Graph {
    graph: DiGraph<Node, usize>,
    targets: Vec<Target>,
}

impl Graph {
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn target(&self, name: &str) -> Result<&Target, GraphError> {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GraphError::UnknownTarget(name.to_string()))
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.ix()]
    }

    /// Node ids in topological order (inputs first).
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph
            .node_indices()
            .map(|ix| NodeId(ix.index() as u32))
    }

    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.graph
            .node_indices()
            .map(move |ix| (NodeId(ix.index() as u32), &self.graph[ix]))
    }

    /// The nodes that read `id`'s output, each once.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let set: BTreeSet<NodeId> = self
            .graph
            .edges_directed(id.ix(), Direction::Outgoing)
            .map(|e| NodeId(e.target().index() as u32))
            .collect();
        set.into_iter().collect()
    }

    /// `(from, to, input slot)` for every edge.
    pub fn edges(&self) -> impl Iterator<Item = (NodeId, NodeId, usize)> + '_ {
        self.graph.edge_references().map(|e| {
            (
                NodeId(e.source().index() as u32),
                NodeId(e.target().index() as u32),
                *e.weight(),
            )
        })
    }

    pub fn petgraph(&self) -> &DiGraph<Node, usize> {
        &self.graph
    }

    /// Keep only the targets named (and what they need).
    pub fn select(self, names: &[String]) -> Result<Graph, GraphError> {
        let mut targets = Vec::new();
        for n in names {
            targets.push(self.target(n)?.clone());
        }
        Ok(Graph {
            graph: self.graph,
            targets,
        }
        .pruned())
    }

    /// Drop every node no target reaches and renumber, keeping the order.
    fn pruned(self) -> Graph {
        let n = self.graph.node_count();
        let mut keep = vec![false; n];
        let mut stack: Vec<NodeId> = self.targets.iter().map(|t| t.node).collect();
        while let Some(id) = stack.pop() {
            let i = id.0 as usize;
            if keep[i] {
                continue;
            }
            keep[i] = true;
            stack.extend(self.graph[id.ix()].inputs.iter().copied());
        }
        if keep.iter().all(|k| *k) {
            return self;
        }
        let mut remap = vec![None; n];
        let mut b = GraphBuilder::new();
        for ix in self.graph.node_indices() {
            if !keep[ix.index()] {
                continue;
            }
            let node = &self.graph[ix];
            let inputs = node
                .inputs
                .iter()
                .map(|i| remap[i.0 as usize].expect("inputs kept"))
                .collect();
            let id = b
                .add(node.op.clone(), inputs, node.meta.clone())
                .expect("inputs precede users");
            remap[ix.index()] = Some(id);
        }
        let targets = self
            .targets
            .into_iter()
            .map(|t| Target {
                name: t.name,
                node: remap[t.node.0 as usize].expect("target kept"),
            })
            .collect();
        Graph {
            graph: b.graph,
            targets,
        }
    }
}
