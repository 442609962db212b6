use std::collections::{BTreeMap, BTreeSet};

use super::{Env, Lexer};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(input: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    Lexer::new('\\')
        .process_word(input, &env(pairs))
        .map_err(|e| e.message)
}

fn ok(input: &str, pairs: &[(&str, &str)]) -> String {
    match word(input, pairs) {
        Ok(s) => s,
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

fn err(input: &str, pairs: &[(&str, &str)]) -> String {
    match word(input, pairs) {
        Ok(s) => panic!("{input:?} expanded to {s:?}, expected an error"),
        Err(e) => e,
    }
}

fn words(input: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    Lexer::new('\\').process_words(input, &env(pairs)).unwrap()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn env_impls() {
    let pairs = env(&[("A", "1"), ("A", "2"), ("b", "")]);
    assert_eq!(Env::get(&pairs, "A"), Some("2".to_string()));
    assert_eq!(Env::get(pairs.as_slice(), "b"), Some(String::new()));
    assert_eq!(Env::get(&pairs, "a"), None, "lookups are case-sensitive");
    let map: BTreeMap<String, String> = [("X".to_string(), "y".to_string())].into();
    assert_eq!(Env::get(&map, "X"), Some("y".to_string()));
    assert_eq!(Lexer::new('\\').process_word("$X", &map).unwrap(), "y");
}

#[test]
fn plain_variables() {
    let e = [("FOO", "bar"), ("EMPTY", "")];
    assert_eq!(ok("$FOO", &e), "bar");
    assert_eq!(ok("${FOO}x", &e), "barx");
    assert_eq!(ok("$FOO.x", &e), "bar.x");
    assert_eq!(ok("a$EMPTY-b", &e), "a-b");
    assert_eq!(ok("$NOPE", &e), "");
    assert_eq!(ok("$", &e), "$");
    assert_eq!(ok("$.", &e), "$.");
    assert_eq!(ok("a$1b", &e), "ab");
    assert_eq!(ok("$$", &e), "");
    assert_eq!(ok("${@}x", &e), "x");
}

#[test]
fn quotes_and_escapes() {
    let e = [("FOO", "bar")];
    assert_eq!(ok("'$FOO'", &e), "$FOO");
    assert_eq!(ok("\"$FOO\"", &e), "bar");
    assert_eq!(ok("\\$FOO", &e), "$FOO");
    assert_eq!(ok("\"\\$FOO\"", &e), "$FOO");
    assert_eq!(
        ok("\"a\\tb\"", &e),
        "a\\tb",
        "other escapes stay inside double quotes"
    );
    assert_eq!(ok("a\\tb", &e), "atb");
    assert_eq!(ok("\"\\\"\"", &e), "\"");
    assert_eq!(ok("x\\", &e), "x");
    assert!(err("'abc", &e).contains("matching single-quote"));
    assert!(err("\"abc", &e).contains("matching double-quote"));
    assert!(err("\"abc\\\"", &e).contains("matching double-quote"));
}

#[test]
fn default_modifiers() {
    let e = [("SET", "v"), ("EMPTY", "")];
    assert_eq!(ok("${SET:-d}", &e), "v");
    assert_eq!(ok("${EMPTY:-d}", &e), "d");
    assert_eq!(ok("${UNSET:-d}", &e), "d");
    assert_eq!(ok("${SET-d}", &e), "v");
    assert_eq!(ok("${EMPTY-d}", &e), "");
    assert_eq!(ok("${UNSET-d}", &e), "d");
    assert_eq!(ok("${UNSET:-$SET}", &e), "v");
    assert_eq!(ok("${UNSET:-\"a b\"}", &e), "a b");
    assert_eq!(ok("${UNSET:-'}'}", &e), "}");
    assert_eq!(ok("${UNSET:-\\}}", &e), "}");
}

#[test]
fn alternative_modifiers() {
    let e = [("SET", "v"), ("EMPTY", "")];
    assert_eq!(ok("${SET:+a}", &e), "a");
    assert_eq!(ok("${EMPTY:+a}", &e), "");
    assert_eq!(ok("${UNSET:+a}", &e), "");
    assert_eq!(ok("${SET+a}", &e), "a");
    assert_eq!(ok("${EMPTY+a}", &e), "a");
    assert_eq!(ok("${UNSET+a}", &e), "");
}

#[test]
fn required_modifiers() {
    let e = [("SET", "v"), ("EMPTY", ""), ("ARG", "x")];
    assert_eq!(ok("${SET:?m}", &e), "v");
    assert_eq!(ok("${SET?m}", &e), "v");
    assert_eq!(ok("${EMPTY?m}", &e), "");
    assert_eq!(
        err("${EMPTY:?}", &e),
        "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"
    );
    assert_eq!(
        err("${UNSET:?}", &e),
        "failed to process \"${UNSET:?}\": UNSET: is not allowed to be unset"
    );
    assert_eq!(
        err("${UNSET?}", &e),
        "failed to process \"${UNSET?}\": UNSET: is not allowed to be unset"
    );
    assert_eq!(
        err("${UNSET?message here$ARG}", &e),
        "failed to process \"${UNSET?message here$ARG}\": UNSET: message herex"
    );
    assert!(err("${EMPTY:?message here$ARG}", &e).ends_with("EMPTY: message herex"));
}

#[test]
fn prefix_modifiers() {
    let e = [("FOO", "xxyy"), ("X", "x"), ("P", "#*x")];
    assert_eq!(ok("${FOO#x}", &e), "xyy");
    assert_eq!(ok("${FOO##*x}", &e), "yy");
    assert_eq!(ok("${FOO#*x}", &e), "xyy");
    assert_eq!(ok("${FOO#*x*y}", &e), "y");
    assert_eq!(ok("${FOO#*}", &e), "xxyy");
    assert_eq!(ok("${FOO#}", &e), "xxyy");
    assert_eq!(ok("${FOO##}", &e), "xxyy");
    assert_eq!(ok("${FOO#$X}", &e), "xyy");
    assert_eq!(
        ok("${FOO#$P}", &e),
        "yy",
        "an expanded leading # makes it greedy"
    );
    assert_eq!(ok("${FOO#y}", &e), "xxyy");
    assert_eq!(ok("${FOO#?\\?}", &[("FOO", "???y")]), "?y");
    assert_eq!(
        ok(
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")]
        ),
        "x"
    );
    assert!(err("${FOO:#x}", &e).contains("unsupported modifier (:#) in substitution"));
    assert!(err("${FOO:##x}", &e).contains("unsupported modifier (:#)"));
    assert!(err("${FOO#\\x}", &e)
        .contains("invalid pattern (\\x) in substitution: invalid escape '\\x'"));
}

#[test]
fn suffix_modifiers() {
    let e = [("FOO", "xxyy")];
    assert_eq!(ok("${FOO%y}", &e), "xxy");
    assert_eq!(ok("${FOO%%y*}", &e), "xx");
    assert_eq!(ok("${FOO%y*}", &e), "xxy");
    assert_eq!(ok("${FOO%x}", &e), "xxyy");
    assert_eq!(ok("${FOO%}", &e), "xxyy");
    assert_eq!(ok("${FOO%%\\**}", &[("FOO", "xx**")]), "xx");
    assert_eq!(ok("${FOO%%\\**\\*}", &[("FOO", "a***yy*")]), "a");
    assert_eq!(ok("${FOO%.*}", &[("FOO", "a.tar.gz")]), "a.tar");
    assert_eq!(ok("${FOO%%.*}", &[("FOO", "a.tar.gz")]), "a");
    assert_eq!(ok("${FOO%🖖*}", &[("FOO", "👽🖖🚀🖖x")]), "👽🖖🚀");
    assert!(err("${FOO:%x}", &e).contains("unsupported modifier (:%)"));
}

#[test]
fn replace_modifiers() {
    let e = [("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")];
    assert_eq!(ok("${FOO/$NEEDLE/}", &e), "/tmp/bar.txt");
    assert_eq!(ok("${FOO//$NEEDLE/}", &e), "/bar.txt");
    assert_eq!(ok("${FOO/tmp/x}", &e), "/x/tmp/bar.txt");
    assert_eq!(ok("${FOO//tmp/x}", &e), "/x/x/bar.txt");
    assert_eq!(ok("${FOO//\\//\\/}", &[("FOO", "/a/b")]), "\\/a\\/b");
    assert_eq!(ok("${FOO/*/x}", &[("FOO", "abc")]), "x");
    assert_eq!(ok("${FOO/?/x}", &[("FOO", "abc")]), "xbc");
    assert_eq!(ok("${FOO//?/x}", &[("FOO", "abc")]), "xxx");
    assert_eq!(
        ok("${FOO/$EMPTY/ww}", &[("FOO", "xxyy"), ("EMPTY", "")]),
        "wwxxyy"
    );
    assert_eq!(ok("${FOO///}", &[("FOO", "xxyy")]), "xxyy");
    assert_eq!(ok("${UNSET///}", &[]), "");
    assert_eq!(
        ok("${FOO//b/$R}", &[("FOO", "abcb"), ("R", "[$0]")]),
        "a[b]c[b]",
        "$0 is the match"
    );
    assert_eq!(
        ok("${FOO/b/$R}", &[("FOO", "abcb"), ("R", "[$0]")]),
        "a[$0]cb"
    );
    assert_eq!(ok("${FOO//b/\\$0}", &[("FOO", "abcb")]), "a\\bc\\b");
    assert!(err("${FOO//ww}", &[("FOO", "x")]).ends_with("syntax error: missing '/' in ${}"));
    assert!(err("${FOO//}", &[("FOO", "x")]).ends_with("syntax error: missing '/' in ${}"));
    assert!(err("${FOO/a/b", &[("FOO", "x")]).ends_with("syntax error: missing '}'"));
}

#[test]
fn nested_defaults() {
    let e = [("PWD", "/home"), ("SHELL", "bash")];
    assert_eq!(ok("he${XXX:-${PWD:-yyy}}xx", &e), "he/homexx");
    assert_eq!(ok("he${XXX:-${YYY:-yyy}}xx", &e), "heyyyxx");
    assert_eq!(ok("he${PWD:+${SHELL}}xx", &e), "hebashxx");
    assert_eq!(ok("he${PWD:+${PWD}:}xx", &e), "he/home:xx");
    assert_eq!(
        ok(
            "something-${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[
                ("TARGETOS", "linux"),
                ("TARGETARCH", "arm"),
                ("TARGETVARIANT", "v7")
            ]
        ),
        "something-linux-arm-v7.tar.gz"
    );
    // the error of an inner expansion wins unless the input ended
    assert!(err("${a:-${b:?x}}", &[]).ends_with("b: x"));
    assert!(err("${a:-${b:?x}", &[]).ends_with("syntax error: missing '}'"));
}

#[test]
fn deep_nesting_is_iterative() {
    let depth = 50_000;
    let input = format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
    assert_eq!(ok(&input, &[]), "x");
    let unterminated = "${A:-".repeat(depth);
    assert!(err(&unterminated, &[]).ends_with("syntax error: missing '}'"));
}

#[test]
fn syntax_errors() {
    let e = [];
    for (input, message) in [
        ("${}", "syntax error: bad substitution"),
        ("${:}", "syntax error: bad substitution"),
        ("${{a}", "syntax error: bad substitution"),
        ("${", "syntax error: missing '}'"),
        ("${a", "unsupported modifier (\u{FFFD}) in substitution"),
        ("${a:", "syntax error: missing '}'"),
        ("${a:-b", "syntax error: missing '}'"),
        ("${a:x}", "unsupported modifier (:x) in substitution"),
        ("${a=x}", "unsupported modifier (=) in substitution"),
        ("${a:=x}", "unsupported modifier (:=) in substitution"),
        ("${.}", "unsupported modifier (.) in substitution"),
    ] {
        let got = err(input, &e);
        let quoted = super::quote::go_quote(input);
        assert_eq!(
            got,
            format!("failed to process {quoted}: {message}"),
            "input {input:?}"
        );
    }
}

#[test]
fn matches_are_reported() {
    let lexer = Lexer::new('\\');
    let e = env(&[("FOO", "xxx"), ("BAR", "")]);
    let (out, found, missing) = lexer
        .process_word_with_matches("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &e)
        .unwrap();
    assert_eq!(out, "xxx  ccc");
    assert_eq!(found, set(&["BAR", "FOO"]));
    assert_eq!(missing, set(&["BAZ"]));
    let (out, found, missing) = lexer.process_word_with_matches("x", &e).unwrap();
    assert_eq!((out.as_str(), found.len(), missing.len()), ("x", 0, 0));
    let (_, found, missing) = lexer.process_word_with_matches("${FOO#$BAR}", &e).unwrap();
    assert_eq!(found, set(&["BAR", "FOO"]));
    assert!(missing.is_empty());
}

#[test]
fn word_splitting() {
    let e = [("space", "abc  def"), ("leading", "  ab c")];
    assert_eq!(words("hello${space}bye", &e), ["helloabc", "defbye"]);
    assert_eq!(words("hello\"${space}\"bye", &e), ["helloabc  defbye"]);
    assert_eq!(words("hello${leading}def", &e), ["hello", "ab", "cdef"]);
    assert_eq!(words("a  'b c'  d", &e), ["a", "b c", "d"]);
    assert_eq!(words("a\\ b", &e), ["a b"]);
    assert_eq!(words("COPY <<EOF  /dst", &e), ["COPY", "<<EOF", "/dst"]);
    assert_eq!(words("a << EOF", &e), ["a", "<< EOF"]);
    assert!(words("", &e).is_empty());
    assert!(words("   ", &e).is_empty());
}

#[test]
fn word_splitting_shared_buffer_quirk() {
    // BuildKit drops the unfinished word in front of a `${X<op>...}`.
    assert_eq!(words("x${A:-b}c", &[]), ["bc"]);
    assert_eq!(words("p q${A:-b}", &[]), ["p", "b"]);
    assert_eq!(words("x${A}c", &[]), ["xc"]);
    // process_word is not affected
    assert_eq!(ok("x${A:-b}c", &[]), "xbc");
}

#[test]
fn backtick_escape() {
    let lexer = Lexer::new('`');
    let e = env(&[("FOO", "bar"), ("V", "a*b")]);
    let w = |s: &str| lexer.process_word(s, &e).map_err(|e| e.message);
    assert_eq!(w("`$FOO").unwrap(), "$FOO");
    assert_eq!(w("C:\\path\\$FOO").unwrap(), "C:\\path\\bar");
    assert_eq!(w("\"`\"q`\"\"").unwrap(), "\"q\"");
    assert_eq!(w("\"a``b\"").unwrap(), "a`b");
    assert_eq!(w("\"a`xb\"").unwrap(), "a`xb");
    assert_eq!(w("a``b").unwrap(), "a`b");
    assert_eq!(w("``").unwrap(), "`");
    assert_eq!(w("x`").unwrap(), "x");
    assert_eq!(w("${UNSET:-`}}").unwrap(), "}");
    // patterns keep the escape character, and only `\` escapes inside them
    assert_eq!(w("${V#a\\*}").unwrap(), "b");
    assert_eq!(w("${V#a`*}").unwrap(), "a*b");
    assert_eq!(w("${V#*\\*}").unwrap(), "b");
    assert_eq!(lexer.process_words("a` b c", &e).unwrap(), ["a b", "c"]);
}

#[test]
fn options() {
    let e = env(&[("SET", "v")]);
    let raw = Lexer::new('\\').with_raw_quotes(true);
    assert_eq!(raw.process_word("'a'\"b\"", &e).unwrap(), "'a'\"b\"");
    let raw_esc = Lexer::new('\\').with_raw_escapes(true);
    assert_eq!(raw_esc.process_word("a\\ b", &e).unwrap(), "a\\ b");
    let skip = Lexer::new('\\').with_skip_unset_env(true);
    assert_eq!(
        skip.process_word("$SET $NO ${NO} ${NO:-x} ${NO//a/b}", &e)
            .unwrap(),
        "v $NO ${NO} ${NO:-x} ${NO/a/b}"
    );
    let no_quotes = Lexer::new('\\').with_skip_process_quotes(true);
    assert_eq!(no_quotes.process_word("'$SET'", &e).unwrap(), "'v'");
}

#[test]
fn unicode_names() {
    let e = [("KOREAN", "한국어"), ("é", "e-acute"), ("A", "a")];
    assert_eq!(ok("$KOREAN", &e), "한국어");
    assert_eq!(ok("$é!", &e), "e-acute!");
    // a superscript two is not a decimal digit, so it ends the name
    assert_eq!(ok("$A²", &e), "a²");
    // an Arabic-Indic digit starts a positional parameter
    assert_eq!(ok("$٣x", &e), "x");
}

#[test]
fn hostile_inputs_terminate() {
    let big = "a".repeat(2000);
    let e = [("A", big.as_str())];
    // quadratic-then-cubic growth is cut off by the work limit
    let bomb = "${A//?/${A//?/${A//?/$A}}}";
    assert!(err(bomb, &e).contains("work limit"));
    // a pathological pattern against a long value is linear per position
    let pattern = format!("${{A#{}b}}", "*a".repeat(200));
    assert_eq!(ok(&pattern, &e), big);
}
