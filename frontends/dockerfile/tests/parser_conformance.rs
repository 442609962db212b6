//! Conformance of the parser with BuildKit's own parser test data
//! (`shared/conformance/buildkit-dockerfile/parser/`), plus BuildKit's
//! heredoc, line-number, warning and scanner-limit cases as table tests.
//!
//! The data folder is `<workspace>/../shared/conformance`, or the folder
//! named by `ENGINE_CONFORMANCE_DIR`. When it is missing the data-driven tests
//! fail, unless `ENGINE_SKIP_CONFORMANCE=1`.

use std::fs;
use std::path::{Path, PathBuf};

use engine_dockerfile::parser::{self, dump, parse, Heredoc};

#[path = "../../../tests/src/conformance.rs"]
mod conformance;

/// The parser data folder (see `tests/src/conformance.rs` for when it may be
/// missing).
fn parser_data() -> Option<PathBuf> {
    conformance::path("buildkit-dockerfile/parser")
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read_text(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|_| panic!("{} is not UTF-8", path.display()))
}

#[test]
fn testfiles_dump_like_buildkit() {
    let Some(data) = parser_data() else { return };
    let cases = case_dirs(&data.join("testfiles"));
    assert!(!cases.is_empty(), "no test cases under {}", data.display());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let src = read_text(&case.join("Dockerfile"));
        let want = read_text(&case.join("result"));
        match parse(&src) {
            Ok(ast) => {
                let got = dump(&ast) + "\n";
                if got != want {
                    failures.push(format!(
                        "{name}: dump differs\n--- want\n{want}--- got\n{got}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: unexpected error: {e}")),
        }
    }
    println!(
        "{} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_testfiles_are_rejected() {
    let Some(data) = parser_data() else { return };
    let cases = case_dirs(&data.join("testfiles-negative"));
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let src = read_text(&case.join("Dockerfile"));
        if let Ok(ast) = parse(&src) {
            failures.push(format!("{name}: parsed without error:\n{}", dump(&ast)));
        }
    }
    println!(
        "{} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn testfile_line_numbers() {
    let Some(data) = parser_data() else { return };
    let src = read_text(&data.join("testfile-line/Dockerfile"));
    let ast = parse(&src).expect("testfile-line parses");
    let got: Vec<(usize, usize)> = ast
        .children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(got, vec![(5, 5), (11, 12), (17, 31)]);
    assert_eq!(ast.children.first().map(|n| n.start_line), Some(5));
    assert_eq!(ast.children.last().map(|n| n.end_line), Some(31));
}

fn doc(name: &str, content: &str, expand: bool, chomp: bool, fd: u64) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
        file_descriptor: fd,
    }
}

#[test]
fn heredocs_are_extracted() {
    let src = r#"
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
	foo
	bar
INDENT

RUN <<-UNINDENT
	baz
	quux
UNINDENT

RUN <<-UNINDENT2
	baz
	quux
	UNINDENT2

RUN <<-EXPAND
	expand $NAME
EXPAND

RUN <<-'NOEXPAND'
	don't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\'f
echo foo
eo'f

RUN <<'e'o\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
	"#;
    let expected: Vec<Vec<Heredoc>> = vec![
        vec![], // ENV NAME=me
        vec![], // RUN ls
        vec![], // USER <<INVALID
        vec![], // INVALID
        vec![doc("EMPTY", "", true, false, 0)],
        vec![doc("EMPTY2", "", true, false, 3)],
        vec![], // RUN "<<NOHEREDOC"
        vec![doc("INDENT", "\tfoo\n\tbar\n", true, false, 0)],
        vec![doc("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)],
        vec![doc("UNINDENT2", "\tbaz\n\tquux\n", true, true, 0)],
        vec![doc("EXPAND", "\texpand $NAME\n", true, true, 0)],
        vec![doc("NOEXPAND", "\tdon't expand $NAME\n", false, true, 0)],
        vec![doc(
            "COPY",
            "echo hello world\necho foo bar\n",
            true,
            false,
            0,
        )],
        vec![doc(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
            0,
        )],
        vec![doc("MOUNT", "echo hello\n", true, false, 0)],
        vec![
            doc("FILE1", "content 1\n", true, false, 0),
            doc("FILE2", "content 2\n", true, false, 0),
        ],
        vec![doc("EOF", "\"foo\"\n'bar'\n", true, false, 0)],
        vec![
            doc("X", "Y\n", true, false, 0),
            doc("Y", "X\n", true, false, 0),
        ],
        vec![doc("COMPLEX", "print('hello world')\n", true, false, 0)],
        vec![doc("file.txt", "hello world\n", true, false, 0)],
        vec![doc("eof", "echo foo\n", false, false, 0)],
        vec![doc("eo'f", "echo foo\n", true, false, 0)],
        vec![doc("eo'f", "echo foo\n", false, false, 0)],
        vec![doc("one two", "echo bar\n", false, false, 0)],
        vec![doc("$EOF", "", true, false, 0)],
        vec![doc("EOF", "", true, false, 0)],
        vec![doc("EOF", "", true, false, 0)],
    ];
    let ast = parse(src).expect("parses");
    assert_eq!(ast.children.len(), expected.len() + 1);
    for (i, want) in expected.iter().enumerate() {
        let node = &ast.children[i + 1];
        assert_eq!(
            &node.heredocs,
            want,
            "instruction {} ({})",
            i + 1,
            node.original
        );
    }
}

#[test]
fn json_form_has_no_heredocs() {
    let ast =
        parse("\nFROM alpine:3.6\n\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n\t")
            .unwrap();
    for node in &ast.children[1..] {
        assert!(node.heredocs.is_empty(), "{}", node.original);
    }
}

#[test]
fn heredoc_helpers() {
    for src in [
        "<<EOF",
        "<<'EOF'",
        "<<\"EOF\"",
        "<<-EOF",
        "<<-'EOF'",
        "<<-\"EOF\"",
        "<<EO\"F\"",
        "<< EOF",
        "<<- EOF",
    ] {
        let h = parser::parse_heredoc(src)
            .unwrap()
            .unwrap_or_else(|| panic!("{src} is a heredoc"));
        assert_eq!(h.name, "EOF", "{src}");
    }
    for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
        assert!(
            parser::parse_heredoc(src).is_err(),
            "{src} should be an error"
        );
    }
    for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
        assert_eq!(parser::parse_heredoc(src).unwrap(), None, "{src}");
    }
    assert_eq!(
        parser::chomp_heredoc_content("\thello\n\tworld\n"),
        "hello\nworld\n"
    );
}

#[test]
fn heredocs_from_line() {
    let cases: &[(&str, &[&str])] = &[
        ("RUN <<EOF", &["EOF"]),
        ("RUN <<-EOF", &["EOF"]),
        ("RUN << -EOF", &["-EOF"]),
        ("RUN <<'EOF'", &["EOF"]),
        ("RUN 4<<EOF", &["EOF"]),
        ("RUN <<EOF <<EOF2", &["EOF", "EOF2"]),
        ("RUN '<<EOF'", &[]),
        ("RUN \"<<EOF\"", &[]),
        // BuildKit's lexer splits `<<-` and `EOF` here: no heredoc.
        ("RUN <<- EOF", &[]),
    ];
    for (line, want) in cases {
        let got: Vec<String> = parser::heredocs_from_line(line)
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(&got, want, "{line}");
    }
}

#[test]
fn heredoc_edge_cases() {
    // Unterminated body.
    let err = parse("FROM a\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(err.message, "unterminated heredoc");
    assert_eq!(err.location.map(|l| l.line), Some(2));
    // Heredocs on ONBUILD triggers; lines counted through the body.
    let ast = parse("FROM a\nONBUILD RUN <<EOF\nx\nEOF\nRUN y\n").unwrap();
    assert_eq!(
        ast.children[1].heredocs,
        vec![doc("EOF", "x\n", true, false, 0)]
    );
    assert_eq!(
        (ast.children[1].start_line, ast.children[1].end_line),
        (2, 4)
    );
    assert_eq!(ast.children[2].start_line, 5);
    // Only RUN, COPY and ADD look for heredocs.
    let ast = parse("FROM a\nCMD <<EOF\nEOF\n").unwrap();
    assert_eq!(ast.children.len(), 3);
    // CRLF bodies keep their line endings; the terminator matches without them.
    let ast = parse("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\n").unwrap();
    assert_eq!(ast.children[1].heredocs[0].content, "x\r\n");
    // `<<-` also strips tabs before the terminator.
    let ast = parse("FROM a\nRUN <<-EOF\n\tx\n\t\tEOF\n").unwrap();
    assert_eq!(ast.children[1].heredocs[0].content, "\tx\n");
}

#[test]
fn warns_on_empty_continuation_lines() {
    let src = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
    let ast = parse(src).unwrap();
    assert_eq!(ast.warnings.len(), 2);
    assert!(ast.warnings[0]
        .message
        .contains("empty continuation line found in"));
    assert!(ast.warnings[0]
        .message
        .contains("RUN something     following     more"));
    assert!(ast.warnings[1].message.contains("RUN another     thing"));
    assert_eq!(ast.warnings[0].line, 11);
}

#[test]
fn overlong_lines_are_rejected() {
    let label = "a".repeat(64 * 1024);
    let src = format!("\n\t\tFROM image\n\t\tLABEL test={label}\n");
    let err = parse(&src).unwrap_err();
    assert_eq!(
        err.message,
        "dockerfile line greater than max allowed size of 65535"
    );
    // Just under the limit is fine.
    let label = "a".repeat(64 * 1024 - "LABEL test=\n".len());
    assert!(parse(&format!("FROM image\nLABEL test={label}\n")).is_ok());
}

#[test]
fn oversized_files_are_rejected() {
    let src = "#\n".repeat(parser::MAX_DOCKERFILE_SIZE / 2 + 1);
    let err = parse(&src).unwrap_err();
    assert!(err.message.contains("too large"), "{}", err.message);
}

#[test]
fn directives() {
    let ast = parse(
        "# syntax=docker/dockerfile:1\n# ESCAPE = `\n# check=skip=all\nFROM a\nRUN a `\n  b\n",
    )
    .unwrap();
    assert_eq!(ast.escape, '`');
    assert_eq!(
        ast.directives.syntax.as_ref().map(|d| d.value.as_str()),
        Some("docker/dockerfile:1")
    );
    assert_eq!(
        ast.directives
            .escape
            .as_ref()
            .map(|d| (d.value.as_str(), d.line)),
        Some(("`", 2))
    );
    assert_eq!(
        ast.directives.check.as_ref().map(|d| d.value.as_str()),
        Some("skip=all")
    );
    assert_eq!(dump(&ast), "(from \"a\")\n(run \"a   b\")");

    // Repeated directives are an error; unknown ones end directive scanning.
    assert_eq!(
        parse("# escape=`\n# escape=\\\nFROM a")
            .unwrap_err()
            .message,
        "only one escape parser directive can be used"
    );
    assert_eq!(parse("# foo=bar\n# escape=`\nFROM a").unwrap().escape, '\\');
    assert_eq!(parse("\n# escape=`\nFROM a").unwrap().escape, '\\');
    assert!(parse("# escape=x\nFROM a").is_err());
}

#[test]
fn line_numbers_and_columns() {
    let ast = parse("\u{feff}FROM a\n\n   RUN a \\\n  # c\n\n  b\n").unwrap();
    let got: Vec<(usize, usize, usize)> = ast
        .children
        .iter()
        .map(|n| (n.start_line, n.end_line, n.column))
        .collect();
    assert_eq!(got, vec![(1, 1, 1), (3, 6, 4)]);
    assert_eq!(ast.children[1].original, "RUN a   b");
}
