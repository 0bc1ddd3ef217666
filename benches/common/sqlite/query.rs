//! The SQLite peer's reads: a [`Filter`] resolved against the dictionaries, the SQL of a page,
//! a count and the facets for the driver [`plan`](super::plan) picks, their query plans, and
//! `get_trace`.

use super::plan::{choose, Driver, Resolved};
use super::{status_code, SqlCounts, SqlDetail, SqlScore, SqlSpan, SqlTrace, Sqlite};
use crate::common::{Counts, Filter, Keyset, PAGE};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};
use rust_decimal::Decimal;
use tracestore::{ScoreValue, Status};

/// The columns of a trace row (of `traces` under alias `a`), in `row_to_trace`'s order; the
/// name comes from the dictionary by its integer key.
fn cols(a: &str) -> String {
    format!(
        "{a}.start_time, {a}.id, (SELECT n.name FROM names n WHERE n.id={a}.name_id), \
         {a}.status, {a}.end_time, {a}.duration_ms, {a}.tags, {a}.metadata, {a}.user_id, \
         {a}.session_id, {a}.total_cost, {a}.total_tokens, {a}.span_count, {a}.score_count, \
         {a}.created_at"
    )
}

fn row_to_trace(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlTrace> {
    let tags: String = r.get(6)?;
    let cost: String = r.get(10)?;
    Ok(SqlTrace {
        start_ms: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        status: if r.get::<_, i64>(3)? == 1 {
            Status::Error
        } else {
            Status::Ok
        },
        end_ms: r.get(4)?,
        duration_ms: r.get(5)?,
        tags: if tags.is_empty() {
            Vec::new()
        } else {
            tags.split(',').map(str::to_string).collect()
        },
        metadata: r.get(7)?,
        user_id: r.get(8)?,
        session_id: r.get(9)?,
        total_cost: cost.parse().unwrap_or_default(),
        total_tokens: r.get::<_, i64>(11)? as u64,
        span_count: r.get::<_, i64>(12)? as u32,
        score_count: r.get::<_, i64>(13)? as u32,
        created_ms: r.get(14)?,
    })
}

/// A cost bound in 10^-12 USD: a lower bound rounds up, an upper bound down (the stored costs
/// have at most 12 decimals, so the comparison stays exact).
fn pico(c: Decimal, up: bool) -> i64 {
    let x = c * Decimal::from(1_000_000_000_000i64);
    let x = if up { x.ceil() } else { x.floor() };
    x.try_into().unwrap_or(i64::MAX)
}

/// SQL text with its numbered parameters; `?1` is always the project.
struct Sql {
    text: String,
    args: Vec<Value>,
}

impl Sql {
    fn new(p: i64) -> Sql {
        Sql {
            text: String::new(),
            args: vec![Value::Integer(p)],
        }
    }
    /// Adds a parameter; returns its placeholder.
    fn arg(&mut self, v: impl Into<Value>) -> String {
        self.args.push(v.into());
        format!("?{}", self.args.len())
    }
}

/// The FROM and WHERE of a filter driven by `d`, and how to name the driver's trace key.
struct Core {
    from_where: String,
    /// The driver's alias (`t` when the driver is `traces` itself) and its trace key columns.
    k: &'static str,
    st: &'static str,
    id: &'static str,
}

fn range(w: &mut Vec<String>, q: &mut Sql, col: &str, (lo, hi): (Option<i64>, Option<i64>)) {
    if let Some(lo) = lo {
        w.push(format!("{col} >= {}", q.arg(lo)));
    }
    if let Some(hi) = hi {
        w.push(format!("{col} <= {}", q.arg(hi)));
    }
}

/// The filter's FROM and WHERE with `d` as the outer loop: `d`'s own terms on its index, the
/// time window and keyset on its (start_time, id), then every other input as a residual: `+`
/// on a trace column (so no other index answers it), `EXISTS` on a key lookup for a tag, a
/// metadata pair or a span condition. `need_trace` joins the trace row even when no residual
/// needs it.
fn core(r: &Resolved, d: Driver, after: Option<&Keyset>, need_trace: bool, q: &mut Sql) -> Core {
    let with_status = r.status.is_some();
    let (from, k, st, id) = match d {
        Driver::Pk => ("traces t", "t", "start_time", "id"),
        Driver::Status => ("traces t INDEXED BY traces_status", "t", "start_time", "id"),
        Driver::Name => ("traces t INDEXED BY traces_name", "t", "start_time", "id"),
        Driver::User => ("traces t INDEXED BY traces_user", "t", "start_time", "id"),
        Driver::Duration => (
            "traces t INDEXED BY traces_duration",
            "t",
            "start_time",
            "id",
        ),
        Driver::Cost | Driver::CostOrder => {
            ("traces t INDEXED BY traces_cost", "t", "start_time", "id")
        }
        Driver::Tag(_) if with_status => (
            "trace_tags d INDEXED BY trace_tags_status",
            "d",
            "start_time",
            "id",
        ),
        Driver::Tag(_) => ("trace_tags d", "d", "start_time", "id"),
        Driver::Model if with_status => (
            "trace_models d INDEXED BY trace_models_status",
            "d",
            "start_time",
            "id",
        ),
        Driver::Model => ("trace_models d", "d", "start_time", "id"),
        Driver::Meta(_) => ("trace_meta d", "d", "start_time", "id"),
        Driver::Span => (
            "spans d INDEXED BY spans_model",
            "d",
            "trace_start",
            "trace_id",
        ),
    };
    let mut from = from.to_string();
    let mut w = vec![format!("{k}.project=?1")];
    match d {
        Driver::Status => w.push(format!("t.status={}", q.arg(r.status.unwrap()))),
        Driver::Name => {
            if r.name_ids.len() == 1 {
                w.push(format!("t.name_id={}", q.arg(r.name_ids[0])));
            } else {
                let n = q.arg(r.needle.clone().unwrap());
                w.push(format!(
                    "t.name_id IN (SELECT id FROM names WHERE instr(lower(name), {n}) > 0)"
                ));
            }
            match r.status {
                Some(s) => w.push(format!("t.status={}", q.arg(s))),
                None => w.push("t.status IN (0, 1)".into()),
            }
        }
        Driver::User => w.push(format!("t.user_id={}", q.arg(r.user.clone().unwrap()))),
        Driver::Tag(i) => {
            w.push(format!("d.tag_id={}", q.arg(r.tags[i])));
            if let Some(s) = r.status {
                w.push(format!("d.status={}", q.arg(s)));
            }
        }
        Driver::Model => {
            w.push(format!("d.model_id={}", q.arg(r.span_model.unwrap())));
            if let Some(s) = r.status {
                w.push(format!("d.status={}", q.arg(s)));
            }
        }
        Driver::Meta(i) => {
            let (key, value) = r.meta[i].clone();
            w.push(format!("d.key={} AND d.value={}", q.arg(key), q.arg(value)));
        }
        Driver::Span => {
            let m = q.arg(r.span_model.unwrap());
            let s = q.arg(r.span_status.unwrap());
            w.push(format!("d.model_id={m} AND d.status={s}"));
        }
        Driver::Duration => range(&mut w, q, "t.duration_ms", r.duration),
        Driver::Cost => range(&mut w, q, "t.cost_pico", r.cost),
        Driver::Pk | Driver::CostOrder => {}
    }
    // The window and the keyset: a range of the driver's (start_time, id) when its entries are
    // in time order, else residuals read from the index.
    let in_time = !matches!(d, Driver::Duration | Driver::Cost | Driver::CostOrder);
    let win_col = if in_time {
        format!("{k}.{st}")
    } else {
        "+t.start_time".to_string()
    };
    if let Some(lo) = r.window.0 {
        w.push(format!("{win_col} >= {}", q.arg(lo)));
    }
    if let Some(hi) = r.window.1 {
        w.push(format!("{win_col} < {}", q.arg(hi)));
    }
    if let Some((ms, kid, cost)) = after {
        if d == Driver::CostOrder {
            let c = q.arg(*cost);
            let s = q.arg(*ms);
            let i = q.arg(kid.clone());
            w.push(format!(
                "(t.cost_pico, t.start_time, t.id) < ({c}, {s}, {i})"
            ));
        } else {
            let s = q.arg(*ms);
            let i = q.arg(kid.clone());
            w.push(format!("({k}.{st}, {k}.{id}) < ({s}, {i})"));
        }
    }
    let status_resid = with_status
        && !matches!(
            d,
            Driver::Status | Driver::Name | Driver::Tag(_) | Driver::Model
        );
    let trace_resid = status_resid
        || (r.needle.is_some() && d != Driver::Name)
        || (r.user.is_some() && d != Driver::User)
        || (r.has_duration() && d != Driver::Duration)
        || (r.has_cost() && d != Driver::Cost);
    if k == "d" && (need_trace || trace_resid) {
        from.push_str(" CROSS JOIN traces t");
        w.push(format!(
            "t.project=d.project AND t.start_time=d.{st} AND t.id=d.{id}"
        ));
    }
    if status_resid {
        w.push(format!("+t.status={}", q.arg(r.status.unwrap())));
    }
    if let (Some(n), true) = (&r.needle, d != Driver::Name) {
        let n = q.arg(n.clone());
        w.push(format!(
            "+t.name_id IN (SELECT id FROM names WHERE instr(lower(name), {n}) > 0)"
        ));
    }
    if let (Some(u), true) = (&r.user, d != Driver::User) {
        w.push(format!("+t.user_id={}", q.arg(u.clone())));
    }
    if d != Driver::Duration {
        range(&mut w, q, "+t.duration_ms", r.duration);
    }
    if d != Driver::Cost {
        range(&mut w, q, "+t.cost_pico", r.cost);
    }
    for (i, tag) in r.tags.iter().enumerate() {
        if d != Driver::Tag(i) {
            w.push(format!(
                "EXISTS (SELECT 1 FROM trace_tags g WHERE g.project=?1 AND g.tag_id={} \
                 AND g.start_time={k}.{st} AND g.id={k}.{id})",
                q.arg(*tag)
            ));
        }
    }
    for (i, (key, value)) in r.meta.iter().enumerate() {
        if d != Driver::Meta(i) {
            let kk = q.arg(key.clone());
            let vv = q.arg(value.clone());
            w.push(format!(
                "EXISTS (SELECT 1 FROM trace_meta m WHERE m.project=?1 AND m.key={kk} \
                 AND m.value={vv} AND m.start_time={k}.{st} AND m.id={k}.{id})"
            ));
        }
    }
    if !matches!(d, Driver::Span | Driver::Model) {
        match (r.span_model, r.span_status) {
            (Some(m), Some(s)) => {
                let m = q.arg(m);
                let s = q.arg(s);
                w.push(format!(
                    "EXISTS (SELECT 1 FROM spans s WHERE s.project=?1 AND s.model_id={m} \
                     AND s.status={s} AND s.trace_start={k}.{st} AND s.trace_id={k}.{id})"
                ));
            }
            (Some(m), None) => w.push(format!(
                "EXISTS (SELECT 1 FROM trace_models x WHERE x.project=?1 AND x.model_id={} \
                 AND x.start_time={k}.{st} AND x.id={k}.{id})",
                q.arg(m)
            )),
            (None, Some(s)) => w.push(format!(
                "EXISTS (SELECT 1 FROM spans s WHERE s.project=?1 AND s.trace_id={k}.{id} \
                 AND s.status={})",
                q.arg(s)
            )),
            (None, None) => {}
        }
    }
    Core {
        from_where: format!("{from} WHERE {}", w.join(" AND ")),
        k,
        st,
        id,
    }
}

/// Spans drive with one entry per matching span: a trace with two such spans is grouped once
/// (the index order keeps a trace's entries together, so the grouping streams).
fn dedup(d: Driver) -> &'static str {
    if d == Driver::Span {
        " GROUP BY d.trace_start, d.trace_id"
    } else {
        ""
    }
}

/// One page: `fetch` rows after `after`, newest first (or by cost). An ordered driver walks
/// its index backwards and stops after `fetch` matches; an unordered one (several name ranges,
/// a value range) keeps the top `fetch` keys from its index alone, then reads those rows.
fn page_sql(r: &Resolved, d: Driver, after: Option<&Keyset>, fetch: usize) -> Sql {
    let mut q = Sql::new(r.p);
    if d.ordered(r) {
        let c = core(r, d, after, true, &mut q);
        let order = if d == Driver::CostOrder {
            "t.cost_pico DESC, t.start_time DESC, t.id DESC".to_string()
        } else {
            format!(
                "{k}.{st} DESC, {k}.{id} DESC",
                k = c.k,
                st = c.st,
                id = c.id
            )
        };
        q.text = format!(
            "SELECT {} FROM {}{} ORDER BY {order} LIMIT {fetch}",
            cols("t"),
            c.from_where,
            dedup(d)
        );
    } else {
        let c = core(r, d, after, false, &mut q);
        q.text = format!(
            "SELECT {} FROM (SELECT t.start_time AS st, t.id AS id FROM {} \
             ORDER BY 1 DESC, 2 DESC LIMIT {fetch}) p \
             CROSS JOIN traces o ON o.project=?1 AND o.start_time=p.st AND o.id=p.id \
             ORDER BY p.st DESC, p.id DESC",
            cols("o"),
            c.from_where
        );
    }
    q
}

/// `COUNT(*)` of the whole matching set.
fn count_sql(r: &Resolved, d: Driver) -> Sql {
    let mut q = Sql::new(r.p);
    let c = core(r, d, None, false, &mut q);
    q.text = if d == Driver::Span {
        format!(
            "SELECT 0, NULL, count(*), 0 FROM (SELECT 1 FROM {}{})",
            c.from_where,
            dedup(d)
        )
    } else {
        format!("SELECT 0, NULL, count(*), 0 FROM {}", c.from_where)
    };
    q
}

/// The total and the four facets of any filter, in one statement: the matching set's keys,
/// name and status are materialized once (`m`), then grouped by status, by name, and through
/// the tags and models of each matching trace (the `_trace` indexes) by tag and by model.
fn facets_sql(r: &Resolved, d: Driver) -> Sql {
    let mut q = Sql::new(r.p);
    let c = core(r, d, None, true, &mut q);
    q.text = format!(
        "WITH m AS MATERIALIZED (SELECT t.start_time AS st, t.id AS id, t.name_id AS nm, \
         t.status AS su FROM {}{}) \
         SELECT 0, NULL, count(*), coalesce(sum(su), 0) FROM m \
         UNION ALL SELECT * FROM (SELECT 1, n.name, c, 0 FROM (SELECT nm, count(*) AS c FROM m \
         GROUP BY nm) JOIN names n ON n.id=nm ORDER BY c DESC, n.name LIMIT 20) \
         UNION ALL SELECT * FROM (SELECT 2, g.name, c, 0 FROM (SELECT x.tag_id AS tg, \
         count(*) AS c FROM m CROSS JOIN trace_tags x INDEXED BY trace_tags_trace \
         WHERE x.project=?1 AND x.start_time=m.st AND x.id=m.id GROUP BY x.tag_id) \
         JOIN tag_names g ON g.id=tg ORDER BY c DESC, g.name LIMIT 20) \
         UNION ALL SELECT * FROM (SELECT 3, o.name, c, 0 FROM (SELECT x.model_id AS md, \
         count(*) AS c FROM m CROSS JOIN trace_models x INDEXED BY trace_models_trace \
         WHERE x.project=?1 AND x.start_time=m.st AND x.id=m.id GROUP BY x.model_id) \
         JOIN models o ON o.id=md ORDER BY c DESC, o.name LIMIT 20)",
        c.from_where,
        dedup(d)
    );
    q
}

/// The total and facets of a filter of only a status and a time window: one range count per
/// dictionary value on the (project, value, status, start_time) indexes, index entries only,
/// and the status split from `traces_status`.
fn range_facets_sql(r: &Resolved) -> Sql {
    let mut q = Sql::new(r.p);
    let mut win = String::new();
    if let Some(lo) = r.window.0 {
        win.push_str(&format!(" AND i.start_time >= {}", q.arg(lo)));
    }
    if let Some(hi) = r.window.1 {
        win.push_str(&format!(" AND i.start_time < {}", q.arg(hi)));
    }
    let status = match r.status {
        Some(s) => format!(" AND i.status={}", q.arg(s)),
        None if !win.is_empty() => " AND i.status IN (0, 1)".to_string(),
        None => String::new(),
    };
    let per = |table: &str, index: &str, col: &str, dict: &str| {
        format!(
            "SELECT v.name AS v, (SELECT count(*) FROM {table} i INDEXED BY {index} \
             WHERE i.project=?1 AND i.{col}=v.id{status}{win}) AS c FROM {dict} v"
        )
    };
    let by_status = |s: &str| {
        format!(
            "(SELECT count(*) FROM traces i INDEXED BY traces_status WHERE i.project=?1 \
             AND i.status={s}{win})"
        )
    };
    let total = match r.status {
        Some(1) => format!("SELECT 0, NULL, a, a FROM (SELECT {} AS a)", by_status("1")),
        Some(_) => format!("SELECT 0, NULL, a, 0 FROM (SELECT {} AS a)", by_status("0")),
        None => format!(
            "SELECT 0, NULL, a + b, b FROM (SELECT {} AS a, {} AS b)",
            by_status("0"),
            by_status("1")
        ),
    };
    q.text = format!(
        "WITH nc AS MATERIALIZED ({}), tc AS MATERIALIZED ({}), mc AS MATERIALIZED ({}) \
         {total} \
         UNION ALL SELECT * FROM (SELECT 1, v, c, 0 FROM nc WHERE c > 0 ORDER BY c DESC, v LIMIT 20) \
         UNION ALL SELECT * FROM (SELECT 2, v, c, 0 FROM tc WHERE c > 0 ORDER BY c DESC, v LIMIT 20) \
         UNION ALL SELECT * FROM (SELECT 3, v, c, 0 FROM mc WHERE c > 0 ORDER BY c DESC, v LIMIT 20)",
        per("traces", "traces_name", "name_id", "names"),
        per("trace_tags", "trace_tags_status", "tag_id", "tag_names"),
        per("trace_models", "trace_models_status", "model_id", "models"),
    );
    q
}

impl Sqlite {
    fn run(&self, q: &Sql, mut each: impl FnMut(&rusqlite::Row<'_>)) {
        let mut st = self.conn.prepare_cached(&q.text).expect("prepare");
        for (i, v) in q.args.iter().enumerate() {
            st.raw_bind_parameter(i + 1, v).expect("bind");
        }
        let mut rows = st.raw_query();
        while let Some(r) = rows.next().expect("step") {
            each(r);
        }
    }

    fn ids(&self, sql: &str, v: &str) -> Vec<i64> {
        let mut st = self.conn.prepare_cached(sql).unwrap();
        st.query_map([v], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The filter against the dictionaries, as a fresh request does it; None when nothing can
    /// match (unknown project, tag or model; a name substring no name contains; one metadata
    /// key with two values).
    fn resolve(&self, project: &str, f: &Filter) -> Option<Resolved> {
        let p = self.lookup_project(project)?;
        let mut r = Resolved {
            p,
            status: f.status.map(status_code),
            window: (f.start.map(|s| s.as_millis()), f.end.map(|e| e.as_millis())),
            user: f.user_id.clone().filter(|u| !u.is_empty()),
            duration: (
                f.min_duration_ms.map(|v| v as i64),
                f.max_duration_ms.map(|v| v as i64),
            ),
            cost: (
                f.min_cost.map(|c| pico(c, true)),
                f.max_cost.map(|c| pico(c, false)),
            ),
            span_status: f.span_status.map(status_code),
            by_cost: f.order == Some("totalCost.desc"),
            ..Default::default()
        };
        if let Some(n) = f.name.as_deref().filter(|n| !n.is_empty()) {
            let needle = n.to_lowercase();
            r.name_ids = self.ids(
                "SELECT id FROM names WHERE instr(lower(name), ?1) > 0",
                &needle,
            );
            if r.name_ids.is_empty() {
                return None;
            }
            r.needle = Some(needle);
        }
        for t in &f.tags {
            let id = *self
                .ids("SELECT id FROM tag_names WHERE name=?1", t)
                .first()?;
            r.tags.push(id);
        }
        r.tags.sort_unstable();
        r.tags.dedup();
        let mut meta: Vec<(String, String)> = f
            .metadata
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect();
        meta.sort();
        meta.dedup();
        if meta.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        r.meta = meta;
        if let Some(m) = f.span_model.as_deref().filter(|m| !m.is_empty()) {
            r.span_model = Some(*self.ids("SELECT id FROM models WHERE name=?1", m).first()?);
        }
        Some(r)
    }

    /// The driver of a page (`count` false) or of a count.
    fn driver(&self, r: &Resolved, count: bool) -> Driver {
        choose(r, self.stats.get(&r.p), count)
    }

    /// The counting statement of a filter, and what it is (for the plan column).
    fn counts_sql(&self, r: &Resolved, counts: Counts) -> (String, Sql) {
        if counts == Counts::TotalAndFacets && r.status_and_window_only() {
            return ("range counts".into(), range_facets_sql(r));
        }
        let d = self.driver(r, true);
        let q = match counts {
            Counts::TotalAndFacets => facets_sql(r, d),
            _ => count_sql(r, d),
        };
        (d.label(), q)
    }

    fn run_counts(&self, r: &Resolved, counts: Counts) -> SqlCounts {
        let mut out = SqlCounts::default();
        let (_, q) = self.counts_sql(r, counts);
        self.run(&q, |row| {
            let kind: i64 = row.get(0).unwrap();
            let c = row.get::<_, i64>(2).unwrap() as u64;
            match kind {
                0 => {
                    out.total = c;
                    out.error = row.get::<_, i64>(3).unwrap() as u64;
                }
                1 => out.names.push((row.get(1).unwrap(), c)),
                2 => out.tags.push((row.get(1).unwrap(), c)),
                _ => out.models.push((row.get(1).unwrap(), c)),
            }
        });
        out
    }

    /// One page of up to `fetch` rows strictly after `after`, and (when the filter asks for
    /// them) the total and facets, all in one read transaction so they agree with the page.
    pub fn list(
        &self,
        project: &str,
        f: &Filter,
        after: Option<&Keyset>,
        fetch: usize,
    ) -> (Vec<SqlTrace>, Option<SqlCounts>) {
        let counting = f.counts != Counts::None;
        let tx = counting.then(|| self.conn.unchecked_transaction().expect("begin"));
        let Some(r) = self.resolve(project, f) else {
            return (Vec::new(), counting.then(SqlCounts::default));
        };
        let d = self.driver(&r, false);
        let mut page = Vec::with_capacity(fetch);
        self.run(&page_sql(&r, d, after, fetch), |row| {
            page.push(row_to_trace(row).expect("row"));
        });
        let counts = counting.then(|| self.run_counts(&r, f.counts));
        if let Some(tx) = tx {
            tx.commit().expect("commit");
        }
        (page, counts)
    }

    /// One page: up to `fetch` rows strictly after `after`, newest first.
    pub fn query(
        &self,
        project: &str,
        f: &Filter,
        after: Option<&Keyset>,
        fetch: usize,
    ) -> Vec<SqlTrace> {
        let f = Filter {
            counts: Counts::None,
            ..f.clone()
        };
        self.list(project, &f, after, fetch).0
    }

    /// The total and (with `Counts::TotalAndFacets`) the facets of a filter's whole matching
    /// set: `COUNT(*)` and `GROUP BY` over the same filter (see `counts_sql`).
    pub fn counts(&self, project: &str, f: &Filter) -> SqlCounts {
        let counts = if f.counts == Counts::None {
            Counts::Total
        } else {
            f.counts
        };
        match self.resolve(project, f) {
            Some(r) => self.run_counts(&r, counts),
            None => SqlCounts::default(),
        }
    }

    fn eqp(&self, q: &Sql) -> String {
        let mut st = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", q.text))
            .unwrap();
        for (i, v) in q.args.iter().enumerate() {
            st.raw_bind_parameter(i + 1, v).unwrap();
        }
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(r.get::<_, String>(3).unwrap());
        }
        out.join("; ")
    }

    /// The peer's driver and `EXPLAIN QUERY PLAN` for a page (and for its counting statement
    /// when the filter counts), with its real parameters bound, one line.
    pub fn explain(&self, project: &str, f: &Filter, after: Option<&Keyset>) -> String {
        let Some(r) = self.resolve(project, f) else {
            return "nothing can match (dictionary lookup)".into();
        };
        let d = self.driver(&r, false);
        let mut out = format!(
            "[{}] {}",
            d.label(),
            self.eqp(&page_sql(&r, d, after, PAGE + 1))
        );
        if f.counts != Counts::None {
            let (label, q) = self.counts_sql(&r, f.counts);
            out.push_str(&format!(" ‖ counts [{label}] {}", self.eqp(&q)));
        }
        out
    }

    /// How many times SQLite re-prepared the cached statement of this page since it was first
    /// prepared (0 with QPSG; without it, STAT4 makes every rebind of a value the plan looked at
    /// re-prepare the statement).
    pub fn reprepares(&self, project: &str, f: &Filter, after: Option<&Keyset>) -> i32 {
        let Some(r) = self.resolve(project, f) else {
            return 0;
        };
        let q = page_sql(&r, self.driver(&r, false), after, PAGE + 1);
        let st = self.conn.prepare_cached(&q.text).expect("prepare");
        st.get_status(rusqlite::StatementStatus::RePrepare)
    }

    /// The SQL of a page (for inspection), with its parameters.
    pub fn page_sql_of(
        &self,
        project: &str,
        f: &Filter,
        after: Option<&Keyset>,
    ) -> Option<(String, Vec<Value>)> {
        let r = self.resolve(project, f)?;
        let q = page_sql(&r, self.driver(&r, false), after, PAGE + 1);
        Some((q.text, q.args))
    }

    /// One trace with spans and scores, None when absent.
    pub fn get_trace(&self, project: &str, id: &str) -> Option<SqlDetail> {
        let p = self.lookup_project(project)?;
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM traces t WHERE t.project=?1 AND t.id=?2",
                cols("t")
            ))
            .unwrap();
        let trace = st
            .query_row(params![p, id], row_to_trace)
            .optional()
            .unwrap()?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT s.span_id, s.name, s.status, s.start_time, s.end_time, \
                 (SELECT o.name FROM models o WHERE o.id=s.model_id), s.input_tokens, \
                 s.output_tokens, s.total_tokens, s.cost FROM spans s \
                 WHERE s.project=?1 AND s.trace_id=?2",
            )
            .unwrap();
        let mut spans: Vec<SqlSpan> = st
            .query_map(params![p, id], |r| {
                Ok(SqlSpan {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    status: if r.get::<_, i64>(2)? == 1 {
                        Status::Error
                    } else {
                        Status::Ok
                    },
                    start_ms: r.get(3)?,
                    end_ms: r.get(4)?,
                    model: r.get(5)?,
                    input_tokens: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                    output_tokens: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                    total_tokens: r.get::<_, i64>(8)? as u64,
                    cost: r.get::<_, Option<String>>(9)?.and_then(|c| c.parse().ok()),
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        spans.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT score_id, name, value, comment FROM scores \
                 WHERE project=?1 AND trace_id=?2",
            )
            .unwrap();
        let scores: Vec<SqlScore> = st
            .query_map(params![p, id], |r| {
                let value = match r.get::<_, rusqlite::types::Value>(2)? {
                    rusqlite::types::Value::Real(n) => ScoreValue::Number(n),
                    rusqlite::types::Value::Integer(n) => ScoreValue::Number(n as f64),
                    rusqlite::types::Value::Text(s) => ScoreValue::Text(s),
                    _ => ScoreValue::Text(String::new()),
                };
                Ok(SqlScore {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    value,
                    comment: r.get(3)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        Some(SqlDetail {
            trace,
            spans,
            scores,
        })
    }
}
