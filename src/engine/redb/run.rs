//! How a query runs on the redb engine: `prepare` reads the project's state and plans in one
//! snapshot; `run` executes the plan over the indexed rows, tests the write buffer's pending
//! traces with the same filters, merges both in query order, and returns the page with the
//! resume state of its continuation.
//!
//! The resume state is the engine's, carried opaquely by the cursor envelope: the walk's row
//! limit (rows allocated after the walk began are not part of it, so no trace appears twice),
//! the project's generation when the walk began (under a keyed order, a trace whose key changed
//! since is left out, so it cannot appear twice either) and the bitmap executor's block hint.

use crate::cache::{Caches, PendingList, ProjectView};
use crate::convert::{trace_of_body, trace_of_record};
use crate::engine::{EnginePage, Query, Resume};
use crate::error::{Error, Result};
use crate::model::Facets;
use crate::query::count;
use crate::query::exec::{self, BlockHint, Hit, Walk};
use crate::query::filter::Filters;
use crate::query::order::{Key, Order, Position};
use crate::query::plan::{self, Explain, PlanKind};
use crate::query::spans;
use crate::schema::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The redb engine's part of a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RedbResume {
    /// The project's row count when the walk began. Rows allocated later (new traces, and
    /// traces whose startTime moved) are not part of this walk, so no trace can appear twice.
    row_limit: u32,
    /// The project's generation when the walk began: a keyed order's walk leaves out traces
    /// whose sort key changed after it (their index entry says when).
    generation: u64,
    hint: Option<BlockHint>,
}

impl RedbResume {
    fn decode(bytes: &[u8]) -> Result<RedbResume> {
        match postcard::take_from_bytes::<RedbResume>(bytes) {
            Ok((r, [])) => Ok(r),
            _ => Err(Error::field("cursor", "is not a valid cursor")),
        }
    }
    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes resume state")
    }
}

/// A query resolved against one snapshot, ready to execute.
pub(super) struct Prepared {
    pub(super) tables: ReadTables,
    pub(super) plan: plan::Plan,
    /// The project's id and state, when it exists.
    pub(super) project: Option<(u32, ProjectState)>,
}

pub(super) fn prepare(
    tables: ReadTables,
    caches: &Caches,
    project: &str,
    q: Query<'_>,
    force: Option<PlanKind>,
) -> Result<Prepared> {
    let need = q.limit as usize + 1;
    let mut state = None;
    if let Some(p) = project_id(&tables, project)? {
        if let Some(v) = tables.project_state()?.get(p)? {
            state = Some((p, decode_project_state(v.value())?));
        }
    }
    let (live, next_row) = state.as_ref().map_or((0, 0), |(_, s)| (s.live, s.next_row));
    let plan = {
        let view = state
            .as_ref()
            .map(|(p, s)| ProjectView::new(&tables, caches, *p, s.generation));
        plan::plan(
            view.as_ref(),
            live,
            next_row,
            q.filters,
            q.order,
            need,
            force,
        )?
    };
    Ok(Prepared {
        tables,
        plan,
        project: state,
    })
}

/// The plan a query would run.
pub(crate) fn explain(
    tables: ReadTables,
    caches: &Caches,
    project: &str,
    q: Query<'_>,
) -> Result<Explain> {
    Ok(prepare(tables, caches, project, q, None)?.plan.explain)
}

/// One page of `q`, strictly after `resume`.
pub(crate) fn run(
    tables: ReadTables,
    caches: &Caches,
    project: &str,
    q: Query<'_>,
    resume: Option<Resume<'_>>,
    force: Option<PlanKind>,
) -> Result<EnginePage> {
    let resume = match resume {
        Some(r) => Some((r.position, RedbResume::decode(r.state)?)),
        None => None,
    };
    let Prepared {
        tables,
        plan,
        project: pstate,
    } = prepare(tables, caches, project, q, force)?;
    let Some((p, st)) = pstate else {
        return Ok(EnginePage {
            traces: Vec::new(),
            next: None,
            total: q.include.total.then_some(0),
            facets: q.include.facets.then(Facets::default),
        });
    };
    let need = q.limit as usize + 1;
    let after = resume.map(|(pos, _)| pos);
    let row_limit = resume.map_or(st.next_row, |(_, r)| r.row_limit.min(st.next_row));
    let generation = resume.map_or(st.generation, |(_, r)| r.generation.min(st.generation));
    let hint = resume.and_then(|(_, r)| r.hint);
    let view = ProjectView::new(&tables, caches, p, st.generation);
    // The executor sees indexed rows only; pending traces (reserved rows from
    // `indexed_rows` on) are tested directly and merged in order.
    let walk = Walk {
        row_limit: row_limit.min(st.indexed_rows),
        generation,
    };
    let found = exec::execute(&view, walk, &plan, after, hint, need)?;
    let counting = q.include.total || q.include.facets;
    // The pending list is read only when the page can show a pending trace, or the counts
    // must include them.
    let pending_list = if st.indexed_rows < st.next_row && (st.indexed_rows < row_limit || counting)
    {
        Some(
            caches.pending(&tables, p, st.next_row, st.indexed_rows, |list| {
                PENDING_ORDER.sort(list, |(id, h)| pending_key(PENDING_ORDER, id, h))
            })?,
        )
    } else {
        None
    };
    let pending = match &pending_list {
        Some(list) if st.indexed_rows < row_limit => {
            pending_matches(&tables, p, list, q.filters, q.order, row_limit, after, need)?
        }
        _ => Vec::new(),
    };
    // Totals and facets: the whole matching set of this snapshot, whatever the cursor.
    let (total, facets) = if counting {
        let mut tally = count::count(&view, &plan, st.indexed_rows, q.include.facets)?;
        for (id, h) in pending_list.iter().flat_map(|l| l.iter()) {
            if !q.filters.matches_trace(h.start_ms, h.status, &h.body) {
                continue;
            }
            // The children are decoded only for span conditions or the models facet.
            let span_list = if q.filters.spans.is_empty() && !q.include.facets {
                Vec::new()
            } else {
                spans::pending_spans(&tables, p, id)?
            };
            if q.filters.spans.any_matches(&span_list) {
                let models = spans::models_of(&span_list);
                let (name, tags) = (&h.body.name, &h.body.tags);
                tally.add_trace(h.status, name, tags, &models, q.include.facets);
            }
        }
        let total = q.include.total.then_some(tally.total);
        (total, q.include.facets.then(|| tally.facets()))
    } else {
        (None, None)
    };
    let (items, hint) = merge(q, found, pending, need);
    let more = items.len() >= need;
    let mut traces = Vec::with_capacity(q.limit as usize);
    for item in items.iter().take(q.limit as usize) {
        traces.push(match item {
            Item::Indexed(h) => trace_of_record(h.start_ms, &h.id, &h.record)?,
            Item::Pending(id, h) => trace_of_body(h.start_ms, id, h.status, h.body.clone())?,
        });
    }
    let next = more.then(|| {
        let last = Position::of(items[q.limit as usize - 1].key(q.order));
        let resume = RedbResume {
            row_limit,
            generation,
            hint,
        };
        (last, resume.encode())
    });
    Ok(EnginePage {
        traces,
        next,
        total,
        facets,
    })
}

pub(crate) fn project_id(t: &ReadTables, name: &str) -> Result<Option<u32>> {
    match t.projects()?.get(name)? {
        Some(v) => Ok(Some(decode_u32(v.value())?)),
        None => Ok(None),
    }
}

/// One page entry before conversion: an executor hit or a pending trace.
pub(super) enum Item {
    Indexed(Hit),
    Pending(Arc<str>, Arc<PendingHead>),
}

impl Item {
    /// The entry's key under `order` (an executor hit carries the value of its query's order).
    pub(super) fn key(&self, order: Order) -> Key<'_> {
        match self {
            Item::Indexed(h) => h.key(),
            Item::Pending(id, h) => pending_key(order, id, h),
        }
    }
}

/// A pending trace's key under `order`.
pub(super) fn pending_key<'a>(order: Order, id: &'a str, h: &PendingHead) -> Key<'a> {
    let b = &h.body;
    Key {
        value: order.value_of(h.start_ms, b.end_ms, &b.total_cost, b.total_tokens),
        start_ms: h.start_ms,
        id,
    }
}

/// The order of the cached pending list: the executors' order.
pub(super) const PENDING_ORDER: Order = Order::StartTimeDesc;

/// Up to `need` pending traces from `list` (kept in `PENDING_ORDER`) that match `f`, with a
/// reserved row below `row_limit` and a position after `after` in `order`, in `order`. A
/// trace's children (in its pending record in `t`) are decoded only when `f` has span
/// conditions, and only for a trace that passes every other test.
#[allow(clippy::too_many_arguments)] // one page's whole context, read once
pub(super) fn pending_matches(
    t: &ReadTables,
    p: u32,
    list: &PendingList,
    f: &Filters,
    order: Order,
    row_limit: u32,
    after: Option<&Position>,
    need: usize,
) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    for (id, h) in list.iter() {
        // In the pending list's own order, the first `need` matches are the page's.
        if order == PENDING_ORDER && out.len() >= need {
            break;
        }
        if h.row < row_limit
            && f.matches_trace(h.start_ms, h.status, &h.body)
            && order.is_after(pending_key(order, id, h), after)
            && (f.spans.is_empty() || f.spans.any_matches(&spans::pending_spans(t, p, id)?))
        {
            out.push(Item::Pending(id.clone(), h.clone()));
        }
    }
    if order != PENDING_ORDER {
        // At most `MAX_PENDING_TRACES` of them: sorted here.
        order.sort(&mut out, |i| i.key(order));
        out.truncate(need);
    }
    Ok(out)
}

/// Merges the executor's hits and the pending matches (both in query order) into the first
/// `need` entries. The executor's block hint describes a continuation after its own hits, so it
/// is kept only when no pending trace is on the page.
fn merge(
    q: Query<'_>,
    found: exec::Found,
    pending: Vec<Item>,
    need: usize,
) -> (Vec<Item>, Option<BlockHint>) {
    if pending.is_empty() {
        return (
            found.hits.into_iter().map(Item::Indexed).collect(),
            found.hint,
        );
    }
    let mut items: Vec<Item> = found.hits.into_iter().map(Item::Indexed).collect();
    items.extend(pending);
    q.order.sort(&mut items, |i| i.key(q.order));
    items.truncate(need);
    let page = need.saturating_sub(1);
    let hint = if items
        .iter()
        .take(page)
        .all(|i| matches!(i, Item::Indexed(_)))
    {
        found.hint
    } else {
        None
    };
    (items, hint)
}
