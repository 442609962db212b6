//! BuildKit's shell-lexer conformance data (`frontend/dockerfile/shell/
//! envVarTest` and `wordsTest`), run the way BuildKit's `lex_test.go` runs
//! them.
//!
//! The data lives outside the repository, in
//! `shared/conformance/buildkit-dockerfile/shell/`; `ENGINE_CONFORMANCE_DIR`
//! overrides the `conformance` directory. Without the data the tests fail,
//! unless `ENGINE_SKIP_CONFORMANCE=1`.

use engine_dockerfile::shell::Lexer;

#[path = "../../../tests/src/conformance.rs"]
mod conformance;

fn read(name: &str) -> Option<String> {
    let path = conformance::path(&format!("buildkit-dockerfile/shell/{name}"))?;
    Some(
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )
}

/// `KEY=VALUE` list as BuildKit's `EnvsFromSlice` reads it: a missing `=`
/// means an empty value.
fn env_from(entries: &[&str]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn env_var_test() {
    let Some(text) = read("envVarTest") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let env = env_from(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let (mut passed, mut skipped) = (0usize, 0usize);
    let mut failures = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        if raw.starts_with('#') {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            3,
            "line {line_no}: expected 3 fields in {line:?}"
        );
        let platform = fields[0].trim();
        let source = fields[1].trim();
        let expected = fields[2].trim();
        match platform {
            "A" | "U" => {}
            "W" => {
                skipped += 1;
                continue;
            }
            other => panic!("line {line_no}: invalid platform tag {other:?}"),
        }
        let got = lexer.process_word(source, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => expected != "error" && word == expected,
            (Err(_), _) => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "line {line_no}: {source:?} expected {expected:?}, got {got:?}"
            ));
        }
    }
    println!(
        "envVarTest: {passed} passed, {} failed, {skipped} skipped (Windows-only)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "envVarTest failures:\n{}",
        failures.join("\n")
    );
    assert!(passed > 0, "envVarTest had no cases");
}

#[test]
fn words_test() {
    let Some(text) = read("wordsTest") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut env_lines: Vec<String> = Vec::new();
    let mut passed = 0usize;
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            // BuildKit: line[3:] with leading spaces trimmed; trailing kept
            env_lines.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            2,
            "line {line_no}: expected exactly one | in {line:?}"
        );
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        let refs: Vec<&str> = env_lines.iter().map(String::as_str).collect();
        let env = env_from(&refs);
        let got = match lexer.process_words(input, &env) {
            Ok(words) => words,
            Err(_) => vec!["error".to_string()],
        };
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!(
                "line {line_no}: {input:?} expected {expected:?}, got {got:?}"
            ));
        }
    }
    println!("wordsTest: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "wordsTest failures:\n{}",
        failures.join("\n")
    );
    assert!(passed > 0, "wordsTest had no cases");
}
