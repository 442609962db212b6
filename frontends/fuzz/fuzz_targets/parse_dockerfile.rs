//! Any bytes through the whole Dockerfile frontend: parse, dump, typed
//! instructions, lowering. Nothing may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ast) = engine_dockerfile::parser::parse(text) {
        let _ = engine_dockerfile::parser::dump(&ast);
        let _ = engine_dockerfile::instructions::parse_all(&ast);
    }
    let resolver = engine_ir::NoResolver;
    let opts = engine_dockerfile::lower::PlanOptions::new(&resolver);
    let _ = engine_dockerfile::lower::plan(text, &opts);
});
