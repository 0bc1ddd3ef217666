//! The same-span check of the span conditions, on the redb engine: reading a trace's spans
//! (the `spans` table under its row, or a pending trace's children) and testing them with
//! [`SpanConds::any_matches`], the one definition of what the conditions mean.
//!
//! The span-term bitmaps say that some span of a trace meets one condition. One condition
//! alone is therefore exact through its bitmap; with two or more, the bitmaps' intersection
//! gives candidates, and only the candidates' spans are read here. The scan executor, whose
//! row headers carry no span terms, reads the spans of each row that passes its header test.
//! Nothing here reads a payload (invariant 16).

use super::filter::SpanConds;
use crate::cache::ProjectView;
use crate::error::Result;
use crate::schema::*;
use roaring::RoaringBitmap;

/// True when some stored span of the trace on `row` meets every condition of `conds`.
pub(crate) fn row_matches(t: &ReadTables, p: u32, row: u32, conds: &SpanConds) -> Result<bool> {
    let (lo, hi) = child_range(p, row);
    for e in t.spans()?.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
        if conds.matches(&decode_span(e?.1.value())?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The rows of `set` (one chunk's candidates) some span of which meets every condition.
pub(crate) fn keep_matching(
    v: &ProjectView<'_>,
    chunk: u32,
    set: RoaringBitmap,
    conds: &SpanConds,
) -> Result<RoaringBitmap> {
    let mut keep = RoaringBitmap::new();
    for off in set.iter() {
        if row_matches(v.t, v.p, chunk_row(chunk, off), conds)? {
            keep.insert(off);
        }
    }
    Ok(keep)
}

/// The spans of a pending trace (its children, decoded from its pending record), or none when
/// it is no longer pending in this snapshot (it cannot be: the caller's list is this
/// snapshot's).
pub(crate) fn pending_spans(t: &ReadTables, p: u32, id: &str) -> Result<Vec<SpanRecord>> {
    Ok(match t.pending()?.get((p, id))? {
        Some(v) => decode_pending(v.value())?
            .1
            .spans
            .into_iter()
            .map(|(_, s)| s)
            .collect(),
        None => Vec::new(),
    })
}

/// The distinct models of `spans`, for the `models` facet.
pub(crate) fn models_of(spans: &[SpanRecord]) -> Vec<String> {
    let mut models: Vec<String> = spans.iter().filter_map(|s| s.model.clone()).collect();
    models.sort();
    models.dedup();
    models
}
