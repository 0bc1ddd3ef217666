//! Stored records to the public output types: the one place a record becomes a `Trace`, a
//! `Span` or a `Score`, for the list path, the detail path and pending traces alike.

use crate::error::{Error, Result};
use crate::model::{
    Metadata, Payload, Score, ScoreValue, Span, SpanKind, Status, Trace, TraceDetail,
};
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
        user_id: b.user_id,
        session_id: b.session_id,
    })
}

/// A span from its record and, when payloads are read, its payload record.
pub(crate) fn span_of_record(id: String, r: SpanRecord, p: Option<PayloadRecord>) -> Result<Span> {
    let p = p.unwrap_or_default();
    Ok(Span {
        id,
        parent_id: r.parent_id,
        name: r.name,
        kind: SpanKind::from_code(r.kind).ok_or_else(|| Error::corrupted("span kind code"))?,
        status: Status::from_code(r.status).ok_or_else(|| Error::corrupted("span status code"))?,
        start_time: r.start_ms.map(ts),
        end_time: r.end_ms.map(ts),
        model: r.model,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        total_tokens: r.total_tokens,
        cost: r.cost.map(Money::to_decimal).transpose()?,
        status_message: p.status_message,
        input: payload(p.input)?,
        output: payload(p.output)?,
        attributes: payload(p.attributes)?,
    })
}

fn payload(b: Option<Blob>) -> Result<Option<Payload>> {
    b.map(|b| b.text().map(Payload::from_json_unchecked))
        .transpose()
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
/// `payloads` holds the payload records by child id (the trace's under the empty id), or is
/// None when the trace is read without payloads.
pub(crate) fn detail(
    trace: Trace,
    spans: impl IntoIterator<Item = (String, SpanRecord)>,
    scores: impl IntoIterator<Item = (String, ScoreRecord)>,
    payloads: Option<Vec<(String, PayloadRecord)>>,
) -> Result<TraceDetail> {
    let with_payloads = payloads.is_some();
    let mut by_id: std::collections::HashMap<String, PayloadRecord> =
        payloads.unwrap_or_default().into_iter().collect();
    let own = by_id.remove("").unwrap_or_default();
    let mut spans = spans
        .into_iter()
        .map(|(id, r)| {
            let p = if with_payloads {
                by_id.remove(&id)
            } else {
                None
            };
            span_of_record(id, r, p)
        })
        .collect::<Result<Vec<_>>>()?;
    spans.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
    let mut scores: Vec<Score> = scores
        .into_iter()
        .map(|(id, r)| score_of_record(id, r))
        .collect();
    scores.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(TraceDetail {
        trace,
        input: payload(own.input)?,
        output: payload(own.output)?,
        spans,
        scores,
        payloads: with_payloads,
    })
}
