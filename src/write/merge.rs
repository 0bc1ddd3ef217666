//! The pure half of an upsert: an ingested patch merged into the stored trace (or into the
//! defaults of a new one). No storage is touched, so the write buffer uses the same merge for a
//! pending trace and the indexed path for a stored one.

use crate::error::FieldError;
use crate::model::Status;
use crate::schema::{Money, TraceBody};
use crate::validate::{check_merged, ValidTrace};
use rust_decimal::Decimal;

/// What is stored of a trace that a patch updates.
pub(crate) struct Stored {
    pub start_ms: i64,
    /// None only for a corrupt status code, which the new status (or OK) replaces.
    pub status: Option<Status>,
    pub body: TraceBody,
}

/// A trace after the merge, before its children change its aggregates.
pub(crate) struct Merged {
    pub status: Status,
    pub start_ms: i64,
    pub body: TraceBody,
}

/// The body of a new trace before its patch applies: the one place for the defaults (status OK
/// is applied in `merge`, metadata `{}`, no tags, running, zero aggregates, `createdAt` now).
fn new_body(name: &str, now_ms: i64) -> TraceBody {
    TraceBody {
        name: name.to_string(),
        tags: Vec::new(),
        end_ms: None,
        created_ms: now_ms,
        metadata: "{}".to_string(),
        total_cost: Money::from_decimal(Decimal::ZERO),
        total_tokens: 0,
        span_count: 0,
        score_count: 0,
        user_id: None,
        session_id: None,
    }
}

/// Merges `v` into `stored`: every field the patch carries replaces the stored one, every field
/// it omits is kept. Fails with the rules of `validate::check_merged` (field names relative to
/// the item).
pub(crate) fn merge(
    stored: Option<Stored>,
    v: &ValidTrace,
    now_ms: i64,
) -> Result<Merged, Vec<FieldError>> {
    let stored_start = stored.as_ref().map(|s| s.start_ms);
    let merged_end = v
        .end_ms
        .or_else(|| stored.as_ref().and_then(|s| s.body.end_ms));
    let errors = check_merged(v, stored_start, merged_end);
    if !errors.is_empty() {
        return Err(errors);
    }
    let (old_status, old_start, mut body) = match stored {
        Some(s) => (s.status, Some(s.start_ms), s.body),
        // check_merged guarantees a name and a start time for a new trace.
        None => (
            None,
            None,
            new_body(v.name.as_deref().unwrap_or_default(), now_ms),
        ),
    };
    let status = v.status.or(old_status).unwrap_or(Status::Ok);
    let start_ms = v
        .start_ms
        .or(old_start)
        .ok_or_else(|| vec![FieldError::new("startTime", "is required for a new trace")])?;
    if let Some(n) = &v.name {
        body.name = n.clone();
    }
    if let Some(t) = &v.tags {
        body.tags = t.clone();
    }
    if let Some(m) = &v.metadata {
        body.metadata = m.clone();
    }
    if v.end_ms.is_some() {
        body.end_ms = v.end_ms;
    }
    if v.user_id.is_some() {
        body.user_id = v.user_id.clone();
    }
    if v.session_id.is_some() {
        body.session_id = v.session_id.clone();
    }
    Ok(Merged {
        status,
        start_ms,
        body,
    })
}
