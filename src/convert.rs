//! Stored records to the public output types: the one place a record becomes a `Trace`, a
//! `Span` or a `Score`, for the list path, the detail path and pending traces alike.

use crate::error::{Error, Result};
use crate::model::{Metadata, Score, ScoreValue, Span, Status, Trace, TraceDetail};
use crate::schema::*;
use crate::time::Timestamp;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis_unchecked(ms)
}

/// A trace row (its primary-key parts and stored record) as the list endpoint returns it.
pub(crate) fn trace_of_record(start_ms: i64, id: &str, record: &[u8]) -> Result<Trace> {
    let (h, b) = decode_trace(record)?;
    trace_of_body(start_ms, id, h.status, b)
}

/// A trace from its parts; the body is the same for an indexed and a pending trace.
pub(crate) fn trace_of_body(start_ms: i64, id: &str, status: u8, b: TraceBody) -> Result<Trace> {
    let status = Status::from_code(status).ok_or_else(|| Error::corrupted("status code"))?;
    Ok(Trace {
        id: id.to_string(),
        name: b.name,
        status,
        start_time: ts(start_ms),
        end_time: b.end_ms.map(ts),
        duration_ms: b.end_ms.map(|e| e - start_ms),
        total_cost: b.total_cost.to_decimal()?,
        total_tokens: b.total_tokens,
        tags: b.tags,
        metadata: Metadata::from_json_unchecked(b.metadata),
        span_count: b.span_count,
        score_count: b.score_count,
        created_at: ts(b.created_ms),
    })
}

pub(crate) fn span_of_record(id: String, r: SpanRecord) -> Result<Span> {
    Ok(Span {
        id,
        name: r.name,
        start_time: r.start_ms.map(ts),
        end_time: r.end_ms.map(ts),
        model: r.model,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        total_tokens: r.total_tokens,
        cost: r.cost.map(Money::to_decimal).transpose()?,
    })
}

pub(crate) fn score_of_record(id: String, r: ScoreRecord) -> Score {
    Score {
        id,
        name: r.name,
        value: match r.value {
            ScoreValueRecord::Number(n) => ScoreValue::Number(n),
            ScoreValueRecord::Text(t) => ScoreValue::Text(t),
        },
        comment: r.comment,
    }
}

/// A trace with its children in the detail order: spans by (startTime, id), scores by id.
pub(crate) fn detail(
    trace: Trace,
    spans: impl IntoIterator<Item = (String, SpanRecord)>,
    scores: impl IntoIterator<Item = (String, ScoreRecord)>,
) -> Result<TraceDetail> {
    let mut spans = spans
        .into_iter()
        .map(|(id, r)| span_of_record(id, r))
        .collect::<Result<Vec<_>>>()?;
    spans.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
    let mut scores: Vec<Score> = scores
        .into_iter()
        .map(|(id, r)| score_of_record(id, r))
        .collect();
    scores.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(TraceDetail {
        trace,
        spans,
        scores,
    })
}
