//! A timeline of a build: one span per step, on lanes, plus spans for work
//! between steps (context hashing, exports). Written as Chrome trace-event
//! JSON (`--trace FILE`, opens in Perfetto and `chrome://tracing`) and
//! summarised as the build's critical path and slowest steps.
//!
//! A [`Trace`] is a [`Progress`] sink: put it next to the printer with
//! [`Tee`]. Lanes are assigned like a Gantt chart's rows: a step takes the
//! lowest lane free when it starts, so the number of lanes in use at a moment
//! is the number of steps running then. Lane 0 is the build's own thread
//! (exports).

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use engine_ir::{Graph, NodeId, Op};
use serde_json::json;

use crate::progress::{Event, Progress, Status};

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    /// `run`, `file` (COPY, ADD, WORKDIR…), `context`, `export`.
    pub cat: &'static str,
    pub lane: usize,
    pub start: Duration,
    pub end: Duration,
    /// For steps: its node, whether it was cached, a prefix of its cache key.
    pub node: Option<u32>,
    pub cached: bool,
    pub key: Option<String>,
}

#[derive(Default)]
struct Inner {
    spans: Vec<Span>,
    /// Running steps: node -> (lane, start, name).
    running: HashMap<u32, (usize, Duration, String)>,
    /// Which lanes are taken.
    busy: Vec<bool>,
    /// The lane of the step each thread runs, for spans inside a step.
    lane_of: HashMap<ThreadId, usize>,
}

/// The recorder.
pub struct Trace {
    origin: Instant,
    graph_kinds: HashMap<u32, &'static str>,
    inner: Mutex<Inner>,
}

/// The critical path and the slowest steps of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Steps along the critical path, first to last: (name, seconds).
    pub path: Vec<(String, f64)>,
    /// The sum of their durations.
    pub path_secs: f64,
    /// From the first step's start to the last step's end.
    pub total_secs: f64,
    /// The longest executed steps, longest first: (name, seconds).
    pub slowest: Vec<(String, f64)>,
}

fn cat_of(op: &Op) -> Option<&'static str> {
    match op {
        Op::Exec(_) => Some("run"),
        Op::File(_) => Some("file"),
        _ => None,
    }
}

impl Trace {
    /// A trace of a build of `graph`, starting now.
    pub fn new(graph: &Graph) -> Self {
        Trace {
            origin: Instant::now(),
            graph_kinds: graph
                .nodes()
                .filter_map(|(id, n)| cat_of(&n.op).map(|c| (id.0, c)))
                .collect(),
            inner: Mutex::new(Inner {
                busy: vec![true], // lane 0: the build's own thread
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a span of work that is not a step (on the lane of the step the
    /// calling thread runs, else lane 0).
    pub fn span(&self, name: &str, cat: &'static str, start: Instant, end: Instant) {
        let mut inner = self.lock();
        let lane = inner
            .lane_of
            .get(&std::thread::current().id())
            .copied()
            .unwrap_or(0);
        inner.spans.push(Span {
            name: name.to_string(),
            cat,
            lane,
            start: start.saturating_duration_since(self.origin),
            end: end.saturating_duration_since(self.origin),
            node: None,
            cached: false,
            key: None,
        });
    }

    /// Every span so far, in the order they ended.
    pub fn spans(&self) -> Vec<Span> {
        self.lock().spans.clone()
    }

    /// Writes the trace as Chrome trace-event JSON.
    pub fn write_chrome(&self, mut out: impl Write) -> io::Result<()> {
        let inner = self.lock();
        let mut events = vec![json!({
            "name": "process_name", "ph": "M", "pid": 1, "tid": 0,
            "args": { "name": "engine build" },
        })];
        let lanes = inner.spans.iter().map(|s| s.lane).max().unwrap_or(0);
        for lane in 0..=lanes {
            let name = if lane == 0 {
                "build".to_string()
            } else {
                format!("lane {lane}")
            };
            events.push(json!({
                "name": "thread_name", "ph": "M", "pid": 1, "tid": lane,
                "args": { "name": name },
            }));
        }
        let mut spans: Vec<&Span> = inner.spans.iter().collect();
        spans.sort_by_key(|s| (s.start, s.lane));
        for s in spans {
            let mut args = serde_json::Map::new();
            if let Some(n) = s.node {
                args.insert("node".into(), n.into());
                args.insert("cached".into(), s.cached.into());
                if let Some(stage) = crate::build::step_stage(&s.name) {
                    args.insert("stage".into(), stage.into());
                }
            }
            if let Some(k) = &s.key {
                args.insert("key".into(), k.clone().into());
            }
            events.push(json!({
                "name": s.name,
                "cat": s.cat,
                "ph": "X",
                "pid": 1,
                "tid": s.lane,
                "ts": s.start.as_micros() as u64,
                "dur": (s.end.saturating_sub(s.start)).as_micros() as u64,
                "args": args,
            }));
        }
        serde_json::to_writer(
            &mut out,
            &json!({ "traceEvents": events, "displayTimeUnit": "ms" }),
        )?;
        writeln!(out)
    }

    /// The critical path through `graph`: from the step that ended last, back
    /// through the input that was ready last, to a root. `None` when no step ran.
    pub fn summary(&self, graph: &Graph) -> Option<Summary> {
        let inner = self.lock();
        let steps: HashMap<u32, &Span> = inner
            .spans
            .iter()
            .filter_map(|s| s.node.map(|n| (n, s)))
            .collect();
        if steps.is_empty() {
            return None;
        }
        // When each node's result was ready: its own end, or (for nodes that
        // are not steps: sources, configs) its latest input's.
        let mut ready: Vec<Duration> = vec![Duration::ZERO; graph.len()];
        for (id, node) in graph.nodes() {
            let inputs = node
                .inputs
                .iter()
                .map(|i| ready[i.0 as usize])
                .max()
                .unwrap_or_default();
            ready[id.0 as usize] = steps.get(&id.0).map_or(inputs, |s| s.end.max(inputs));
        }
        let last = steps.values().max_by_key(|s| s.end)?;
        let mut path = Vec::new();
        let mut at = NodeId(last.node.unwrap_or(0));
        loop {
            if let Some(s) = steps.get(&at.0) {
                path.push((s.name.clone(), (s.end - s.start).as_secs_f64()));
            }
            let node = graph.node(at);
            match node.inputs.iter().max_by_key(|i| ready[i.0 as usize]) {
                Some(&i) if ready[i.0 as usize] > Duration::ZERO || steps.contains_key(&i.0) => {
                    at = i
                }
                _ => break,
            }
        }
        path.reverse();
        let first = steps.values().map(|s| s.start).min().unwrap_or_default();
        let mut slowest: Vec<(String, f64)> = steps
            .values()
            .filter(|s| !s.cached)
            .map(|s| (s.name.clone(), (s.end - s.start).as_secs_f64()))
            .collect();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        slowest.truncate(3);
        Some(Summary {
            path_secs: path.iter().map(|p| p.1).sum(),
            total_secs: (last.end - first).as_secs_f64(),
            path,
            slowest,
        })
    }
}

impl Progress for Trace {
    fn event(&self, e: &Event<'_>) {
        let Some(&cat) = self.graph_kinds.get(&e.id) else {
            return;
        };
        let now = self.origin.elapsed();
        let mut inner = self.lock();
        match e.status {
            Status::Started => {
                let lane = match inner.busy.iter().position(|b| !b) {
                    Some(l) => l,
                    None => {
                        inner.busy.push(false);
                        inner.busy.len() - 1
                    }
                };
                inner.busy[lane] = true;
                inner.lane_of.insert(std::thread::current().id(), lane);
                inner.running.insert(e.id, (lane, now, e.name.to_string()));
            }
            Status::Cached | Status::Done | Status::Error => {
                let Some((lane, start, name)) = inner.running.remove(&e.id) else {
                    return;
                };
                inner.busy[lane] = false;
                inner.lane_of.remove(&std::thread::current().id());
                inner.spans.push(Span {
                    name,
                    cat,
                    lane,
                    start,
                    end: now,
                    node: Some(e.id),
                    cached: e.status == Status::Cached,
                    key: e.digest.map(|k| k.chars().take(12).collect()),
                });
            }
        }
    }

    fn output(&self, _: u32, _: &str) {}

    fn span(&self, name: &str, cat: &'static str, start: Instant, end: Instant) {
        Trace::span(self, name, cat, start, end);
    }
}

/// Sends every event to two sinks.
pub struct Tee<'a>(pub &'a dyn Progress, pub &'a dyn Progress);

impl Progress for Tee<'_> {
    fn event(&self, e: &Event<'_>) {
        self.0.event(e);
        self.1.event(e);
    }
    fn output(&self, id: u32, line: &str) {
        self.0.output(id, line);
        self.1.output(id, line);
    }
    fn span(&self, name: &str, cat: &'static str, start: Instant, end: Instant) {
        self.0.span(name, cat, start, end);
        self.1.span(name, cat, start, end);
    }
}

impl Summary {
    /// The summary's lines: `critical path 1.31 s of 1.52 s: a → b → c` and
    /// `slowest steps: …`.
    pub fn lines(&self) -> Vec<String> {
        let short = |n: &str| -> String {
            // `[svc3 2/2] RUN sha256sum …` -> `[svc3 2/2] RUN`.
            match n.split_once("] ") {
                Some((head, rest)) => {
                    format!("{head}] {}", rest.split_whitespace().next().unwrap_or(""))
                }
                None => n.to_string(),
            }
        };
        let path: Vec<String> = self.path.iter().map(|(n, _)| short(n)).collect();
        let mut out = vec![format!(
            "critical path {:.2} s of {:.2} s: {}",
            self.path_secs,
            self.total_secs,
            path.join(" → ")
        )];
        if !self.slowest.is_empty() {
            let slow: Vec<String> = self
                .slowest
                .iter()
                .map(|(n, s)| format!("{} {s:.2} s", short(n)))
                .collect();
            out.push(format!("slowest steps: {}", slow.join(", ")));
        }
        out
    }
}
