//! How the peer's application picks the driving index of a query: the planner statistics it
//! gathers after `ANALYZE`, a filter resolved against the dictionaries, the candidate drivers,
//! and their estimated costs.
//!
//! Why the application and not SQLite's planner: with QPSG on (so a cached statement is never
//! re-prepared on rebinding) SQLite plans without looking at bound values, so it cannot tell a
//! rare tag from a busy one; and it never turns an `EXISTS` into the driving loop. The
//! application knows the values, looks their counts up in its statistics (the counts per
//! dictionary value that `sqlite_stat4` would sample), and writes the SQL of the cheapest
//! driver: `INDEXED BY` for an index of `traces`, `CROSS JOIN` (which SQLite never reorders)
//! for a driver in another table, unary `+` on the columns the driver does not own so that no
//! other index is used for them. The statistics are only ever estimates for this choice; no
//! total or facet is read from them.

use rusqlite::Connection;
use std::collections::HashMap;

/// Rows a page fetches (`PAGE + 1`).
const FETCH: f64 = (crate::common::PAGE + 1) as f64;
/// At most this many distinct values of a high-cardinality column (user id, metadata value) are
/// counted one by one; past it, the average per value stands in.
const MCV_CAP: usize = 100_000;
/// Rows sampled per project for the range estimates (start time, duration, cost).
const SAMPLE: usize = 8192;

/// Per-project planner statistics: trace counts per value of each indexed input, and samples of
/// the range columns. Gathered once after the load (like `ANALYZE`), so slightly stale after
/// later writes; they only ever choose a plan.
#[derive(Debug, Default)]
pub struct Stats {
    pub traces: f64,
    pub status: [f64; 2],
    /// (name id, status) → traces.
    pub name_status: HashMap<(i64, i64), f64>,
    /// (tag id, status) → traces.
    pub tag_status: HashMap<(i64, i64), f64>,
    /// (model id, trace status) → traces having a span with the model.
    pub model_status: HashMap<(i64, i64), f64>,
    /// (model id, span status) → spans.
    pub span_model_status: HashMap<(Option<i64>, i64), f64>,
    pub users: HashMap<String, f64>,
    /// Traces per user when `users` was cut at the cap, else None (then a user not in `users`
    /// has no trace).
    pub user_avg: Option<f64>,
    pub meta: HashMap<(String, String), f64>,
    pub meta_avg: Option<f64>,
    /// Sorted samples: start times of all traces, durations of the finished ones, costs.
    pub starts: Vec<i64>,
    pub durations: Vec<i64>,
    pub costs: Vec<i64>,
    /// Share of the traces that have finished (a running trace has no duration).
    pub finished: f64,
}

fn each(conn: &Connection, sql: &str, mut f: impl FnMut(&rusqlite::Row<'_>)) {
    let mut st = conn.prepare(sql).expect("prepare stats");
    let mut rows = st.query([]).expect("stats");
    while let Some(r) = rows.next().expect("step") {
        f(r);
    }
}

/// The share of a sorted sample in `lo..=hi`.
fn share(sample: &[i64], lo: Option<i64>, hi: Option<i64>) -> f64 {
    if sample.is_empty() {
        return 0.5;
    }
    let a = lo.map_or(0, |lo| sample.partition_point(|v| *v < lo));
    let b = hi.map_or(sample.len(), |hi| sample.partition_point(|v| *v <= hi));
    b.saturating_sub(a) as f64 / sample.len() as f64
}

impl Stats {
    /// Gathers the statistics of every project (each from the index that holds the counts).
    pub fn gather(conn: &Connection) -> HashMap<i64, Stats> {
        let mut all: HashMap<i64, Stats> = HashMap::new();
        each(
            conn,
            "SELECT project, status, count(*) FROM traces INDEXED BY traces_status \
             GROUP BY project, status",
            |r| {
                let s = all.entry(r.get(0).unwrap()).or_default();
                let n = r.get::<_, i64>(2).unwrap() as f64;
                s.status[r.get::<_, i64>(1).unwrap() as usize & 1] += n;
                s.traces += n;
            },
        );
        let count = |r: &rusqlite::Row<'_>| r.get::<_, i64>(3).unwrap() as f64;
        // Per (value, status) trace counts, each from its covering index.
        type PerStatus = fn(&mut Stats) -> &mut HashMap<(i64, i64), f64>;
        let per_status: [(&str, PerStatus); 3] = [
            (
                "SELECT project, name_id, status, count(*) FROM traces INDEXED BY traces_name \
                 GROUP BY 1, 2, 3",
                |s| &mut s.name_status,
            ),
            (
                "SELECT project, tag_id, status, count(*) FROM trace_tags \
                 INDEXED BY trace_tags_status GROUP BY 1, 2, 3",
                |s| &mut s.tag_status,
            ),
            (
                "SELECT project, model_id, status, count(*) FROM trace_models \
                 INDEXED BY trace_models_status GROUP BY 1, 2, 3",
                |s| &mut s.model_status,
            ),
        ];
        for (sql, map) in per_status {
            each(conn, sql, |r| {
                let s = all.entry(r.get(0).unwrap()).or_default();
                map(s).insert((r.get(1).unwrap(), r.get(2).unwrap()), count(r));
            });
        }
        each(
            conn,
            "SELECT project, model_id, status, count(*) FROM spans INDEXED BY spans_model \
             GROUP BY 1, 2, 3",
            |r| {
                let s = all.entry(r.get(0).unwrap()).or_default();
                s.span_model_status
                    .insert((r.get(1).unwrap(), r.get(2).unwrap()), count(r));
            },
        );
        let mut distinct: HashMap<i64, (f64, f64)> = HashMap::new();
        each(
            conn,
            "SELECT project, user_id, count(*) FROM traces INDEXED BY traces_user \
             WHERE user_id IS NOT NULL GROUP BY 1, 2",
            |r| {
                let p: i64 = r.get(0).unwrap();
                let n = r.get::<_, i64>(2).unwrap() as f64;
                let d = distinct.entry(p).or_default();
                d.0 += 1.0;
                d.1 += n;
                let s = all.entry(p).or_default();
                if s.users.len() < MCV_CAP {
                    s.users.insert(r.get(1).unwrap(), n);
                } else {
                    s.user_avg = Some(0.0);
                }
            },
        );
        for (p, (values, rows)) in distinct.drain() {
            let s = all.entry(p).or_default();
            if s.user_avg.is_some() {
                s.user_avg = Some(rows / values);
            }
        }
        each(
            conn,
            "SELECT project, key, value, count(*) FROM trace_meta GROUP BY 1, 2, 3",
            |r| {
                let p: i64 = r.get(0).unwrap();
                let n = count(r);
                let d = distinct.entry(p).or_default();
                d.0 += 1.0;
                d.1 += n;
                let s = all.entry(p).or_default();
                if s.meta.len() < MCV_CAP {
                    s.meta.insert((r.get(1).unwrap(), r.get(2).unwrap()), n);
                } else {
                    s.meta_avg = Some(0.0);
                }
            },
        );
        for (p, (values, rows)) in distinct.drain() {
            let s = all.entry(p).or_default();
            if s.meta_avg.is_some() {
                s.meta_avg = Some(rows / values);
            }
        }
        // Samples: every k-th entry of the cost index (which holds all three columns).
        let every: HashMap<i64, usize> = all
            .iter()
            .map(|(p, s)| (*p, (s.traces as usize / SAMPLE).max(1)))
            .collect();
        let mut seen: HashMap<i64, (usize, usize)> = HashMap::new();
        each(
            conn,
            "SELECT project, start_time, duration_ms, cost_pico FROM traces \
             INDEXED BY traces_cost",
            |r| {
                let p: i64 = r.get(0).unwrap();
                let k = seen.entry(p).or_default();
                k.0 += 1;
                let duration: Option<i64> = r.get(2).unwrap();
                k.1 += usize::from(duration.is_some());
                if !(k.0 - 1).is_multiple_of(every.get(&p).copied().unwrap_or(1)) {
                    return;
                }
                let s = all.entry(p).or_default();
                s.starts.push(r.get(1).unwrap());
                s.durations.extend(duration);
                s.costs.push(r.get(3).unwrap());
            },
        );
        for (p, s) in all.iter_mut() {
            s.starts.sort_unstable();
            s.durations.sort_unstable();
            s.costs.sort_unstable();
            let (n, finished) = seen.get(p).copied().unwrap_or((0, 0));
            s.finished = if n == 0 {
                1.0
            } else {
                finished as f64 / n as f64
            };
        }
        all
    }
}

/// A filter resolved against the dictionaries, with the peer's encodings (status 0/1, costs in
/// 10^-12 USD, timestamps in ms).
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub p: i64,
    pub status: Option<i64>,
    /// The lowercased name substring and the ids of the names containing it.
    pub needle: Option<String>,
    pub name_ids: Vec<i64>,
    /// Tag ids, distinct and sorted.
    pub tags: Vec<i64>,
    /// `start_time` in `lo..hi`.
    pub window: (Option<i64>, Option<i64>),
    pub user: Option<String>,
    pub meta: Vec<(String, String)>,
    /// Inclusive bounds.
    pub duration: (Option<i64>, Option<i64>),
    pub cost: (Option<i64>, Option<i64>),
    pub span_model: Option<i64>,
    pub span_status: Option<i64>,
    pub by_cost: bool,
}

impl Resolved {
    pub fn has_duration(&self) -> bool {
        self.duration.0.is_some() || self.duration.1.is_some()
    }
    pub fn has_cost(&self) -> bool {
        self.cost.0.is_some() || self.cost.1.is_some()
    }
    pub fn has_span(&self) -> bool {
        self.span_model.is_some() || self.span_status.is_some()
    }
    /// Whether the filter holds nothing but a status and a time window (the facets of such a
    /// filter are range counts on the (value, status, start_time) indexes).
    pub fn status_and_window_only(&self) -> bool {
        self.needle.is_none()
            && self.tags.is_empty()
            && self.user.is_none()
            && self.meta.is_empty()
            && !self.has_duration()
            && !self.has_cost()
            && !self.has_span()
    }
}

/// What drives a query: the index whose entries the query walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// The primary key of `traces` (project, start_time, id).
    Pk,
    /// `traces_status`.
    Status,
    /// `traces_name` with the name ids and the status (or both statuses).
    Name,
    /// `traces_user`.
    User,
    /// The i-th tag: `trace_tags` (with the status: `trace_tags_status`).
    Tag(usize),
    /// The i-th metadata pair: `trace_meta`.
    Meta(usize),
    /// `spans_model`: the span model and span status together.
    Span,
    /// `trace_models` (with the status: `trace_models_status`): the span model alone.
    Model,
    /// `traces_duration`: a duration range.
    Duration,
    /// `traces_cost`: a cost range.
    Cost,
    /// `traces_cost` walked backwards for `orderBy=totalCost.desc`.
    CostOrder,
}

/// The inputs of a filter as bits, to know which ones a driver covers.
const STATUS: u64 = 1;
const NAME: u64 = 2;
const USER: u64 = 4;
const SPAN: u64 = 8;
const DURATION: u64 = 16;
const COST: u64 = 32;
const WINDOW: u64 = 64;
/// Bits of the trace columns (read from the trace row, or from an index of `traces`).
const TRACE_COLS: u64 = STATUS | NAME | USER | DURATION | COST;
fn tag_bit(i: usize) -> u64 {
    1 << (8 + i.min(23))
}
fn meta_bit(i: usize) -> u64 {
    1 << (32 + i.min(23))
}

impl Driver {
    /// Whether the driver is `traces` itself (one of its indexes or its key).
    pub fn on_traces(self) -> bool {
        matches!(
            self,
            Driver::Pk
                | Driver::Status
                | Driver::Name
                | Driver::User
                | Driver::Duration
                | Driver::Cost
                | Driver::CostOrder
        )
    }

    /// Whether the driver yields its traces newest first (else the page sorts its matches).
    pub fn ordered(self, r: &Resolved) -> bool {
        match self {
            Driver::Name => r.name_ids.len() == 1 && r.status.is_some(),
            Driver::Duration | Driver::Cost => false,
            _ => true,
        }
    }

    /// The inputs the driver's own index answers.
    fn covers(self, r: &Resolved) -> u64 {
        let status = if r.status.is_some() { STATUS } else { 0 };
        match self {
            Driver::Pk | Driver::CostOrder => WINDOW,
            Driver::Status => STATUS | WINDOW,
            Driver::Name => NAME | status | WINDOW,
            Driver::User => USER | WINDOW,
            Driver::Tag(i) => tag_bit(i) | status | WINDOW,
            Driver::Meta(i) => meta_bit(i) | WINDOW,
            Driver::Span => SPAN | WINDOW,
            Driver::Model => SPAN | status | WINDOW,
            Driver::Duration => DURATION,
            Driver::Cost => COST,
        }
    }

    /// The trace columns the driver's index holds (no row read for a residual on them).
    fn holds(self) -> u64 {
        match self {
            Driver::Pk => TRACE_COLS,
            Driver::Status => STATUS,
            Driver::Name => NAME | STATUS,
            Driver::User => USER,
            Driver::Duration | Driver::Cost | Driver::CostOrder => DURATION | COST,
            Driver::Tag(_) | Driver::Model => STATUS,
            Driver::Meta(_) | Driver::Span => 0,
        }
    }

    /// A short label for the plan column.
    pub fn label(self) -> String {
        match self {
            Driver::Pk => "primary key".into(),
            Driver::Status => "traces_status".into(),
            Driver::Name => "traces_name".into(),
            Driver::User => "traces_user".into(),
            Driver::Tag(i) => format!("trace_tags (tag {})", i + 1),
            Driver::Meta(i) => format!("trace_meta (pair {})", i + 1),
            Driver::Span => "spans_model".into(),
            Driver::Model => "trace_models".into(),
            Driver::Duration => "traces_duration".into(),
            Driver::Cost => "traces_cost (range)".into(),
            Driver::CostOrder => "traces_cost (order)".into(),
        }
    }
}

/// The estimates of one query's inputs.
struct Est {
    n: f64,
    /// (bit, selectivity) of each input given.
    sel: Vec<(u64, f64)>,
    window: f64,
}

impl Est {
    fn new(r: &Resolved, s: &Stats) -> Est {
        let n = s.traces.max(1.0);
        let mut sel = Vec::new();
        if let Some(st) = r.status {
            sel.push((STATUS, s.status[st as usize & 1] / n));
        }
        if r.needle.is_some() {
            let c: f64 = r
                .name_ids
                .iter()
                .flat_map(|id| [0, 1].map(|st| s.name_status.get(&(*id, st)).copied()))
                .flatten()
                .sum();
            sel.push((NAME, c / n));
        }
        for (i, t) in r.tags.iter().enumerate() {
            let c: f64 = [0, 1]
                .iter()
                .filter_map(|st| s.tag_status.get(&(*t, *st)))
                .sum();
            sel.push((tag_bit(i), c / n));
        }
        if let Some(u) = &r.user {
            let c = s
                .users
                .get(u)
                .copied()
                .or(s.user_avg)
                .unwrap_or(1.0)
                .max(1.0);
            sel.push((USER, c / n));
        }
        for (i, kv) in r.meta.iter().enumerate() {
            let c = s
                .meta
                .get(kv)
                .copied()
                .or(s.meta_avg)
                .unwrap_or(1.0)
                .max(1.0);
            sel.push((meta_bit(i), c / n));
        }
        if r.has_span() {
            let c: f64 = match (r.span_model, r.span_status) {
                (Some(m), Some(ss)) => s
                    .span_model_status
                    .get(&(Some(m), ss))
                    .copied()
                    .unwrap_or(1.0),
                (Some(m), None) => [0, 1]
                    .iter()
                    .filter_map(|st| s.model_status.get(&(m, *st)))
                    .sum(),
                (None, Some(ss)) => s
                    .span_model_status
                    .iter()
                    .filter(|((_, st), _)| *st == ss)
                    .map(|(_, c)| c)
                    .sum(),
                (None, None) => n,
            };
            sel.push((SPAN, (c / n).min(1.0)));
        }
        if r.has_duration() {
            sel.push((
                DURATION,
                share(&s.durations, r.duration.0, r.duration.1) * s.finished,
            ));
        }
        if r.has_cost() {
            sel.push((COST, share(&s.costs, r.cost.0, r.cost.1)));
        }
        let window = if r.window.0.is_some() || r.window.1.is_some() {
            share(&s.starts, r.window.0, r.window.1.map(|h| h - 1))
        } else {
            1.0
        };
        if window < 1.0 {
            sel.push((WINDOW, window));
        }
        Est { n, sel, window }
    }

    fn get(&self, bit: u64) -> f64 {
        self.sel
            .iter()
            .find(|(b, _)| *b == bit)
            .map_or(1.0, |(_, s)| *s)
    }
}

/// Index entries the driver holds for the query (its equality values, within the window).
fn entries(d: Driver, r: &Resolved, s: &Stats, e: &Est) -> f64 {
    let statuses: Vec<i64> = r.status.map_or(vec![0, 1], |st| vec![st]);
    let sum = |m: &HashMap<(i64, i64), f64>, id: i64| -> f64 {
        statuses
            .iter()
            .filter_map(|st| m.get(&(id, *st)))
            .sum::<f64>()
    };
    let w = e.window;
    match d {
        Driver::Pk | Driver::CostOrder => e.n * w,
        Driver::Status => e.get(STATUS) * e.n * w,
        Driver::Name => {
            r.name_ids
                .iter()
                .map(|id| sum(&s.name_status, *id))
                .sum::<f64>()
                * w
        }
        Driver::User => e.get(USER) * e.n * w,
        Driver::Tag(i) => sum(&s.tag_status, r.tags[i]) * w,
        Driver::Meta(i) => e.get(meta_bit(i)) * e.n * w,
        Driver::Span => e.get(SPAN) * e.n * w,
        Driver::Model => r.span_model.map_or(e.n, |m| sum(&s.model_status, m)) * w,
        Driver::Duration => e.get(DURATION) * e.n,
        Driver::Cost => e.get(COST) * e.n,
    }
}

/// The candidate drivers of a query.
fn candidates(r: &Resolved) -> Vec<Driver> {
    if r.by_cost {
        return vec![Driver::CostOrder];
    }
    let mut v = vec![Driver::Pk];
    if r.status.is_some() {
        v.push(Driver::Status);
    }
    if r.needle.is_some() {
        v.push(Driver::Name);
    }
    if r.user.is_some() {
        v.push(Driver::User);
    }
    v.extend((0..r.tags.len()).map(Driver::Tag));
    v.extend((0..r.meta.len()).map(Driver::Meta));
    match (r.span_model, r.span_status) {
        (Some(_), Some(_)) => v.push(Driver::Span),
        (Some(_), None) => v.push(Driver::Model),
        _ => {}
    }
    if r.has_duration() {
        v.push(Driver::Duration);
    }
    if r.has_cost() {
        v.push(Driver::Cost);
    }
    v
}

/// B-tree lookups per driver entry for what the driver does not cover: one per `EXISTS`, and one
/// to read the trace row when a residual needs a trace column the driver's index lacks.
fn lookups(d: Driver, r: &Resolved, e: &Est) -> (f64, f64) {
    let covered = d.covers(r);
    let mut exists = 0.0;
    let mut rest_sel = 1.0;
    let mut row = false;
    for (bit, sel) in &e.sel {
        if covered & bit != 0 {
            continue;
        }
        rest_sel *= sel;
        if bit & TRACE_COLS != 0 {
            row |= d.holds() & bit == 0;
        } else if *bit != WINDOW {
            exists += 1.0;
        }
    }
    (exists + f64::from(u8::from(row)), rest_sel)
}

/// The cheapest driver of a page (`count` false) or of a count over the whole matching set, with
/// its estimated cost in index entries visited. Without statistics (no `ANALYZE` yet): the
/// primary key for a page, the first input's index for a count.
pub fn choose(r: &Resolved, s: Option<&Stats>, count: bool) -> Driver {
    let cands = candidates(r);
    let Some(s) = s else {
        return if count {
            cands.get(1).copied().unwrap_or(cands[0])
        } else {
            cands[0]
        };
    };
    let e = Est::new(r, s);
    let mut best = (f64::INFINITY, cands[0]);
    for d in cands {
        let n = entries(d, r, s, &e).max(1.0);
        let (k, rest_sel) = lookups(d, r, &e);
        let visited = if count || !d.ordered(r) {
            n
        } else {
            (FETCH / rest_sel.max(1e-12)).min(n)
        };
        let cost = visited * (1.0 + k);
        if cost < best.0 {
            best = (cost, d);
        }
    }
    best.1
}
