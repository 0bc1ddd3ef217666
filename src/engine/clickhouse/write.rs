//! The ClickHouse engine's writes: load what is stored of a batch's traces, apply the same
//! pure merge as the embedded engine (`write::merge`), recompute every aggregate from the
//! trace's whole set of children, and insert new versions of the rows that changed.
//!
//! Aggregates are recomputed from all children, never adjusted by a delta, so a retried batch
//! (after a failure part-way through its inserts) and children that arrive late both end
//! exact: the result depends only on which children are stored, not on how many attempts
//! wrote them. Inserts go children first, then trace rows, then the id rows that `get_trace`
//! starts from, so a trace readable by id has its children written.

use super::schema::{ChildRow, IdRow, TraceRow};
use super::sql::{cost_key, span_model};
use super::Inner;
use crate::error::{Error, FieldError, Result};
use crate::model::{IngestSummary, Status};
use crate::query::filter::{meta_text, metadata_pairs};
use crate::schema::*;
use crate::validate::ValidTrace;
use crate::write::merge::{merge, Stored};
use crate::write::{aggregate::Totals, apply_payload_patch, prefixed};
use std::collections::{BTreeMap, HashMap};

/// What is stored of one trace: its row and all its children.
#[derive(Clone, Debug)]
pub(super) struct State {
    /// The newest version among the stored rows of the trace (0 for a new one).
    pub version: u64,
    pub start_ms: i64,
    pub status: u8,
    pub body: TraceBody,
    pub spans: BTreeMap<String, SpanRecord>,
    pub scores: BTreeMap<String, ScoreRecord>,
    pub payloads: BTreeMap<String, PayloadRecord>,
}

/// The rows one write inserts, table by table.
#[derive(Default)]
pub(super) struct Rows {
    pub traces: Vec<TraceRow>,
    pub ids: Vec<IdRow>,
    pub spans: Vec<ChildRow>,
    pub scores: Vec<ChildRow>,
    pub payloads: Vec<ChildRow>,
}

fn child(project: &str, trace: &str, id: &str, record: Option<Vec<u8>>) -> ChildRow {
    ChildRow {
        project: project.to_string(),
        trace_id: trace.to_string(),
        child_id: id.to_string(),
        version: 0,
        deleted: u8::from(record.is_none()),
        record: record.unwrap_or_default(),
    }
}

/// The `traces` row of a trace's state.
pub(super) fn trace_row(project: &str, id: &str, s: &State) -> TraceRow {
    let b = &s.body;
    let mut models: Vec<String> = s.spans.values().filter_map(|r| r.model.clone()).collect();
    models.sort();
    models.dedup();
    TraceRow {
        project: project.to_string(),
        start_ms: s.start_ms,
        id: id.to_string(),
        version: 0,
        deleted: 0,
        status: s.status,
        name: b.name.clone(),
        name_lower: b.name.to_lowercase(),
        tags: b.tags.clone(),
        user_id: b.user_id.clone(),
        session_id: b.session_id.clone(),
        meta: metadata_pairs(&b.metadata)
            .iter()
            .map(|(k, v)| meta_text(k, v))
            .collect(),
        running: u8::from(b.end_ms.is_none()),
        duration_ms: b.end_ms.map_or(0, |e| {
            u64::try_from(e.saturating_sub(s.start_ms)).unwrap_or(0)
        }),
        cost_key: cost_key(&b.total_cost),
        tokens: b.total_tokens,
        span_names: s
            .spans
            .values()
            .map(|r| r.name.as_deref().map(str::to_lowercase).unwrap_or_default())
            .collect(),
        span_models: s
            .spans
            .values()
            .map(|r| span_model(r.model.as_ref()))
            .collect(),
        span_kinds: s.spans.values().map(|r| r.kind).collect(),
        span_statuses: s.spans.values().map(|r| r.status).collect(),
        models,
        body: encode_trace_body(b),
    }
}

/// A tombstone of a trace row: the same sorting key, a newer version, deleted.
pub(super) fn trace_tombstone(project: &str, id: &str, start_ms: i64) -> TraceRow {
    TraceRow {
        project: project.to_string(),
        start_ms,
        id: id.to_string(),
        version: 0,
        deleted: 1,
        status: 0,
        name: String::new(),
        name_lower: String::new(),
        tags: Vec::new(),
        user_id: None,
        session_id: None,
        meta: Vec::new(),
        running: 0,
        duration_ms: 0,
        cost_key: String::new(),
        tokens: 0,
        span_names: Vec::new(),
        span_models: Vec::new(),
        span_kinds: Vec::new(),
        span_statuses: Vec::new(),
        models: Vec::new(),
        body: Vec::new(),
    }
}

/// Applies a batch to the loaded states (`states` holds what is stored of the batch's ids; it
/// is updated item by item, so a later item sees an earlier one). Returns the summary and the
/// rows to insert, or the validation problems of every item.
pub(super) fn apply(
    project: &str,
    batch: Vec<ValidTrace>,
    states: &mut HashMap<String, State>,
    now_ms: i64,
) -> Result<(IngestSummary, Rows)> {
    let mut summary = IngestSummary::default();
    let mut errors: Vec<FieldError> = Vec::new();
    // Per trace: its start when the batch began (its old row is replaced when it moves), and
    // the children the batch wrote (None: removed).
    let mut first_start: HashMap<String, Option<i64>> = HashMap::new();
    let mut touched: BTreeMap<(u8, String, String), Option<Vec<u8>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (i, v) in batch.into_iter().enumerate() {
        let path = format!("traces[{i}]");
        let old = states.get(&v.id).cloned();
        let old_version = old.as_ref().map_or(0, |s| s.version);
        first_start
            .entry(v.id.clone())
            .or_insert_with(|| old.as_ref().map(|s| s.start_ms));
        if !order.contains(&v.id) {
            order.push(v.id.clone());
        }
        match &old {
            Some(_) => summary.updated += 1,
            None => summary.created += 1,
        }
        summary.spans += v.spans.len();
        summary.scores += v.scores.len();
        let stored = old.as_ref().map(|s| Stored {
            start_ms: s.start_ms,
            status: Status::from_code(s.status),
            body: s.body.clone(),
        });
        let m = match merge(stored, &v, now_ms) {
            Ok(m) => m,
            Err(es) => {
                errors.extend(prefixed(&path, es));
                continue;
            }
        };
        let (mut spans, mut scores, mut payloads) = match old {
            Some(s) => (s.spans, s.scores, s.payloads),
            None => Default::default(),
        };
        let span_payloads = v.span_payloads();
        for (sid, rec) in &v.spans {
            let prev = spans.insert(sid.clone(), rec.clone());
            touched.insert((0, v.id.clone(), sid.clone()), Some(encode_span(rec)));
            match span_payloads.get(sid.as_str()) {
                Some(pl) => {
                    payloads.insert(sid.clone(), (*pl).clone());
                    touched.insert((2, v.id.clone(), sid.clone()), Some(encode_payload(pl)));
                }
                None if prev.is_some() && payloads.remove(sid).is_some() => {
                    touched.insert((2, v.id.clone(), sid.clone()), None);
                }
                None => {}
            }
        }
        for (sid, rec) in &v.scores {
            scores.insert(sid.clone(), rec.clone());
            touched.insert((1, v.id.clone(), sid.clone()), Some(encode_score(rec)));
        }
        if let Some(patch) = v.trace_payload() {
            let mut rec = payloads.remove("").unwrap_or_default();
            apply_payload_patch(&mut rec, patch);
            if rec.is_empty() {
                touched.insert((2, v.id.clone(), String::new()), None);
            } else {
                touched.insert((2, v.id.clone(), String::new()), Some(encode_payload(&rec)));
                payloads.insert(String::new(), rec);
            }
        }
        let mut body = m.body;
        match Totals::of_children(spans.values(), scores.len())? {
            Ok(t) => t.write_to(&mut body),
            Err(msg) => {
                errors.push(FieldError::new(format!("{path}.spans"), msg));
                continue;
            }
        }
        states.insert(
            v.id.clone(),
            State {
                version: old_version,
                start_ms: m.start_ms,
                status: m.status.code(),
                body,
                spans,
                scores,
                payloads,
            },
        );
    }
    if !errors.is_empty() {
        return Err(Error::validation(errors));
    }
    let mut rows = Rows::default();
    for ((table, trace, id), record) in touched {
        let row = child(project, &trace, &id, record);
        match table {
            0 => rows.spans.push(row),
            1 => rows.scores.push(row),
            _ => rows.payloads.push(row),
        }
    }
    for id in order {
        let old_start = first_start.get(&id).copied().flatten();
        rows.put_trace(project, &id, &states[&id], old_start);
    }
    Ok((summary, rows))
}

impl Rows {
    /// The trace row and id row of a trace's new state; when it was stored at another start
    /// (`old_start`), a tombstone of that row too.
    fn put_trace(&mut self, project: &str, id: &str, s: &State, old_start: Option<i64>) {
        if let Some(old) = old_start {
            if old != s.start_ms {
                self.traces.push(trace_tombstone(project, id, old));
            }
        }
        self.traces.push(trace_row(project, id, s));
        self.ids.push(IdRow {
            project: project.to_string(),
            id: id.to_string(),
            start_ms: s.start_ms,
            version: 0,
            deleted: 0,
        });
    }

    /// Stamps every row with `version`.
    pub(super) fn stamp(&mut self, version: u64) {
        for r in &mut self.traces {
            r.version = version;
        }
        for r in &mut self.ids {
            r.version = version;
        }
        for r in self
            .spans
            .iter_mut()
            .chain(&mut self.scores)
            .chain(&mut self.payloads)
        {
            r.version = version;
        }
    }
}

/// Loads what is stored of `ids` in `project`: rows and every child.
pub(super) async fn load(
    e: &Inner,
    project: &str,
    ids: &[String],
) -> Result<HashMap<String, State>> {
    load_with(e, project, ids, true).await
}

/// `load`, reading the payload table only when `payloads`.
pub(super) async fn load_with(
    e: &Inner,
    project: &str,
    ids: &[String],
    payloads: bool,
) -> Result<HashMap<String, State>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let located = e.locate(project, ids).await?;
    if located.is_empty() {
        return Ok(out);
    }
    let keys: Vec<(i64, String)> = located.iter().map(|(id, s)| (*s, id.clone())).collect();
    for row in e.trace_rows(project, &keys).await? {
        out.insert(
            row.id.clone(),
            State {
                version: row.version,
                start_ms: row.start_ms,
                status: row.status,
                body: decode_trace_body(&row.body)?,
                spans: BTreeMap::new(),
                scores: BTreeMap::new(),
                payloads: BTreeMap::new(),
            },
        );
    }
    let found: Vec<String> = out.keys().cloned().collect();
    for (table, slot) in [("spans", 0u8), ("scores", 1), ("payloads", 2)] {
        if slot == 2 && !payloads {
            continue;
        }
        for c in e.children(table, project, &found).await? {
            let Some(s) = out.get_mut(&c.trace_id) else {
                continue;
            };
            s.version = s.version.max(c.version);
            match slot {
                0 => {
                    s.spans.insert(c.child_id, decode_span(&c.record)?);
                }
                1 => {
                    s.scores.insert(c.child_id, decode_score(&c.record)?);
                }
                _ => {
                    s.payloads.insert(c.child_id, decode_payload(&c.record)?);
                }
            }
        }
    }
    Ok(out)
}

/// One above the newest stored version among `states`: the least version a write replacing
/// them may take, so that a server whose clock is behind another's never writes an older
/// version than the one it replaces.
pub(super) fn version_floor(states: &HashMap<String, State>) -> u64 {
    states.values().map(|s| s.version + 1).max().unwrap_or(0)
}

impl State {
    /// The trace's records, for a copy into another engine.
    pub(super) fn into_whole(self) -> crate::engine::WholeTrace {
        crate::engine::WholeTrace {
            start_ms: self.start_ms,
            status: self.status,
            body: self.body,
            spans: self.spans.into_iter().collect(),
            scores: self.scores.into_iter().collect(),
            payloads: self.payloads.into_iter().collect(),
        }
    }

    /// The state of a whole trace read from another engine.
    pub(super) fn of_whole(w: crate::engine::WholeTrace) -> State {
        State {
            version: 0,
            start_ms: w.start_ms,
            status: w.status,
            body: w.body,
            spans: w.spans.into_iter().collect(),
            scores: w.scores.into_iter().collect(),
            payloads: w.payloads.into_iter().collect(),
        }
    }
}

/// The rows that make the stored traces exactly `new` (a copy from another engine): every
/// child of `old` that `new` lacks is removed, and a trace stored at another start time has
/// that row removed.
pub(super) fn replace(
    project: &str,
    new: &[(String, State)],
    old: &HashMap<String, State>,
) -> Rows {
    let mut rows = Rows::default();
    for (id, s) in new {
        let was = old.get(id);
        let gone = |have: Option<Vec<&String>>, keep: &dyn Fn(&String) -> bool| {
            have.unwrap_or_default()
                .into_iter()
                .filter(|c| !keep(c))
                .map(|c| child(project, id, c, None))
                .collect::<Vec<_>>()
        };
        rows.spans
            .extend(gone(was.map(|w| w.spans.keys().collect()), &|c| {
                s.spans.contains_key(c)
            }));
        rows.scores
            .extend(gone(was.map(|w| w.scores.keys().collect()), &|c| {
                s.scores.contains_key(c)
            }));
        rows.payloads
            .extend(gone(was.map(|w| w.payloads.keys().collect()), &|c| {
                s.payloads.contains_key(c)
            }));
        for (c, r) in &s.spans {
            rows.spans.push(child(project, id, c, Some(encode_span(r))));
        }
        for (c, r) in &s.scores {
            rows.scores
                .push(child(project, id, c, Some(encode_score(r))));
        }
        for (c, r) in &s.payloads {
            rows.payloads
                .push(child(project, id, c, Some(encode_payload(r))));
        }
        rows.put_trace(project, id, s, was.map(|w| w.start_ms));
    }
    rows
}
