//! The `engine` binary: parses the command line, wires frontends, solver,
//! cache and exporters together, and renders errors. The only crate that
//! renders errors for humans.

mod bake;
mod buildx;
mod cli;
mod commands;
mod diagnostic;
mod docker;
mod failure;
mod metadata;
mod multiplatform;
mod outputs;
mod plan;
mod push;
mod resolutions;
mod resolver;

use std::process::ExitCode;

use clap::Parser;

pub use failure::{Failure, Kind};

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
        Err(f) => {
            eprint!("{}", f.render());
            ExitCode::from(f.kind().exit_code())
        }
    }
}
