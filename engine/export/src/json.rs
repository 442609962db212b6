//! Canonical JSON: object keys sorted at every level, no whitespace.
//!
//! `oci_spec` keeps labels, annotations, exposed ports and volumes in
//! `HashMap`s (and turns port/volume maps into vectors in `HashMap` order),
//! so serialising its structs directly would give a different byte string,
//! and a different config digest, from run to run. Everything that is
//! hashed goes through [`to_canonical_vec`] instead.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// Serialise `value` with object keys sorted at every level.
pub fn to_canonical_vec<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    value_to_canonical_vec(&v)
}

/// Serialise a JSON value with object keys sorted at every level. Does not
/// depend on how `serde_json::Map` orders keys (`preserve_order` or not).
pub fn value_to_canonical_vec(v: &Value) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Sorted(v))
}

struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, &Sorted(v))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Sorted(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_nested_keys() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":null},"A":"s"}"#).unwrap();
        let out = String::from_utf8(value_to_canonical_vec(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"A":"s","a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#);
    }
}
