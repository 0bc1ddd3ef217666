//! OTLP `AnyValue`s as JSON, and the cutting of text and payloads to their limits.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{Map, Value as Json};

/// Largest integer a JSON number carries exactly in every common reader (JavaScript's
/// `Number.MAX_SAFE_INTEGER` + 1); larger int64 values become strings so no reader rounds them.
const MAX_EXACT_INT: i64 = 1 << 53;

/// The value inside a key-value pair; None for an empty `AnyValue` (or none at all).
pub(super) fn inner(kv: &KeyValue) -> Option<&Any> {
    kv.value.as_ref().and_then(|v| v.value.as_ref())
}

/// An `AnyValue` as JSON: strings, booleans and finite doubles as themselves; non-finite
/// doubles as the strings `NaN`, `Infinity`, `-Infinity`; int64 as a number when
/// `|v| <= 2^53`, else as a decimal string; bytes as standard base64 with padding; arrays as
/// arrays; kvlists as objects; an empty value as null (as is a profiling-only string-table
/// reference, which OTLP says to treat as absent in traces).
pub(super) fn to_json(v: Option<&Any>) -> Json {
    match v {
        None | Some(Any::StringValueStrindex(_)) => Json::Null,
        Some(Any::StringValue(s)) => Json::String(s.clone()),
        Some(Any::BoolValue(b)) => Json::Bool(*b),
        Some(Any::IntValue(i)) if i.unsigned_abs() <= MAX_EXACT_INT as u64 => Json::from(*i),
        Some(Any::IntValue(i)) => Json::String(i.to_string()),
        Some(Any::DoubleValue(d)) => double_to_json(*d),
        Some(Any::BytesValue(b)) => Json::String(STANDARD.encode(b)),
        Some(Any::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(|x| to_json(x.value.as_ref())).collect())
        }
        Some(Any::KvlistValue(kvs)) => Json::Object(object(&kvs.values)),
    }
}

fn double_to_json(d: f64) -> Json {
    match serde_json::Number::from_f64(d) {
        Some(n) => Json::Number(n),
        None if d.is_nan() => Json::String("NaN".into()),
        None if d > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// Key-value pairs as a JSON object. OTLP forbids repeated keys; when one repeats anyway, the
/// first wins (as it does for the mapped fields).
pub(super) fn object(kvs: &[KeyValue]) -> Map<String, Json> {
    let mut out = Map::new();
    for kv in kvs {
        if !out.contains_key(&kv.key) {
            out.insert(kv.key.clone(), to_json(inner(kv)));
        }
    }
    out
}

/// The string inside a value, if it is one.
pub(super) fn as_str(v: &Any) -> Option<&str> {
    match v {
        Any::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The longest prefix of `s` of at most `max` UTF-8 bytes that does not split a character.
pub(super) fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Text that passes the name rules: each control character replaced by a space, then cut to
/// `max_chars` characters.
pub(super) fn clean_text(s: &str, max_chars: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect()
}

/// Compact JSON text. Serializing a `serde_json::Value` cannot fail (its keys are strings and
/// its numbers finite); the empty fallback only keeps this path free of panics.
pub(super) fn compact(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The value itself when its compact JSON text is at most `max` bytes, else the marker that
/// keeps its size and the start of its text:
/// `{"truncated": true, "bytes": N, "prefix": "…"}`.
pub(super) fn limit(v: Json, max: usize) -> Json {
    let text = compact(&v);
    if text.len() <= max {
        return v;
    }
    Json::Object(marker(&text))
}

/// An attributes object within `max` bytes: itself, or the truncation marker (an object too).
pub(super) fn limit_object(m: Map<String, Json>, max: usize) -> Map<String, Json> {
    match limit(Json::Object(m), max) {
        Json::Object(m) => m,
        // `limit` returns its input or a marker object; both are objects here.
        other => marker(&compact(&other)),
    }
}

fn marker(text: &str) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("truncated".into(), Json::Bool(true));
    m.insert("bytes".into(), Json::from(text.len()));
    m.insert(
        "prefix".into(),
        Json::String(cut_bytes(text, crate::limits::TRUNCATED_PREFIX_BYTES).to_string()),
    );
    m
}
