//! The pure mapping of an OTLP request to traces and spans: the rules of docs/api.md,
//! "OTLP mapping". Nothing here touches storage.
//!
//! Every span with a valid trace id and span id is kept: whatever is over a limit is cut or
//! replaced by a truncation marker so that the span passes the ordinary ingest validation,
//! and an attribute that cannot fill a field (a negative token count, an invalid user id, ...)
//! simply stays among the span's `attributes`.
//!
//! Choices where the rules leave room:
//! - among aliases of one field the first attribute that is present *and usable* wins; an
//!   unusable one stays in `attributes`;
//! - the OTLP span kind (`SPAN_KIND_CLIENT`, ...) goes to `attributes["otel.span_kind"]` as
//!   `INTERNAL`, `SERVER`, `CLIENT`, `PRODUCER` or `CONSUMER` (nothing for unspecified);
//! - `events` and `resource` are the mapping's keys in `attributes`: they replace a span
//!   attribute of the same name;
//! - links, trace state, flags, dropped counts and the instrumentation scope are not kept;
//! - an unset start time (0) is the epoch; an unset end time (0) is None.

mod value;

use super::{Mapped, MappedSpan, MappedTrace, TraceAttrs};
use crate::limits::{
    MAX_ATTRIBUTES_BYTES, MAX_COST_SCALE, MAX_METADATA_BYTES, MAX_MODEL_CHARS, MAX_NAME_CHARS,
    MAX_PAYLOAD_BYTES, MAX_SPAN_COST_USD, MAX_STATUS_MESSAGE_BYTES, MAX_TIMESTAMP_MS,
    MAX_TOKENS_PER_SPAN, MAX_USER_ID_BYTES, MIN_TIMESTAMP_MS,
};
use crate::model::parse_decimal;
use crate::model::{SpanInput, SpanKind, Status};
use crate::time::Timestamp;
use crate::validate::PayloadTexts;
use crate::validate::{check_id, check_tag};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtelKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use value::{
    as_str, clean_text, compact, compact_of, cut_bytes, inner, limit_text, AnyJson, Field, Object,
};

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;

const BAD_TRACE_ID: &str = "invalid trace id (must be 16 nonzero bytes)";
const BAD_SPAN_ID: &str = "invalid span id (must be 8 nonzero bytes)";

/// Bytes reserved up front for the JSON text of an attributes object or a non-string payload.
const ATTRIBUTES_SIZE_HINT: usize = 256;
/// Bytes reserved beyond a string's length for its JSON text: the quotes and a few escapes.
const ESCAPE_ROOM: usize = 16;

/// The resource attributes that become `TraceAttrs::service` rather than `attributes.resource`.
const SERVICE_KEYS: [&str; 2] = ["service.name", "service.version"];

/// Maps every span of the request; spans with a bad trace or span id are counted as rejected.
pub(crate) fn map_request(request: &ExportTraceServiceRequest) -> Mapped {
    let mut traces = Traces::default();
    let (mut bad_trace, mut bad_span) = (0u64, 0u64);
    for resource_spans in &request.resource_spans {
        let resource = ResourceParts::new(resource_spans.resource.as_ref());
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let Some(trace_key) = id_bytes::<16>(&span.trace_id) else {
                bad_trace += 1;
                continue;
            };
            let Some(span_key) = id_bytes::<8>(&span.span_id) else {
                bad_span += 1;
                continue;
            };
            traces.push(trace_key, span_key, || {
                map_span(span, hex(&span_key), &resource)
            });
        }
    }
    Mapped {
        traces: traces.traces,
        rejected_spans: bad_trace + bad_span,
        error_message: rejection_message(bad_trace, bad_span),
    }
}

/// `partialSuccess.errorMessage`: how many spans were rejected and why.
fn rejection_message(bad_trace: u64, bad_span: u64) -> Option<String> {
    let total = bad_trace + bad_span;
    let noun = if total == 1 { "span" } else { "spans" };
    let why = match (bad_trace, bad_span) {
        (0, 0) => return None,
        (_, 0) => BAD_TRACE_ID.to_string(),
        (0, _) => BAD_SPAN_ID.to_string(),
        (t, s) => format!("{t} {BAD_TRACE_ID}, {s} {BAD_SPAN_ID}"),
    };
    Some(format!("{total} {noun} rejected: {why}"))
}

/// An id's bytes, when it has exactly `N` bytes and is not all zero.
fn id_bytes<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    id.iter().any(|&b| b != 0).then_some(id)
}

/// Bytes as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// An id as lowercase hex, when it has exactly `N` bytes and is not all zero.
fn id_hex<const N: usize>(bytes: &[u8]) -> Option<String> {
    id_bytes::<N>(bytes).map(|id| hex(&id))
}

/// The mapped traces, grouped by trace id in first-seen order, each span id once.
#[derive(Default)]
struct Traces {
    traces: Vec<MappedTrace>,
    /// Trace id → index in `traces`.
    by_trace: HashMap<[u8; 16], usize>,
    /// (trace index, span id) → index in that trace's spans.
    by_span: HashMap<(usize, [u8; 8]), usize>,
}

impl Traces {
    /// Adds a span; one whose id was seen before in its trace replaces the earlier one in place
    /// (a re-sent span is the newer state of the same span).
    fn push(&mut self, trace_id: [u8; 16], span_id: [u8; 8], span: impl FnOnce() -> MappedSpan) {
        let t = *self.by_trace.entry(trace_id).or_insert_with(|| {
            self.traces.push(MappedTrace {
                trace_id: hex(&trace_id),
                spans: Vec::new(),
            });
            self.traces.len() - 1
        });
        let spans = &mut self.traces[t].spans;
        match self.by_span.get(&(t, span_id)) {
            Some(&i) => spans[i] = span(),
            None => {
                self.by_span.insert((t, span_id), spans.len());
                spans.push(span());
            }
        }
    }
}

/// What one resource contributes to its spans.
struct ResourceParts {
    /// `service.name` and `service.version` as compact JSON object text.
    service: Option<String>,
    /// Every other resource attribute, for root spans' `attributes.resource`.
    others: Vec<KeyValue>,
}

impl ResourceParts {
    fn new(resource: Option<&Resource>) -> ResourceParts {
        let kvs = resource
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let (service, others): (Vec<KeyValue>, Vec<KeyValue>) = kvs
            .iter()
            .cloned()
            .partition(|kv| SERVICE_KEYS.contains(&kv.key.as_str()));
        let service: Vec<KeyValue> = service
            .into_iter()
            .filter(|kv| inner(kv).is_some())
            .collect();
        ResourceParts {
            service: (!service.is_empty())
                .then(|| compact_of(&Object::of_kvs(&service), ATTRIBUTES_SIZE_HINT)),
            others,
        }
    }
}

/// One span's attributes, read field by field: each attribute used for a field is marked, and
/// the unmarked rest become the span's `attributes`.
struct Attrs<'a> {
    kvs: &'a [KeyValue],
    /// A handful of keys at most (one per mapped field), so a list beats a hash set.
    used: Vec<&'a str>,
}

impl<'a> Attrs<'a> {
    fn new(kvs: &'a [KeyValue]) -> Attrs<'a> {
        Attrs {
            kvs,
            used: Vec::new(),
        }
    }

    /// The value of the first attribute named `key`, unless it is empty.
    fn get(&self, key: &str) -> Option<&'a Any> {
        self.kvs.iter().find(|kv| kv.key == key).and_then(inner)
    }

    fn mark(&mut self, key: &'a str) {
        if !self.used.contains(&key) {
            self.used.push(key);
        }
    }

    /// The first of `keys` whose value `read` accepts; that attribute is marked used.
    fn take<T>(&mut self, keys: &[&'a str], read: impl Fn(&'a Any) -> Option<T>) -> Option<T> {
        for &key in keys {
            if let Some(t) = self.get(key).and_then(&read) {
                self.mark(key);
                return Some(t);
            }
        }
        None
    }

    /// Every attribute not used for a field, as object entries (not yet in key order).
    fn into_rest(self) -> Vec<(&'a str, Field<'a>)> {
        self.kvs
            .iter()
            .filter(|kv| !self.used.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.as_str(), Field::Any(inner(kv))))
            .collect()
    }
}

/// Maps one span whose ids are valid.
fn map_span(span: &Span, span_id: String, resource: &ResourceParts) -> MappedSpan {
    let mut a = Attrs::new(&span.attributes);
    let parent_id = id_hex::<8>(&span.parent_span_id);

    let kind = take_kind(&mut a);
    let status = match span.status.as_ref().map(|s| s.code()) {
        Some(StatusCode::Error) => Status::Error,
        _ => Status::Ok,
    };
    let model = a.take(&MODEL_KEYS, |v| {
        as_str(v)
            .map(|s| clean_text(s, MAX_MODEL_CHARS))
            .filter(|s| !s.is_empty())
    });

    // Usage is counted once: only model calls carry tokens and cost; on a chain or an agent the
    // same attributes are totals of its children and stay plain attributes.
    let mut usage = Usage::default();
    if matches!(kind, SpanKind::Llm | SpanKind::Embedding) {
        usage = take_usage(&mut a);
    }

    let attrs = TraceAttrs {
        user_id: a.take(&["user.id"], valid_id),
        session_id: a.take(&["session.id", "gen_ai.conversation.id"], valid_id),
        metadata: a.take(&["metadata"], metadata_text),
        service: resource.service.clone(),
    };
    let tags = a
        .take(&["tag.tags", "langfuse.trace.tags"], tag_list)
        .unwrap_or_default();
    let input = take_payload(
        &mut a,
        "input.value",
        "input.mime_type",
        "gen_ai.input.messages",
    );
    let output = take_payload(
        &mut a,
        "output.value",
        "output.mime_type",
        "gen_ai.output.messages",
    );

    let attributes = attributes_text(a, span, parent_id.is_none(), resource);

    let name = clean_text(&span.name, MAX_NAME_CHARS);
    let start_ms = millis(span.start_time_unix_nano);
    // OTLP's 0 means unset; an end before the start is taken as a zero-length span.
    let end_ms =
        (span.end_time_unix_nano != 0).then(|| millis(span.end_time_unix_nano).max(start_ms));

    MappedSpan {
        span: SpanInput {
            id: Some(span_id),
            parent_id,
            name: Some(if name.is_empty() {
                "unnamed".into()
            } else {
                name
            }),
            kind: Some(kind),
            status: Some(status),
            status_message: status_message(span),
            start_time: Some(Timestamp::from_millis_unchecked(start_ms)),
            end_time: end_ms.map(Timestamp::from_millis_unchecked),
            model,
            input_tokens: usage.input,
            output_tokens: usage.output,
            total_tokens: usage.total,
            cost: usage.cost,
            ..Default::default()
        },
        payload: PayloadTexts {
            input,
            output,
            attributes,
        },
        attrs,
        tags,
    }
}

/// The span's `attributes` as compact JSON object text within `MAX_ATTRIBUTES_BYTES`: every
/// attribute not used for a field, then the mapping's own keys, each replacing a span
/// attribute of its name: `otel.span_kind`, `events`, and on a root `resource`. None when
/// there is nothing.
fn attributes_text(
    a: Attrs<'_>,
    span: &Span,
    is_root: bool,
    resource: &ResourceParts,
) -> Option<String> {
    let mut entries = a.into_rest();
    let mapped = [
        ("otel.span_kind", otel_kind(span.kind).map(Field::Str)),
        (
            "events",
            (!span.events.is_empty()).then_some(Field::Events(&span.events)),
        ),
        (
            "resource",
            (is_root && !resource.others.is_empty()).then_some(Field::Kvs(&resource.others)),
        ),
    ];
    for (key, field) in mapped {
        if let Some(field) = field {
            entries.retain(|(k, _)| *k != key);
            entries.push((key, field));
        }
    }
    (!entries.is_empty()).then(|| {
        limit_text(
            compact_of(&Object::new(entries), ATTRIBUTES_SIZE_HINT),
            MAX_ATTRIBUTES_BYTES,
        )
    })
}

/// Unix nanoseconds to milliseconds (truncated), within the representable range.
fn millis(nanos: u64) -> i64 {
    i64::try_from(nanos / 1_000_000)
        .unwrap_or(MAX_TIMESTAMP_MS)
        .clamp(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)
}

/// `openinference.span.kind` when it names a kind, else what `gen_ai.operation.name` implies,
/// else UNKNOWN. An attribute that decided nothing stays in `attributes`.
fn take_kind(a: &mut Attrs<'_>) -> SpanKind {
    a.take(&["openinference.span.kind"], |v| {
        as_str(v).and_then(SpanKind::parse)
    })
    .or_else(|| {
        a.take(&["gen_ai.operation.name"], |v| {
            as_str(v).and_then(gen_ai_kind)
        })
    })
    .unwrap_or(SpanKind::Unknown)
}

/// The kind a GenAI semantic-conventions operation name implies (case-insensitive).
fn gen_ai_kind(operation: &str) -> Option<SpanKind> {
    match operation.to_ascii_lowercase().as_str() {
        "chat" | "text_completion" | "generate_content" => Some(SpanKind::Llm),
        "embeddings" => Some(SpanKind::Embedding),
        "execute_tool" => Some(SpanKind::Tool),
        "invoke_agent" | "create_agent" => Some(SpanKind::Agent),
        _ => None,
    }
}

/// The OTLP span kind's short name; None when unspecified or unknown.
fn otel_kind(kind: i32) -> Option<&'static str> {
    match OtelKind::try_from(kind).ok()? {
        OtelKind::Unspecified => None,
        OtelKind::Internal => Some("INTERNAL"),
        OtelKind::Server => Some("SERVER"),
        OtelKind::Client => Some("CLIENT"),
        OtelKind::Producer => Some("PRODUCER"),
        OtelKind::Consumer => Some("CONSUMER"),
    }
}

const MODEL_KEYS: [&str; 3] = [
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
];
const INPUT_TOKEN_KEYS: [&str; 3] = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
];
const OUTPUT_TOKEN_KEYS: [&str; 3] = [
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
];
const TOTAL_TOKEN_KEYS: [&str; 1] = ["llm.token_count.total"];
const COST_KEYS: [&str; 2] = ["llm.cost.total", "gen_ai.usage.cost"];

/// The usage fields of a model-call span.
#[derive(Default)]
struct Usage {
    input: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
    cost: Option<Decimal>,
}

/// Token counts and cost. Cache and reasoning breakdowns are parts of these counts, never
/// added to them, and stay in `attributes`. The total is set explicitly (the sent total, else
/// input + output) so that it too is clamped to the limit.
fn take_usage(a: &mut Attrs<'_>) -> Usage {
    let input = a.take(&INPUT_TOKEN_KEYS, token_count);
    let output = a.take(&OUTPUT_TOKEN_KEYS, token_count);
    let total = a.take(&TOTAL_TOKEN_KEYS, token_count).or_else(|| {
        (input.is_some() || output.is_some()).then(|| {
            input
                .unwrap_or(0)
                .saturating_add(output.unwrap_or(0))
                .min(MAX_TOKENS_PER_SPAN)
        })
    });
    Usage {
        input,
        output,
        total,
        cost: a.take(&COST_KEYS, cost),
    }
}

/// A token count: a non-negative int, a non-negative double with an integral value, or a
/// string holding a non-negative integer; clamped to `MAX_TOKENS_PER_SPAN`.
fn token_count(v: &Any) -> Option<u64> {
    let n = match v {
        Any::IntValue(i) => u64::try_from(*i).ok()?,
        Any::DoubleValue(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 => {
            if *d >= MAX_TOKENS_PER_SPAN as f64 {
                MAX_TOKENS_PER_SPAN
            } else {
                *d as u64
            }
        }
        Any::StringValue(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    Some(n.min(MAX_TOKENS_PER_SPAN))
}

/// An exact USD cost: an int as is, a double through its shortest decimal text (never binary
/// arithmetic), a string as a decimal. Rounded to `MAX_COST_SCALE` places; a negative cost or
/// one over `MAX_SPAN_COST_USD` is not a cost (it stays in `attributes`).
fn cost(v: &Any) -> Option<Decimal> {
    let d = match v {
        Any::IntValue(i) => Decimal::from(*i),
        Any::DoubleValue(f) if f.is_finite() => parse_decimal(&f.to_string())?,
        Any::StringValue(s) => parse_decimal(s.trim())?,
        _ => return None,
    };
    if d.is_sign_negative() && !d.is_zero() || d > Decimal::from(MAX_SPAN_COST_USD) {
        return None;
    }
    let d = d.round_dp_with_strategy(MAX_COST_SCALE, RoundingStrategy::MidpointAwayFromZero);
    // `-0` and `0` are the same cost; keep the plain one.
    Some(if d.is_zero() { Decimal::ZERO } else { d })
}

/// A user or session id that passes the id rules.
fn valid_id(v: &Any) -> Option<String> {
    as_str(v)
        .filter(|s| check_id(s, MAX_USER_ID_BYTES).is_ok())
        .map(str::to_string)
}

/// The `metadata` attribute as compact JSON object text: a string holding a JSON object of at
/// most `MAX_METADATA_BYTES` once compacted.
fn metadata_text(v: &Any) -> Option<String> {
    let Ok(Json::Object(m)) = serde_json::from_str::<Json>(as_str(v)?) else {
        return None;
    };
    let text = compact(&Json::Object(m));
    (text.len() <= MAX_METADATA_BYTES).then_some(text)
}

/// Tags from an array of strings or a string holding a JSON array of strings; each tag that
/// fails the tag rules (and each non-string element) is dropped, duplicates once, in order.
fn tag_list(v: &Any) -> Option<Vec<String>> {
    let raw: Vec<String> = match v {
        Any::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|x| x.value.as_ref().and_then(as_str).map(str::to_string))
            .collect(),
        Any::StringValue(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Array(items)) => items
                .into_iter()
                .filter_map(|x| match x {
                    Json::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => return None,
        },
        _ => return None,
    };
    let mut seen = HashSet::new();
    Some(
        raw.into_iter()
            .filter(|t| check_tag(t).is_ok() && seen.insert(t.clone()))
            .collect(),
    )
}

/// An input or output as compact JSON text: the OpenInference `*.value` (parsed when its mime
/// type says JSON and it parses; the mime type is then used up), else the GenAI
/// `gen_ai.*.messages`. Cut to `MAX_PAYLOAD_BYTES` by the truncation marker.
fn take_payload<'a>(
    a: &mut Attrs<'a>,
    value_key: &'a str,
    mime_key: &'a str,
    messages_key: &'a str,
) -> Option<String> {
    let text = if let Some(v) = a.get(value_key) {
        a.mark(value_key);
        match v {
            Any::StringValue(s) => {
                let is_json = a.get(mime_key).and_then(as_str).is_some_and(is_json_mime);
                match is_json.then(|| serde_json::from_str::<Json>(s)) {
                    Some(Ok(parsed)) => {
                        a.mark(mime_key);
                        compact_of(&parsed, s.len())
                    }
                    _ => compact_of(s, s.len() + ESCAPE_ROOM),
                }
            }
            other => compact_of(&AnyJson(Some(other)), ATTRIBUTES_SIZE_HINT),
        }
    } else {
        a.take(&[messages_key], |v| {
            Some(match v {
                Any::StringValue(s) => match serde_json::from_str::<Json>(s) {
                    Ok(parsed) => compact_of(&parsed, s.len()),
                    Err(_) => compact_of(s, s.len() + ESCAPE_ROOM),
                },
                other => compact_of(&AnyJson(Some(other)), ATTRIBUTES_SIZE_HINT),
            })
        })?
    };
    Some(limit_text(text, MAX_PAYLOAD_BYTES))
}

/// `application/json`, ignoring case and parameters such as `; charset=utf-8`.
fn is_json_mime(mime: &str) -> bool {
    mime.split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The status's message, else the first `exception` event's `exception.message`; cut to
/// `MAX_STATUS_MESSAGE_BYTES` without splitting a character.
fn status_message(span: &Span) -> Option<String> {
    let from_status = span
        .status
        .as_ref()
        .map(|s| s.message.as_str())
        .filter(|m| !m.is_empty());
    let from_event = || {
        let event = span.events.iter().find(|e| e.name == "exception")?;
        let kv = event
            .attributes
            .iter()
            .find(|kv| kv.key == "exception.message")?;
        inner(kv).and_then(as_str).filter(|m| !m.is_empty())
    };
    from_status
        .or_else(from_event)
        .map(|m| cut_bytes(m, MAX_STATUS_MESSAGE_BYTES).to_string())
}
