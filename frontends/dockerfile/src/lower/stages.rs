//! Splitting the instruction list into global ARGs and stages, and finding
//! which stages a target needs.

use crate::error::{Error, Location, Result};
use crate::instructions::{Instruction, Located};

pub struct Stage {
    /// `AS name`, lowercased; None for unnamed stages.
    pub name: Option<String>,
    /// The name used in step names: the alias or `stage-N`.
    pub display: String,
    pub index: usize,
    pub from: Located<Instruction>,
    pub body: Vec<Located<Instruction>>,
}

pub struct Split {
    pub global_args: Vec<Located<Instruction>>,
    pub stages: Vec<Stage>,
}

pub fn split(instructions: Vec<Located<Instruction>>) -> Result<Split> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        match &ins.inner {
            Instruction::From { alias, .. } => {
                let index = stages.len();
                let name = alias.as_ref().map(|a| a.to_ascii_lowercase());
                if let Some(n) = &name {
                    if let Some(prev) = stages
                        .iter()
                        .find(|s| s.name.as_deref() == Some(n.as_str()))
                    {
                        return Err(Error::at(
                            format!("duplicate stage name `{n}`"),
                            ins.location(),
                        )
                        .with_hint(format!(
                            "stage {} already uses this name (line {})",
                            prev.index, prev.from.line
                        )));
                    }
                    if n.parse::<usize>().is_ok() {
                        return Err(Error::at(
                            format!("invalid stage name `{n}`: it cannot be a number"),
                            ins.location(),
                        ));
                    }
                }
                let display = name.clone().unwrap_or_else(|| format!("stage-{index}"));
                stages.push(Stage {
                    name,
                    display,
                    index,
                    from: ins,
                    body: Vec::new(),
                });
            }
            Instruction::Arg(_) if stages.is_empty() => global_args.push(ins),
            _ => match stages.last_mut() {
                Some(s) => s.body.push(ins),
                None => {
                    return Err(Error::at(
                        format!("{} before the first FROM", ins.keyword()),
                        ins.location(),
                    )
                    .with_hint("only ARG may come before FROM"))
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(Error::at("no FROM instruction", Location::line(1))
            .with_hint("a Dockerfile starts with FROM, optionally after global ARGs"));
    }
    Ok(Split {
        global_args,
        stages,
    })
}

/// Find a stage by `--from` / `FROM` reference: a name (case-insensitive) or
/// an index. `Ok(None)` means "not a stage" (an image or named context).
pub fn find(
    stages: &[Stage],
    reference: &str,
    current: usize,
    at: Location,
) -> Result<Option<usize>> {
    let lower = reference.to_ascii_lowercase();
    if let Ok(i) = reference.parse::<usize>() {
        if i >= current {
            let what = if i == current {
                "the stage itself".to_string()
            } else {
                format!("stage {i}, which comes later")
            };
            return Err(
                Error::at(format!("invalid stage index {i}: it refers to {what}"), at)
                    .with_hint("--from and FROM can only refer to earlier stages"),
            );
        }
        return Ok(Some(i));
    }
    match stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        Some(i) if i < current => Ok(Some(i)),
        Some(i) if i == current => Err(Error::at(format!("stage `{lower}` refers to itself"), at)
            .with_hint("a stage cannot copy from or build on itself")),
        Some(i) => Err(Error::at(
            format!(
                "stage `{lower}` is defined later (stage {i}); a stage can only use earlier stages"
            ),
            at,
        )
        .with_hint("move the stage above this one")),
        None => Ok(None),
    }
}
