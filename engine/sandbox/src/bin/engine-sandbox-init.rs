//! A minimal sandbox helper: what the `engine` binary does first thing in `main`, alone.
//! Used by this crate's tests (`Sandbox::with_helper`).

fn main() {
    engine_sandbox::maybe_run_init();
    eprintln!("engine-sandbox-init: a helper of the engine sandbox, not meant to be run by hand");
    std::process::exit(2);
}
