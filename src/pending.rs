//! The write buffer. A small ingest of new traces (at most `MAX_PENDING_TRACES` pending per
//! project) commits each trace whole, as one record in the `pending` table, with its row number
//! reserved in the project state. It touches two tables instead of the nine an indexed insert
//! rewrites (primary, id, row, block, children, three bitmap kinds and term counts), which is
//! what makes a one-trace durable commit cheap.
//!
//! Pending traces are part of every answer from the moment they commit:
//! - list queries test each pending trace of the project against the filters and merge the
//!   matches with the executor's hits (`engine::redb::run`);
//! - `get_trace` falls back to the pending record (`detail`).
//!
//! The first write of the project that is not buffered (a larger batch, an update, a delete,
//! retention) folds every pending trace into the tables and indexes, in reserved-row order,
//! before anything else (`Writer::fold`). Folding is the ordinary insert, so a folded trace is
//! byte-identical to one inserted directly.

use crate::error::Result;
use crate::limits::{MAX_PENDING_RECORD_BYTES, MAX_PENDING_TRACES, MAX_ROWS_PER_PROJECT};
use crate::model::IngestSummary;
use crate::schema::*;
use crate::validate::ValidTrace;
use crate::write::{merge, Totals};
use redb::ReadableTable;
use std::collections::HashSet;

/// The pending record of a new trace, or None when the trace cannot be buffered (it lacks a
/// name or startTime, repeats a child id, ends before it starts or overflows a total). Such a
/// trace takes the indexed path, which reports its errors.
fn pending_record(v: &ValidTrace, now_ms: i64, row: u32) -> Option<(PendingHead, PendingChildren)> {
    let merged = merge(None, v, now_ms).ok()?;
    if !distinct(v.spans.iter().map(|(id, _)| id.as_str()))
        || !distinct(v.scores.iter().map(|(id, _)| id.as_str()))
    {
        return None;
    }
    // The same arithmetic as the indexed insert: exact decimal sums, checked.
    let mut body = merged.body;
    Totals::of_children(v.spans.iter().map(|(_, s)| s), v.scores.len())
        .ok()?
        .ok()?
        .write_to(&mut body);
    let head = PendingHead {
        row,
        start_ms: merged.start_ms,
        status: merged.status.code(),
        body,
    };
    let children = PendingChildren {
        spans: v.spans.clone(),
        scores: v.scores.clone(),
        payloads: v.payloads.clone(),
    };
    Some((head, children))
}

/// True when no id repeats.
pub(crate) fn distinct<'a>(mut ids: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::new();
    ids.all(|id| seen.insert(id))
}

/// Buffers `valid` when every trace is new to an existing project and the project has room for
/// them among its `capacity` pending traces.
/// Returns None, having written nothing, when the batch must take the indexed path; the caller
/// then aborts this transaction.
pub(crate) fn try_buffer(
    t: &mut BufferTables<'_>,
    project: &str,
    valid: &[ValidTrace],
    now_ms: i64,
    capacity: u32,
) -> Result<Option<IngestSummary>> {
    debug_assert!(capacity <= MAX_PENDING_TRACES);
    if valid.is_empty() || valid.len() > capacity as usize {
        return Ok(None);
    }
    let p = match t.projects.get(project)? {
        Some(v) => decode_u32(v.value())?,
        None => return Ok(None),
    };
    let mut st = match t.project_state.get(p)? {
        Some(v) => decode_project_state(v.value())?,
        None => return Ok(None),
    };
    let n = valid.len() as u32;
    if st.next_row - st.indexed_rows + n > capacity
        || u64::from(st.next_row) + u64::from(n) > u64::from(MAX_ROWS_PER_PROJECT)
    {
        return Ok(None);
    }
    let mut seen = HashSet::new();
    let mut records = Vec::with_capacity(valid.len());
    let mut summary = IngestSummary::default();
    for (i, v) in valid.iter().enumerate() {
        let id = v.id.as_str();
        if !seen.insert(id) || t.ids.get((p, id))?.is_some() || t.pending.get((p, id))?.is_some() {
            return Ok(None);
        }
        let Some((head, children)) = pending_record(v, now_ms, st.next_row + i as u32) else {
            return Ok(None);
        };
        let rec = encode_pending(&head, &children);
        if rec.len() > MAX_PENDING_RECORD_BYTES {
            // A trace this large is a batch's worth of work anyway; index it directly.
            return Ok(None);
        }
        records.push((id, rec));
        summary.created += 1;
        summary.spans += v.spans.len();
        summary.scores += v.scores.len();
    }
    for (id, rec) in records {
        t.pending.insert((p, id), rec.as_slice())?;
    }
    // The generation stays: no index, term count or block changed, so cached views stay valid.
    st.next_row += n;
    t.project_state
        .insert(p, encode_project_state(&st).as_slice())?;
    Ok(Some(summary))
}

/// A pending trace with its children, or None when `id` is not pending.
pub(crate) fn detail(
    t: &ReadTables,
    p: u32,
    id: &str,
) -> Result<Option<(PendingHead, PendingChildren)>> {
    match t.pending()?.get((p, id))? {
        Some(v) => Ok(Some(decode_pending(v.value())?)),
        None => Ok(None),
    }
}
