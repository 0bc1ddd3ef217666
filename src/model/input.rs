//! What callers send: the ingest input types. Each derives `Deserialize` with the JSON field
//! names of the ingest body, so the body's contract is the derive (the JSON reader in
//! `validate` uses it field by field to report every bad field at once).

use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Status::parse(&s).ok_or_else(|| serde::de::Error::custom("must be OK or ERROR"))
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a span does: the OpenInference span kinds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    /// A call to a language model.
    Llm,
    /// A sequence of steps.
    Chain,
    /// A tool call.
    Tool,
    /// An agent's run.
    Agent,
    /// A retrieval.
    Retriever,
    /// An embedding call.
    Embedding,
    /// A reranking call.
    Reranker,
    /// A guardrail check.
    Guardrail,
    /// An evaluation.
    Evaluator,
    /// Anything else (the default).
    Unknown,
}

impl SpanKind {
    /// Every kind, in code order.
    pub const ALL: [SpanKind; 10] = [
        SpanKind::Llm,
        SpanKind::Chain,
        SpanKind::Tool,
        SpanKind::Agent,
        SpanKind::Retriever,
        SpanKind::Embedding,
        SpanKind::Reranker,
        SpanKind::Guardrail,
        SpanKind::Evaluator,
        SpanKind::Unknown,
    ];
    /// The upper-case name (`LLM`, `TOOL`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Llm => "LLM",
            SpanKind::Chain => "CHAIN",
            SpanKind::Tool => "TOOL",
            SpanKind::Agent => "AGENT",
            SpanKind::Retriever => "RETRIEVER",
            SpanKind::Embedding => "EMBEDDING",
            SpanKind::Reranker => "RERANKER",
            SpanKind::Guardrail => "GUARDRAIL",
            SpanKind::Evaluator => "EVALUATOR",
            SpanKind::Unknown => "UNKNOWN",
        }
    }
    /// Case-insensitive parse of a kind name.
    pub fn parse(s: &str) -> Option<SpanKind> {
        SpanKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
    pub(crate) fn from_code(c: u8) -> Option<SpanKind> {
        SpanKind::ALL.get(c as usize).copied()
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SpanKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SpanKind::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(
                "must be one of LLM, CHAIN, TOOL, AGENT, RETRIEVER, EMBEDDING, RERANKER, \
                 GUARDRAIL, EVALUATOR, UNKNOWN",
            )
        })
    }
}

impl Serialize for SpanKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One trace to ingest. On the first ingest of an id, `name` and `start_time` are required and
/// `status` defaults to OK. On a re-send, every field that is `Some` replaces the stored value
/// and every `None` keeps it; spans and scores are upserted by their ids.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
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
    /// The end user the run served (1–128 printable bytes, no whitespace).
    pub user_id: Option<String>,
    /// The conversation or session the run belongs to (1–128 printable bytes, no whitespace).
    pub session_id: Option<String>,
    /// What the run was given: any JSON value of at most 1 MiB serialized. `null` (or absent)
    /// keeps the stored value.
    pub input: Option<serde_json::Value>,
    /// What the run produced: any JSON value of at most 1 MiB serialized. `null` (or absent)
    /// keeps the stored value.
    pub output: Option<serde_json::Value>,
    /// Spans to add or replace.
    #[serde(deserialize_with = "null_as_empty")]
    pub spans: Vec<SpanInput>,
    /// Scores to add or replace.
    #[serde(deserialize_with = "null_as_empty")]
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
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpanInput {
    /// When given, re-sending the same span id replaces the span instead of adding one.
    pub id: Option<String>,
    /// The id of the span this one runs under; absent for a root span. The parent may arrive
    /// later, or never.
    pub parent_id: Option<String>,
    /// 1–256 characters.
    pub name: Option<String>,
    /// What the span does; `UNKNOWN` when absent.
    pub kind: Option<SpanKind>,
    /// OK or ERROR; OK when absent.
    pub status: Option<Status>,
    /// Why the span failed, at most 4 KiB.
    pub status_message: Option<String>,
    /// When the call started.
    pub start_time: Option<Timestamp>,
    /// When the call ended.
    pub end_time: Option<Timestamp>,
    /// The model called, 1–128 characters.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Defaults to `input_tokens + output_tokens`.
    pub total_tokens: Option<u64>,
    /// Exact USD cost, `>= 0`: a decimal string such as `"0.0034"`, or a JSON number (read
    /// through its shortest decimal form, never through binary arithmetic).
    #[serde(deserialize_with = "exact_decimal")]
    pub cost: Option<Decimal>,
    /// What the call was given: any JSON value of at most 1 MiB serialized.
    pub input: Option<serde_json::Value>,
    /// What the call produced: any JSON value of at most 1 MiB serialized.
    pub output: Option<serde_json::Value>,
    /// Everything else known about the call: a JSON object of at most 64 KiB serialized.
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A score's value: a number or a string.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged, expecting = "a number or a string")]
pub enum ScoreValue {
    /// A finite number.
    Number(f64),
    /// At most 1024 characters.
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
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreInput {
    /// When given, re-sending the same score id replaces the score.
    #[serde(default)]
    pub id: Option<String>,
    /// 1–256 characters.
    pub name: String,
    /// A number or a string.
    pub value: ScoreValue,
    /// At most 4096 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `null` or absent reads as an empty list.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An exact decimal from a string (`"0.0034"`, `"3.4e-3"`) or a JSON number.
fn exact_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let bad =
        || serde::de::Error::custom("must be a decimal string such as \"0.0034\" or a number");
    match Option::<Raw>::deserialize(d).map_err(|_| bad())? {
        None => Ok(None),
        Some(Raw::Text(s)) => parse_decimal(&s).map(Some).ok_or_else(bad),
        Some(Raw::Int(i)) => Ok(Some(Decimal::from(i))),
        // `{}` prints a double's shortest decimal form that reads back to the same double.
        Some(Raw::Float(f)) => parse_decimal(&f.to_string()).map(Some).ok_or_else(bad),
    }
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
