//! The JSON reader of ingest bodies: `{"traces": [...]}` becomes typed inputs, every malformed
//! field reported by index and path; the rules themselves are the parent module's.

use super::{validate_items, Errs, ValidTrace};
use crate::error::{Error, FieldError, Result};
use crate::limits::*;
use crate::model::{ScoreInput, ScoreValue, SpanInput, Status, TraceInput};
use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Map, Value};


/// Parses and validates an ingest body `{"traces": [...]}`, reporting every malformed field.
pub(crate) fn validate_json_batch(body: &[u8]) -> Result<Vec<ValidTrace>> {
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

const TRACE_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "startTime",
    "endTime",
    "tags",
    "metadata",
    "spans",
    "scores",
];
/// Output-only fields a client may echo back from a GET; they are derived, so they are ignored.
const DERIVED_FIELDS: &[&str] = &[
    "durationMs",
    "totalCost",
    "totalTokens",
    "spanCount",
    "scoreCount",
    "createdAt",
];
const SPAN_FIELDS: &[&str] = &[
    "id",
    "name",
    "startTime",
    "endTime",
    "model",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cost",
];
const SCORE_FIELDS: &[&str] = &["id", "name", "value", "comment"];

fn object(
    v: Value,
    e: &mut Errs<'_>,
    allowed: &[&str],
    ignored: &[&str],
) -> Option<Map<String, Value>> {
    let Value::Object(m) = v else {
        e.out
            .push(FieldError::new(e.path.clone(), "must be an object"));
        return None;
    };
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) && !ignored.contains(&k.as_str()) {
            e.push(
                k,
                format!("unknown field; known fields are {}", allowed.join(", ")),
            );
        }
    }
    Some(m)
}

fn opt_string(m: &mut Map<String, Value>, k: &str, e: &mut Errs<'_>) -> Option<String> {
    match m.remove(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            e.push(k, "must be a string");
            None
        }
    }
}

fn opt_time(m: &mut Map<String, Value>, k: &str, e: &mut Errs<'_>) -> Option<Timestamp> {
    let s = opt_string(m, k, e)?;
    match Timestamp::parse(&s) {
        Ok(t) => Some(t),
        Err(_) => {
            e.push(k, "must be an RFC 3339 instant between 1970 and 9999");
            None
        }
    }
}

fn opt_u64(m: &mut Map<String, Value>, k: &str, e: &mut Errs<'_>) -> Option<u64> {
    match m.remove(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            e.push(k, "must be a non-negative integer");
            None
        }
    }
}

fn json_trace(v: Value, e: &mut Errs<'_>) -> Option<TraceInput> {
    let mut m = object(v, e, TRACE_FIELDS, DERIVED_FIELDS)?;
    let mut t = TraceInput {
        id: opt_string(&mut m, "id", e),
        name: opt_string(&mut m, "name", e),
        ..Default::default()
    };
    if let Some(s) = opt_string(&mut m, "status", e) {
        match Status::parse(&s) {
            Some(st) => t.status = Some(st),
            None => e.push("status", "must be OK or ERROR"),
        }
    }
    t.start_time = opt_time(&mut m, "startTime", e);
    t.end_time = opt_time(&mut m, "endTime", e);
    match m.remove("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            let mut tags = Vec::with_capacity(a.len());
            for (j, x) in a.into_iter().enumerate() {
                match x {
                    Value::String(s) => tags.push(s),
                    _ => e.push(&format!("tags[{j}]"), "must be a string"),
                }
            }
            t.tags = Some(tags);
        }
        Some(_) => e.push("tags", "must be an array of strings"),
    }
    match m.remove("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => t.metadata = Some(o),
        Some(_) => e.push("metadata", "must be a JSON object"),
    }
    match m.remove("spans") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (j, s) in a.into_iter().enumerate().take(MAX_SPANS_PER_ITEM + 1) {
                if let Some(s) = json_span(s, &mut e.child(format!("spans[{j}]"))) {
                    t.spans.push(s);
                }
            }
        }
        Some(_) => e.push("spans", "must be an array"),
    }
    match m.remove("scores") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (j, s) in a.into_iter().enumerate().take(MAX_SCORES_PER_ITEM + 1) {
                if let Some(s) = json_score(s, &mut e.child(format!("scores[{j}]"))) {
                    t.scores.push(s);
                }
            }
        }
        Some(_) => e.push("scores", "must be an array"),
    }
    Some(t)
}

fn json_span(v: Value, e: &mut Errs<'_>) -> Option<SpanInput> {
    let mut m = object(v, e, SPAN_FIELDS, &[])?;
    let mut s = SpanInput {
        id: opt_string(&mut m, "id", e),
        name: opt_string(&mut m, "name", e),
        start_time: opt_time(&mut m, "startTime", e),
        end_time: opt_time(&mut m, "endTime", e),
        model: opt_string(&mut m, "model", e),
        input_tokens: opt_u64(&mut m, "inputTokens", e),
        output_tokens: opt_u64(&mut m, "outputTokens", e),
        total_tokens: opt_u64(&mut m, "totalTokens", e),
        cost: None,
    };
    match m.remove("cost") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) => match parse_decimal(&c) {
            Some(d) => s.cost = Some(d),
            None => e.push("cost", "must be a decimal string such as \"0.0034\""),
        },
        Some(Value::Number(n)) => match parse_decimal(&n.to_string()) {
            Some(d) => s.cost = Some(d),
            None => e.push("cost", "must be a decimal number"),
        },
        Some(_) => e.push("cost", "must be a decimal string or number"),
    }
    Some(s)
}

/// Exact decimal parse; accepts plain (`0.0034`) and scientific (`3.4e-3`) forms, never floats.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    s.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

fn json_score(v: Value, e: &mut Errs<'_>) -> Option<ScoreInput> {
    let mut m = object(v, e, SCORE_FIELDS, &[])?;
    let id = opt_string(&mut m, "id", e);
    let name = match opt_string(&mut m, "name", e) {
        Some(n) => n,
        None => {
            e.push("name", "is required");
            String::new()
        }
    };
    let value = match m.remove("value") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) => ScoreValue::Number(f),
            None => {
                e.push("value", "must be a finite number or a string");
                return None;
            }
        },
        Some(Value::String(s)) => ScoreValue::Text(s),
        _ => {
            e.push("value", "is required: a number or a string");
            return None;
        }
    };
    let comment = opt_string(&mut m, "comment", e);
    Some(ScoreInput {
        id,
        name,
        value,
        comment,
    })
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
        let err = validate_json_batch(body).unwrap_err();
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
        assert_eq!(parse_decimal("0.0034").unwrap().to_string(), "0.0034");
        assert_eq!(
            parse_decimal("3.4e-3").unwrap().normalize().to_string(),
            "0.0034"
        );
        assert!(parse_decimal("abc").is_none());
    }
}
