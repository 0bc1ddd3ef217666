//! The SQLite peer's reads: the SQL of a [`Filter`], one keyset page, its query plan, and
//! `get_trace`.

use super::{SqlCounts, SqlDetail, SqlScore, SqlSpan, SqlTrace, Sqlite};
use crate::common::{Counts, Filter, Keyset, PAGE};
use rusqlite::{params, OptionalExtension};
use tracestore::{ScoreValue, Status};

const TRACE_COLS: &str = "t.start_time, t.id, t.name, t.status, t.end_time, t.tags, t.metadata, \
                          t.total_cost, t.total_tokens, t.span_count, t.score_count, t.created_at";

fn row_to_trace(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlTrace> {
    let tags: String = r.get(5)?;
    let cost: String = r.get(7)?;
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
        tags: if tags.is_empty() {
            Vec::new()
        } else {
            tags.split(',').map(str::to_string).collect()
        },
        metadata: r.get(6)?,
        total_cost: cost.parse().unwrap_or_default(),
        total_tokens: r.get::<_, i64>(8)? as u64,
        span_count: r.get::<_, i64>(9)? as u32,
        score_count: r.get::<_, i64>(10)? as u32,
        created_ms: r.get(11)?,
    })
}

impl Sqlite {
    /// The SQL of a filter; parameters are numbered as bound by [`Sqlite::query`].
    pub fn sql(f: &Filter, keyset: bool) -> String {
        let mut sql = format!("SELECT {TRACE_COLS} FROM traces t WHERE t.project=?1");
        if f.status.is_some() {
            sql.push_str(" AND t.status=?2");
        }
        if f.name.is_some() {
            sql.push_str(" AND instr(lower(t.name), ?3) > 0");
        }
        if f.start.is_some() {
            sql.push_str(" AND t.start_time >= ?4");
        }
        if f.end.is_some() {
            sql.push_str(" AND t.start_time < ?5");
        }
        let by_cost = f.order == Some("totalCost.desc");
        if keyset && by_cost {
            sql.push_str(" AND (t.cost_pico, t.start_time, t.id) < (?40, ?6, ?7)");
        } else if keyset {
            sql.push_str(" AND (t.start_time, t.id) < (?6, ?7)");
        }
        let join = std::env::var("TRACESTORE_BENCH_SQLITE_TAGS").is_ok_and(|v| v == "join");
        for i in 0..f.tags.len() {
            if join {
                sql = sql.replacen(
                    " WHERE ",
                    &format!(
                        " JOIN trace_tags g{i} ON g{i}.project=t.project AND g{i}.tag=?{} \
                         AND g{i}.start_time=t.start_time AND g{i}.id=t.id WHERE ",
                        9 + i
                    ),
                    1,
                );
            } else {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM trace_tags g WHERE g.project=t.project AND g.tag=?{} \
                     AND g.start_time=t.start_time AND g.id=t.id)",
                    9 + i
                ));
            }
        }
        if by_cost {
            sql.push_str(" ORDER BY t.cost_pico DESC, t.start_time DESC, t.id DESC LIMIT ?8");
        } else {
            sql.push_str(" ORDER BY t.start_time DESC, t.id DESC LIMIT ?8");
        }
        sql
    }

    /// The total and (with `Counts::TotalAndFacets`) the facets of a filter's whole matching
    /// set, the way SQLite answers them: `COUNT(*)` with the status split, then `GROUP BY` name
    /// and, through the tag table, `GROUP BY` tag, each ordered by count descending then value
    /// (byte order) and cut to 20. Each reads every matching row (or index entry).
    pub fn counts(&self, project: &str, f: &Filter) -> SqlCounts {
        let mut out = SqlCounts::default();
        let Some(p) = self.lookup_project(project) else {
            return out;
        };
        let page = Sqlite::sql(f, false);
        let (_, rest) = page.split_once(" FROM ").expect("FROM");
        let (from_where, _) = rest.split_once(" ORDER BY ").expect("ORDER BY");
        let run = |sql: String, each: &mut dyn FnMut(&rusqlite::Row<'_>)| {
            let mut st = self.conn.prepare_cached(&sql).expect("prepare");
            Sqlite::bind(&mut st, p, f, None, PAGE + 1);
            let mut rows = st.raw_query();
            while let Some(r) = rows.next().expect("step") {
                each(r);
            }
        };
        // `?8` (the page's LIMIT) is bound but unused here; SQLite allows that.
        run(
            format!("SELECT count(*), coalesce(sum(t.status), 0), ?8 FROM {from_where}"),
            &mut |r| {
                out.total = r.get::<_, i64>(0).unwrap() as u64;
                out.error = r.get::<_, i64>(1).unwrap() as u64;
            },
        );
        if f.counts != Counts::TotalAndFacets {
            return out;
        }
        run(
            format!(
                "SELECT t.name, count(*) AS n, ?8 FROM {from_where} GROUP BY t.name \
                 ORDER BY n DESC, t.name LIMIT 20"
            ),
            &mut |r| {
                out.names
                    .push((r.get(0).unwrap(), r.get::<_, i64>(1).unwrap() as u64))
            },
        );
        let tagged = from_where.replacen(
            "traces t WHERE ",
            "traces t JOIN trace_tags x ON x.project=t.project AND x.start_time=t.start_time \
             AND x.id=t.id WHERE ",
            1,
        );
        run(
            format!(
                "SELECT x.tag, count(*) AS n, ?8 FROM {tagged} GROUP BY x.tag \
                 ORDER BY n DESC, x.tag LIMIT 20"
            ),
            &mut |r| {
                out.tags
                    .push((r.get(0).unwrap(), r.get::<_, i64>(1).unwrap() as u64))
            },
        );
        out
    }

    /// Binds a filter's parameters, numbered as in [`Sqlite::sql`].
    fn bind(
        st: &mut rusqlite::Statement<'_>,
        p: i64,
        f: &Filter,
        after: Option<&Keyset>,
        fetch: usize,
    ) {
        let mut args: Vec<(usize, rusqlite::types::Value)> =
            vec![(1, p.into()), (8, (fetch as i64).into())];
        if let Some(s) = f.status {
            args.push((2, i64::from(s == Status::Error).into()));
        }
        if let Some(n) = &f.name {
            args.push((3, n.to_lowercase().into()));
        }
        if let Some(s) = f.start {
            args.push((4, s.as_millis().into()));
        }
        if let Some(e) = f.end {
            args.push((5, e.as_millis().into()));
        }
        if let Some((st_ms, id, cost)) = after {
            args.push((6, (*st_ms).into()));
            args.push((7, id.clone().into()));
            if f.order == Some("totalCost.desc") {
                args.push((40, (*cost).into()));
            }
        }
        let mut tags = f.tags.clone();
        tags.sort();
        tags.dedup();
        for (i, t) in tags.into_iter().enumerate() {
            args.push((9 + i, t.into()));
        }
        for (i, v) in args {
            st.raw_bind_parameter(i, v).expect("bind");
        }
    }

    /// One page: up to `fetch` rows strictly after `after`, newest first.
    pub fn query(
        &self,
        project: &str,
        f: &Filter,
        after: Option<&Keyset>,
        fetch: usize,
    ) -> Vec<SqlTrace> {
        let Some(p) = self.lookup_project(project) else {
            return Vec::new();
        };
        let sql = Sqlite::sql(f, after.is_some());
        let mut st = self.conn.prepare_cached(&sql).expect("prepare");
        Sqlite::bind(&mut st, p, f, after, fetch);
        let mut rows = st.raw_query();
        let mut out = Vec::with_capacity(fetch);
        while let Some(r) = rows.next().expect("step") {
            out.push(row_to_trace(r).expect("row"));
        }
        out
    }

    /// The peer's `EXPLAIN QUERY PLAN` for a query, with its real parameters bound, one line.
    pub fn explain(&self, project: &str, f: &Filter, after: Option<&Keyset>) -> String {
        let p = self.lookup_project(project).unwrap_or(0);
        let sql = format!("EXPLAIN QUERY PLAN {}", Sqlite::sql(f, after.is_some()));
        let mut st = self.conn.prepare(&sql).unwrap();
        Sqlite::bind(&mut st, p, f, after, PAGE + 1);
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(r.get::<_, String>(3).unwrap());
        }
        out.join("; ")
    }

    /// One trace with spans and scores, None when absent.
    pub fn get_trace(&self, project: &str, id: &str) -> Option<SqlDetail> {
        let p = self.lookup_project(project)?;
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TRACE_COLS} FROM traces t WHERE t.project=?1 AND t.id=?2"
            ))
            .unwrap();
        let trace = st
            .query_row(params![p, id], row_to_trace)
            .optional()
            .unwrap()?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT span_id, name, start_time, end_time, model, input_tokens, output_tokens, \
                 total_tokens, cost FROM spans WHERE project=?1 AND trace_id=?2",
            )
            .unwrap();
        let mut spans: Vec<SqlSpan> = st
            .query_map(params![p, id], |r| {
                Ok(SqlSpan {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    start_ms: r.get(2)?,
                    end_ms: r.get(3)?,
                    model: r.get(4)?,
                    input_tokens: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    output_tokens: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                    total_tokens: r.get::<_, i64>(7)? as u64,
                    cost: r.get::<_, Option<String>>(8)?.and_then(|c| c.parse().ok()),
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        spans.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
        let mut st = self
            .conn
            .prepare_cached("SELECT score_id, name, value, comment FROM scores WHERE project=?1 AND trace_id=?2")
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
