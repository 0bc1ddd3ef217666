//! The planner: resolves a query's filters to index terms in one snapshot, estimates how many
//! rows match from the terms' live counts, and picks a plan for the query's order.
//!
//! Under `startTime.desc`, the cheaper of two:
//! - `Scan` walks the primary table newest-first inside the date window and tests each row's
//!   header. Its cost is the rows it must read to find a page: `need / selectivity`.
//! - `Bitmap` intersects the term bitmaps (cheapest input first), then visits time blocks
//!   newest-first and resolves only candidates. Its cost is the partitions it loads plus the
//!   blocks and candidates it visits.
//!
//! Under any other order, a small candidate set (the cheapest input has at most
//! `SMALL_CANDIDATE_SET` rows) is resolved whole (`Bitmap`); otherwise `startTime.asc` scans the
//! primary table forwards (`Scan`) and a keyed order walks its sort index, testing each entry
//! against the candidate bitmaps (`Sorted`). Both cost `need / selectivity` entries, at any
//! page depth.

use super::exec::SMALL_CANDIDATE_SET;
use super::filter::{Filters, Resolved};
use super::order::{Order, SortField};
use crate::cache::{BlockBounds, ProjectView};
use crate::error::Result;
use crate::limits::{BLOCK_ROWS, CHUNK_ROWS};
use serde::Serialize;
use std::fmt;
use std::sync::OnceLock;

/// Which executor runs a query.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    /// Nothing can match (an unknown tag, a name substring no trace name contains).
    Empty,
    /// Walk the primary key newest-first and filter each row.
    Scan,
    /// Intersect bitmaps and resolve only the candidates.
    Bitmap,
    /// Walk a keyed order's sort index and test each entry against the candidate bitmaps.
    Sorted,
    /// SQL run by the database server (the ClickHouse engine); `Explain::sql` shows it.
    Sql,
}

/// One index input of a plan, with its live row count.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ExplainInput {
    /// e.g. `status=ERROR`, `tag=v2`, `name~support (3 names)`, `spanModel=gpt-4o`,
    /// `spanKind=LLM`, `spanName~chat (2 names)`.
    pub term: String,
    /// Live rows carrying the term (for a name substring, the sum over matching names; for a
    /// span condition, the rows with at least one span carrying it, and for a `spanName`
    /// substring the sum over the matching span names: an upper bound, since a trace may carry
    /// several).
    pub rows: u64,
}

/// The chosen plan and the estimates behind the choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Explain {
    /// The executor that runs (or would run) the query.
    pub plan: PlanKind,
    /// Whether the plan was forced by the caller instead of chosen.
    pub forced: bool,
    /// The order walked (`orderBy`).
    pub order: &'static str,
    /// Live indexed traces in the project (traces still in the write buffer are not counted).
    pub live_rows: u64,
    /// Estimated matches, assuming independent filters, in the share of blocks the date window
    /// meets.
    pub estimated_matches: u64,
    /// Estimated cost of the scan plan, in rows read.
    pub scan_cost: f64,
    /// Estimated cost of the bitmap plan, in row-read equivalents.
    pub bitmap_cost: f64,
    /// Index inputs, cheapest first, in the order the bitmap plan intersects them.
    pub inputs: Vec<ExplainInput>,
    /// The page's SQL with each bound value inlined as the client escapes it into the text it
    /// sends (the `Sql` plan only): from a cursor, with the condition it resumes after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

impl Explain {
    /// The explanation of an engine that runs SQL: the exact match count instead of an estimate.
    #[cfg(feature = "clickhouse")]
    pub(crate) fn sql(order: &'static str, live: u64, matches: u64, sql: String) -> Explain {
        Explain {
            plan: PlanKind::Sql,
            forced: false,
            order,
            live_rows: live,
            estimated_matches: matches,
            scan_cost: 0.0,
            bitmap_cost: 0.0,
            inputs: Vec::new(),
            sql: Some(sql),
        }
    }
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}{} order={} live={} est={} scan_cost={:.0} bitmap_cost={:.0}",
            self.plan,
            if self.forced { " (forced)" } else { "" },
            self.order,
            self.live_rows,
            self.estimated_matches,
            self.scan_cost,
            self.bitmap_cost
        )?;
        for i in &self.inputs {
            write!(f, " [{}: {}]", i.term, i.rows)?;
        }
        Ok(())
    }
}

/// Filters resolved against one snapshot, and the executor chosen for them.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub kind: PlanKind,
    pub order: Order,
    pub explain: Explain,
    pub filters: Resolved,
    /// The project's block bounds in the plan's snapshot, read once for the planner and the
    /// executors (see [`Plan::block_bounds`]).
    bounds: OnceLock<BlockBounds>,
}

impl Plan {
    /// The block bounds of the snapshot `v` the plan was made in, read on first use.
    pub(crate) fn block_bounds(&self, v: &ProjectView<'_>) -> Result<&BlockBounds> {
        if let Some(b) = self.bounds.get() {
            return Ok(b);
        }
        let b = v.block_bounds()?;
        Ok(self.bounds.get_or_init(|| b))
    }
}

// Cost units are "one row header read in a primary-table scan". The constants below were
// measured on the 2-core reference machine (see the README's Performance section): loading and
// intersecting one bitmap partition costs about 20 row reads, visiting one time block about 2,
// and resolving one candidate (a row lookup) about 4.
const COST_PARTITION: f64 = 20.0;
const COST_BLOCK: f64 = 2.0;
const COST_CANDIDATE: f64 = 4.0;
/// Reading one trace's spans for the span conditions' same-span check: a range read of the
/// `spans` table, about one row lookup.
const COST_SPANS: f64 = 4.0;

pub(crate) fn plan(
    v: Option<&ProjectView<'_>>,
    live: u64,
    next_row: u32,
    filters: &Filters,
    order: Order,
    need: usize,
    force: Option<PlanKind>,
) -> Result<Plan> {
    let resolved = filters.resolve(v)?;
    let inputs = &resolved.inputs;
    let empty = resolved.empty || live == 0;

    // Selectivity under independence: the product of each input's share of the live rows.
    let n = live.max(1) as f64;
    // Excluded tags remove at most their rows (assumed independent of the inputs too).
    let kept = (1.0 - resolved.exclude_rows as f64 / n).max(0.0);
    // An input's share is at most 1: a span-name union counts a trace once per name it carries.
    let selectivity: f64 = inputs
        .iter()
        .map(|i| (i.rows as f64 / n).min(1.0))
        .product::<f64>()
        * kept;
    let blocks_total = (next_row as f64 / BLOCK_ROWS as f64).ceil().max(1.0);
    // A date window narrows both plans to the blocks it meets: the scan seeks into it and the
    // bitmap walk skips the chunks outside it (block bounds are cached), so the estimates
    // count only the share of blocks the window meets.
    let (lo_ms, hi_ms) = (resolved.lo_ms, resolved.hi_ms);
    let bounds = OnceLock::new();
    let window_blocks = match v {
        Some(v) if lo_ms != i64::MIN || hi_ms != i64::MAX => {
            let b = v.block_bounds()?;
            let meets = (0..b.len())
                .filter(|i| {
                    b.get(*i)
                        .is_some_and(|r| r.max_ms >= lo_ms && r.min_ms < hi_ms)
                })
                .count();
            let _ = bounds.set(b);
            (meets as f64).clamp(1.0, blocks_total)
        }
        _ => blocks_total,
    };
    let in_window = window_blocks / blocks_total;
    let estimated = (n * selectivity * in_window).round() as u64;
    let need = need as f64;
    // Scan: rows read until `need` matches, at most every row of the window.
    let mut scan_cost = if estimated == 0 {
        n * in_window
    } else {
        (need / selectivity).min(n * in_window)
    };
    if resolved.spans.is_some() {
        // Headers carry no span terms: the scan reads the spans of every row it tests.
        scan_cost *= 1.0 + COST_SPANS;
    }
    // Bitmap: the partitions of each input term that the walk touches, plus the blocks walked
    // to collect `need` candidates (at least one), plus the candidates resolved.
    let terms: usize = inputs.iter().map(|i| i.terms.len().max(1)).sum();
    let blocks = if estimated == 0 {
        window_blocks
    } else {
        (need / (selectivity * BLOCK_ROWS as f64)).clamp(1.0, window_blocks)
    };
    // Partitions are loaded lazily, only for the chunks the visited blocks fall in (plus one
    // for a chunk boundary), not for the whole project.
    let partitions = ((blocks * BLOCK_ROWS as f64) / CHUNK_ROWS as f64).ceil() + 1.0;
    let candidate_cost = if resolved.span_check().is_some() {
        // Two or more span conditions: each candidate's spans are read too.
        COST_CANDIDATE + COST_SPANS
    } else {
        COST_CANDIDATE
    };
    let bitmap_cost = partitions * terms as f64 * COST_PARTITION
        + blocks * COST_BLOCK
        + need.min(estimated as f64 + 1.0) * 2.0 * candidate_cost;

    // Filters only a record can decide (ranges, a metadata key over its value cap) are tested
    // by both executors: the scan on every row it reads, the bitmap plan on the candidates that
    // would make the page. Neither is an index input, so they do not change the estimates.
    // Span conditions are inputs (their bitmaps), and their same-span check is costed above.
    let bitmap_ok = !inputs.is_empty();
    let keyed = order.field() != SortField::StartTime;
    let small = inputs
        .first()
        .is_some_and(|i| i.rows <= SMALL_CANDIDATE_SET);
    let chosen = if empty {
        PlanKind::Empty
    } else if order == Order::StartTimeDesc {
        if !bitmap_ok || scan_cost <= bitmap_cost {
            PlanKind::Scan
        } else {
            PlanKind::Bitmap
        }
    } else if small {
        PlanKind::Bitmap
    } else if keyed {
        PlanKind::Sorted
    } else {
        PlanKind::Scan
    };
    let kind = match force {
        // Forcing the bitmap plan needs at least one input; an empty plan stays empty.
        Some(PlanKind::Bitmap) if bitmap_ok && !empty => PlanKind::Bitmap,
        Some(PlanKind::Scan) if !empty => PlanKind::Scan,
        Some(PlanKind::Sorted) if keyed && !empty => PlanKind::Sorted,
        _ => chosen,
    };
    let explain = Explain {
        plan: kind,
        forced: force.is_some() && kind != chosen,
        order: order.as_str(),
        live_rows: live,
        estimated_matches: estimated,
        scan_cost,
        bitmap_cost,
        inputs: inputs
            .iter()
            .map(|i| ExplainInput {
                term: i.label.clone(),
                rows: i.rows,
            })
            .collect(),
        sql: None,
    };
    Ok(Plan {
        kind,
        order,
        explain,
        filters: resolved,
        bounds,
    })
}
