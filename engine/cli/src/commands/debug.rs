use crate::cli::DebugCommand;
use crate::diagnostic::SourceError;
use crate::{Failure, Kind};

pub fn run(cmd: DebugCommand) -> Result<(), Failure> {
    match cmd {
        DebugCommand::Parse { file } => {
            let text = crate::plan::read_text(&file)?;
            let name = file.display().to_string();
            let ast = engine_dockerfile::parser::parse(&text).map_err(|e| {
                Failure::rendered(
                    Kind::Usage,
                    SourceError::from_frontend(&name, &text, &e).render(),
                )
            })?;
            println!("{}", engine_dockerfile::parser::dump(&ast));
            Ok(())
        }
    }
}
