//! Public data types: what callers send (`*Input`) and what queries return.

use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;

/// A trace's outcome.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// The run succeeded (`OK`).
    Ok,
    /// The run failed (`ERROR`).
    Error,
}

impl Status {
    /// `OK` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Error => "ERROR",
        }
    }
    /// Case-insensitive parse of `OK` / `ERROR`.
    pub fn parse(s: &str) -> Option<Status> {
        if s.eq_ignore_ascii_case("ok") {
            Some(Status::Ok)
        } else if s.eq_ignore_ascii_case("error") {
            Some(Status::Error)
        } else {
            None
        }
    }
    pub(crate) fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Status> {
        match c {
            0 => Some(Status::Ok),
            1 => Some(Status::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One trace to ingest. On the first ingest of an id, `name` and `start_time` are required and
/// `status` defaults to OK. On a re-send, every field that is `Some` replaces the stored value
/// and every `None` keeps it; spans and scores are upserted by their ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceInput {
    /// Client id (1–128 printable bytes, no whitespace). A UUIDv7 is generated when absent.
    pub id: Option<String>,
    /// 1–256 characters.
    pub name: Option<String>,
    /// OK or ERROR.
    pub status: Option<Status>,
    /// When the run started. Changing it moves the trace.
    pub start_time: Option<Timestamp>,
    /// When the run ended; absent while running.
    pub end_time: Option<Timestamp>,
    /// 0–50 tags of 1–64 characters, no comma, no control characters; duplicates are dropped.
    pub tags: Option<Vec<String>>,
    /// A JSON object of at most 16 KiB, serialized.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Spans to add or replace.
    pub spans: Vec<SpanInput>,
    /// Scores to add or replace.
    pub scores: Vec<ScoreInput>,
}

impl TraceInput {
    /// A new trace with the required fields set.
    pub fn new(id: impl Into<String>, name: impl Into<String>, start_time: Timestamp) -> Self {
        TraceInput {
            id: Some(id.into()),
            name: Some(name.into()),
            start_time: Some(start_time),
            ..Default::default()
        }
    }
}

/// One span (an LLM or tool call) of a trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanInput {
    /// When given, re-sending the same span id replaces the span instead of adding one.
    pub id: Option<String>,
    pub name: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// Defaults to `input_tokens + output_tokens`.
    pub total_tokens: Option<u64>,
    /// Exact USD cost, `>= 0`.
    pub cost: Option<Decimal>,
}

/// A score's value: a number or a string.
#[derive(Clone, Debug, PartialEq)]
pub enum ScoreValue {
    Number(f64),
    Text(String),
}

impl Serialize for ScoreValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ScoreValue::Number(n) => s.serialize_f64(*n),
            ScoreValue::Text(t) => s.serialize_str(t),
        }
    }
}

/// One evaluation of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreInput {
    /// When given, re-sending the same score id replaces the score.
    pub id: Option<String>,
    pub name: String,
    pub value: ScoreValue,
    pub comment: Option<String>,
}

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

pub(crate) fn serialize_decimal<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
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
pub struct Trace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    /// `end_time - start_time`; null while running.
    pub duration_ms: Option<i64>,
    /// Exact sum of span costs, rendered as a plain decimal string.
    #[serde(serialize_with = "serialize_decimal")]
    pub total_cost: Decimal,
    pub total_tokens: u64,
    pub tags: Vec<String>,
    pub metadata: Metadata,
    pub span_count: u32,
    pub score_count: u32,
    pub created_at: Timestamp,
}

/// A stored span.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub id: String,
    pub name: Option<String>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: u64,
    #[serde(serialize_with = "serialize_opt_decimal")]
    pub cost: Option<Decimal>,
}

/// A stored score.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub id: String,
    pub name: String,
    pub value: ScoreValue,
    pub comment: Option<String>,
}

/// A trace with its spans and scores, as `GET /api/v1/traces/{id}` returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceDetail {
    #[serde(flatten)]
    pub trace: Trace,
    pub spans: Vec<Span>,
    pub scores: Vec<Score>,
}

/// One page of a query: exactly the `data` object of the endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub traces: Vec<Trace>,
    /// Null exactly when no further trace matches.
    pub next_cursor: Option<String>,
}

/// What an ingest batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSummary {
    /// Traces that did not exist before.
    pub created: usize,
    /// Traces that existed and were updated.
    pub updated: usize,
    /// Spans written (added or replaced).
    pub spans: usize,
    /// Scores written (added or replaced).
    pub scores: usize,
}
