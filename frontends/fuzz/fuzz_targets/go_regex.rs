//! The `.dockerignore` matcher's own Go-regexp engine against the `regex`
//! crate, on the subset of syntax where Go's and Rust's semantics agree
//! (ASCII literals, `.`, simple classes, groups, alternation, `*` `+` `?`,
//! bounded repetition, anchors): for an expression both accept, both say
//! the same about whether each text matches.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Map each input byte to a token of the common subset.
fn expression(data: &[u8]) -> String {
    const TOKENS: &[&str] = &[
        "a", "b", "c", "/", ".", "x", "-", "_", "*", "+", "?", "|", "(", ")", "^", "$",
        "[ab]", "[^a]", "[a-c]", "[/.]", "{2}", "{1,3}", "(?:", "\\.", "\\*", "a*?",
    ];
    data.iter().map(|b| TOKENS[*b as usize % TOKENS.len()]).collect()
}

fuzz_target!(|data: &[u8]| {
    let (expr, texts) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"ab/c.x"[..]),
    };
    if expr.len() > 64 {
        return;
    }
    let expr = expression(expr);
    let ours = engine_ir::ignore::regex::compile(&expr);
    // A small size limit: nested counted repetitions (`.{1,3}{1,3}…`) make
    // the regex crate spend seconds under the fuzzer's instrumentation
    // before refusing; ours refuses them at once.
    let theirs = regex::RegexBuilder::new(&expr).size_limit(1 << 20).build();
    let (Ok(ours), Ok(theirs)) = (ours, theirs) else {
        return;
    };
    let texts = String::from_utf8_lossy(texts);
    for text in texts.split('\n').take(16) {
        assert_eq!(
            ours.is_match(text),
            theirs.is_match(text),
            "expression {expr:?} on {text:?}"
        );
    }
});
