//! Any text as an engine.toml spec, planned with a resolver that knows no
//! image and a file reader that finds only a small Dockerfile: nothing may
//! panic or hang; errors carry a location inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let read = |rel: &str| -> std::io::Result<String> {
        if rel.ends_with("Dockerfile") {
            Ok("FROM scratch\nCOPY . /\n".into())
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        }
    };
    let opts = engine_toml::TomlPlanOptions::new(&engine_ir::NoResolver, &read);
    if let Err(e) = engine_toml::plan(text, &opts) {
        let _ = e.to_string();
    }
});
