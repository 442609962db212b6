//! The `engine` binary: parses the command line, wires frontends, solver,
//! cache and exporters together, and renders errors. The only crate that
//! renders errors for humans.

mod buildx;
mod cli;
mod commands;
mod diagnostic;
mod docker;
mod metadata;
mod multiplatform;
mod outputs;
mod plan;
mod push;
mod resolutions;
mod resolver;

use std::process::ExitCode;

use clap::Parser;

/// An error already shaped for the user.
#[derive(Debug)]
pub enum Failure {
    /// Rendered text, printed as is (frontend errors with source snippets).
    Rendered(String),
    /// A plain message, printed as `error: MESSAGE` with optional hint.
    Message {
        message: String,
        hint: Option<String>,
    },
}

impl Failure {
    pub fn msg(message: impl Into<String>) -> Self {
        Failure::Message {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure::Message {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

fn main() -> ExitCode {
    // Must come first: a sandbox helper re-executes this binary.
    engine_sandbox::maybe_run_init();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Build(args) => commands::build::run(*args),
        cli::Command::Graph(args) => commands::graph::run(args),
        cli::Command::Cache(cmd) => commands::cache::run(cmd),
        cli::Command::Debug(cmd) => commands::debug::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Rendered(text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(Failure::Message { message, hint }) => {
            eprintln!("error: {message}");
            if let Some(h) = hint {
                eprintln!("  help: {h}");
            }
            ExitCode::from(1)
        }
    }
}
