//! Bad input gives a located error, a hint where one helps, exit code 2
//! (usage or input error) and no panic. Every `tests/errors/*.Dockerfile` is planned with `engine graph`
//! and its stderr compared with a snapshot.

use std::path::Path;
use std::process::Command;

fn engine() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    c.env("NO_COLOR", "1");
    c
}

#[test]
fn bad_dockerfiles_give_located_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".Dockerfile")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10);
    for name in names {
        let file = dir.join(format!("{name}.Dockerfile"));
        let out = engine()
            .arg("graph")
            .arg("-f")
            .arg(&file)
            .arg(&dir)
            .output()
            .unwrap();
        let stderr =
            String::from_utf8_lossy(&out.stderr).replace(&dir.display().to_string(), "[DIR]");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: expected exit code 2, stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        assert!(out.stdout.is_empty(), "{name}: no graph on error");
        insta::assert_snapshot!(name.clone(), stderr);
    }
}

#[test]
fn errors_point_at_line_and_column() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let out = engine()
        .args(["graph", "-f"])
        .arg(dir.join("unknown-instruction.Dockerfile"))
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown-instruction.Dockerfile:3:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CPY a b"),
        "the source line is shown: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("copy"),
        "a did-you-mean hint: {stderr}"
    );
}

#[test]
fn missing_dockerfile_and_unknown_target_are_clear() {
    let t = tempfile::tempdir().unwrap();
    let out = engine().arg("graph").arg(t.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    std::fs::write(
        t.path().join("Dockerfile"),
        "FROM scratch AS a\nFROM scratch AS b\n",
    )
    .unwrap();
    let out = engine()
        .args(["graph", "--target", "c"])
        .arg(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("target stage `c` could not be found") && err.contains("a, b"),
        "{err}"
    );
}

#[test]
fn a_huge_line_is_located_without_printing_it_whole() {
    // A 10 MB RUN line: a located error, exit 2, and stderr shows the
    // start of the line and its length, not 10 MB.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("FROM scratch\nRUN echo ");
    text.push_str(&"a".repeat(10_000_000));
    text.push('\n');
    std::fs::write(dir.path().join("Dockerfile"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["build", "--progress", "quiet"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        &stderr[..stderr.len().min(400)]
    );
    assert!(stderr.len() < 2000, "stderr is {} bytes", stderr.len());
    assert!(stderr.contains("Dockerfile:2:1"), "{stderr}");
    assert!(stderr.contains("(10000009 characters)"), "{stderr}");
}
