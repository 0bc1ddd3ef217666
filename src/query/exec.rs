//! The redb engine's executors. Each returns up to `need` hits in query order, strictly after
//! the cursor position, and never resolves more rows than the page requires:
//! - the scan walks the primary key (backwards for `startTime.desc`, forwards for
//!   `startTime.asc`) and tests each row's header;
//! - the bitmap executor, for `startTime.desc`, walks time blocks newest first over the
//!   intersected bitmaps; under another order it resolves a small candidate set whole;
//! - the sorted executor (`query/sorted.rs`) walks the sort index of a keyed order.

use super::order::{Key, Order, Position, SortValue};
use super::plan::{Plan, PlanKind};
use super::spans;
use crate::cache::{BlockRows, ProjectView};
use crate::error::{Error, Result};
use crate::model::Status;
use crate::schema::*;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// Blocks the bitmap executor may skip when it continues: every block in
/// `resume+1 .. last_block` held only rows newer than the cursor when it was issued, and blocks
/// before the then-last block never change. Part of the redb engine's resume state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockHint {
    pub last_block: u32,
    pub resume: Option<u32>,
}

/// One result row: its sort value, its primary-key parts and its stored record.
pub(crate) struct Hit {
    pub value: SortValue,
    pub start_ms: i64,
    pub id: String,
    pub record: Vec<u8>,
}

impl Hit {
    pub(crate) fn key(&self) -> Key<'_> {
        Key {
            value: self.value,
            start_ms: self.start_ms,
            id: &self.id,
        }
    }
}

/// What a walk is: its row limit (rows allocated after it began are not part of it) and the
/// project's generation when it began (a keyed order skips traces whose key changed since).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walk {
    pub row_limit: u32,
    pub generation: u64,
}

/// What an execution found, with the block hint a continuation may use.
pub(crate) struct Found {
    pub hits: Vec<Hit>,
    pub hint: Option<BlockHint>,
}

/// Runs `plan` over the rows of `walk`.
pub(crate) fn execute(
    v: &ProjectView<'_>,
    walk: Walk,
    plan: &Plan,
    after: Option<&Position>,
    hint: Option<BlockHint>,
    need: usize,
) -> Result<Found> {
    let row_limit = walk.row_limit;
    let keyed = plan.order.field() != super::order::SortField::StartTime;
    let hits = match plan.kind {
        PlanKind::Empty => Vec::new(),
        // The planner never chooses it (a forced `Sql` falls back to the chosen plan).
        PlanKind::Sql => {
            return Err(crate::error::Error::internal(
                "the embedded engine has no SQL plan",
            ))
        }
        PlanKind::Scan if keyed => super::sorted::walk(v, walk, plan, after, need, true)?,
        PlanKind::Sorted => super::sorted::walk(v, walk, plan, after, need, false)?,
        PlanKind::Scan => scan(v.t, v.p, row_limit, plan, after, need)?,
        PlanKind::Bitmap if plan.order == Order::StartTimeDesc => {
            return bitmap(v, row_limit, plan, after, hint, need)
        }
        PlanKind::Bitmap => small_set(v, walk, plan, after, need)?.hits,
    };
    Ok(Found { hits, hint: None })
}

fn scan(
    t: &ReadTables,
    p: u32,
    row_limit: u32,
    plan: &Plan,
    after: Option<&Position>,
    need: usize,
) -> Result<Vec<Hit>> {
    let f = &plan.filters;
    let mut lo = trace_key_lower(p, f.lo_ms);
    let mut hi = if f.hi_ms == i64::MAX {
        project_key_end(p)
    } else {
        trace_key_lower(p, f.hi_ms)
    };
    if let Some(pos) = after {
        let c = trace_key(p, pos.start_ms, &pos.id);
        if plan.order == Order::StartTimeAsc {
            // Strictly after the cursor: the first key above it.
            let mut next = c;
            next.push(0);
            lo = lo.max(next);
        } else if c < hi {
            hi = c;
        }
    }
    let mut hits = Vec::with_capacity(need);
    if lo >= hi {
        return Ok(hits);
    }
    let range = t.traces()?.range::<&[u8]>(lo.as_slice()..hi.as_slice())?;
    let rows: Box<dyn Iterator<Item = _>> = if plan.order == Order::StartTimeAsc {
        Box::new(range)
    } else {
        Box::new(range.rev())
    };
    for e in rows {
        let (k, v) = e?;
        let (h, rest) = decode_trace_header(v.value())?;
        if h.row < row_limit
            && f.matches_header(&h)
            && (!f.scan_needs_body() || {
                let (_, start_ms, _) = decode_trace_key(k.value())?;
                f.matches_body(start_ms, &decode_trace_body_ref(rest)?)
            })
            // Headers carry no span terms: the row's spans decide every span condition.
            && f
                .spans
                .as_ref()
                .map_or(Ok(true), |c| spans::row_matches(t, p, h.row, c))?
        {
            let (_, start_ms, id) = decode_trace_key(k.value())?;
            hits.push(Hit {
                value: SortValue::None,
                start_ms,
                id: id.to_string(),
                record: v.value().to_vec(),
            });
            if hits.len() >= need {
                break;
            }
        }
    }
    Ok(hits)
}

/// The best `need` keys seen so far, kept in query order.
struct TopK {
    need: usize,
    order: Order,
    items: Vec<(SortValue, i64, Arc<str>)>,
}

fn key(item: &(SortValue, i64, Arc<str>)) -> Key<'_> {
    Key {
        value: item.0,
        start_ms: item.1,
        id: &item.2,
    }
}

impl TopK {
    fn new(need: usize, order: Order) -> TopK {
        TopK {
            need,
            order,
            items: Vec::with_capacity(need + 1),
        }
    }
    fn full(&self) -> bool {
        self.items.len() >= self.need
    }
    /// The worst kept start time, once full (meaningful for `startTime.desc` only).
    fn floor(&self) -> Option<i64> {
        if self.full() {
            self.items.last().map(|x| x.1)
        } else {
            None
        }
    }
    /// True when `offer` would keep this key.
    fn would_keep(&self, k: Key<'_>) -> bool {
        !self.full()
            || self
                .items
                .last()
                .is_some_and(|last| self.order.cmp(k, key(last)).is_lt())
    }
    fn offer(&mut self, k: Key<'_>) {
        if !self.would_keep(k) {
            return;
        }
        let pos = self
            .items
            .partition_point(|x| self.order.cmp(key(x), k).is_lt());
        self.items
            .insert(pos, (k.value, k.start_ms, Arc::from(k.id)));
        self.items.truncate(self.need);
    }
}

/// The chunk's candidates: the intersection of every input, cheapest input first, stopping as
/// soon as the intersection is empty.
pub(crate) fn chunk_candidates(
    v: &ProjectView<'_>,
    plan: &Plan,
    chunk: u32,
) -> Result<Arc<RoaringBitmap>> {
    let inputs = &plan.filters.inputs;
    let excluded = &plan.filters.exclude_tag_ids;
    if !excluded.is_empty() {
        let mut acc = intersect(v, plan, chunk)?;
        for tag in excluded {
            if acc.is_empty() {
                break;
            }
            acc -= &*v.bitmap(TermKind::Tag, *tag, chunk)?;
        }
        return Ok(Arc::new(acc));
    }
    if let [input] = inputs.as_slice() {
        if let ([term], None) = (input.terms.as_slice(), &input.extra) {
            // One term: its cached partition is the answer, shared rather than copied.
            return v.bitmap(input.kind, *term, chunk);
        }
    }
    Ok(Arc::new(intersect(v, plan, chunk)?))
}

/// The intersection of every input's bitmap in one chunk (each input the union of its terms),
/// cheapest input first, stopping as soon as it is empty. With no input at all: every live row
/// of the chunk (every row has exactly one status).
fn intersect(v: &ProjectView<'_>, plan: &Plan, chunk: u32) -> Result<RoaringBitmap> {
    let inputs = &plan.filters.inputs;
    if inputs.is_empty() {
        let mut all = (*v.bitmap(TermKind::Status, Status::Ok.code().into(), chunk)?).clone();
        all |= &*v.bitmap(TermKind::Status, Status::Error.code().into(), chunk)?;
        return Ok(all);
    }
    let mut acc: Option<RoaringBitmap> = None;
    for input in inputs {
        let mut bm = RoaringBitmap::new();
        for term in &input.terms {
            bm |= &*v.bitmap(input.kind, *term, chunk)?;
        }
        if let Some(edges) = &input.extra {
            if let Some(rows) = edges.in_chunk(v, chunk)? {
                bm |= rows;
            }
        }
        let next = match acc {
            None => bm,
            Some(a) => a & bm,
        };
        let done = next.is_empty();
        acc = Some(next);
        if done {
            break;
        }
    }
    Ok(acc.unwrap_or_default())
}

/// Under an order other than `startTime.desc`, when the cheapest input has at most this many
/// rows, the intersection is resolved whole instead of walking the order's index: a handful of
/// row lookups beats testing index entries against the bitmaps.
pub(crate) const SMALL_CANDIDATE_SET: u64 = 256;

/// Resolves every candidate of a small intersection and keeps the best `need`: the bitmap plan
/// for a small candidate set under any order, and for every set under an order other than
/// `startTime.desc` (chosen only when the set is small, or when forced).
fn small_set(
    v: &ProjectView<'_>,
    walk: Walk,
    plan: &Plan,
    after: Option<&Position>,
    need: usize,
) -> Result<Found> {
    let row_limit = walk.row_limit;
    let mut top = TopK::new(need, plan.order);
    if row_limit == 0 {
        return Ok(Found {
            hits: Vec::new(),
            hint: None,
        });
    }
    for chunk in 0..=chunk_of(row_limit - 1) {
        let cands = chunk_candidates(v, plan, chunk)?;
        let mut slots: Option<(u32, BlockRows)> = None;
        for r in cands.iter() {
            let row = chunk_row(chunk, r);
            if row >= row_limit {
                break;
            }
            let b = block_of(row);
            if slots.as_ref().is_none_or(|(sb, _)| *sb != b) {
                slots = Some((b, v.block_rows(b)));
            }
            let (_, block) = slots.as_ref().expect("set above");
            consider(v, block, plan, walk, after, &mut top, row)?;
        }
    }
    Ok(Found {
        hits: fetch(v, top)?,
        hint: None,
    })
}

/// Resolves a candidate row and offers it to `top` when it lies in the date window and after
/// the cursor position. Under a keyed order the record gives the sort value, and a trace whose
/// key changed after the walk began is left out (ARCHITECTURE.md, "Sort orders").
fn consider(
    v: &ProjectView<'_>,
    block: &BlockRows,
    plan: &Plan,
    walk: Walk,
    after: Option<&Position>,
    top: &mut TopK,
    row: u32,
) -> Result<()> {
    let (start_ms, id) = v.row_in(block, row)?;
    let start_ms = *start_ms;
    if !plan.filters.in_window(start_ms) {
        return Ok(());
    }
    let order = plan.order;
    let field = order.field();
    let mut k = Key {
        value: SortValue::None,
        start_ms,
        id,
    };
    let span_check = plan.filters.span_check();
    if field == super::order::SortField::StartTime {
        if !order.is_after(k, after) {
            return Ok(());
        }
        if !plan.filters.needs_body() && span_check.is_none() {
            top.offer(k);
            return Ok(());
        }
        // Only a candidate that would make the page is read further.
        if !top.would_keep(k) {
            return Ok(());
        }
        if let Some(conds) = span_check {
            // Two or more span conditions: the candidate's spans decide whether one span
            // meets them all.
            if !spans::row_matches(v.t, v.p, row, conds)? {
                return Ok(());
            }
        }
        if !plan.filters.needs_body() {
            top.offer(k);
            return Ok(());
        }
    }
    // Filters only a record can decide (a metadata key over its cap), or a keyed order's
    // value: read the record (under `startTime`, only of a candidate that would make the
    // page).
    let record =
        v.t.traces()?
            .get(trace_key(v.p, start_ms, id).as_slice())?
            .ok_or_else(|| Error::corrupted("row points at a missing trace"))?;
    let (_, body) = decode_trace(record.value())?;
    if !plan.filters.matches_body(start_ms, &body) {
        return Ok(());
    }
    if field != super::order::SortField::StartTime {
        k.value = order.value_of(start_ms, body.end_ms, &body.total_cost, body.total_tokens);
        if !order.is_after(k, after) || !top.would_keep(k) {
            return Ok(());
        }
        if let Some(conds) = span_check {
            if !spans::row_matches(v.t, v.p, row, conds)? {
                return Ok(());
            }
        }
        if super::sorted::changed_since(v, field, k, walk.generation)? {
            return Ok(());
        }
    }
    top.offer(k);
    Ok(())
}

/// Loads the records of the kept hits, in order.
fn fetch(v: &ProjectView<'_>, top: TopK) -> Result<Vec<Hit>> {
    let mut hits = Vec::with_capacity(top.items.len());
    for (value, start_ms, id) in top.items {
        let record =
            v.t.traces()?
                .get(trace_key(v.p, start_ms, &id).as_slice())?
                .ok_or_else(|| Error::corrupted("row points at a missing trace"))?
                .value()
                .to_vec();
        hits.push(Hit {
            value,
            start_ms,
            id: id.to_string(),
            record,
        });
    }
    Ok(hits)
}

fn bitmap(
    v: &ProjectView<'_>,
    row_limit: u32,
    plan: &Plan,
    after: Option<&Position>,
    hint: Option<BlockHint>,
    need: usize,
) -> Result<Found> {
    if row_limit == 0 {
        return Ok(Found {
            hits: Vec::new(),
            hint: None,
        });
    }
    // Newest first, the walk stops after the page's rows, so only a set no larger than the
    // page is resolved whole (it would be resolved all the same).
    if plan
        .filters
        .inputs
        .first()
        .is_some_and(|i| i.rows <= need as u64)
    {
        let walk = Walk {
            row_limit,
            generation: 0, // unused under startTime.desc
        };
        return small_set(v, walk, plan, after, need);
    }
    let last_block = block_of(row_limit - 1);
    // Block ranges to visit, newest first. A hint lets a continuation skip blocks that held only
    // rows newer than the cursor; blocks before the hint's last block are immutable.
    let mut ranges = vec![(0, last_block)];
    if let Some(h) = hint {
        if h.last_block <= last_block {
            ranges = vec![(h.last_block, last_block)];
            if let Some(r) = h.resume.filter(|r| *r < h.last_block) {
                ranges.push((0, r));
            }
        }
    }
    let cur_start = after.map_or(i64::MAX, |pos| pos.start_ms);
    let mut top = TopK::new(need, Order::StartTimeDesc);
    let mut chunks: HashMap<u32, Arc<RoaringBitmap>> = HashMap::new();
    let mut seen: Vec<(u32, i64)> = Vec::new();
    let mut stopped_at: Option<u32> = None;
    // Chunks are visited newest first and their candidates computed on first visit; the blocks
    // of a chunk with no candidate at all are skipped without reading their records. Their
    // bounds stay unknown, so for the hint they count as possibly holding older rows.
    let mut skipped_max: Option<u32> = None;
    // Block bounds come from the shared cache (full blocks never change), so a window far
    // from the newest rows costs no block-record reads and no intersections on the way to it.
    let bounds = plan.block_bounds(v)?;
    let (lo_ms, hi_ms) = (plan.filters.lo_ms, plan.filters.hi_ms);
    let windowed = lo_ms != i64::MIN || hi_ms != i64::MAX;
    'ranges: for (lo_b, hi_b) in ranges {
        for c in (chunk_of_block(lo_b)..=chunk_of_block(hi_b)).rev() {
            let (from, to) = chunk_blocks(c, lo_b, hi_b);
            let outside = windowed
                && !(from..=to).any(|b| {
                    bounds
                        .get(b)
                        .is_some_and(|r| r.max_ms >= lo_ms && r.min_ms < hi_ms)
                });
            if !outside {
                if let Entry::Vacant(slot) = chunks.entry(c) {
                    slot.insert(chunk_candidates(v, plan, c)?);
                }
            }
            if outside || chunks[&c].is_empty() {
                if from < last_block {
                    let top_skipped = to.min(last_block - 1);
                    skipped_max = Some(skipped_max.map_or(top_skipped, |m| m.max(top_skipped)));
                }
                continue;
            }
            for b in (from..=to).rev() {
                let Some(rec) = bounds.get(b) else {
                    continue;
                };
                if b < last_block {
                    seen.push((b, rec.min_ms));
                }
                if top.floor().is_some_and(|f| f > rec.prefix_max_ms) {
                    // Every block at or before this one holds only rows older than the page.
                    stopped_at = Some(b);
                    break 'ranges;
                }
                if rec.max_ms < lo_ms || rec.min_ms >= hi_ms || rec.min_ms > cur_start {
                    continue;
                }
                if top.floor().is_some_and(|f| rec.max_ms < f) {
                    continue;
                }
                let mut block: Option<BlockRows> = None;
                for r in chunks[&c].range(block_offsets(b)) {
                    let row = chunk_row(c, r);
                    if row >= row_limit {
                        break;
                    }
                    let slots = block.get_or_insert_with(|| v.block_rows(b));
                    let walk = Walk {
                        row_limit,
                        generation: 0,
                    };
                    consider(v, slots, plan, walk, after, &mut top, row)?;
                }
            }
        }
    }

    let mut hint_out = None;
    if top.full() && need >= 2 {
        // The next page continues after the (need-1)-th hit.
        let cs = top.items[need - 2].1;
        let mut resume = seen
            .iter()
            .filter(|(_, min)| *min <= cs)
            .map(|(b, _)| *b)
            .max();
        if let Some(s) = stopped_at {
            if s > 0 {
                resume = Some(resume.map_or(s - 1, |r| r.max(s - 1)));
            }
        }
        if let Some(m) = skipped_max {
            resume = Some(resume.map_or(m, |r| r.max(m)));
        }
        hint_out = Some(BlockHint { last_block, resume });
    }
    Ok(Found {
        hits: fetch(v, top)?,
        hint: hint_out,
    })
}
