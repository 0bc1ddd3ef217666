//! Ingest validation: the one home of every rule an ingested item must follow. Typed inputs (and
//! JSON bodies, through `json`) become `ValidTrace`s, or one validation error that lists every
//! bad item by index and field. Nothing here touches storage; the rules that need the stored
//! trace (`check_new`, `ends_before_start` on the merged times) are called by the writer with it.

mod json;

pub(crate) use json::validate_json_batch;

use crate::error::{Error, FieldError, Result};
use crate::limits::*;
use crate::model::SpanKind;
use crate::model::{ScoreInput, ScoreValue, SpanInput, Status, TraceInput};
use crate::schema::{Blob, Money, PayloadRecord, ScoreRecord, ScoreValueRecord, SpanRecord};
use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde_json::Value;

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
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub spans: Vec<(String, SpanRecord)>,
    pub scores: Vec<(String, ScoreRecord)>,
    /// Payload records: under a span's id, that span's whole payload (a re-sent span without an
    /// entry here loses its old one); under the empty id, a patch of the trace's own: each
    /// field given replaces the stored one, and a blob of the JSON text `null` clears it.
    pub payloads: Vec<(String, PayloadRecord)>,
}

impl ValidTrace {
    /// The trace's own payload patch, if any.
    pub(crate) fn trace_payload(&self) -> Option<&PayloadRecord> {
        self.payloads
            .iter()
            .find(|(id, _)| id.is_empty())
            .map(|(_, p)| p)
    }
    /// The payloads sent with the spans, by span id (built once per trace: an item may carry
    /// 10 000 spans).
    pub(crate) fn span_payloads(&self) -> std::collections::HashMap<&str, &PayloadRecord> {
        self.payloads
            .iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(id, p)| (id.as_str(), p))
            .collect()
    }
}

/// The JSON text that, as a trace payload patch field, clears the stored field.
pub(crate) const CLEAR: &str = "null";

const END_BEFORE_START: &str = "must not be before startTime";

/// True when both times are known and the end lies before the start: the one rule behind
/// every `endTime` check (an item's own times, a re-sent end against the stored start, and
/// `verify`).
pub(crate) fn ends_before_start(start_ms: Option<i64>, end_ms: Option<i64>) -> bool {
    matches!((start_ms, end_ms), (Some(s), Some(e)) if e < s)
}

/// The rules a trace must meet once merged with what is stored: a new trace needs a name and a
/// start time, and the merged end must not lie before the merged start. `stored_start_ms` is
/// None for a new trace. Field names are relative to the item (`name`, `startTime`,
/// `endTime`).
pub(crate) fn check_merged(
    v: &ValidTrace,
    stored_start_ms: Option<i64>,
    merged_end_ms: Option<i64>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if stored_start_ms.is_none() {
        if v.name.is_none() {
            errors.push(FieldError::new("name", "is required for a new trace"));
        }
        if v.start_ms.is_none() {
            errors.push(FieldError::new("startTime", "is required for a new trace"));
        }
        if !errors.is_empty() {
            return errors;
        }
    }
    if ends_before_start(v.start_ms.or(stored_start_ms), merged_end_ms) {
        errors.push(FieldError::new("endTime", END_BEFORE_START));
    }
    errors
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

/// The given id, checked (a problem is pushed to `e`); None when the client sent none.
fn given_id(id: Option<String>, e: &mut Errs<'_>) -> Option<String> {
    if let Some(id) = &id {
        if let Err(m) = check_id(id, MAX_ID_BYTES) {
            e.push("id", m);
        }
    }
    id
}

/// The id of an item the client sent without one: derived from its content (every field it
/// carries, encoded with postcard) under its kind and its parent's id, never from a clock or a
/// random source, so a retried delivery addresses the same items. 128 bits of SHA-256, as 32
/// lowercase hex characters.
fn derived_id(kind: &str, parent: &str, content: &impl serde::Serialize) -> String {
    derived_id_of_bytes(
        kind,
        parent,
        &postcard::to_allocvec(content).expect("postcard encodes validated items"),
    )
}

/// `derived_id` over content already encoded.
fn derived_id_of_bytes(kind: &str, parent: &str, content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tracestore.id.v1\0");
    h.update(kind.as_bytes());
    h.update([0]);
    h.update((parent.len() as u32).to_be_bytes());
    h.update(parent.as_bytes());
    h.update(content);
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) struct Errs<'a> {
    pub(super) path: String,
    pub(super) out: &'a mut Vec<FieldError>,
}

impl Errs<'_> {
    pub(super) fn push(&mut self, field: &str, msg: impl Into<String>) {
        self.out
            .push(FieldError::new(format!("{}.{}", self.path, field), msg));
    }
    pub(super) fn child(&mut self, sub: String) -> Errs<'_> {
        Errs {
            path: format!("{}.{}", self.path, sub),
            out: self.out,
        }
    }
}

/// Validates typed inputs. Every bad item and field is reported, then nothing is written.
pub(crate) fn validate_batch(items: Vec<TraceInput>) -> Result<Checked> {
    if items.len() > MAX_BATCH_TRACES {
        return Err(Error::field(
            "traces",
            format!("at most {MAX_BATCH_TRACES} traces per batch"),
        ));
    }
    validate_items(items.into_iter().enumerate().collect(), Vec::new())
}

/// A batch after every check that needs no storage.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Every item that could be read, with its batch index, in input order. An item with errors
    /// is kept (without its bad parts) so that the rules needing the stored trace can be checked
    /// for it in the same answer; it is never written.
    pub items: Vec<Item>,
    /// Every problem found, by index and field.
    pub errors: Vec<FieldError>,
}

/// One item of a checked batch.
#[derive(Debug)]
pub(crate) struct Item {
    pub index: usize,
    pub trace: ValidTrace,
}

impl Checked {
    /// The items, when the batch passed every check.
    pub(crate) fn into_valid(self) -> std::result::Result<Vec<ValidTrace>, Checked> {
        if self.errors.is_empty() {
            Ok(self.items.into_iter().map(|i| i.trace).collect())
        } else {
            Err(self)
        }
    }
    /// Adds the problems found against the stored state, skipping a field already named (a
    /// `startTime` that did not parse is not also "required").
    pub(crate) fn into_error(mut self, stored: Vec<FieldError>) -> Error {
        for e in stored {
            if !self.errors.iter().any(|x| x.field() == e.field()) {
                self.errors.push(e);
            }
        }
        Error::validation(self.errors)
    }
}

/// Validates items tagged with their batch index, adding to `errors` found earlier (by the JSON
/// parser), so that one answer lists every problem of the batch.
pub(super) fn validate_items(
    items: Vec<(usize, TraceInput)>,
    mut errors: Vec<FieldError>,
) -> Result<Checked> {
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items {
        let mut e = Errs {
            path: format!("traces[{index}]"),
            out: &mut errors,
        };
        let trace = validate_trace(item, &mut e);
        out.push(Item { index, trace });
    }
    Ok(Checked { items: out, errors })
}

/// Checks one item, pushing every problem to `e`, and returns what passed: bad children and a
/// bad metadata object are left out (the batch is refused when anything was pushed).
fn validate_trace(t: TraceInput, e: &mut Errs<'_>) -> ValidTrace {
    let id = given_id(t.id, e);
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
    if ends_before_start(
        t.start_time.map(Timestamp::as_millis),
        t.end_time.map(Timestamp::as_millis),
    ) {
        e.push("endTime", END_BEFORE_START);
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
    let user_id = checked_user_id(t.user_id, "userId", e);
    let session_id = checked_user_id(t.session_id, "sessionId", e);
    let input = t
        .input
        .map(|v| payload_text(&v, MAX_PAYLOAD_BYTES, "input", e));
    let output = t
        .output
        .map(|v| payload_text(&v, MAX_PAYLOAD_BYTES, "output", e));
    let mut spans = Vec::with_capacity(t.spans.len());
    for (j, s) in t.spans.into_iter().enumerate().take(MAX_SPANS_PER_ITEM) {
        if let Some(v) = validate_span(s, None, &mut e.child(format!("spans[{j}]"))) {
            spans.push(v);
        }
    }
    let mut scores = Vec::with_capacity(t.scores.len());
    for (j, s) in t.scores.into_iter().enumerate().take(MAX_SCORES_PER_ITEM) {
        if let Some(v) = validate_score(s, &mut e.child(format!("scores[{j}]"))) {
            scores.push(v);
        }
    }
    let start_ms = t.start_time.map(Timestamp::as_millis);
    let end_ms = t.end_time.map(Timestamp::as_millis);
    let id = id.unwrap_or_else(|| {
        // The format-2 content first, byte for byte, so ids derived before the v2 fields
        // existed stay the same; the v2 fields follow only when the item carries any.
        let mut content =
            postcard::to_allocvec(&(&t.name, t.status, start_ms, end_ms, &tags, &metadata))
                .expect("postcard encodes validated items");
        content.extend(postcard::to_allocvec(&spans.len()).expect("postcard encodes a length"));
        for s in &spans {
            content.extend(postcard::to_allocvec(&s.id).expect("postcard encodes an id"));
            content.extend(s.id_content());
        }
        content.extend(postcard::to_allocvec(&scores).expect("postcard encodes validated items"));
        let v2 = (&user_id, &session_id, &input, &output);
        if v2 != (&None, &None, &None, &None) {
            content.extend(postcard::to_allocvec(&v2).expect("postcard encodes validated items"));
        }
        derived_id_of_bytes("trace", "", &content)
    });
    // Children without an id are named under the trace's id, so two id-less spans with the same
    // content are one span.
    let mut payloads = Vec::new();
    if input.is_some() || output.is_some() {
        payloads.push((
            String::new(),
            PayloadRecord {
                input: input.map(Blob::of),
                output: output.map(Blob::of),
                ..Default::default()
            },
        ));
    }
    let mut span_payloads = Vec::with_capacity(spans.len());
    let spans = spans
        .into_iter()
        .map(|s| {
            let sid =
                s.id.clone()
                    .unwrap_or_else(|| derived_id_of_bytes("span", &id, &s.id_content()));
            let (record, payload) = s.into_record_and_payload();
            span_payloads.push((sid.clone(), payload));
            (sid, record)
        })
        .collect();
    // A span id sent twice in one item is one span, the later one (as in the span table): only
    // its payload counts, even when it has none.
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<(String, PayloadRecord)> = span_payloads
        .into_iter()
        .rev()
        .filter(|(sid, _)| seen.insert(sid.clone()))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    last.reverse();
    payloads.extend(last);
    let scores = scores
        .into_iter()
        .map(|(sid, r)| (sid.unwrap_or_else(|| derived_id("score", &id, &r)), r))
        .collect();
    ValidTrace {
        id,
        name: t.name,
        status: t.status,
        start_ms,
        end_ms,
        tags,
        metadata,
        user_id,
        session_id,
        spans,
        scores,
        payloads,
    }
}

/// A `userId` or `sessionId`, checked.
fn checked_user_id(v: Option<String>, field: &str, e: &mut Errs<'_>) -> Option<String> {
    if let Some(s) = &v {
        if let Err(m) = check_id(s, MAX_USER_ID_BYTES) {
            e.push(field, m);
        }
    }
    v
}

/// The compact JSON text of a payload, checked against its limit.
fn payload_text(v: &Value, max_bytes: usize, field: &str, e: &mut Errs<'_>) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| CLEAR.into());
    if s.len() > max_bytes {
        e.push(
            field,
            format!("must be at most {max_bytes} bytes serialized"),
        );
    }
    s
}

/// A payload given as compact JSON text: checked against its limit as `payload_text` checks a
/// value, and, as for a value, the text `null` is the same as absent.
fn checked_text(
    t: Option<String>,
    max_bytes: usize,
    field: &str,
    e: &mut Errs<'_>,
) -> Option<String> {
    let t = t.filter(|t| t != CLEAR)?;
    if t.len() > max_bytes {
        e.push(
            field,
            format!("must be at most {max_bytes} bytes serialized"),
        );
    }
    Some(t)
}

/// A span that passed its checks, with its payload texts (not yet compressed).
struct SpanParts {
    id: Option<String>,
    record: SpanRecord,
    input: Option<String>,
    output: Option<String>,
    attributes: Option<String>,
    status_message: Option<String>,
}

impl SpanParts {
    /// What a derived span id hashes: the format-2 span record's fields, byte for byte, then
    /// the v2 fields when any differs from its default.
    fn id_content(&self) -> Vec<u8> {
        let r = &self.record;
        let mut out = postcard::to_allocvec(&(
            &r.name,
            r.start_ms,
            r.end_ms,
            &r.model,
            r.input_tokens,
            r.output_tokens,
            r.total_tokens,
            &r.cost,
        ))
        .expect("postcard encodes validated items");
        let v2 = (
            &r.parent_id,
            r.kind,
            r.status,
            &self.input,
            &self.output,
            &self.attributes,
            &self.status_message,
        );
        let default = (
            &None,
            SpanKind::Unknown.code(),
            Status::Ok.code(),
            &None,
            &None,
            &None,
            &None,
        );
        if v2 != default {
            out.extend(postcard::to_allocvec(&v2).expect("postcard encodes validated items"));
        }
        out
    }
    fn into_record_and_payload(self) -> (SpanRecord, PayloadRecord) {
        let payload = PayloadRecord {
            input: self.input.map(Blob::of),
            output: self.output.map(Blob::of),
            attributes: self.attributes.map(Blob::of),
            status_message: self.status_message,
            otlp: None,
        };
        (self.record, payload)
    }
}

/// A span's input, output and attributes as compact JSON text, as the OTLP mapping writes them
/// (`serde_json`'s text of the equivalent values), so that validation does not serialize them
/// again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PayloadTexts {
    pub input: Option<String>,
    pub output: Option<String>,
    pub attributes: Option<String>,
}

/// One span with a given id, checked alone (for OTLP ingest, whose spans the mapping has
/// already brought within the limits): its record and payload, or its problems. The payloads
/// come as `texts`; the span's own `input`, `output` and `attributes` are ignored.
#[cfg(feature = "otlp")]
pub(crate) fn validate_one_span(
    s: SpanInput,
    texts: PayloadTexts,
) -> std::result::Result<(SpanRecord, PayloadRecord), Vec<FieldError>> {
    let mut out = Vec::new();
    let mut e = Errs {
        path: "span".into(),
        out: &mut out,
    };
    match validate_span(s, Some(texts), &mut e) {
        Some(parts) if out.is_empty() => Ok(parts.into_record_and_payload()),
        _ => Err(out),
    }
}

/// Checks one span. Its payloads are its `input`, `output` and `attributes` values, or, when
/// `texts` is given, those texts (checked the same way, in the same order).
fn validate_span(s: SpanInput, texts: Option<PayloadTexts>, e: &mut Errs<'_>) -> Option<SpanParts> {
    let before = e.out.len();
    let id = given_id(s.id, e);
    if let Some(p) = &s.parent_id {
        if let Err(m) = check_id(p, MAX_ID_BYTES) {
            e.push("parentId", m);
        }
    }
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
    if let Some(m) = &s.status_message {
        if m.len() > MAX_STATUS_MESSAGE_BYTES {
            e.push(
                "statusMessage",
                format!("must be at most {MAX_STATUS_MESSAGE_BYTES} bytes"),
            );
        }
    }
    // A span is replaced whole, so `null` is the same as absent.
    let text = |v: Option<Value>, max: usize, field: &str, e: &mut Errs<'_>| {
        v.filter(|v| !v.is_null())
            .map(|v| payload_text(&v, max, field, e))
    };
    let (input, output, attributes) = match texts {
        None => (
            text(s.input, MAX_PAYLOAD_BYTES, "input", e),
            text(s.output, MAX_PAYLOAD_BYTES, "output", e),
            text(
                s.attributes.map(Value::Object),
                MAX_ATTRIBUTES_BYTES,
                "attributes",
                e,
            ),
        ),
        Some(t) => (
            checked_text(t.input, MAX_PAYLOAD_BYTES, "input", e),
            checked_text(t.output, MAX_PAYLOAD_BYTES, "output", e),
            checked_text(t.attributes, MAX_ATTRIBUTES_BYTES, "attributes", e),
        ),
    };
    if ends_before_start(
        s.start_time.map(Timestamp::as_millis),
        s.end_time.map(Timestamp::as_millis),
    ) {
        e.push("endTime", END_BEFORE_START);
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
    Some(SpanParts {
        id,
        record: SpanRecord {
            parent_id: s.parent_id,
            kind: s.kind.unwrap_or(SpanKind::Unknown).code(),
            status: s.status.unwrap_or(Status::Ok).code(),
            name: s.name,
            start_ms: s.start_time.map(Timestamp::as_millis),
            end_ms: s.end_time.map(Timestamp::as_millis),
            model: s.model,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            total_tokens,
            cost,
        },
        input,
        output,
        attributes,
        status_message: s.status_message,
    })
}

fn validate_score(s: ScoreInput, e: &mut Errs<'_>) -> Option<(Option<String>, ScoreRecord)> {
    let before = e.out.len();
    let id = given_id(s.id, e);
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
