//! The redb engine's sorted executor: a walk of the `sort_keys` index of a keyed order
//! (`durationMs`, `totalCost`, `totalTokens`, each direction), from the cursor's position on.
//!
//! The index holds one entry per indexed trace and field, keyed `value | startTime | id`:
//! - a descending order is the index backwards (value, then startTime and id descending);
//! - an ascending order visits the values upwards, and the traces that tie on a value
//!   backwards, so that ties still come newest first; running traces (no duration) come last
//!   in both directions.
//!
//! Each entry names its row. The walk keeps an entry when its row belongs to the walk (below
//! the row limit), its key did not change after the walk began (`changed` at most the walk's
//! generation), its start lies in the date window, and the row passes the filters: through
//! the per-chunk candidate bitmaps, or (when forced as a scan) through the row's header. A page
//! costs the entries between the cursor and the page's last hit, whatever its depth.

use super::exec::{chunk_candidates, Hit, Walk};
use super::order::{Key, Order, Position, SortField, SortValue};
use super::plan::Plan;
use crate::cache::ProjectView;
use crate::error::{Error, Result};
use crate::limits::CHUNK_ROWS;
use crate::schema::*;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::Arc;

/// Up to `need` hits of `plan` in its (keyed) order, strictly after `after`. With
/// `header_test`, rows are tested on their records instead of the bitmaps (the scan plan).
pub(crate) fn walk(
    v: &ProjectView<'_>,
    walk: Walk,
    plan: &Plan,
    after: Option<&Position>,
    need: usize,
    header_test: bool,
) -> Result<Vec<Hit>> {
    let field = plan.order.field();
    let mut w = Walker {
        v,
        walk,
        plan,
        field,
        need,
        header_test,
        chunks: HashMap::new(),
        hits: Vec::with_capacity(need),
    };
    if need == 0 || walk.row_limit == 0 {
        return Ok(w.hits);
    }
    let t = v.t.sort_keys()?;
    let field_lo = sort_field_prefix(v.p, field);
    let field_hi = prefix_end(&field_lo).ok_or_else(|| Error::corrupted("sort key range"))?;
    if plan.order.descending() {
        let hi = match after {
            Some(pos) => sort_key(v.p, field, pos.value, pos.start_ms, &pos.id),
            None => field_hi,
        };
        for e in t.range::<&[u8]>(field_lo.as_slice()..hi.as_slice())?.rev() {
            let (k, val) = e?;
            if w.visit(k.value(), val.value())? {
                break;
            }
        }
        return Ok(w.hits);
    }
    // Ascending: the finished traces' values upwards, then the running traces (durations only).
    let running = sort_value_prefix(v.p, field, SortValue::Duration(None));
    let running_end = prefix_end(&running).ok_or_else(|| Error::corrupted("sort key range"))?;
    let segments: Vec<(Vec<u8>, Vec<u8>)> = if field == SortField::Duration {
        vec![(running_end.clone(), field_hi), (running, running_end)]
    } else {
        vec![(field_lo, field_hi)]
    };
    let start = after.map(|pos| {
        (
            sort_value_prefix(v.p, field, pos.value),
            sort_key(v.p, field, pos.value, pos.start_ms, &pos.id),
        )
    });
    // The segment the cursor stands in: those before it are done, later ones are walked whole.
    let cursor_segment = start.as_ref().map(|(group, _)| {
        segments
            .iter()
            .position(|(lo, hi)| group >= lo && group < hi)
            .unwrap_or(segments.len())
    });
    for (i, (seg_lo, seg_hi)) in segments.iter().enumerate() {
        let mut from = seg_lo.clone();
        match (&start, cursor_segment) {
            (Some(_), Some(c)) if i < c => continue,
            (Some((group, at)), Some(c)) if i == c => {
                // The cursor's own value: its ties older than the cursor, then what follows.
                for e in t.range::<&[u8]>(group.as_slice()..at.as_slice())?.rev() {
                    let (k, val) = e?;
                    if w.visit(k.value(), val.value())? {
                        return Ok(w.hits);
                    }
                }
                from = prefix_end(group).ok_or_else(|| Error::corrupted("sort key range"))?;
            }
            _ => {}
        }
        let seg_hi = seg_hi.clone();
        // Each value's group, upwards; within a group, backwards.
        while from < seg_hi {
            let first = match t.range::<&[u8]>(from.as_slice()..seg_hi.as_slice())?.next() {
                Some(e) => e?.0.value().to_vec(),
                None => break,
            };
            let (value, _, _) = decode_sort_key(&first, field)?;
            let group = sort_value_prefix(v.p, field, value);
            let group_end = prefix_end(&group).ok_or_else(|| Error::corrupted("sort key range"))?;
            for e in t
                .range::<&[u8]>(group.as_slice()..group_end.as_slice())?
                .rev()
            {
                let (k, val) = e?;
                if w.visit(k.value(), val.value())? {
                    return Ok(w.hits);
                }
            }
            from = group_end;
        }
    }
    Ok(w.hits)
}

struct Walker<'a, 'v> {
    v: &'a ProjectView<'v>,
    walk: Walk,
    plan: &'a Plan,
    field: SortField,
    need: usize,
    header_test: bool,
    chunks: HashMap<u32, Arc<RoaringBitmap>>,
    hits: Vec<Hit>,
}

impl Walker<'_, '_> {
    /// Tests one index entry and keeps it when it belongs to the page. True once the page is
    /// full.
    fn visit(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        let entry = decode_sort_entry(value)?;
        if entry.row >= self.walk.row_limit || entry.changed > self.walk.generation {
            return Ok(false);
        }
        let (sort_value, start_ms, id) = decode_sort_key(key, self.field)?;
        let f = &self.plan.filters;
        if !f.in_window(start_ms) {
            return Ok(false);
        }
        // Every indexed live row has its entries, so with no index input and no excluded tag
        // every entry of the walk's rows is a candidate.
        let all_rows = f.inputs.is_empty() && f.exclude_tag_ids.is_empty();
        if !self.header_test && !all_rows {
            let chunk = chunk_of(entry.row);
            let cands = match self.chunks.get(&chunk) {
                Some(c) => c.clone(),
                None => {
                    let c = chunk_candidates(self.v, self.plan, chunk)?;
                    self.chunks.insert(chunk, c.clone());
                    c
                }
            };
            if !cands.contains(entry.row % CHUNK_ROWS) {
                return Ok(false);
            }
        }
        let record = self
            .v
            .t
            .traces()?
            .get(trace_key(self.v.p, start_ms, id).as_slice())?
            .ok_or_else(|| Error::corrupted("sort entry points at a missing trace"))?
            .value()
            .to_vec();
        if self.header_test {
            let (h, _) = decode_trace_header(&record)?;
            if h.row != entry.row || !f.matches_header(&h) {
                return Ok(false);
            }
        }
        let body_test = if self.header_test {
            f.scan_needs_body()
        } else {
            f.needs_body()
        };
        if body_test && !f.matches_body(start_ms, &decode_trace(&record)?.1) {
            return Ok(false);
        }
        // Span conditions: the scan tests every one on the row's spans (headers carry no span
        // terms); the candidates need it only for two or more (one is exact in its bitmap).
        let conds = if self.header_test {
            f.spans.as_ref()
        } else {
            f.span_check()
        };
        if let Some(c) = conds {
            if !super::spans::row_matches(self.v.t, self.v.p, entry.row, c)? {
                return Ok(false);
            }
        }
        self.hits.push(Hit {
            value: sort_value,
            start_ms,
            id: id.to_string(),
            record,
        });
        Ok(self.hits.len() >= self.need)
    }
}

/// True when the sort key `k` of `field` changed after generation `since` (its index entry was
/// rewritten by a later write): a walk that began at `since` leaves such a trace out.
pub(crate) fn changed_since(
    v: &ProjectView<'_>,
    field: SortField,
    k: Key<'_>,
    since: u64,
) -> Result<bool> {
    let key = sort_key(v.p, field, k.value, k.start_ms, k.id);
    match v.t.sort_keys()?.get(key.as_slice())? {
        Some(e) => Ok(decode_sort_entry(e.value())?.changed > since),
        None => Err(Error::corrupted("indexed trace without its sort entry")),
    }
}

/// The sort values of one trace under every keyed field, in `SORT_FIELDS` order.
pub(crate) fn sort_values(
    start_ms: i64,
    end_ms: Option<i64>,
    total_cost: &Money,
    total_tokens: u64,
) -> [SortValue; 3] {
    [
        Order::DurationDesc,
        Order::TotalCostDesc,
        Order::TotalTokensDesc,
    ]
    .map(|o| o.value_of(start_ms, end_ms, total_cost, total_tokens))
}
