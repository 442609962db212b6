//! Word expansion with both escape tokens, against an environment that the
//! input also controls. Nothing may panic or hang.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // First line: NAME=VALUE pairs separated by `;`, the rest: the word.
    let (env_line, word) = text.split_once('\n').unwrap_or(("", text));
    let env: BTreeMap<String, String> = env_line
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for escape in ['\\', '`'] {
        let lexer = engine_dockerfile::shell::Lexer::new(escape);
        let _ = lexer.process_word(word, &env);
        let _ = lexer.process_words(word, &env);
    }
});
