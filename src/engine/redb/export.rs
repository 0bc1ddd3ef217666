//! The redb engine's export: every match of a list query, in query order, from one snapshot.
//!
//! It is the query walk of `run.rs` without the cursor round trips: one read transaction is
//! held for the whole export, the plan is prepared once (`run::prepare`), and the executor is
//! called again and again strictly after the last hit it returned (`exec::execute` with
//! `after` and the previous step's block hint), `limit + 1` hits at a time, exactly as a client
//! paging with cursors would drive it. The write buffer's pending traces are tested with the
//! query's own test (`run::pending_matches`) once, in the same snapshot, and merged into the
//! executor's stream in query order. Only one step's hits and at most the pending list
//! (`MAX_PENDING_TRACES`) are held at a time, so memory is flat in the number of matches.
//!
//! Row numbers are never reused and the snapshot never changes, so the walk's row limit (the
//! snapshot's `next_row`) is fixed, and no trace can be seen twice or missed.

use super::run::{self, Item, PENDING_ORDER};
use crate::cache::{Caches, ProjectView};
use crate::convert::{trace_of_body, trace_of_record};
use crate::engine::Query;
use crate::error::Result;
use crate::model::Trace;
use crate::query::exec::{self, BlockHint, Walk};
use crate::query::order::{Key, Position};
use crate::schema::*;
use std::iter::Peekable;

/// Every trace `q` matches in the snapshot `tables`, in `q.order`, handed to `sink`; `q.limit`
/// is the step size. Returns how many `sink` took.
pub(crate) fn export(
    tables: ReadTables,
    caches: &Caches,
    project: &str,
    q: Query<'_>,
    sink: &mut dyn FnMut(&Trace) -> Result<()>,
) -> Result<u64> {
    let step = q.limit.max(1) as usize;
    let q = Query {
        limit: step as u32,
        ..q
    };
    let run::Prepared {
        tables,
        plan,
        project: state,
    } = run::prepare(tables, caches, project, q, None)?;
    let Some((p, st)) = state else {
        return Ok(0);
    };
    let view = ProjectView::new(&tables, caches, p, st.generation);
    // Every row of the snapshot belongs to the walk; the executor sees the indexed ones and the
    // pending ones (reserved rows from `indexed_rows` on) are tested directly, as in a query.
    let row_limit = st.next_row;
    let mut pending = if st.indexed_rows < row_limit {
        let list = caches.pending(&tables, p, st.next_row, st.indexed_rows, |list| {
            PENDING_ORDER.sort(list, |(id, h)| run::pending_key(PENDING_ORDER, id, h))
        })?;
        run::pending_matches(
            &tables,
            p,
            &list,
            q.filters,
            q.order,
            row_limit,
            None,
            usize::MAX,
        )?
    } else {
        Vec::new()
    };
    q.order.sort(&mut pending, |i| i.key(q.order));
    let mut out = Out {
        pending: pending.into_iter().peekable(),
        sink,
        count: 0,
        q,
    };

    let need = step + 1;
    let mut after: Option<Position> = None;
    let mut hint: Option<BlockHint> = None;
    // One snapshot: nothing changes during the walk, so its generation is the snapshot's.
    let walk = Walk {
        row_limit: row_limit.min(st.indexed_rows),
        generation: st.generation,
    };
    loop {
        let found = exec::execute(&view, walk, &plan, after.as_ref(), hint, need)?;
        let more = found.hits.len() >= need;
        for h in found.hits.iter().take(step) {
            out.pending_before(Some(h.key()))?;
            out.emit(&trace_of_record(h.start_ms, &h.id, &h.record)?)?;
        }
        if !more {
            break;
        }
        // The next step continues after this step's last emitted hit, with the block hint the
        // executor computed for exactly that continuation.
        let last = &found.hits[step - 1];
        after = Some(Position::of(last.key()));
        hint = found.hint;
    }
    out.pending_before(None)?;
    Ok(out.count)
}

/// The merge's output side: the pending matches not yet emitted (in query order) and the sink.
struct Out<'s, 'q> {
    pending: Peekable<std::vec::IntoIter<Item>>,
    sink: &'s mut dyn FnMut(&Trace) -> Result<()>,
    count: u64,
    q: Query<'q>,
}

impl Out<'_, '_> {
    fn emit(&mut self, t: &Trace) -> Result<()> {
        (self.sink)(t)?;
        self.count += 1;
        Ok(())
    }

    /// Emits the pending matches that come before `key` in query order (all of them for None).
    fn pending_before(&mut self, key: Option<Key<'_>>) -> Result<()> {
        while let Some(item) = self.pending.peek() {
            if key.is_some_and(|k| self.q.order.cmp(item.key(self.q.order), k).is_ge()) {
                break;
            }
            let trace = match item {
                Item::Pending(id, h) => trace_of_body(h.start_ms, id, h.status, h.body.clone())?,
                Item::Indexed(h) => trace_of_record(h.start_ms, &h.id, &h.record)?,
            };
            self.pending.next();
            self.emit(&trace)?;
        }
        Ok(())
    }
}
