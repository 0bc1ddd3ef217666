//! One trace's OTLP spans merged with what is stored of it. Spans arrive in any order (the batch
//! span processor exports children before their root, and the root may never come), so every
//! trace-level field is recomputed from the trace's whole span set on each request:
//!
//! - **the root** is the span without a parent (the earliest, then the smallest id, if several).
//!   Until one has arrived, the earliest-starting span whose parent is not in the trace stands
//!   in for it;
//! - the root gives the trace its name, input and output; a real root also gives its times and
//!   status. Before a real root arrives, the trace spans the earliest start to the latest end
//!   seen and is ERROR if any span is;
//! - `userId`, `sessionId` and `metadata` come from the root when it carries them, else from the
//!   first span to arrive that carried them (kept in the trace's payload record, since a later
//!   request cannot see the arrival order of earlier ones); metadata is merged with the root's
//!   `service.name` and `service.version`;
//! - tags are the union over the spans, in arrival order, up to `MAX_TAGS_PER_TRACE`.
//!
//! The result is an ordinary `ValidTrace` patch: the writer's upsert replaces spans by id (so a
//! re-sent span never double-counts) and keeps the aggregates exact.

use super::{MappedTrace, TraceAttrs};
use crate::error::{Error, Result};
use crate::limits::{MAX_METADATA_BYTES, MAX_TAGS_PER_TRACE};
use crate::model::Status;
use crate::schema::{Blob, PayloadRecord, SpanRecord};
use crate::validate::{validate_one_span, ValidTrace, CLEAR};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One span ready to store: its record and its payload record (whose `otlp` holds the
/// trace-level attributes it carried).
#[derive(Clone, Debug)]
pub(crate) struct OtlpSpan {
    pub id: String,
    pub record: SpanRecord,
    pub payload: PayloadRecord,
    pub tags: Vec<String>,
}

/// The checked spans of one trace in one request, in arrival order.
#[derive(Clone, Debug)]
pub(crate) struct OtlpTrace {
    pub trace_id: String,
    pub spans: Vec<OtlpSpan>,
}

/// Checks each mapped span with the ordinary span rules. The mapping keeps every span within
/// the limits, so a span that still fails is a mapping bug: it is counted as rejected with its
/// reason rather than failing the request.
pub(crate) fn check(mapped: Vec<MappedTrace>) -> (Vec<OtlpTrace>, u64, Option<String>) {
    let mut rejected = 0u64;
    let mut first_reason = None;
    let mut out = Vec::with_capacity(mapped.len());
    for t in mapped {
        let mut spans = Vec::with_capacity(t.spans.len());
        for s in t.spans {
            let id = s.span.id.clone().unwrap_or_default();
            match validate_one_span(s.span, s.payload) {
                Ok((record, mut payload)) => {
                    if !s.attrs.is_empty() {
                        payload.otlp = Some(s.attrs);
                    }
                    spans.push(OtlpSpan {
                        id,
                        record,
                        payload,
                        tags: s.tags,
                    });
                }
                Err(errors) => {
                    rejected += 1;
                    if first_reason.is_none() {
                        first_reason = errors
                            .first()
                            .map(|e| format!("span {id}: {}: {}", e.field(), e.message()));
                    }
                }
            }
        }
        if !spans.is_empty() {
            out.push(OtlpTrace {
                trace_id: t.trace_id,
                spans,
            });
        }
    }
    (out, rejected, first_reason)
}

/// What is stored of a trace that OTLP spans extend.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoredTrace {
    pub tags: Vec<String>,
    /// Every stored span.
    pub spans: Vec<(String, SpanRecord)>,
    /// The first value of each trace-level attribute that arrived.
    pub first: TraceAttrs,
}

/// The span that gives the trace its fields: (id, is a real root).
fn root_of<'a>(spans: &HashMap<&'a str, &'a SpanRecord>) -> Option<(&'a str, bool)> {
    let earliest = |cands: Vec<(&'a str, &'a SpanRecord)>| {
        cands
            .into_iter()
            .min_by(|a, b| (a.1.start_ms, a.0).cmp(&(b.1.start_ms, b.0)))
            .map(|(id, _)| id)
    };
    let real: Vec<_> = spans
        .iter()
        .filter(|(_, r)| r.parent_id.is_none())
        .map(|(id, r)| (*id, *r))
        .collect();
    if let Some(id) = earliest(real) {
        return Some((id, true));
    }
    let orphans: Vec<_> = spans
        .iter()
        .filter(|(_, r)| {
            r.parent_id
                .as_deref()
                .is_some_and(|p| !spans.contains_key(p))
        })
        .map(|(id, r)| (*id, *r))
        .collect();
    // Every span's parent is in the trace: the parent chains loop. Take the earliest span.
    earliest(orphans)
        .or_else(|| earliest(spans.iter().map(|(id, r)| (*id, *r)).collect()))
        .map(|id| (id, false))
}

/// Merges one trace's new spans with what is stored of it (None: a new trace). `stored_payload`
/// reads a stored span's payload record (for a root that is stored, not in this request).
pub(crate) fn combine(
    stored: Option<StoredTrace>,
    new: OtlpTrace,
    stored_payload: &mut dyn FnMut(&str) -> Result<Option<PayloadRecord>>,
) -> Result<ValidTrace> {
    let stored = stored.unwrap_or_default();
    let mut all: HashMap<&str, &SpanRecord> = stored
        .spans
        .iter()
        .map(|(id, r)| (id.as_str(), r))
        .collect();
    for s in &new.spans {
        all.insert(s.id.as_str(), &s.record);
    }
    let (root_id, real_root) =
        root_of(&all).ok_or_else(|| Error::internal("an OTLP trace without spans"))?;
    let root = all[root_id];

    let (start_ms, end_ms, status) = if real_root {
        (
            root.start_ms,
            root.end_ms,
            Status::from_code(root.status).unwrap_or(Status::Ok),
        )
    } else {
        let start = all.values().filter_map(|r| r.start_ms).min();
        let end = all.values().filter_map(|r| r.end_ms).max();
        let error = all
            .values()
            .any(|r| Status::from_code(r.status) == Some(Status::Error));
        (start, end, if error { Status::Error } else { Status::Ok })
    };

    // The root's payload record: from this request, or stored.
    let root_payload = match new.spans.iter().find(|s| s.id == root_id) {
        Some(s) => Some(s.payload.clone()),
        None => stored_payload(root_id)?,
    }
    .unwrap_or_default();
    let root_attrs = root_payload.otlp.clone().unwrap_or_default();

    let mut first = stored.first;
    for s in &new.spans {
        if let Some(a) = &s.payload.otlp {
            fill(&mut first.user_id, &a.user_id);
            fill(&mut first.session_id, &a.session_id);
            fill(&mut first.metadata, &a.metadata);
        }
    }
    let user_id = root_attrs.user_id.clone().or_else(|| first.user_id.clone());
    let session_id = root_attrs
        .session_id
        .clone()
        .or_else(|| first.session_id.clone());
    let metadata = metadata(
        root_attrs.metadata.as_deref().or(first.metadata.as_deref()),
        root_attrs.service.as_deref(),
    );

    let mut tags = stored.tags;
    for s in &new.spans {
        for t in &s.tags {
            if tags.len() < MAX_TAGS_PER_TRACE && !tags.contains(t) {
                tags.push(t.clone());
            }
        }
    }

    let clear = || Some(Blob::Text(CLEAR.to_string()));
    let trace_payload = PayloadRecord {
        input: root_payload.input.or_else(clear),
        output: root_payload.output.or_else(clear),
        otlp: Some(first),
        ..Default::default()
    };
    let name = root.name.clone().unwrap_or_else(|| "unnamed".to_string());
    let mut payloads = vec![(String::new(), trace_payload)];
    let mut spans = Vec::with_capacity(new.spans.len());
    for s in new.spans {
        if !s.payload.is_empty() {
            payloads.push((s.id.clone(), s.payload));
        }
        spans.push((s.id, s.record));
    }
    Ok(ValidTrace {
        id: new.trace_id,
        name: Some(name),
        status: Some(status),
        start_ms: Some(start_ms.unwrap_or(0)),
        end_ms,
        tags: Some(tags),
        metadata,
        user_id,
        session_id,
        spans,
        scores: Vec::new(),
        payloads,
    })
}

fn fill(slot: &mut Option<String>, v: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(v);
    }
}

/// The trace's metadata: the `metadata` attribute's object merged with the root's service name
/// and version; None when there is neither. The service keys are dropped if adding them would
/// pass the metadata limit.
fn metadata(attr: Option<&str>, service: Option<&str>) -> Option<String> {
    if attr.is_none() && service.is_none() {
        return None;
    }
    let parse = |s: Option<&str>| -> Map<String, Value> {
        s.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    };
    let base = parse(attr);
    let mut merged = base.clone();
    merged.extend(parse(service));
    let text = serde_json::to_string(&Value::Object(merged)).ok()?;
    if text.len() <= MAX_METADATA_BYTES {
        return Some(text);
    }
    serde_json::to_string(&Value::Object(base)).ok()
}
