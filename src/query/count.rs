//! The redb engine's counting executor: the exact size of a query's whole matching set and its
//! facets, from the same bitmaps the bitmap plan walks, in the snapshot the page is read from.
//!
//! Per chunk of rows it computes the matching set as a bitmap (the intersection of the
//! filters' inputs, or every live row when there is none, minus excluded tags) and counts it:
//! - with no date window, the count is the bitmap's cardinality and nothing else is read;
//! - with a window, a block whose time bounds lie wholly inside it counts whole and one wholly
//!   outside counts nothing; only the candidates of a block the window cuts are resolved (their
//!   start times come from the row-identity cache, never from trace records).
//!
//! Range filters (duration, cost, tokens) and a metadata filter on a key over its
//! distinct-value cap are the exceptions: the candidates' bodies are read (see
//! `limits::MAX_METADATA_VALUES_PER_KEY`). Two or more span conditions are the other one: the
//! candidates' spans are read for the same-span check (`query::spans`); one span condition
//! alone is exact through its bitmap.
//!
//! Facets intersect that per-chunk set with each status, name, tag and span-model bitmap
//! (`intersection_len`, no allocation). Traces of the write buffer are not in the bitmaps; the
//! caller adds them with [`Tally::add_trace`].

use super::exec::chunk_candidates;
use super::plan::{Plan, PlanKind};
use super::spans;
use crate::cache::{BlockBounds, ProjectView};
use crate::error::Result;
use crate::model::{FacetValue, Facets, Status, StatusCounts};
use crate::schema::*;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::Arc;

/// Running counts over a matching set, keyed by term text so that indexed and pending traces
/// add up in one place.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub total: u64,
    status: [u64; 2],
    names: HashMap<String, u64>,
    tags: HashMap<String, u64>,
    models: HashMap<String, u64>,
}

impl Tally {
    /// Adds one trace that is not in the bitmaps (a pending trace), tested by the caller;
    /// `models` are the distinct models of its spans.
    pub(crate) fn add_trace(
        &mut self,
        status: u8,
        name: &str,
        tags: &[String],
        models: &[String],
        facets: bool,
    ) {
        self.total += 1;
        if !facets {
            return;
        }
        self.status[usize::from(status == Status::Error.code())] += 1;
        *self.names.entry(name.to_string()).or_default() += 1;
        for t in tags {
            *self.tags.entry(t.clone()).or_default() += 1;
        }
        for m in models {
            *self.models.entry(m.clone()).or_default() += 1;
        }
    }

    /// The facets, each cut to its top values.
    pub(crate) fn facets(self) -> Facets {
        Facets {
            status: StatusCounts {
                ok: self.status[0],
                error: self.status[1],
            },
            names: FacetValue::top(self.names),
            tags: FacetValue::top(self.tags),
            models: FacetValue::top(self.models),
        }
    }
}

/// Counts the indexed rows (below `indexed_rows`) that match `plan`.
pub(crate) fn count(
    v: &ProjectView<'_>,
    plan: &Plan,
    indexed_rows: u32,
    facets: bool,
) -> Result<Tally> {
    let mut tally = Tally::default();
    if plan.kind == PlanKind::Empty || indexed_rows == 0 {
        return Ok(tally);
    }
    let (names, tags, models) = if facets {
        (v.names()?, v.tags()?, v.span_models()?)
    } else {
        Default::default()
    };
    let mut name_counts = vec![0u64; names.len()];
    let mut tag_counts = vec![0u64; tags.len()];
    let mut model_counts = vec![0u64; models.len()];
    let windowed = plan.filters.lo_ms != i64::MIN || plan.filters.hi_ms != i64::MAX;
    // No filter at all: the matching set is every live row, which no term bitmap leaves (a
    // deleted row is cleared from each), so each count is a bitmap's length and no set is built.
    let everything = plan.filters.inputs.is_empty()
        && plan.filters.exclude_tag_ids.is_empty()
        && !windowed
        && !plan.filters.needs_body()
        && plan.filters.span_check().is_none();
    let bounds = if windowed {
        Some(plan.block_bounds(v)?)
    } else {
        None
    };
    for chunk in 0..=chunk_of(indexed_rows - 1) {
        if let Some(b) = &bounds {
            if !b.chunk_meets(chunk, plan.filters.lo_ms, plan.filters.hi_ms) {
                continue;
            }
        }
        let ok_rows = v.bitmap(TermKind::Status, ok_term(), chunk)?;
        let set: Option<Arc<RoaringBitmap>> = if everything {
            None
        } else {
            let mut set = chunk_candidates(v, plan, chunk)?;
            if set.is_empty() {
                continue;
            }
            if let Some(b) = &bounds {
                set = Arc::new(in_window(v, plan, chunk, b, &set)?);
            }
            if plan.filters.needs_body() {
                set = Arc::new(by_body(v, plan, chunk, &set)?);
            }
            if let Some(conds) = plan.filters.span_check() {
                set = Arc::new(spans::keep_matching(v, chunk, (*set).clone(), conds)?);
            }
            Some(set)
        };
        // How many rows of the set a term's bitmap holds.
        let within = |bm: &RoaringBitmap| match &set {
            None => bm.len(),
            Some(s) => s.intersection_len(bm),
        };
        let n = match &set {
            None => {
                ok_rows.len()
                    + v.bitmap(TermKind::Status, u32::from(Status::Error.code()), chunk)?
                        .len()
            }
            Some(s) => s.len(),
        };
        if n == 0 {
            continue;
        }
        tally.total += n;
        if !facets {
            continue;
        }
        let ok = within(&ok_rows);
        tally.status[0] += ok;
        tally.status[1] += n - ok;
        for (i, e) in names.iter().enumerate() {
            if e.count > 0 {
                name_counts[i] += within(&*v.bitmap(TermKind::Name, e.id, chunk)?);
            }
        }
        for (i, e) in tags.iter().enumerate() {
            if e.count > 0 {
                tag_counts[i] += within(&*v.bitmap(TermKind::Tag, e.id, chunk)?);
            }
        }
        for (i, e) in models.iter().enumerate() {
            if e.count > 0 {
                model_counts[i] += within(&*v.bitmap(TermKind::SpanModel, e.id, chunk)?);
            }
        }
    }
    if facets {
        // Distinct ids may carry equal texts only across a delete and re-create of the term,
        // which never happens (term ids are never reused or renamed); sum by text anyway.
        for (e, c) in names.iter().zip(name_counts) {
            *tally.names.entry(e.text.clone()).or_default() += c;
        }
        for (e, c) in tags.iter().zip(tag_counts) {
            *tally.tags.entry(e.text.clone()).or_default() += c;
        }
        for (e, c) in models.iter().zip(model_counts) {
            *tally.models.entry(e.text.clone()).or_default() += c;
        }
    }
    Ok(tally)
}

fn ok_term() -> u32 {
    u32::from(Status::Ok.code())
}

/// The rows of `set` (one chunk's candidates) whose start time lies in the query's window:
/// whole blocks by their bounds, rows one by one only in the blocks the window cuts.
fn in_window(
    v: &ProjectView<'_>,
    plan: &Plan,
    chunk: u32,
    bounds: &BlockBounds,
    set: &RoaringBitmap,
) -> Result<RoaringBitmap> {
    let (lo_ms, hi_ms) = (plan.filters.lo_ms, plan.filters.hi_ms);
    let mut keep = RoaringBitmap::new();
    for (b, rec) in bounds.in_chunk(chunk) {
        if rec.max_ms < lo_ms || rec.min_ms >= hi_ms {
            continue;
        }
        let offsets = block_offsets(b);
        if rec.min_ms >= lo_ms && rec.max_ms < hi_ms {
            keep.insert_range(offsets);
            continue;
        }
        let slots = v.block_rows(b);
        for off in set.range(offsets) {
            let (start_ms, _) = v.row_in(&slots, chunk_row(chunk, off))?;
            if plan.filters.in_window(*start_ms) {
                keep.insert(off);
            }
        }
    }
    Ok(set & keep)
}

/// The rows of `set` whose stored body passes the filters only a body can decide (a metadata
/// key over its value cap): the one case where counting reads trace records.
fn by_body(
    v: &ProjectView<'_>,
    plan: &Plan,
    chunk: u32,
    set: &RoaringBitmap,
) -> Result<RoaringBitmap> {
    let mut keep = RoaringBitmap::new();
    let mut slots: Option<(u32, crate::cache::BlockRows)> = None;
    for off in set.iter() {
        let row = chunk_row(chunk, off);
        let b = block_of(row);
        if slots.as_ref().is_none_or(|(sb, _)| *sb != b) {
            slots = Some((b, v.block_rows(b)));
        }
        let (_, block) = slots.as_ref().expect("set above");
        let (start_ms, id) = v.row_in(block, row)?;
        let record =
            v.t.traces()?
                .get(trace_key(v.p, *start_ms, id).as_slice())?
                .ok_or_else(|| crate::error::Error::corrupted("row points at a missing trace"))?;
        if plan
            .filters
            .matches_body(*start_ms, &decode_trace(record.value())?.1)
        {
            keep.insert(off);
        }
    }
    Ok(keep)
}
