//! Any bytes as a cache record (what the index, the journal and imported
//! caches decode): decoding may not panic, and a record that decodes
//! round-trips through its encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = engine_cache::record::Record::from_json(data) {
        let again = engine_cache::record::Record::from_json(&r.to_json())
            .expect("an encoded record decodes");
        assert_eq!(again.to_json(), r.to_json());
        let _ = r.blobs().count();
    }
});
