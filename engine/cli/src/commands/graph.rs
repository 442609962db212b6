use engine_ir::{render, NoResolver};

use crate::cli::{GraphArgs, GraphFormat};
use crate::Failure;

pub fn run(args: GraphArgs) -> Result<(), Failure> {
    let planned = crate::plan::plan(&args.plan, &NoResolver)?;
    for w in &planned.warnings {
        eprintln!("warning: {w}");
    }
    let text = match args.format {
        GraphFormat::Dot => render::to_dot(&planned.graph),
        GraphFormat::Mermaid => render::to_mermaid(&planned.graph),
        GraphFormat::Json => render::to_json(&planned.graph),
    };
    print!("{text}");
    Ok(())
}
