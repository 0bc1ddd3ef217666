//! What queries return: the output types. Each is `#[non_exhaustive]`, so fields can be added
//! without breaking callers; they are built only by the library.

use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::input::{ScoreValue, SpanKind, Status};

/// Trace metadata: a JSON object, kept as its serialized text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata(String);

impl Metadata {
    pub(crate) fn from_json_unchecked(s: String) -> Self {
        Metadata(s)
    }
    /// The compact JSON text of the object.
    pub fn as_json(&self) -> &str {
        &self.0
    }
    /// Parsed into a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Object(Default::default()))
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_map(Some(0))?.end(),
        }
    }
}

/// A payload (an input, an output or a span's attributes): any JSON value, kept as its compact
/// serialized text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    pub(crate) fn from_json_unchecked(s: String) -> Self {
        Payload(s)
    }
    /// The compact JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
    /// Parsed into a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_none(),
        }
    }
}

fn serialize_decimal<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.normalize())
}

fn serialize_opt_decimal<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_decimal(d, s),
        None => s.serialize_none(),
    }
}

/// A trace as the list endpoint returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Trace {
    /// The trace id.
    pub id: String,
    /// Usually the agent's name.
    pub name: String,
    /// OK or ERROR.
    pub status: Status,
    /// When the run started.
    pub start_time: Timestamp,
    /// When the run ended; null while running.
    pub end_time: Option<Timestamp>,
    /// `end_time - start_time`; null while running.
    pub duration_ms: Option<i64>,
    /// Exact sum of span costs, rendered as a plain decimal string.
    #[serde(serialize_with = "serialize_decimal")]
    pub total_cost: Decimal,
    /// Sum of span `totalTokens`.
    pub total_tokens: u64,
    /// Tags attached to the trace.
    pub tags: Vec<String>,
    /// The metadata object set at ingest.
    pub metadata: Metadata,
    /// Spans of the trace.
    pub span_count: u32,
    /// Scores of the trace.
    pub score_count: u32,
    /// When the store first saw the trace.
    pub created_at: Timestamp,
    /// The end user the run served; null when unset.
    pub user_id: Option<String>,
    /// The session the run belongs to; null when unset.
    pub session_id: Option<String>,
}

/// A stored span.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Span {
    /// The span id.
    pub id: String,
    /// The span this one runs under; None for a root. It may name a span that never arrived.
    pub parent_id: Option<String>,
    /// The span's name.
    pub name: Option<String>,
    /// What the span does.
    pub kind: SpanKind,
    /// OK or ERROR.
    pub status: Status,
    /// When the call started.
    pub start_time: Option<Timestamp>,
    /// When the call ended.
    pub end_time: Option<Timestamp>,
    /// The model called.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Total tokens (input + output when not given).
    pub total_tokens: u64,
    /// Exact USD cost.
    pub cost: Option<Decimal>,
    /// Why the span failed (a payload).
    pub status_message: Option<String>,
    /// What the call was given (a payload).
    pub input: Option<Payload>,
    /// What the call produced (a payload).
    pub output: Option<Payload>,
    /// Everything else known of the call, a JSON object (a payload).
    pub attributes: Option<Payload>,
}

/// A stored score.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Score {
    /// The score id.
    pub id: String,
    /// What was scored.
    pub name: String,
    /// A number or a string.
    pub value: ScoreValue,
    /// An optional comment.
    pub comment: Option<String>,
}

/// A trace with its spans and scores, as `GET /api/v1/traces/{id}` returns it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TraceDetail {
    /// The trace as the list endpoint returns it.
    pub trace: Trace,
    /// What the run was given.
    pub input: Option<Payload>,
    /// What the run produced.
    pub output: Option<Payload>,
    /// Its spans, by startTime then id (a span without a startTime first).
    pub spans: Vec<Span>,
    /// Its scores, by id.
    pub scores: Vec<Score>,
    /// False when read without payloads: then every payload field is None, and the JSON form
    /// leaves those fields out instead of writing null.
    pub payloads: bool,
}

/// A payload field in the JSON form: left out (None) when payloads were not read, else the
/// value or null.
type Shown<'a, T> = Option<Option<&'a T>>;

fn shown<T>(v: &Option<T>, payloads: bool) -> Shown<'_, T> {
    payloads.then_some(v.as_ref())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanOut<'a> {
    id: &'a str,
    parent_id: &'a Option<String>,
    name: &'a Option<String>,
    kind: SpanKind,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Shown<'a, String>,
    start_time: &'a Option<Timestamp>,
    end_time: &'a Option<Timestamp>,
    model: &'a Option<String>,
    input_tokens: &'a Option<u64>,
    output_tokens: &'a Option<u64>,
    total_tokens: u64,
    #[serde(serialize_with = "serialize_opt_decimal")]
    cost: &'a Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Shown<'a, Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Shown<'a, Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Shown<'a, Payload>,
}

impl<'a> SpanOut<'a> {
    fn of(s: &'a Span, payloads: bool) -> Self {
        SpanOut {
            id: &s.id,
            parent_id: &s.parent_id,
            name: &s.name,
            kind: s.kind,
            status: s.status,
            status_message: shown(&s.status_message, payloads),
            start_time: &s.start_time,
            end_time: &s.end_time,
            model: &s.model,
            input_tokens: &s.input_tokens,
            output_tokens: &s.output_tokens,
            total_tokens: s.total_tokens,
            cost: &s.cost,
            input: shown(&s.input, payloads),
            output: shown(&s.output, payloads),
            attributes: shown(&s.attributes, payloads),
        }
    }
}

impl Serialize for Span {
    /// With its payload fields (null when absent).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SpanOut::of(self, true).serialize(s)
    }
}

impl Serialize for TraceDetail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct DetailOut<'a> {
            #[serde(flatten)]
            trace: &'a Trace,
            #[serde(skip_serializing_if = "Option::is_none")]
            input: Shown<'a, Payload>,
            #[serde(skip_serializing_if = "Option::is_none")]
            output: Shown<'a, Payload>,
            spans: Vec<SpanOut<'a>>,
            scores: &'a [Score],
        }
        DetailOut {
            trace: &self.trace,
            input: shown(&self.input, self.payloads),
            output: shown(&self.output, self.payloads),
            spans: self
                .spans
                .iter()
                .map(|sp| SpanOut::of(sp, self.payloads))
                .collect(),
            scores: &self.scores,
        }
        .serialize(s)
    }
}

/// One page of a query: exactly the `data` object of the endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Page {
    /// The page's traces, in query order.
    pub traces: Vec<Trace>,
    /// Null exactly when no further trace matches.
    pub next_cursor: Option<String>,
    /// With `include=total`: the exact number of traces matching every filter, whatever the
    /// cursor and the limit. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// With `include=facets`: counts over the same matching set. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
}

/// Counts over a query's matching set, exact, from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Facets {
    /// Matching traces per status; both keys are always present.
    pub status: StatusCounts,
    /// The most frequent trace names, at most [`crate::limits::MAX_FACET_VALUES`].
    pub names: Vec<FacetValue>,
    /// The most frequent tags (a trace counts once per tag it carries).
    pub tags: Vec<FacetValue>,
    /// The most frequent span models (a trace counts once per model some span of it has).
    pub models: Vec<FacetValue>,
}

/// Matching traces per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatusCounts {
    /// Matching traces with status `OK`.
    #[serde(rename = "OK")]
    pub ok: u64,
    /// Matching traces with status `ERROR`.
    #[serde(rename = "ERROR")]
    pub error: u64,
}

/// One value of a facet and the number of matching traces that have it. A facet lists its
/// values by count descending, then value ascending (byte order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FacetValue {
    /// The name, tag or model.
    pub value: String,
    /// Matching traces that have it.
    pub count: u64,
}

impl FacetValue {
    /// The top `MAX_FACET_VALUES` of (value, count) pairs, zero counts dropped, in facet order.
    pub(crate) fn top(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<FacetValue> {
        let mut all: Vec<FacetValue> = counts
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(value, count)| FacetValue { value, count })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        all.truncate(crate::limits::MAX_FACET_VALUES);
        all
    }
}

/// What an ingest batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IngestSummary {
    /// Traces that did not exist before.
    pub created: usize,
    /// Traces that existed and were updated.
    pub updated: usize,
    /// Spans written (added or replaced).
    pub spans: usize,
    /// Scores written (added or replaced).
    pub scores: usize,
    /// The id of every trace the batch wrote, in input order: the client's, or the one the store
    /// derived from the trace's content when it sent none.
    pub ids: Vec<String>,
}
