//! OTLP `AnyValue`s as JSON, and the cutting of text and payloads to their limits.
//!
//! Attribute objects are serialized straight from the OTLP values (`AnyJson`, `Object`), with
//! no `serde_json::Value` in between: the text is the one `serde_json` gives for the equivalent
//! `Value` (keys in byte order, as its `BTreeMap` keeps them; numbers and escapes by the same
//! serializer), byte for byte. `to_json` and `object` are that equivalent, kept for the tests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde::ser::{Serialize, SerializeMap, Serializer};
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
#[cfg(test)]
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

#[cfg(test)]
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
#[cfg(test)]
pub(super) fn object(kvs: &[KeyValue]) -> Map<String, Json> {
    let mut out = Map::new();
    for kv in kvs {
        if !out.contains_key(&kv.key) {
            out.insert(kv.key.clone(), to_json(inner(kv)));
        }
    }
    out
}

/// An `AnyValue` serialized as `to_json` converts it.
pub(super) struct AnyJson<'a>(pub Option<&'a Any>);

impl Serialize for AnyJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None | Some(Any::StringValueStrindex(_)) => s.serialize_unit(),
            Some(Any::StringValue(v)) => s.serialize_str(v),
            Some(Any::BoolValue(b)) => s.serialize_bool(*b),
            Some(Any::IntValue(i)) if i.unsigned_abs() <= MAX_EXACT_INT as u64 => {
                s.serialize_i64(*i)
            }
            Some(Any::IntValue(i)) => s.collect_str(i),
            // `serde_json::Number::from_f64` refuses exactly the non-finite doubles.
            Some(Any::DoubleValue(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(Any::DoubleValue(d)) if d.is_nan() => s.serialize_str("NaN"),
            Some(Any::DoubleValue(d)) if *d > 0.0 => s.serialize_str("Infinity"),
            Some(Any::DoubleValue(_)) => s.serialize_str("-Infinity"),
            Some(Any::BytesValue(b)) => s.serialize_str(&STANDARD.encode(b)),
            Some(Any::ArrayValue(a)) => {
                s.collect_seq(a.values.iter().map(|x| AnyJson(x.value.as_ref())))
            }
            Some(Any::KvlistValue(kvs)) => Object::of_kvs(&kvs.values).serialize(s),
        }
    }
}

/// One value of an `Object`.
pub(super) enum Field<'a> {
    Any(Option<&'a Any>),
    Str(&'a str),
    /// Key-value pairs as an object (`object`).
    Kvs(&'a [KeyValue]),
    /// A span's events as `[{name, time, attributes}]`.
    Events(&'a [Event]),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Any(v) => AnyJson(*v).serialize(s),
            Field::Str(v) => s.serialize_str(v),
            Field::Kvs(kvs) => Object::of_kvs(kvs).serialize(s),
            Field::Events(events) => s.collect_seq(events.iter().map(EventJson)),
        }
    }
}

/// A JSON object: its entries in key order, the first of each key kept, as a `Map` built by
/// `object` holds them.
pub(super) struct Object<'a>(Vec<(&'a str, Field<'a>)>);

impl<'a> Object<'a> {
    pub(super) fn new(mut entries: Vec<(&'a str, Field<'a>)>) -> Object<'a> {
        // A stable sort keeps repeated keys in arrival order; `dedup_by` then drops the later.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Object(entries)
    }

    pub(super) fn of_kvs(kvs: &'a [KeyValue]) -> Object<'a> {
        Object::new(
            kvs.iter()
                .map(|kv| (kv.key.as_str(), Field::Any(inner(kv))))
                .collect(),
        )
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One event as `{"attributes", "name", "time"}` (in that order: the keys' byte order), the
/// time in RFC 3339 UTC with milliseconds.
struct EventJson<'a>(&'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let time = crate::time::Timestamp::from_millis_unchecked(super::millis(e.time_unix_nano));
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("attributes", &Object::of_kvs(&e.attributes))?;
        m.serialize_entry("name", &e.name)?;
        m.serialize_entry("time", &time.to_string())?;
        m.end()
    }
}

/// Compact JSON text of a value serialized straight to text, into a buffer of about
/// `size_hint` bytes (payloads are hundreds of bytes; growing from empty copies them several
/// times). The serializers here write only string keys and finite numbers, and serde_json
/// writes UTF-8, so this cannot fail; the empty fallback only keeps this path free of panics.
pub(super) fn compact_of(v: &impl Serialize, size_hint: usize) -> String {
    let mut out = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut out, v) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The text itself when it is at most `max` bytes, else the text of the marker that keeps its
/// size and the start of its text: `{"bytes": N, "prefix": "…", "truncated": true}`.
pub(super) fn limit_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    compact(&Json::Object(marker(&text)))
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
