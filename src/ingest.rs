//! Ingest validation: typed inputs and JSON bodies become `ValidTrace`s, or one validation error
//! that lists every bad item by index and field. Nothing here touches storage.

use crate::error::{Error, FieldError, Result};
use crate::limits::*;
use crate::model::{ScoreInput, ScoreValue, SpanInput, Status, TraceInput};
use crate::schema::{Money, ScoreRecord, ScoreValueRecord, SpanRecord};
use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A trace item that passed every check that needs no storage.
#[derive(Clone, Debug)]
pub(crate) struct ValidTrace {
    pub id: String,
    pub name: Option<String>,
    pub status: Option<Status>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Distinct, in first-seen order.
    pub tags: Option<Vec<String>>,
    /// Compact JSON object text.
    pub metadata: Option<String>,
    pub spans: Vec<(String, SpanRecord)>,
    pub scores: Vec<(String, ScoreRecord)>,
}

/// True for a valid id or project name: 1..=max bytes, no whitespace, no control characters.
pub(crate) fn check_id(s: &str, max_bytes: usize) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max_bytes {
        return Err(format!("must be at most {max_bytes} bytes"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be printable, without whitespace".into());
    }
    Ok(())
}

/// Validates a project name.
pub(crate) fn check_project(project: &str) -> Result<()> {
    check_id(project, MAX_PROJECT_BYTES).map_err(|m| Error::field("project", m))
}

fn check_text(s: &str, max_chars: usize, allow_empty: bool) -> std::result::Result<(), String> {
    if !allow_empty && s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Validates one tag (shared with the query parser's rules for ingest-side tags).
pub(crate) fn check_tag(t: &str) -> std::result::Result<(), String> {
    check_text(t, MAX_TAG_CHARS, false)?;
    if t.contains(',') {
        return Err("must not contain a comma".into());
    }
    Ok(())
}

/// The given id, checked (a problem is pushed to `e`), or a new UUIDv7 when absent.
fn id_or_new(id: Option<String>, e: &mut Errs<'_>) -> String {
    match id {
        Some(id) => {
            if let Err(m) = check_id(&id, MAX_ID_BYTES) {
                e.push("id", m);
            }
            id
        }
        None => uuid::Uuid::now_v7().to_string(),
    }
}

struct Errs<'a> {
    path: String,
    out: &'a mut Vec<FieldError>,
}

impl Errs<'_> {
    fn push(&mut self, field: &str, msg: impl Into<String>) {
        self.out
            .push(FieldError::new(format!("{}.{}", self.path, field), msg));
    }
    fn child(&mut self, sub: String) -> Errs<'_> {
        Errs {
            path: format!("{}.{}", self.path, sub),
            out: self.out,
        }
    }
}

/// Validates typed inputs. Every bad item and field is reported, then nothing is written.
pub(crate) fn validate_batch(items: Vec<TraceInput>) -> Result<Vec<ValidTrace>> {
    if items.len() > MAX_BATCH_TRACES {
        return Err(Error::field(
            "traces",
            format!("at most {MAX_BATCH_TRACES} traces per batch"),
        ));
    }
    validate_items(items.into_iter().enumerate().collect(), Vec::new())
}

/// Validates items tagged with their batch index, adding to `errors` found earlier (by the JSON
/// parser), so that one error lists every problem of the batch.
fn validate_items(
    items: Vec<(usize, TraceInput)>,
    mut errors: Vec<FieldError>,
) -> Result<Vec<ValidTrace>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items {
        let mut e = Errs {
            path: format!("traces[{i}]"),
            out: &mut errors,
        };
        if let Some(v) = validate_trace(item, &mut e) {
            out.push(v);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::validation(errors))
    }
}

fn validate_trace(t: TraceInput, e: &mut Errs<'_>) -> Option<ValidTrace> {
    let before = e.out.len();
    let id = id_or_new(t.id, e);
    if let Some(n) = &t.name {
        if let Err(m) = check_text(n, MAX_NAME_CHARS, false) {
            e.push("name", m);
        }
    }
    let tags = t.tags.map(|tags| {
        let mut seen: Vec<String> = Vec::with_capacity(tags.len());
        for (j, tag) in tags.into_iter().enumerate() {
            if let Err(m) = check_tag(&tag) {
                e.push(&format!("tags[{j}]"), m);
            } else if !seen.contains(&tag) {
                seen.push(tag);
            }
        }
        if seen.len() > MAX_TAGS_PER_TRACE {
            e.push(
                "tags",
                format!("at most {MAX_TAGS_PER_TRACE} distinct tags"),
            );
        }
        seen
    });
    let metadata = t.metadata.map(|m| {
        let s = serde_json::to_string(&Value::Object(m)).unwrap_or_else(|_| "{}".into());
        if s.len() > MAX_METADATA_BYTES {
            e.push(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes serialized"),
            );
        }
        s
    });
    if let (Some(s), Some(en)) = (t.start_time, t.end_time) {
        if en < s {
            e.push("endTime", "must not be before startTime");
        }
    }
    if t.spans.len() > MAX_SPANS_PER_ITEM {
        e.push(
            "spans",
            format!("at most {MAX_SPANS_PER_ITEM} spans per item"),
        );
    }
    if t.scores.len() > MAX_SCORES_PER_ITEM {
        e.push(
            "scores",
            format!("at most {MAX_SCORES_PER_ITEM} scores per item"),
        );
    }
    let mut spans = Vec::with_capacity(t.spans.len());
    for (j, s) in t.spans.into_iter().enumerate().take(MAX_SPANS_PER_ITEM) {
        if let Some(v) = validate_span(s, &mut e.child(format!("spans[{j}]"))) {
            spans.push(v);
        }
    }
    let mut scores = Vec::with_capacity(t.scores.len());
    for (j, s) in t.scores.into_iter().enumerate().take(MAX_SCORES_PER_ITEM) {
        if let Some(v) = validate_score(s, &mut e.child(format!("scores[{j}]"))) {
            scores.push(v);
        }
    }
    if e.out.len() > before {
        return None;
    }
    Some(ValidTrace {
        id,
        name: t.name,
        status: t.status,
        start_ms: t.start_time.map(Timestamp::as_millis),
        end_ms: t.end_time.map(Timestamp::as_millis),
        tags,
        metadata,
        spans,
        scores,
    })
}

fn validate_span(s: SpanInput, e: &mut Errs<'_>) -> Option<(String, SpanRecord)> {
    let before = e.out.len();
    let id = id_or_new(s.id, e);
    if let Some(n) = &s.name {
        if let Err(m) = check_text(n, MAX_NAME_CHARS, false) {
            e.push("name", m);
        }
    }
    if let Some(m) = &s.model {
        if let Err(msg) = check_text(m, MAX_MODEL_CHARS, false) {
            e.push("model", msg);
        }
    }
    if let (Some(a), Some(b)) = (s.start_time, s.end_time) {
        if b < a {
            e.push("endTime", "must not be before startTime");
        }
    }
    for (f, v) in [
        ("inputTokens", s.input_tokens),
        ("outputTokens", s.output_tokens),
        ("totalTokens", s.total_tokens),
    ] {
        if v.is_some_and(|v| v > MAX_TOKENS_PER_SPAN) {
            e.push(f, format!("must be at most {MAX_TOKENS_PER_SPAN}"));
        }
    }
    let total_tokens = s.total_tokens.unwrap_or_else(|| {
        s.input_tokens
            .unwrap_or(0)
            .saturating_add(s.output_tokens.unwrap_or(0))
    });
    let cost = s.cost.map(|c| {
        if c.is_sign_negative() && !c.is_zero() {
            e.push("cost", "must be >= 0");
        } else if c > Decimal::from(MAX_SPAN_COST_USD) {
            e.push("cost", format!("must be at most {MAX_SPAN_COST_USD}"));
        } else if c.normalize().scale() > MAX_COST_SCALE {
            e.push("cost", format!("at most {MAX_COST_SCALE} decimal places"));
        }
        Money::from_decimal(c)
    });
    if e.out.len() > before {
        return None;
    }
    Some((
        id,
        SpanRecord {
            name: s.name,
            start_ms: s.start_time.map(Timestamp::as_millis),
            end_ms: s.end_time.map(Timestamp::as_millis),
            model: s.model,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            total_tokens,
            cost,
        },
    ))
}

fn validate_score(s: ScoreInput, e: &mut Errs<'_>) -> Option<(String, ScoreRecord)> {
    let before = e.out.len();
    let id = id_or_new(s.id, e);
    if let Err(m) = check_text(&s.name, MAX_NAME_CHARS, false) {
        e.push("name", m);
    }
    let value = match s.value {
        ScoreValue::Number(n) => {
            if !n.is_finite() {
                e.push("value", "must be a finite number");
            }
            ScoreValueRecord::Number(n)
        }
        ScoreValue::Text(t) => {
            if let Err(m) = check_text(&t, MAX_SCORE_STRING_CHARS, true) {
                e.push("value", m);
            }
            ScoreValueRecord::Text(t)
        }
    };
    if let Some(c) = &s.comment {
        if s.comment.is_some() && c.chars().count() > MAX_COMMENT_CHARS {
            e.push(
                "comment",
                format!("must be at most {MAX_COMMENT_CHARS} characters"),
            );
        }
    }
    if e.out.len() > before {
        return None;
    }
    Some((
        id,
        ScoreRecord {
            name: s.name,
            value,
            comment: s.comment,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// JSON bodies

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
