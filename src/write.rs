//! The write path. A `Writer` lives inside one redb write transaction; every row change and every
//! index change it makes is in that transaction, so they commit or vanish together.
//!
//! Bitmaps, term counts, block bounds and project states are loaded once per transaction,
//! changed in memory and written back by `flush`, so a batch of 1000 traces rewrites each touched
//! bitmap partition once.

use crate::error::{Error, FieldError, Result};
use crate::ingest::ValidTrace;
use crate::limits::MAX_ROWS_PER_PROJECT;
use crate::model::Status;
use crate::schema::*;
use redb::{ReadableTable, Table, WriteTransaction};
use roaring::RoaringBitmap;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};

type BitmapKey = (u32, u8, u32, u32);
type TermKey = (u32, u8, u32);

pub(crate) struct Writer<'t> {
    pub(crate) t: WriteTables<'t>,

    states: HashMap<u32, ProjectState>,
    dirty_states: HashSet<u32>,
    bitmap_cache: HashMap<BitmapKey, RoaringBitmap>,
    dirty_bitmaps: HashSet<BitmapKey>,
    term_cache: HashMap<TermKey, TermRecord>,
    dirty_terms: HashSet<TermKey>,
    block_cache: HashMap<(u32, u32), Option<BlockRecord>>,
    dirty_blocks: HashSet<(u32, u32)>,
}

/// Whether an upsert created the trace or updated it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Upserted {
    Created,
    Updated,
}

/// A trace's index terms: what its row contributes to the bitmaps.
struct Terms {
    status: u32,
    name: u32,
    tags: Vec<u32>,
}

impl Terms {
    fn iter(&self) -> impl Iterator<Item = (TermKind, u32)> + '_ {
        [(TermKind::Status, self.status), (TermKind::Name, self.name)]
            .into_iter()
            .chain(self.tags.iter().map(|t| (TermKind::Tag, *t)))
    }
    fn of(h: &TraceHeader) -> Terms {
        Terms {
            status: h.status as u32,
            name: h.name_id,
            tags: h.tag_ids.clone(),
        }
    }
}

impl<'t> Writer<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Writer {
            t: WriteTables::open(txn)?,
            states: HashMap::new(),
            dirty_states: HashSet::new(),
            bitmap_cache: HashMap::new(),
            dirty_bitmaps: HashSet::new(),
            term_cache: HashMap::new(),
            dirty_terms: HashSet::new(),
            block_cache: HashMap::new(),
            dirty_blocks: HashSet::new(),
        })
    }

    /// The project's numeric id, created on first use.
    pub(crate) fn project_id(&mut self, name: &str) -> Result<u32> {
        if let Some(v) = self.t.projects.get(name)? {
            return decode_u32(v.value());
        }
        let next = match self.t.meta.get(META_NEXT_PROJECT)? {
            Some(v) => decode_u32(v.value())?,
            None => 1,
        };
        let after = next
            .checked_add(1)
            .ok_or_else(|| Error::corrupted("project ids exhausted"))?;
        self.t
            .meta
            .insert(META_NEXT_PROJECT, encode_u32(after).as_slice())?;
        self.t.projects.insert(name, encode_u32(next).as_slice())?;
        self.states.insert(next, ProjectState::default());
        self.dirty_states.insert(next);
        Ok(next)
    }

    /// The project's numeric id, if it exists.
    pub(crate) fn existing_project_id(&mut self, name: &str) -> Result<Option<u32>> {
        match self.t.projects.get(name)? {
            Some(v) => Ok(Some(decode_u32(v.value())?)),
            None => Ok(None),
        }
    }

    /// The project's state, loaded on first use in the transaction. Loading it folds the
    /// project's pending traces first, so every write other than a buffered one sees them as
    /// ordinary rows.
    fn state(&mut self, p: u32) -> Result<&mut ProjectState> {
        if !self.states.contains_key(&p) {
            let s = match self.t.project_state.get(p)? {
                Some(v) => decode_project_state(v.value())?,
                None => ProjectState::default(),
            };
            let fold = s.indexed_rows < s.next_row;
            self.states.insert(p, s);
            self.dirty_states.insert(p);
            if fold {
                self.fold(p)?;
            }
        }
        self.dirty_states.insert(p);
        Ok(self.states.get_mut(&p).expect("inserted above"))
    }

    /// Folds the project's pending traces, if it has any (see `state`). Writes nothing when it
    /// has none.
    pub(crate) fn fold_pending(&mut self, p: u32) -> Result<()> {
        if self.states.contains_key(&p) {
            return Ok(()); // loaded, hence folded, earlier in this transaction
        }
        let pending = match self.t.project_state.get(p)? {
            Some(v) => {
                let s = decode_project_state(v.value())?;
                s.indexed_rows < s.next_row
            }
            None => false,
        };
        if pending {
            self.state(p)?;
        }
        Ok(())
    }

    /// Inserts every pending trace of `p` into the tables and indexes at its reserved row, in
    /// row order, through the ordinary insert, and empties the pending table of `p`.
    fn fold(&mut self, p: u32) -> Result<()> {
        let mut items = Vec::new();
        for e in self
            .t
            .pending
            .extract_from_if(pending_range(p), |_, _| true)?
        {
            let (k, v) = e?;
            let (head, children) = decode_pending(v.value())?;
            items.push((k.value().1.to_string(), head, children));
        }
        items.sort_by_key(|(_, h, _)| h.row);
        for (id, head, children) in items {
            let v = ValidTrace {
                id,
                name: Some(head.body.name),
                status: Status::from_code(head.status),
                start_ms: Some(head.start_ms),
                end_ms: head.body.end_ms,
                tags: Some(head.body.tags),
                metadata: Some(head.body.metadata),
                spans: children.spans,
                scores: children.scores,
            };
            let mut errors = Vec::new();
            let outcome = self.upsert_at(
                p,
                v,
                head.body.created_ms,
                "pending",
                &mut errors,
                Some(head.row),
            )?;
            if outcome != Upserted::Created || !errors.is_empty() {
                return Err(Error::corrupted(format!(
                    "pending trace at row {} no longer applies",
                    head.row
                )));
            }
        }
        let st = &self.states[&p];
        if st.indexed_rows != st.next_row {
            return Err(Error::corrupted(format!(
                "pending traces cover rows up to {} of {}",
                st.indexed_rows, st.next_row
            )));
        }
        Ok(())
    }

    fn term_record(&mut self, key: TermKey) -> Result<Option<&mut TermRecord>> {
        if !self.term_cache.contains_key(&key) {
            match self.t.terms.get(key)? {
                Some(v) => {
                    let r = decode_term(v.value())?;
                    self.term_cache.insert(key, r);
                }
                None => return Ok(None),
            }
        }
        Ok(self.term_cache.get_mut(&key))
    }

    /// The id of a term's text, created when absent. Status terms have fixed ids (OK=0, ERROR=1).
    fn term_id(&mut self, p: u32, kind: TermKind, text: &str) -> Result<u32> {
        let id = match kind {
            TermKind::Status => {
                let st = Status::parse(text).ok_or_else(|| Error::corrupted("status term"))?;
                st.code() as u32
            }
            _ => {
                if let Some(v) = self.t.term_ids.get((p, kind.code(), text))? {
                    return decode_u32(v.value());
                }
                let st = self.state(p)?;
                let counter = match kind {
                    TermKind::Name => &mut st.next_name_id,
                    _ => &mut st.next_tag_id,
                };
                let id = *counter;
                *counter = id
                    .checked_add(1)
                    .ok_or_else(|| Error::corrupted("term ids exhausted"))?;
                self.t
                    .term_ids
                    .insert((p, kind.code(), text), encode_u32(id).as_slice())?;
                id
            }
        };
        let key = (p, kind.code(), id);
        if self.term_record(key)?.is_none() {
            self.term_cache.insert(
                key,
                TermRecord {
                    count: 0,
                    text: text.to_string(),
                },
            );
            self.dirty_terms.insert(key);
        }
        Ok(id)
    }

    fn bitmap_mut(&mut self, key: BitmapKey) -> Result<&mut RoaringBitmap> {
        if !self.bitmap_cache.contains_key(&key) {
            let bm = match self.t.bitmaps.get(key)? {
                Some(v) => decode_bitmap(v.value())?,
                None => RoaringBitmap::new(),
            };
            self.bitmap_cache.insert(key, bm);
        }
        self.dirty_bitmaps.insert(key);
        Ok(self.bitmap_cache.get_mut(&key).expect("inserted above"))
    }

    fn set_term(&mut self, p: u32, kind: TermKind, term: u32, row: u32, on: bool) -> Result<()> {
        let changed = {
            let bm = self.bitmap_mut((p, kind.code(), term, chunk_of(row)))?;
            if on {
                bm.insert(row % crate::limits::CHUNK_ROWS)
            } else {
                bm.remove(row % crate::limits::CHUNK_ROWS)
            }
        };
        if !changed {
            return Err(Error::corrupted(format!(
                "{} bitmap {term} already {} row {row}",
                kind.label(),
                if on { "had" } else { "lacked" }
            )));
        }
        let key = (p, kind.code(), term);
        let rec = self
            .term_record(key)?
            .ok_or_else(|| Error::corrupted(format!("{} term {term} missing", kind.label())))?;
        rec.count = if on {
            rec.count + 1
        } else {
            rec.count.saturating_sub(1)
        };
        self.dirty_terms.insert(key);
        Ok(())
    }

    fn index_row(&mut self, p: u32, row: u32, terms: &Terms, on: bool) -> Result<()> {
        for (kind, term) in terms.iter() {
            self.set_term(p, kind, term, row, on)?;
        }
        Ok(())
    }

    fn block(&mut self, p: u32, b: u32) -> Result<Option<BlockRecord>> {
        if let Some(r) = self.block_cache.get(&(p, b)) {
            return Ok(*r);
        }
        let r = match self.t.blocks.get((p, b))? {
            Some(v) => Some(decode_block(v.value())?),
            None => None,
        };
        self.block_cache.insert((p, b), r);
        Ok(r)
    }

    /// Allocates the next row number for (start, id), or takes the row a pending trace reserved,
    /// and widens its block's time bounds. Rows enter the indexes in row order either way.
    fn allocate_row(
        &mut self,
        p: u32,
        start_ms: i64,
        id: &str,
        reserved: Option<u32>,
    ) -> Result<u32> {
        let st = self.state(p)?;
        let row = match reserved {
            Some(r) if r == st.indexed_rows && r < st.next_row => r,
            Some(r) => {
                return Err(Error::corrupted(format!(
                    "pending row {r} out of order (indexed {})",
                    st.indexed_rows
                )))
            }
            None if st.indexed_rows != st.next_row => {
                return Err(Error::corrupted("a row allocated while traces are pending"))
            }
            None if st.next_row >= MAX_ROWS_PER_PROJECT => {
                return Err(Error::field(
                    "traces",
                    "this project has used every row number",
                ))
            }
            None => {
                st.next_row += 1;
                st.next_row - 1
            }
        };
        st.indexed_rows += 1;
        self.t.rows.insert(
            (p, row),
            encode_row(&RowRecord {
                start_ms,
                id: id.to_string(),
            })
            .as_slice(),
        )?;
        let b = block_of(row);
        let rec = match self.block(p, b)? {
            Some(mut r) => {
                r.min_ms = r.min_ms.min(start_ms);
                r.max_ms = r.max_ms.max(start_ms);
                r.prefix_max_ms = r.prefix_max_ms.max(start_ms);
                r
            }
            None => {
                // Rows are allocated in order, so block b-1 exists and is final.
                let prev = if b == 0 { None } else { self.block(p, b - 1)? };
                let prefix = prev.map_or(start_ms, |r| r.prefix_max_ms.max(start_ms));
                BlockRecord {
                    min_ms: start_ms,
                    max_ms: start_ms,
                    prefix_max_ms: prefix,
                }
            }
        };
        self.block_cache.insert((p, b), Some(rec));
        self.dirty_blocks.insert((p, b));
        Ok(row)
    }

    fn trace_terms(
        &mut self,
        p: u32,
        status: Status,
        name: &str,
        tags: &[String],
    ) -> Result<Terms> {
        let status = self.term_id(p, TermKind::Status, status.as_str())?;
        let name = self.term_id(p, TermKind::Name, name)?;
        let mut tag_ids = Vec::with_capacity(tags.len());
        for t in tags {
            tag_ids.push(self.term_id(p, TermKind::Tag, t)?);
        }
        tag_ids.sort_unstable();
        tag_ids.dedup();
        Ok(Terms {
            status,
            name,
            tags: tag_ids,
        })
    }

    /// Applies one validated trace. Problems that need the stored state (a new trace without a
    /// name) are pushed to `errors` under `path`, and the caller aborts the transaction.
    pub(crate) fn upsert(
        &mut self,
        p: u32,
        v: ValidTrace,
        now_ms: i64,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) -> Result<Upserted> {
        self.upsert_at(p, v, now_ms, path, errors, None)
    }

    /// `upsert`, where a new trace takes the `reserved` row (when folding a pending trace).
    fn upsert_at(
        &mut self,
        p: u32,
        v: ValidTrace,
        now_ms: i64,
        path: &str,
        errors: &mut Vec<FieldError>,
        reserved: Option<u32>,
    ) -> Result<Upserted> {
        // Every write marks the project's state dirty, so its generation moves on commit.
        self.state(p)?;
        let existing = match self.t.ids.get((p, v.id.as_str()))? {
            Some(g) => Some(decode_id(g.value())?),
            None => None,
        };
        let (outcome, old, mut body) = match &existing {
            None => {
                let (Some(name), Some(_start)) = (&v.name, v.start_ms) else {
                    if v.name.is_none() {
                        errors.push(FieldError::new(
                            format!("{path}.name"),
                            "is required for a new trace",
                        ));
                    }
                    if v.start_ms.is_none() {
                        errors.push(FieldError::new(
                            format!("{path}.startTime"),
                            "is required for a new trace",
                        ));
                    }
                    return Ok(Upserted::Created);
                };
                let body = TraceBody {
                    name: name.clone(),
                    tags: Vec::new(),
                    end_ms: None,
                    created_ms: now_ms,
                    metadata: "{}".to_string(),
                    total_cost: Money::from_decimal(Decimal::ZERO),
                    total_tokens: 0,
                    span_count: 0,
                    score_count: 0,
                };
                (Upserted::Created, None, body)
            }
            Some(idr) => {
                let key = trace_key(p, idr.start_ms, &v.id);
                let bytes = self
                    .t
                    .traces
                    .get(key.as_slice())?
                    .ok_or_else(|| Error::corrupted("id index points at a missing trace"))?
                    .value()
                    .to_vec();
                let (h, b) = decode_trace(&bytes)?;
                (Upserted::Updated, Some((idr.clone(), h)), b)
            }
        };
        let old_status = old.as_ref().and_then(|(_, h)| Status::from_code(h.status));
        let status = v.status.or(old_status).unwrap_or(Status::Ok);
        let start_ms = v
            .start_ms
            .or(old.as_ref().map(|(i, _)| i.start_ms))
            .expect("checked above");
        if let Some(n) = v.name {
            body.name = n;
        }
        if let Some(t) = v.tags {
            body.tags = t;
        }
        if let Some(m) = v.metadata {
            body.metadata = m;
        }
        if v.end_ms.is_some() {
            body.end_ms = v.end_ms;
        }
        if body.end_ms.is_some_and(|e| e < start_ms) {
            errors.push(FieldError::new(
                format!("{path}.endTime"),
                "must not be before startTime",
            ));
            return Ok(outcome);
        }

        let terms = self.trace_terms(p, status, &body.name, &body.tags)?;
        let row = match old {
            Some((idr, h)) if idr.start_ms == start_ms => {
                // Same row: move only the index entries that changed.
                let before = Terms::of(&h);
                let old_set: HashSet<(TermKind, u32)> = before.iter().collect();
                let new_set: HashSet<(TermKind, u32)> = terms.iter().collect();
                for (k, t) in old_set.difference(&new_set) {
                    self.set_term(p, *k, *t, h.row, false)?;
                }
                for (k, t) in new_set.difference(&old_set) {
                    self.set_term(p, *k, *t, h.row, true)?;
                }
                h.row
            }
            Some((idr, h)) => {
                // A changed startTime moves the row: drop the old one and every index entry.
                self.index_row(p, h.row, &Terms::of(&h), false)?;
                self.t.rows.remove((p, h.row))?;
                self.t
                    .traces
                    .remove(trace_key(p, idr.start_ms, &v.id).as_slice())?;
                let row = self.allocate_row(p, start_ms, &v.id, None)?;
                self.index_row(p, row, &terms, true)?;
                self.move_children(p, h.row, row)?;
                row
            }
            None => {
                let row = self.allocate_row(p, start_ms, &v.id, reserved)?;
                self.index_row(p, row, &terms, true)?;
                self.state(p)?.live += 1;
                row
            }
        };
        // Children live under the row; they change only the aggregates in `body`.
        let mut cost = body.total_cost.to_decimal()?;
        for (sid, rec) in &v.spans {
            let key = child_key(p, row, sid);
            let prev = self
                .t
                .spans
                .insert(key.as_slice(), encode_span(rec).as_slice())?;
            match prev {
                Some(g) => {
                    let old = decode_span(g.value())?;
                    cost -= old
                        .cost
                        .map(Money::to_decimal)
                        .transpose()?
                        .unwrap_or_default();
                    body.total_tokens = body.total_tokens.saturating_sub(old.total_tokens);
                }
                None => body.span_count += 1,
            }
            cost = match cost.checked_add(
                rec.cost
                    .map(Money::to_decimal)
                    .transpose()?
                    .unwrap_or_default(),
            ) {
                Some(c) => c,
                None => {
                    errors.push(FieldError::new(
                        format!("{path}.spans"),
                        "totalCost overflows",
                    ));
                    return Ok(outcome);
                }
            };
            body.total_tokens = match body.total_tokens.checked_add(rec.total_tokens) {
                Some(t) => t,
                None => {
                    errors.push(FieldError::new(
                        format!("{path}.spans"),
                        "totalTokens overflows",
                    ));
                    return Ok(outcome);
                }
            };
        }
        body.total_cost = Money::from_decimal(cost);
        for (sid, rec) in &v.scores {
            let key = child_key(p, row, sid);
            if self
                .t
                .scores
                .insert(key.as_slice(), encode_score(rec).as_slice())?
                .is_none()
            {
                body.score_count += 1;
            }
        }

        let header = TraceHeader {
            row,
            status: status.code(),
            name_id: terms.name,
            tag_ids: terms.tags,
        };
        let key = trace_key(p, start_ms, &v.id);
        self.t
            .traces
            .insert(key.as_slice(), encode_trace(&header, &body).as_slice())?;
        self.t.ids.insert(
            (p, v.id.as_str()),
            encode_id(&IdRecord { start_ms, row }).as_slice(),
        )?;
        Ok(outcome)
    }

    /// Removes a trace with its spans, scores and every index entry. False if it did not exist.
    pub(crate) fn delete(&mut self, p: u32, id: &str) -> Result<bool> {
        self.state(p)?;
        let idr = match self.t.ids.remove((p, id))? {
            Some(g) => decode_id(g.value())?,
            None => return Ok(false),
        };
        let bytes = self
            .t
            .traces
            .remove(trace_key(p, idr.start_ms, id).as_slice())?
            .ok_or_else(|| Error::corrupted("id index points at a missing trace"))?
            .value()
            .to_vec();
        let (h, _) = decode_trace(&bytes)?;
        self.index_row(p, h.row, &Terms::of(&h), false)?;
        self.t.rows.remove((p, h.row))?;
        let st = self.state(p)?;
        st.live = st.live.saturating_sub(1);
        let prefix = child_prefix(p, h.row);
        for table in [&mut self.t.spans, &mut self.t.scores] {
            take_prefix(table, &prefix)?;
        }
        Ok(true)
    }

    /// Re-keys a trace's spans and scores from its old row to its new one.
    fn move_children(&mut self, p: u32, from: u32, to: u32) -> Result<()> {
        let (old, new) = (child_prefix(p, from), child_prefix(p, to));
        for table in [&mut self.t.spans, &mut self.t.scores] {
            for (suffix, value) in take_prefix(table, &old)? {
                let mut key = new.clone();
                key.extend_from_slice(&suffix);
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        Ok(())
    }

    /// Ids of up to `max` traces of project `p` that started before `cutoff_ms`, oldest first.
    pub(crate) fn ids_before(&self, p: u32, cutoff_ms: i64, max: usize) -> Result<Vec<String>> {
        let lo = trace_key_lower(p, i64::MIN);
        let hi = trace_key_lower(p, cutoff_ms);
        let mut out = Vec::new();
        for entry in self
            .t
            .traces
            .range::<&[u8]>(lo.as_slice()..hi.as_slice())?
            .take(max)
        {
            let (k, _) = entry?;
            out.push(decode_trace_key(k.value())?.2.to_string());
        }
        Ok(out)
    }

    /// Writes every cached change back to its table.
    pub(crate) fn flush(&mut self) -> Result<()> {
        for key in self.dirty_bitmaps.drain() {
            let bm = self
                .bitmap_cache
                .get_mut(&key)
                .expect("dirty implies cached");
            if bm.is_empty() {
                self.t.bitmaps.remove(key)?;
            } else {
                bm.optimize();
                self.t.bitmaps.insert(key, encode_bitmap(bm).as_slice())?;
            }
        }
        for key in self.dirty_terms.drain() {
            let rec = &self.term_cache[&key];
            self.t.terms.insert(key, encode_term(rec).as_slice())?;
        }
        for key in self.dirty_blocks.drain() {
            if let Some(rec) = self.block_cache[&key] {
                self.t.blocks.insert(key, encode_block(&rec).as_slice())?;
            }
        }
        for p in self.dirty_states.drain() {
            let st = self.states.get_mut(&p).expect("dirty implies cached");
            st.generation += 1;
            self.t
                .project_state
                .insert(p, encode_project_state(&self.states[&p]).as_slice())?;
        }
        Ok(())
    }
}

/// Removes every entry under `prefix` and returns them (key suffix after the prefix, value).
fn take_prefix(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = prefix_end(prefix).expect("child prefixes never end in 0xFF bytes only");
    let mut out = Vec::new();
    for e in table.extract_from_if::<&[u8], _>(prefix..end.as_slice(), |_, _| true)? {
        let (k, v) = e?;
        out.push((k.value()[prefix.len()..].to_vec(), v.value().to_vec()));
    }
    Ok(out)
}
