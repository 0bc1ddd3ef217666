//! Cross-engine verification: both engines must return the same page (or the same detail for
//! get-by-id); and tracestore's plan of a shape.

use super::load::Loaded;
use super::shapes::{Counts, Prepared, Shape};
use super::sqlite::{SqlDetail, SqlTrace};
use super::{PAGE, PROJECT};
use tracestore::{Timestamp, TraceDetail};

fn same_trace(a: &tracestore::Trace, b: &SqlTrace) -> Result<(), String> {
    let ta = (
        (&a.id, &a.name, a.status, a.start_time.as_millis()),
        a.end_time.map(Timestamp::as_millis),
        a.duration_ms,
        &a.tags,
        (&a.user_id, &a.session_id),
        a.total_cost.normalize(),
        a.total_tokens,
        a.span_count,
        a.score_count,
    );
    let tb = (
        (&b.id, &b.name, b.status, b.start_ms),
        b.end_ms,
        b.duration_ms,
        &b.tags,
        (&b.user_id, &b.session_id),
        b.total_cost.normalize(),
        b.total_tokens,
        b.span_count,
        b.score_count,
    );
    if ta != tb {
        return Err(format!(
            "trace {} differs: tracestore {ta:?} vs SQLite {tb:?}",
            a.id
        ));
    }
    let ma: serde_json::Value = serde_json::from_str(a.metadata.as_json()).unwrap_or_default();
    let mb: serde_json::Value = serde_json::from_str(&b.metadata).unwrap_or_default();
    if ma != mb {
        return Err(format!("trace {} metadata differs: {ma} vs {mb}", a.id));
    }
    Ok(())
}

fn same_detail(a: &TraceDetail, b: &SqlDetail) -> Result<(), String> {
    same_trace(&a.trace, &b.trace)?;
    let sa: Vec<_> = a
        .spans
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.name.clone(),
                s.status,
                s.start_time.map(Timestamp::as_millis),
                s.end_time.map(Timestamp::as_millis),
                s.model.clone(),
                s.input_tokens,
                s.output_tokens,
                s.total_tokens,
                s.cost.map(|c| c.normalize()),
            )
        })
        .collect();
    let sb: Vec<_> = b
        .spans
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.name.clone(),
                s.status,
                s.start_ms,
                s.end_ms,
                s.model.clone(),
                s.input_tokens,
                s.output_tokens,
                s.total_tokens,
                s.cost.map(|c| c.normalize()),
            )
        })
        .collect();
    if sa != sb {
        return Err(format!(
            "trace {} spans differ: {sa:?} vs {sb:?}",
            a.trace.id
        ));
    }
    let ca: Vec<_> = a
        .scores
        .iter()
        .map(|s| (&s.id, &s.name, &s.value, &s.comment))
        .collect();
    let cb: Vec<_> = b
        .scores
        .iter()
        .map(|s| (&s.id, &s.name, &s.value, &s.comment))
        .collect();
    if ca != cb {
        return Err(format!(
            "trace {} scores differ: {ca:?} vs {cb:?}",
            a.trace.id
        ));
    }
    Ok(())
}

/// Checks that both engines return the same page (ids, order, every field but createdAt, and
/// whether a next page exists) and, for a counting shape, the same total and (with facets) the
/// same status split and `names`, `tags` and `models` facets exactly; for get-by-id, the same
/// detail for the first 50 sampled ids. Returns the number of rows on the page.
pub fn verify(l: &Loaded, shape: &Shape, p: &Prepared) -> Result<usize, String> {
    match p {
        Prepared::List { filter, req, after } => {
            let ts = l
                .store
                .query(PROJECT, req)
                .map_err(|e| format!("{}: tracestore error {e}", shape.key))?;
            let (sq, counts) = l.sqlite.list(PROJECT, filter, after.as_ref(), PAGE + 1);
            let ts_ids: Vec<&str> = ts.traces.iter().map(|t| t.id.as_str()).collect();
            let sq_ids: Vec<&str> = sq.iter().take(PAGE).map(|t| t.id.as_str()).collect();
            if ts_ids != sq_ids {
                return Err(format!(
                    "{}: page ids differ\n  tracestore {ts_ids:?}\n  SQLite     {sq_ids:?}",
                    shape.key
                ));
            }
            if ts.next_cursor.is_some() != (sq.len() > PAGE) {
                return Err(format!(
                    "{}: has-more differs (tracestore next_cursor {}, SQLite {} rows fetched)",
                    shape.key,
                    ts.next_cursor.is_some(),
                    sq.len()
                ));
            }
            for (a, b) in ts.traces.iter().zip(&sq) {
                same_trace(a, b).map_err(|e| format!("{}: {e}", shape.key))?;
            }
            if let Some(c) = counts {
                if ts.total != Some(c.total) {
                    return Err(format!(
                        "{}: total differs (tracestore {:?}, SQLite {})",
                        shape.key, ts.total, c.total
                    ));
                }
                if let Some(facets) = &ts.facets {
                    let pairs = |v: &[tracestore::FacetValue]| -> Vec<(String, u64)> {
                        v.iter().map(|x| (x.value.clone(), x.count)).collect()
                    };
                    let same = facets.status.error == c.error
                        && facets.status.ok == c.total - c.error
                        && pairs(&facets.names) == c.names
                        && pairs(&facets.tags) == c.tags
                        && pairs(&facets.models) == c.models;
                    if !same {
                        return Err(format!(
                            "{}: facets differ\n  tracestore {facets:?}\n  SQLite     {c:?}",
                            shape.key
                        ));
                    }
                } else if filter.counts == Counts::TotalAndFacets {
                    return Err(format!("{}: tracestore returned no facets", shape.key));
                }
            }
            Ok(ts.traces.len())
        }
        Prepared::Get { ids } => {
            for id in ids.iter().take(50) {
                let a = l
                    .store
                    .get_trace(PROJECT, id)
                    .map_err(|e| format!("Q10 {id}: {e}"))?;
                let b = l
                    .sqlite
                    .get_trace(PROJECT, id)
                    .ok_or_else(|| format!("Q10 {id}: missing in SQLite"))?;
                same_detail(&a, &b).map_err(|e| format!("Q10: {e}"))?;
            }
            Ok(1)
        }
    }
}

/// tracestore's plan for a shape (`Explain` display), or a note for get-by-id.
pub fn plan_of(l: &Loaded, p: &Prepared) -> String {
    match p {
        Prepared::List { req, .. } => match l.store.explain(PROJECT, req) {
            Ok(e) => e.to_string(),
            Err(e) => format!("explain failed: {e}"),
        },
        Prepared::Get { .. } => "id index → primary key, spans/scores range".into(),
    }
}
