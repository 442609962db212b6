use engine_ir::NoResolver;

use crate::cli::BuildArgs;
use crate::Failure;

pub fn run(args: BuildArgs) -> Result<(), Failure> {
    let planned = crate::plan::plan(&args.plan, &NoResolver)?;
    for w in &planned.warnings {
        eprintln!("warning: {w}");
    }
    Err(Failure::hint(
        format!("planned {} nodes, but execution is not available in this build yet", planned.graph.len()),
        "use `engine graph` to inspect the plan",
    ))
}
