//! The JSON reader of ingest bodies: `{"traces": [...]}` becomes typed inputs through their
//! `Deserialize` derives, and every malformed field is reported by index and path at once. The
//! field names are the derives' own (read from them by `fields_of`), so the JSON contract is
//! written once, on the input types; the rules themselves are the parent module's.

use super::{validate_items, Checked, Errs};
use crate::error::{Error, FieldError, Result};
use crate::limits::*;
use crate::model::{ScoreInput, SpanInput, TraceInput};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parses and validates an ingest body `{"traces": [...]}`, reporting every malformed field.
pub(crate) fn validate_json_batch(body: &[u8]) -> Result<Checked> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(Error::payload_too_large(MAX_BATCH_BYTES));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::field("body", format!("not valid JSON: {e}")))?;
    let Value::Object(mut root) = v else {
        return Err(Error::field(
            "body",
            "expected an object {\"traces\": [...]}",
        ));
    };
    let mut errors = Vec::new();
    for k in root.keys() {
        if k != "traces" {
            errors.push(FieldError::new(
                k.clone(),
                "unknown field; expected only \"traces\"",
            ));
        }
    }
    let items = match root.remove("traces") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::new("traces", "must be an array"));
            Vec::new()
        }
        None => {
            errors.push(FieldError::new("traces", "is required"));
            Vec::new()
        }
    };
    if items.len() > MAX_BATCH_TRACES {
        errors.push(FieldError::new(
            "traces",
            format!("at most {MAX_BATCH_TRACES} traces"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate().take(MAX_BATCH_TRACES) {
        let mut e = Errs {
            path: format!("traces[{i}]"),
            out: &mut errors,
        };
        if let Some(t) = json_trace(item, &mut e) {
            out.push((i, t));
        }
    }
    validate_items(out, errors)
}

/// Output-only fields a client may echo back from a GET; they are derived, so they are ignored.
const DERIVED_FIELDS: &[&str] = &[
    "durationMs",
    "totalCost",
    "totalTokens",
    "spanCount",
    "scoreCount",
    "createdAt",
];

fn json_trace(v: Value, e: &mut Errs<'_>) -> Option<TraceInput> {
    // Children are read one by one, so that each bad child is named by its index.
    let mut m = object::<TraceInput>(v, e, DERIVED_FIELDS)?;
    let spans = children::<SpanInput>(m.remove("spans"), "spans", MAX_SPANS_PER_ITEM, e);
    let scores = children::<ScoreInput>(m.remove("scores"), "scores", MAX_SCORES_PER_ITEM, e);
    let mut t: TraceInput = typed(m, e)?;
    t.spans = spans;
    t.scores = scores;
    Some(t)
}

/// The children under `field` that could be read (up to one past `max`, so that the count
/// rule still fires); each bad one is reported by its index.
fn children<T: DeserializeOwned>(
    v: Option<Value>,
    field: &str,
    max: usize,
    e: &mut Errs<'_>,
) -> Vec<T> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len().min(max + 1));
            for (j, c) in a.into_iter().enumerate().take(max + 1) {
                let mut ce = e.child(format!("{field}[{j}]"));
                if let Some(x) = object::<T>(c, &mut ce, &[]).and_then(|m| typed(m, &mut ce)) {
                    out.push(x);
                }
            }
            out
        }
        Some(_) => {
            e.push(field, "must be an array");
            Vec::new()
        }
    }
}

/// The object's fields that `T` knows; unknown fields are errors, `ignored` ones are dropped.
fn object<T: DeserializeOwned>(
    v: Value,
    e: &mut Errs<'_>,
    ignored: &[&str],
) -> Option<Map<String, Value>> {
    let Value::Object(mut m) = v else {
        e.out
            .push(FieldError::new(e.path.clone(), "must be an object"));
        return None;
    };
    let known = fields_of::<T>();
    m.retain(|k, _| {
        if known.contains(&k.as_str()) {
            return true;
        }
        if !ignored.contains(&k.as_str()) {
            e.push(
                k,
                format!("unknown field; known fields are {}", known.join(", ")),
            );
        }
        false
    });
    Some(m)
}

/// The object as `T`. A well-formed object is deserialized once. Otherwise each field is checked
/// alone against `T`'s derive, so that every bad field is named, and dropped, so that the rules
/// still run on the rest; a required field that is absent is named too.
fn typed<T: DeserializeOwned>(m: Map<String, Value>, e: &mut Errs<'_>) -> Option<T> {
    let v = Value::Object(m);
    if let Ok(t) = T::deserialize(&v) {
        return Some(t);
    }
    let Value::Object(mut m) = v else {
        unreachable!("built as an object above")
    };
    m.retain(|k, v| {
        let one = Map::from_iter([(k.clone(), v.clone())]);
        match T::deserialize(Value::Object(one)) {
            // Checked alone, a field cannot supply the others; only its own errors count.
            Err(err) if !err.to_string().starts_with("missing field") => {
                e.push(k, err.to_string());
                false
            }
            _ => true,
        }
    });
    match T::deserialize(Value::Object(m)) {
        Ok(t) => Some(t),
        Err(err) => {
            let msg = err.to_string();
            match msg
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                Some(field) => e.push(field, "is required"),
                // Not expected once every field passed alone; named on the item itself.
                None => e.out.push(FieldError::new(e.path.clone(), msg)),
            }
            None
        }
    }
}

/// The field names a `Deserialize` derive expects, read from the derive itself: it is asked to
/// deserialize from a deserializer that records the names it is given and then gives up.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Probe {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut p = Probe(None);
    let _ = T::deserialize(&mut p);
    p.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_list_every_item_and_field() {
        let body = br#"{"traces":[
            {"id":"ok-1","name":"a","startTime":"2026-03-14T10:00:00Z"},
            {"id":"has space","name":"","startTime":"nope","tags":["a,b"],"bogus":1},
            {"name":"b","startTime":"2026-03-14T10:00:00Z","spans":[{"cost":"-1"},{"cost":"x"}]}
        ]}"#;
        let err = validate_json_batch(body)
            .unwrap()
            .into_valid()
            .unwrap_err()
            .into_error(Vec::new());
        let fields: Vec<&str> = err.details().iter().map(|d| d.field()).collect();
        for f in [
            "traces[1].id",
            "traces[1].name",
            "traces[1].bogus",
            "traces[1].startTime",
            "traces[1].tags[0]",
            "traces[2].spans[0].cost",
            "traces[2].spans[1].cost",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        assert!(
            !fields.iter().any(|f| f.starts_with("traces[0]")),
            "{fields:?}"
        );
    }

    #[test]
    fn decimals_are_exact() {
        use crate::model::parse_decimal;
        assert_eq!(parse_decimal("0.0034").unwrap().to_string(), "0.0034");
        assert_eq!(
            parse_decimal("3.4e-3").unwrap().normalize().to_string(),
            "0.0034"
        );
        assert!(parse_decimal("abc").is_none());
        let s: SpanInput = serde_json::from_str(r#"{"cost": 0.1}"#).unwrap();
        assert_eq!(s.cost.unwrap().to_string(), "0.1");
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert!(fields_of::<TraceInput>().contains(&"startTime"));
        assert!(fields_of::<SpanInput>().contains(&"inputTokens"));
        assert_eq!(
            fields_of::<ScoreInput>(),
            ["id", "name", "value", "comment"]
        );
    }
}
