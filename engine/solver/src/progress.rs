//! Build progress events and their printers (plain, json). Every step gets
//! `started`, then `cached`, `done` or `error`, with its BuildKit-style name.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Started,
    Cached,
    Done,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    pub id: u32,
    pub name: &'a str,
    pub status: Status,
    /// Time since the step started (0 for `started`).
    pub duration_ms: Option<u64>,
    /// The step's cache key, once it is known (`cached`, `done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    /// Whether the result came from the cache (finished events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// Why the step failed (`error` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub trait Progress: Send + Sync {
    fn event(&self, e: &Event<'_>);
    fn output(&self, id: u32, line: &str);
    /// A piece of work that is not a step (hashing a context, an export),
    /// for timelines; printers ignore it.
    fn span(&self, name: &str, cat: &'static str, start: Instant, end: Instant) {
        let _ = (name, cat, start, end);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Json,
    Quiet,
}

/// Writes events to stderr as lines.
pub struct Printer {
    mode: Mode,
    start: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Printer {
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Self {
        Printer {
            mode,
            start: Instant::now(),
            out: Mutex::new(out),
        }
    }

    pub fn stderr(mode: Mode) -> Self {
        Self::new(mode, Box::new(std::io::stderr()))
    }
}

impl Progress for Printer {
    fn event(&self, e: &Event<'_>) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                let mut e = e.clone();
                e.duration_ms.get_or_insert(0);
                let _ = serde_json::to_writer(&mut *out, &e);
                let _ = writeln!(out);
            }
            Mode::Plain => {
                let t = self.start.elapsed().as_secs_f64();
                let _ = match e.status {
                    Status::Started => writeln!(out, "#{} {}", e.id, e.name),
                    Status::Cached => writeln!(out, "#{} CACHED", e.id),
                    Status::Done => writeln!(
                        out,
                        "#{} DONE {:.1}s",
                        e.id,
                        e.duration_ms.unwrap_or(0) as f64 / 1000.0
                    ),
                    Status::Error => writeln!(out, "#{} ERROR at {t:.1}s", e.id),
                };
            }
        }
    }

    fn output(&self, id: u32, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        match self.mode {
            Mode::Plain => {
                let _ = writeln!(out, "#{id} {line}");
            }
            Mode::Json => {
                let _ = serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"id": id, "output": line}),
                );
                let _ = writeln!(out);
            }
            Mode::Quiet => {}
        }
    }
}

/// BuildKit-like live view for terminals: a `[+] Building 3.2s (14/20)`
/// header, one spinner per running step with its timer and last output
/// line; finished steps print one line each.
pub struct Tty {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::HashMap<u32, (indicatif::ProgressBar, String)>>,
    header: indicatif::ProgressBar,
}

impl Tty {
    pub fn new() -> Self {
        Self::with_steps(0)
    }

    /// A view that knows how many steps the build has (the header's total).
    pub fn with_steps(total: usize) -> Self {
        let multi = indicatif::MultiProgress::new();
        let header = multi.add(indicatif::ProgressBar::new(total as u64));
        header.set_style(
            indicatif::ProgressStyle::with_template("[+] Building {secs} ({pos}/{len})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key(
                    "secs",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}s", s.elapsed().as_secs_f64());
                    },
                ),
        );
        header.enable_steady_tick(std::time::Duration::from_millis(200));
        Tty {
            multi,
            bars: Mutex::new(Default::default()),
            header,
        }
    }

    /// The steps of `graph` a build shows, for [`with_steps`](Self::with_steps).
    pub fn steps_of(graph: &engine_ir::Graph) -> usize {
        graph.nodes().filter(|(_, n)| visible(&n.op)).count()
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.header.finish();
    }
}

impl Default for Tty {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Tty {
    fn event(&self, e: &Event<'_>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e.status {
            Status::Started => {
                let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_message(e.name.to_string());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bars.insert(e.id, (bar, e.name.to_string()));
            }
            status => {
                self.header.inc(1);
                let (bar, name) = bars
                    .remove(&e.id)
                    .unwrap_or_else(|| (indicatif::ProgressBar::hidden(), e.name.to_string()));
                bar.finish_and_clear();
                let secs = e.duration_ms.unwrap_or(0) as f64 / 1000.0;
                let line = match status {
                    Status::Cached => format!("CACHED {name}"),
                    Status::Error => format!("ERROR  {name} ({secs:.1}s)"),
                    _ => format!("DONE   {name} ({secs:.1}s)"),
                };
                let _ = self.multi.println(line);
            }
        }
    }

    fn output(&self, id: u32, line: &str) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((bar, name)) = bars.get(&id) {
            let short: String = line.chars().take(80).collect();
            bar.set_message(format!("{name} │ {short}"));
        }
    }
}

/// Whether a node is a step progress shows (and counts): RUN, file ops and
/// image sources, not contexts or config edits.
pub fn visible(op: &engine_ir::Op) -> bool {
    use engine_ir::{Op, Source};
    matches!(
        op,
        Op::Exec(_)
            | Op::File(_)
            | Op::Source(Source::Layout { .. })
            | Op::Source(Source::Image { .. })
    )
}
