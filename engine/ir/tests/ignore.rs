//! `.dockerignore` semantics. The first tables restate cases from
//! moby/patternmatcher's and ignorefile's test suites as (pattern, path,
//! expected) facts; the rest cover Docker's walk semantics.

use engine_ir::ignore::{IgnoreError, IgnorePatterns};

fn pats(list: &[&str]) -> IgnorePatterns {
    let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    IgnorePatterns::from_patterns(&list).unwrap_or_else(|e| panic!("{list:?}: {e}"))
}

/// patternmatcher `TestMatches`: one pattern, one path.
#[test]
fn patternmatcher_single_pattern_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\*b", "a*b", true),
    ];
    let mut failures = Vec::new();
    for &(pattern, path, expected) in cases {
        if pats(&[pattern]).is_excluded(path) != expected {
            failures.push(format!(
                "pattern {pattern:?} path {path:?}: expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// patternmatcher `TestMatches` multi-pattern cases.
#[test]
fn patternmatcher_multi_pattern_table() {
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        // TestExclusionPatternMatchesPatternBefore / After, folder exclusions
        (&["*"], "fileutils.go", true),
        (&["*.go"], "fileutils.go", true),
        (&["!fileutils.go", "*.go"], "fileutils.go", true),
        (&["*.go", "!fileutils.go"], "fileutils.go", false),
        (&["docs", "!docs/README.md"], "docs/README.md", false),
        (&["docs/", "!docs/README.md"], "docs/README.md", false),
        (&["docs/*", "!docs/README.md"], "docs/README.md", false),
        (&[], "any/path/there", false),
        (&["*.go"], ".", false),
    ];
    for &(list, path, expected) in cases {
        assert_eq!(
            pats(list).is_excluded(path),
            expected,
            "patterns {list:?} path {path:?}"
        );
    }
}

/// patternmatcher `TestMatch` (Go's `filepath.Match` table as patterns).
#[test]
fn patternmatcher_filepath_table() {
    // (pattern, path, expected); None: the pattern is rejected
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(true)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[-x]", "x", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("*x", "xxx", Some(true)),
    ];
    for &(pattern, path, expected) in cases {
        let parsed = IgnorePatterns::from_patterns(&[pattern.to_string()]);
        match expected {
            None => assert!(
                matches!(parsed, Err(IgnoreError::BadPattern { .. })),
                "{pattern:?} should be rejected, got {parsed:?}"
            ),
            Some(want) => {
                let p = parsed.unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
                assert_eq!(
                    p.is_excluded(path),
                    want,
                    "pattern {pattern:?} path {path:?}"
                );
            }
        }
    }
}

/// ignorefile `TestReadAll`.
#[test]
fn ignorefile_read_all() {
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n";
    let p = IgnorePatterns::parse(content).unwrap();
    assert_eq!(
        p.patterns(),
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path"
        ]
    );
    // a bare `!` (even with spaces after it) is an illegal exclusion
    assert_eq!(
        IgnorePatterns::parse(&format!("{content}!\n! ")),
        Err(IgnoreError::IllegalExclusion)
    );
    assert_eq!(
        IgnorePatterns::parse("").unwrap().patterns(),
        [] as [String; 0]
    );
}

#[test]
fn parse_rules() {
    let p = IgnorePatterns::parse(
        "\u{feff}# comment\r\n  # not a comment  \r\n\t./src//app/../lib/  \n/\n!./keep\n\n\\#lit\n",
    )
    .unwrap();
    assert_eq!(
        p.patterns(),
        ["# not a comment", "src/lib", "/", "!keep", "\\#lit"]
    );
    assert!(p.is_excluded("# not a comment"));
    assert!(p.is_excluded("src/lib/x.rs"));
    assert!(!p.is_excluded("src/app"));
    assert!(!p.is_excluded("keep"));
    assert!(p.is_excluded("#lit"));
    // a BOM only counts on the first line
    let bom = IgnorePatterns::parse("a\n\u{feff}b").unwrap();
    assert_eq!(bom.patterns(), ["a", "\u{feff}b"]);
    // the root itself is never excluded
    assert!(!pats(&["**"]).is_excluded("."));
    assert!(!pats(&["**"]).is_excluded(""));
    assert!(pats(&["**"]).is_excluded("./a//b/"));
}

#[test]
fn invalid_patterns_are_errors() {
    for bad in [
        "[",
        "a[",
        "\\",
        "[z-a]",
        "[Local-Only]/",
        "a\\y",
        "[[:nope:]]",
    ] {
        assert!(
            matches!(
                IgnorePatterns::parse(bad),
                Err(IgnoreError::BadPattern { .. })
            ),
            "{bad:?} should be rejected"
        );
    }
    assert_eq!(
        IgnorePatterns::parse("[").unwrap_err().to_string(),
        "syntax error in pattern \"[\""
    );
    assert_eq!(
        IgnorePatterns::parse("!").unwrap_err().to_string(),
        "illegal exclusion pattern: \"!\""
    );
    // Go's filepath.Match stops looking at a pattern once a chunk cannot
    // match ".", and a trailing backslash becomes the regexp `\$` (a
    // literal dollar, so no end anchor): accepted, exactly like Docker
    let odd = IgnorePatterns::parse("a*\\").unwrap();
    assert!(odd.is_excluded("ab$"));
    assert!(odd.is_excluded("a$x"));
    assert!(!odd.is_excluded("ab"));
    let long = "a".repeat(65_536);
    assert_eq!(
        IgnorePatterns::parse(&format!("x\n{long}\n")),
        Err(IgnoreError::LineTooLong { line: 2 })
    );
    assert!(IgnorePatterns::parse(&format!("x\n{}\n", &long[1..])).is_ok());
}

#[test]
fn double_star() {
    let p = IgnorePatterns::parse("**/node_modules\nbuild/**\n**/*.log\n").unwrap();
    assert!(p.is_excluded("node_modules"));
    assert!(p.is_excluded("node_modules/x/y"));
    assert!(p.is_excluded("a/b/node_modules/pkg/index.js"));
    assert!(!p.is_excluded("a/node_modules_x"));
    assert!(
        !p.is_excluded("build"),
        "`build/**` does not match the directory itself"
    );
    assert!(p.is_excluded("build/out/a.o"));
    assert!(p.is_excluded("x.log"));
    assert!(p.is_excluded("deep/er/x.log"));
    assert!(!p.is_excluded("x.logs"));
    // `*` stays within one path element
    let star = pats(&["src/*.rs"]);
    assert!(star.is_excluded("src/a.rs"));
    assert!(!star.is_excluded("src/nested/a.rs"));
    // `**` in the middle matches zero or more elements
    let mid = pats(&["a/**/z"]);
    assert!(mid.is_excluded("a/z"));
    assert!(mid.is_excluded("a/b/c/z"));
    assert!(!mid.is_excluded("a/bz"));
}

#[test]
fn exceptions_and_order() {
    let p = IgnorePatterns::parse("*.md\n!README.md\n").unwrap();
    assert!(p.is_excluded("CHANGES.md"));
    assert!(!p.is_excluded("README.md"));
    // the last matching rule wins
    let q = IgnorePatterns::parse("!README.md\n*.md\n").unwrap();
    assert!(q.is_excluded("README.md"));
    let r = IgnorePatterns::parse("*.md\n!README*.md\nREADME-secret.md\n").unwrap();
    assert!(!r.is_excluded("README-public.md"));
    assert!(r.is_excluded("README-secret.md"));
    // leading slash means the same as no slash, only from the root
    let s = IgnorePatterns::parse("/tmp\n").unwrap();
    assert!(s.is_excluded("tmp"));
    assert!(s.is_excluded("tmp/x"));
    assert!(!s.is_excluded("src/tmp"));
}

#[test]
fn reinclusion_under_excluded_directories() {
    let p = IgnorePatterns::parse("vendor\n!vendor/keep\n").unwrap();
    assert!(p.is_excluded("vendor"));
    assert!(p.is_excluded("vendor/other/file"));
    assert!(!p.is_excluded("vendor/keep"));
    assert!(
        !p.is_excluded("vendor/keep/deep/file"),
        "children of a re-included dir are back"
    );
    assert!(p.may_reinclude_under("vendor"));
    assert!(!p.may_reinclude_under("other"));
    assert!(!p.may_reinclude_under("vendor/other"));

    // without exceptions a walker never needs to descend
    let none = IgnorePatterns::parse("vendor\n").unwrap();
    assert!(!none.may_reinclude_under("vendor"));
    assert!(!none.has_exceptions());

    // exceptions with wildcards force descending everywhere
    let wild = IgnorePatterns::parse("**\n!**/*.go\n").unwrap();
    assert!(wild.may_reinclude_under("anything"));
    assert!(wild.is_excluded("a/b.txt"));
    assert!(!wild.is_excluded("a/b.go"));

    // a trailing /** or /* does not count as a wildcard
    let trailing = IgnorePatterns::parse("docs\n!docs/api/**\n").unwrap();
    assert!(trailing.may_reinclude_under("docs"));
    assert!(trailing.may_reinclude_under("docs/api"));
    assert!(!trailing.may_reinclude_under("docs/guide"));
    assert!(!trailing.is_excluded("docs/api/index.md"));
    assert!(
        trailing.is_excluded("docs/api"),
        "`docs/api/**` does not cover the dir itself"
    );

    // an exception only applies below an excluded directory if it matches
    // the path itself (or an ancestor) — parent results are carried down
    let nested = IgnorePatterns::parse("a\n!a/b\na/b/c\n").unwrap();
    assert!(nested.is_excluded("a/x"));
    assert!(!nested.is_excluded("a/b/x"));
    assert!(nested.is_excluded("a/b/c/d"));
}

#[test]
fn regexp_quirks_are_kept() {
    // patternmatcher does not escape `|`, `{`, `}` (only in regexp mode)
    let alt = pats(&["a*|b"]);
    assert!(alt.is_excluded("ab"));
    assert!(alt.is_excluded("xb"), "`^a[^/]*|b$` is an alternation");
    let exact = pats(&["a|b"]);
    assert!(exact.is_excluded("a|b"), "no wildcard: compared literally");
    assert!(!exact.is_excluded("a"));
    let counted = pats(&["x*a{2}"]);
    assert!(counted.is_excluded("xyaa"));
    assert!(!counted.is_excluded("xya{2}"));
    // classes are Go regexp classes
    assert!(pats(&["[[:digit:]]*"]).is_excluded("1abc"));
    assert!(
        pats(&["x[^a]y"]).is_excluded("x/y"),
        "negated classes even match `/`"
    );
}

#[test]
fn copy_exclude_patterns() {
    let p = pats(&["*.tmp", "  !keep.tmp  ", "", "/abs"]);
    assert_eq!(p.patterns(), ["*.tmp", "  !keep.tmp  ", "", "/abs"]);
    assert!(p.is_excluded("a.tmp"));
    assert!(!p.is_excluded("keep.tmp"));
    // BuildKit hands --exclude patterns to the matcher without removing a
    // leading slash, so they never match relative paths
    assert!(!p.is_excluded("abs"));
}

#[test]
fn serde_round_trip() {
    let p = IgnorePatterns::parse("target\n!target/keep\n**/*.o\n").unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#"{"patterns":["target","!target/keep","**/*.o"]}"#);
    let back: IgnorePatterns = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert!(back.is_excluded("x/y.o"));
    assert!(!back.is_excluded("target/keep"));
    let bad: Result<IgnorePatterns, _> = serde_json::from_str(r#"{"patterns":["["]}"#);
    assert!(bad.is_err());
    assert_eq!(IgnorePatterns::default(), pats(&[]));
}

#[test]
fn walker_api_carries_parent_results() {
    let p = IgnorePatterns::parse("a\n!a/b\na/b/c\n").unwrap();
    let (a, a_info) = p.matches_with_parent("a", None);
    let (ab, ab_info) = p.matches_with_parent("a/b", Some(&a_info));
    let (abc, _) = p.matches_with_parent("a/b/c", Some(&ab_info));
    let (abx, _) = p.matches_with_parent("a/b/x", Some(&ab_info));
    assert_eq!((a, ab, abc, abx), (true, false, true, false));
    for path in ["a", "a/b", "a/b/c", "a/b/x", "z/a"] {
        let walked = path
            .split('/')
            .enumerate()
            .fold((false, None), |(_, parent), (i, _)| {
                let prefix: Vec<&str> = path.split('/').take(i + 1).collect();
                let (m, info) = p.matches_with_parent(&prefix.join("/"), parent.as_ref());
                (m, Some(info))
            });
        assert_eq!(walked.0, p.is_excluded(path), "{path}");
    }
    // without parent results, ancestors are matched directly
    assert!(p.matches_with_parent("a/x/y", None).0);
}

#[test]
fn hostile_patterns_are_fast() {
    let pattern = "*a".repeat(200) + "b";
    let p = pats(&[&pattern]);
    let path = "a".repeat(2000);
    let start = std::time::Instant::now();
    assert!(!p.is_excluded(&path));
    let stars = "**/".repeat(100) + "x";
    let deep = "d/".repeat(100) + "y";
    assert!(!pats(&[&stars]).is_excluded(&deep));
    assert!(start.elapsed().as_secs() < 10);
}
