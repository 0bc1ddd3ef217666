//! The write path of the redb engine. A `Writer` lives inside one redb write transaction; every
//! row change and every index change it makes is in that transaction, so they commit or vanish
//! together.
//!
//! - `merge`: the pure merge of an ingested patch into the stored trace, and the defaults of a
//!   new trace;
//! - `index`: term ids, bitmaps, rows and block bounds;
//! - `aggregate`: the one computation of a trace's span and score sums;
//! - this file: the transaction's caches, upsert, delete, folding pending traces, and `flush`.
//!
//! Bitmaps, term counts, block bounds and project states are loaded once per transaction,
//! changed in memory and written back by `flush`, so a batch of 1000 traces rewrites each touched
//! bitmap partition once. The id of each term text looked up or created is kept too, so a text
//! met again in the transaction (a model, a tool name, a tag) costs one hash lookup.

pub(crate) mod aggregate;
mod index;
pub(crate) mod merge;
mod sort_keys;
mod span_terms;

pub(crate) use aggregate::Totals;
pub(crate) use merge::merge;
use merge::Stored;

use crate::error::{Error, FieldError, Result};
use crate::model::Status;
use crate::schema::*;
use crate::validate::ValidTrace;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use index::Terms;
use redb::{CursorError, ReadableTable, Table, WriteTransaction};
use roaring::RoaringBitmap;
use sort_keys::SortPlace;
use std::ops::Bound;

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
    /// The ids of the texts this transaction looked up or created, per (project, kind code).
    term_ids: HashMap<(u32, u8), HashMap<Box<str>, u32>>,
    block_cache: HashMap<(u32, u32), Option<BlockRecord>>,
    dirty_blocks: HashSet<(u32, u32)>,
    /// The spans and payloads of rows created in this transaction, not yet in their tables
    /// (see `insert_new_children`).
    new_children: NewChildren,
    /// The span-term counts of the rows this transaction touched (see `span_terms`).
    span_terms: span_terms::SpanTermsCache,
}

/// Encoded (key, value) entries of new rows' children, one list per table.
#[derive(Default)]
struct NewChildren {
    spans: Vec<(Vec<u8>, Vec<u8>)>,
    payloads: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Whether an upsert created the trace or updated it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Upserted {
    Created,
    Updated,
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
            term_ids: HashMap::new(),
            block_cache: HashMap::new(),
            dirty_blocks: HashSet::new(),
            new_children: NewChildren::default(),
            span_terms: Default::default(),
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
                user_id: head.body.user_id,
                session_id: head.body.session_id,
                spans: children.spans,
                scores: children.scores,
                payloads: children.payloads,
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
    /// Load the stored trace, merge the patch into it (a pure step, which also applies the rules
    /// that need the stored trace), index it, then upsert its children and keep the aggregates.
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
        let old = self.load(p, &v.id)?;
        let outcome = if old.is_some() {
            Upserted::Updated
        } else {
            Upserted::Created
        };
        let old_place = old
            .as_ref()
            .map(|(idr, h, b)| SortPlace::of(idr.start_ms, h.row, b));
        let stored = old.as_ref().map(|(idr, h, b)| Stored {
            start_ms: idr.start_ms,
            status: Status::from_code(h.status),
            body: b.clone(),
        });
        let mut m = match merge(stored, &v, now_ms) {
            Ok(m) => m,
            Err(es) => {
                errors.extend(prefixed(path, es));
                return Ok(outcome);
            }
        };
        let (row, terms) = self.index(p, &v.id, old.map(|(i, h, _)| (i, h)), &m, reserved)?;

        // Children live under the row; they change only the aggregates of the body.
        let mut totals = Totals::of_body(&m.body)?;
        let children = if outcome == Upserted::Created {
            self.insert_new_children(p, row, &v, &mut totals)?
        } else {
            self.upsert_children(p, row, &v, &mut totals)?
        };
        if let Err(msg) = children {
            errors.push(FieldError::new(format!("{path}.spans"), msg));
            return Ok(outcome);
        }
        for (sid, rec) in &v.scores {
            let key = child_key(p, row, sid);
            let prev = self
                .t
                .scores
                .insert(key.as_slice(), encode_score(rec).as_slice())?;
            totals.put_score(prev.is_some());
        }
        totals.write_to(&mut m.body);
        self.put_sort_keys(p, &v.id, old_place, SortPlace::of(m.start_ms, row, &m.body))?;

        let header = terms.header(row);
        let key = trace_key(p, m.start_ms, &v.id);
        self.t
            .traces
            .insert(key.as_slice(), encode_trace(&header, &m.body).as_slice())?;
        self.t.ids.insert(
            (p, v.id.as_str()),
            encode_id(&IdRecord {
                start_ms: m.start_ms,
                row,
            })
            .as_slice(),
        )?;
        Ok(outcome)
    }

    /// Upserts the spans (and their payloads) of a trace that is stored already, one by one:
    /// each may replace a stored span. The inner error names a sum that overflows.
    fn upsert_children(
        &mut self,
        p: u32,
        row: u32,
        v: &ValidTrace,
        totals: &mut Totals,
    ) -> Result<std::result::Result<(), &'static str>> {
        self.write_new_children()?;
        let span_payloads = v.span_payloads();
        for (sid, rec) in &v.spans {
            let key = child_key(p, row, sid);
            let prev = match self
                .t
                .spans
                .insert(key.as_slice(), encode_span(rec).as_slice())?
            {
                Some(g) => Some(decode_span(g.value())?),
                None => None,
            };
            if let Err(msg) = totals.put_span(prev.as_ref(), rec)? {
                return Ok(Err(msg));
            }
            self.replace_span(p, row, prev.as_ref(), rec)?;
            // A span is replaced whole: without a payload now, it keeps none. A span that did
            // not exist has none to remove (invariant 16).
            match span_payloads.get(sid.as_str()) {
                Some(pl) => {
                    self.t
                        .payloads
                        .insert(key.as_slice(), encode_payload(pl).as_slice())?;
                }
                None if prev.is_some() => {
                    self.t.payloads.remove(key.as_slice())?;
                }
                None => {}
            }
        }
        if let Some(patch) = v.trace_payload() {
            self.patch_trace_payload(p, row, patch)?;
        }
        Ok(Ok(()))
    }

    /// Buffers the spans, span payloads and trace payload of a trace that was just created:
    /// its row is new, so none of these keys exist. The result is what `upsert_children` would
    /// store (a span id sent twice is the later span, and the sums see the replacement), but
    /// the entries reach their tables in `write_new_children`, in key order through one cursor
    /// run per table: redb packs such a run into full leaves with one update of the parent
    /// path, where an insert per key descends the tree and splits leaves (half-empty pages on
    /// these append-only keys, and every page is written and fsynced at commit).
    fn insert_new_children(
        &mut self,
        p: u32,
        row: u32,
        v: &ValidTrace,
        totals: &mut Totals,
    ) -> Result<std::result::Result<(), &'static str>> {
        let span_payloads = v.span_payloads();
        let mut latest: HashMap<&str, &SpanRecord> = HashMap::with_capacity(v.spans.len());
        for (sid, rec) in &v.spans {
            let prev = latest.insert(sid.as_str(), rec);
            if let Err(msg) = totals.put_span(prev, rec)? {
                return Ok(Err(msg));
            }
        }
        self.count_new_spans(p, row, latest.values().copied())?;
        let mut spans = Vec::with_capacity(latest.len());
        let mut payloads = Vec::with_capacity(span_payloads.len() + 1);
        for (sid, rec) in latest {
            let key = child_key(p, row, sid);
            if let Some(pl) = span_payloads.get(sid) {
                payloads.push((key.clone(), encode_payload(pl)));
            }
            spans.push((key, encode_span(rec)));
        }
        if let Some(patch) = v.trace_payload() {
            let mut rec = PayloadRecord::default();
            apply_payload_patch(&mut rec, patch);
            if !rec.is_empty() {
                payloads.push((child_key(p, row, ""), encode_payload(&rec)));
            }
        }
        self.new_children.spans.extend(spans);
        self.new_children.payloads.extend(payloads);
        Ok(Ok(()))
    }

    /// Writes the buffered children of new rows to their tables. Called before anything reads
    /// or changes stored children, and by `flush`, so that the buffer is invisible.
    fn write_new_children(&mut self) -> Result<()> {
        let buffered = std::mem::take(&mut self.new_children);
        insert_absent(&mut self.t.spans, buffered.spans)?;
        insert_absent(&mut self.t.payloads, buffered.payloads)
    }

    /// Applies a trace's payload patch: each field given replaces the stored one (a JSON
    /// `null` clears it).
    fn patch_trace_payload(&mut self, p: u32, row: u32, patch: &PayloadRecord) -> Result<()> {
        let key = child_key(p, row, "");
        let mut rec = match self.t.payloads.get(key.as_slice())? {
            Some(g) => decode_payload(g.value())?,
            None => PayloadRecord::default(),
        };
        apply_payload_patch(&mut rec, patch);
        if rec.is_empty() {
            self.t.payloads.remove(key.as_slice())?;
        } else {
            self.t
                .payloads
                .insert(key.as_slice(), encode_payload(&rec).as_slice())?;
        }
        Ok(())
    }

    /// What OTLP ingest needs of a stored trace: its row, tags, every span, and the first
    /// trace-level attributes that arrived. None when the trace does not exist.
    #[cfg(feature = "otlp")]
    pub(crate) fn otlp_stored(
        &mut self,
        p: u32,
        id: &str,
    ) -> Result<Option<(u32, crate::otlp::StoredTrace)>> {
        let Some((idr, _, body)) = self.load(p, id)? else {
            return Ok(None);
        };
        self.write_new_children()?;
        let (lo, hi) = child_range(p, idr.row);
        let mut spans = Vec::new();
        for e in self.t.spans.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
            let (k, v) = e?;
            let (_, _, sid) = decode_child_key(k.value())?;
            spans.push((sid.to_string(), decode_span(v.value())?));
        }
        let first = self
            .payload_of(p, idr.row, "")?
            .and_then(|r| r.otlp)
            .unwrap_or_default();
        Ok(Some((
            idr.row,
            crate::otlp::StoredTrace {
                tags: body.tags,
                spans,
                first,
            },
        )))
    }

    /// The payload record of a trace (the empty id) or of one of its spans.
    #[cfg(feature = "otlp")]
    pub(crate) fn payload_of(
        &mut self,
        p: u32,
        row: u32,
        id: &str,
    ) -> Result<Option<PayloadRecord>> {
        self.write_new_children()?;
        match self.t.payloads.get(child_key(p, row, id).as_slice())? {
            Some(g) => Ok(Some(decode_payload(g.value())?)),
            None => Ok(None),
        }
    }

    /// The problems `v` has against its stored trace in project `p` (None: a project that does
    /// not exist yet), without writing anything: the merge's rules, under `path`.
    pub(crate) fn check(
        &mut self,
        p: Option<u32>,
        v: &ValidTrace,
        path: &str,
    ) -> Result<Vec<FieldError>> {
        let old = match p {
            Some(p) if crate::validate::check_id(&v.id, crate::limits::MAX_ID_BYTES).is_ok() => {
                self.load(p, &v.id)?
            }
            _ => None,
        };
        let stored = old.map(|(idr, h, b)| Stored {
            start_ms: idr.start_ms,
            status: Status::from_code(h.status),
            body: b,
        });
        Ok(match merge(stored, v, 0) {
            Ok(_) => Vec::new(),
            Err(es) => prefixed(path, es),
        })
    }

    /// The stored trace with this id: its id record, header and body.
    fn load(&self, p: u32, id: &str) -> Result<Option<(IdRecord, TraceHeader, TraceBody)>> {
        let Some(g) = self.t.ids.get((p, id))? else {
            return Ok(None);
        };
        let idr = decode_id(g.value())?;
        let key = trace_key(p, idr.start_ms, id);
        let bytes = self
            .t
            .traces
            .get(key.as_slice())?
            .ok_or_else(|| Error::corrupted("id index points at a missing trace"))?
            .value()
            .to_vec();
        let (h, b) = decode_trace(&bytes)?;
        Ok(Some((idr, h, b)))
    }

    /// Removes a trace with its spans, scores and every index entry. False if it did not exist.
    pub(crate) fn delete(&mut self, p: u32, id: &str) -> Result<bool> {
        self.state(p)?;
        self.write_new_children()?;
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
        let (h, body) = decode_trace(&bytes)?;
        self.index_row(p, h.row, &Terms::of(&h), false)?;
        self.remove_sort_keys(p, id, SortPlace::of(idr.start_ms, h.row, &body))?;
        self.drop_span_terms(p, h.row)?;
        self.t.rows.remove((p, h.row))?;
        let st = self.state(p)?;
        st.live = st.live.saturating_sub(1);
        let prefix = child_prefix(p, h.row);
        for table in [&mut self.t.spans, &mut self.t.payloads, &mut self.t.scores] {
            take_prefix(table, &prefix)?;
        }
        Ok(true)
    }

    /// Re-keys a trace's spans and scores from its old row to its new one.
    fn move_children(&mut self, p: u32, from: u32, to: u32) -> Result<()> {
        self.write_new_children()?;
        self.move_span_terms(p, from, to)?;
        let (old, new) = (child_prefix(p, from), child_prefix(p, to));
        for table in [&mut self.t.spans, &mut self.t.payloads, &mut self.t.scores] {
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
        self.write_new_children()?;
        self.flush_span_terms()?;
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

/// A trace payload patch applied to the stored record: each field given replaces the stored
/// one (a JSON `null` clears it).
pub(crate) fn apply_payload_patch(rec: &mut PayloadRecord, patch: &PayloadRecord) {
    let set = |field: &mut Option<Blob>, new: &Option<Blob>| {
        if let Some(b) = new {
            *field = match b {
                Blob::Text(t) if t == crate::validate::CLEAR => None,
                b => Some(b.clone()),
            };
        }
    };
    set(&mut rec.input, &patch.input);
    set(&mut rec.output, &patch.output);
    if patch.otlp.is_some() {
        rec.otlp = patch.otlp.clone();
    }
}

/// Inserts entries with distinct keys, all absent from `table`, in key order through cursor
/// runs: redb buffers a run of ascending inserts at one gap and splices it in as packed leaves.
/// The keys are the children of new rows, so they usually fill one gap; a stored key between
/// them (a trace moved to a new row in between) ends one run and the next starts past it. A
/// key that is itself stored means the new row's children were not empty: corruption.
fn insert_absent(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    mut entries: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut rest = entries.as_slice();
    while let Some((first, _)) = rest.first() {
        let mut cursor = table.lower_bound_mut(Bound::Included(first.as_slice()))?;
        let mut written = 0;
        for (key, value) in rest {
            match cursor.insert_before(key.as_slice(), value.as_slice()) {
                Ok(()) => written += 1,
                Err(CursorError::UnorderedKey) if written > 0 => break,
                Err(CursorError::UnorderedKey) => {
                    return Err(Error::corrupted("a child of a new row is already stored"))
                }
                Err(e) => return Err(redb::Error::from(e).into()),
            }
        }
        cursor.close()?;
        rest = &rest[written..];
    }
    Ok(())
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

/// Item-relative field errors under the item's path.
pub(crate) fn prefixed(path: &str, es: Vec<FieldError>) -> Vec<FieldError> {
    es.into_iter()
        .map(|e| FieldError::new(format!("{path}.{}", e.field()), e.message()))
        .collect()
}
