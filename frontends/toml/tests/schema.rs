//! The JSON Schema for editors: it is valid, and every example spec (the
//! example monorepo, the complete specs in specs/toml.md) satisfies it and
//! the frontend's own checks.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(specs_dir().join("schema/engine.schema.json"))
        .expect("schema exists");
    serde_json::from_str(&text).expect("the schema is valid JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every spec under specs/examples: the `engine.toml` files, and the
/// `.toml` files directly in specs/examples (services' own `.toml` files,
/// such as a pyproject.toml, are not specs).
fn example_files() -> Vec<PathBuf> {
    let top = specs_dir().join("examples");
    fn walk(dir: &Path, top: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, top, out);
            } else if p.file_name().is_some_and(|n| n == "engine.toml")
                || (p.parent() == Some(top) && p.extension().is_some_and(|e| e == "toml"))
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&top, &top, &mut out);
    out
}

/// The ```toml blocks of specs/toml.md that are whole specs (fragments
/// start with a `# in …` comment).
fn doc_examples() -> Vec<(usize, String)> {
    let doc = std::fs::read_to_string(specs_dir().join("toml.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```toml" => current = Some((i + 2, String::new())),
            Some(_) if line.trim_end() == "```" => {
                let (l, text) = current.take().unwrap();
                if !text.starts_with("# in ") {
                    out.push((l, text));
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn schema_is_a_valid_draft7_schema() {
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    if let Err(e) = jsonschema::meta::validate(&s) {
        panic!("the schema does not satisfy its meta-schema: {e}");
    }
}

#[test]
fn example_specs_validate() {
    let v = validator();
    let files = example_files();
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let json = engine_toml::to_json(&text, "engine.toml").unwrap();
        let errs = errors(&v, &json);
        assert!(
            errs.is_empty(),
            "{} does not satisfy the schema:\n{}",
            f.display(),
            errs.join("\n")
        );
        engine_toml::check(&text, "engine.toml", &Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn reference_examples_validate() {
    let v = validator();
    let examples = doc_examples();
    assert!(examples.len() >= 5, "found {} examples", examples.len());
    for (line, text) in examples {
        let json = engine_toml::to_json(&text, "toml.md")
            .unwrap_or_else(|e| panic!("toml.md:{line}: {e}"));
        let errs = errors(&v, &json);
        assert!(
            errs.is_empty(),
            "the example at toml.md:{line} does not satisfy the schema:\n{}",
            errs.join("\n")
        );
        if let Err(e) = engine_toml::check(&text, "toml.md", &Default::default()) {
            panic!(
                "the example at toml.md:{line} is rejected: {e} (hint: {:?})",
                e.hint
            );
        }
    }
}

#[test]
fn schema_rejects_what_the_frontend_rejects() {
    let v = validator();
    for bad in [
        "[stage.a]\nfro = \"x\"\n",
        "[stage.a]\nfrom = \"x\"\ntags = [\"t\"]\n",
        "[image.a]\nfrom = \"x\"\ntags = \"t\"\n",
        "[image.a]\nfrom = \"x\"\ndockerfile = \"Dockerfile\"\n",
        "[image.a]\nfrom = \"x\"\nsteps = [{ run = \"a\", copy = \"b\", to = \"c\" }]\n",
        "[image.a]\nfrom = \"x\"\nsteps = [{ copy = \"b\" }]\n",
        "[image.A]\nfrom = \"x\"\n",
        "[group.g]\n",
        "[vars]\ntarget = \"x\"\n",
        "[image.a]\nfrom = \"x\"\nsteps = [{ run = \"a\", mounts = [{ type = \"nfs\", target = \"/x\" }] }]\n",
        "[limits]\nallow = [\"network.host\"]\n",
        "[limits]\nmemory = \"lots\"\n",
        "[limits]\nmemory = 1024\n",
        "[limits]\npids-limit = 0\n",
        "[limits]\npids-limit = -2\n",
        "[limits]\npids-limit = \"64\"\n",
    ] {
        let json = engine_toml::to_json(bad, "bad.toml").unwrap();
        assert!(!errors(&v, &json).is_empty(), "the schema accepts:\n{bad}");
        assert!(engine_toml::check(bad, "bad.toml", &Default::default()).is_err(), "the frontend accepts:\n{bad}");
    }
}
