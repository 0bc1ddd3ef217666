//! The index step of a write: term ids and counts, bitmap bits, row allocation and block
//! bounds. Everything here is cached per transaction by the `Writer` and written back by
//! `flush`.

use super::{BitmapKey, TermKey, Writer};
use crate::error::{Error, Result};
use crate::limits::{MAX_METADATA_VALUES_PER_KEY, MAX_ROWS_PER_PROJECT};
use crate::model::Status;
use crate::query::filter::{meta_text, metadata_pairs};
use crate::schema::*;
use crate::write::merge::Merged;
use foldhash::{HashMap, HashMapExt, HashSet};
use redb::ReadableTable;
use roaring::RoaringBitmap;

/// A trace's index terms: what its row contributes to the bitmaps.
pub(super) struct Terms {
    pub status: u32,
    pub name: u32,
    pub tags: Vec<u32>,
    pub user: Option<u32>,
    pub session: Option<u32>,
    /// Sorted, distinct.
    pub meta: Vec<u32>,
}

impl Terms {
    fn iter(&self) -> impl Iterator<Item = (TermKind, u32)> + '_ {
        [(TermKind::Status, self.status), (TermKind::Name, self.name)]
            .into_iter()
            .chain(self.tags.iter().map(|t| (TermKind::Tag, *t)))
            .chain(self.user.map(|t| (TermKind::User, t)))
            .chain(self.session.map(|t| (TermKind::Session, t)))
            .chain(self.meta.iter().map(|t| (TermKind::Meta, *t)))
    }
    pub(super) fn of(h: &TraceHeader) -> Terms {
        Terms {
            status: h.status as u32,
            name: h.name_id,
            tags: h.tag_ids.clone(),
            user: h.user_id,
            session: h.session_id,
            meta: h.meta_ids.clone(),
        }
    }
    /// The stored header of a row with these terms.
    pub(super) fn header(&self, row: u32) -> TraceHeader {
        TraceHeader {
            row,
            status: self.status as u8,
            name_id: self.name,
            tag_ids: self.tags.clone(),
            user_id: self.user,
            session_id: self.session,
            meta_ids: self.meta.clone(),
        }
    }
}

impl Writer<'_> {
    pub(super) fn term_record(&mut self, key: TermKey) -> Result<Option<&mut TermRecord>> {
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

    /// The id of a term's text, created when absent. Status terms have fixed ids (OK=0,
    /// ERROR=1), and so have span kinds and span statuses (their codes) and value buckets (their
    /// bucket number, the text).
    pub(super) fn term_id(&mut self, p: u32, kind: TermKind, text: &str) -> Result<u32> {
        let id = match kind {
            TermKind::Status | TermKind::SpanStatus => {
                let st = Status::parse(text).ok_or_else(|| Error::corrupted("status term"))?;
                st.code() as u32
            }
            TermKind::DurationBucket | TermKind::CostBucket | TermKind::TokensBucket => text
                .parse::<u32>()
                .map_err(|_| Error::corrupted("bucket term"))?,
            TermKind::SpanKind => crate::model::SpanKind::parse(text)
                .ok_or_else(|| Error::corrupted("span kind term"))?
                .code() as u32,
            _ => {
                if let Some(id) = self.known_term_id(p, kind, text)? {
                    // Known terms have their record (created with the id, or stored).
                    return Ok(id);
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
                self.remember_term_id(p, kind, text, id);
                id
            }
        };
        self.ensure_term_record(p, kind, id, text)?;
        Ok(id)
    }

    /// The id of a text term (a kind with a `term_ids` entry), if the text has one: from the
    /// transaction's cache, else from the table (then cached, with its record ensured). Loads
    /// the project state first (which may fold pending traces, creating terms), so that a term
    /// is never created twice under one text.
    fn known_term_id(&mut self, p: u32, kind: TermKind, text: &str) -> Result<Option<u32>> {
        if let Some(id) = self
            .term_ids
            .get(&(p, kind.code()))
            .and_then(|m| m.get(text))
        {
            return Ok(Some(*id));
        }
        self.state(p)?;
        let id = match self.t.term_ids.get((p, kind.code(), text))? {
            Some(v) => decode_u32(v.value())?,
            None => return Ok(None),
        };
        self.ensure_term_record(p, kind, id, text)?;
        self.remember_term_id(p, kind, text, id);
        Ok(Some(id))
    }

    /// Keeps a text's term id for the rest of the transaction (ids are never reused or renamed).
    fn remember_term_id(&mut self, p: u32, kind: TermKind, text: &str, id: u32) {
        self.term_ids
            .entry((p, kind.code()))
            .or_default()
            .insert(text.into(), id);
    }

    /// The record of term `id` of `kind`, created (count 0, `text`) when absent. A pair kind
    /// (`TermKind::on_error_span`) uses its base term's id and text.
    pub(super) fn ensure_term_record(
        &mut self,
        p: u32,
        kind: TermKind,
        id: u32,
        text: &str,
    ) -> Result<()> {
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
        Ok(())
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

    pub(super) fn set_term(
        &mut self,
        p: u32,
        kind: TermKind,
        term: u32,
        row: u32,
        on: bool,
    ) -> Result<()> {
        let changed = {
            let bm = self.bitmap_mut((p, kind.code(), term, chunk_of(row)))?;
            if on {
                bm.insert(chunk_offset(row))
            } else {
                bm.remove(chunk_offset(row))
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

    pub(super) fn index_row(&mut self, p: u32, row: u32, terms: &Terms, on: bool) -> Result<()> {
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

    /// The terms of a trace's indexed fields, each term created when new.
    pub(super) fn trace_terms(
        &mut self,
        p: u32,
        status: Status,
        body: &TraceBody,
    ) -> Result<Terms> {
        let status = self.term_id(p, TermKind::Status, status.as_str())?;
        let name = self.term_id(p, TermKind::Name, &body.name)?;
        let mut tag_ids = Vec::with_capacity(body.tags.len());
        for t in &body.tags {
            tag_ids.push(self.term_id(p, TermKind::Tag, t)?);
        }
        tag_ids.sort_unstable();
        tag_ids.dedup();
        let user = match &body.user_id {
            Some(u) => Some(self.term_id(p, TermKind::User, u)?),
            None => None,
        };
        let session = match &body.session_id {
            Some(s) => Some(self.term_id(p, TermKind::Session, s)?),
            None => None,
        };
        let mut meta = Vec::new();
        for (key, value) in metadata_pairs(&body.metadata) {
            if let Some(id) = self.meta_term(p, &key, &value)? {
                meta.push(id);
            }
        }
        meta.sort_unstable();
        meta.dedup();
        Ok(Terms {
            status,
            name,
            tags: tag_ids,
            user,
            session,
            meta,
        })
    }

    /// The term of one metadata pair. A pair seen before has its term; a new value of a key
    /// gets one while the key has fewer than `MAX_METADATA_VALUES_PER_KEY` values, and past
    /// that the key is marked over its cap (its value count set above the cap) and the pair
    /// stays unindexed: a query on that key then tests the stored metadata itself.
    fn meta_term(&mut self, p: u32, key: &str, value: &str) -> Result<Option<u32>> {
        let text = meta_text(key, value);
        if let Some(id) = self.known_term_id(p, TermKind::Meta, &text)? {
            return Ok(Some(id));
        }
        let key_id = self.term_id(p, TermKind::MetaKey, key)?;
        let k = (p, TermKind::MetaKey.code(), key_id);
        self.dirty_terms.insert(k);
        let rec = self
            .term_record(k)?
            .ok_or_else(|| Error::corrupted("metadata key term missing"))?;
        if rec.count >= MAX_METADATA_VALUES_PER_KEY {
            rec.count = MAX_METADATA_VALUES_PER_KEY + 1;
            return Ok(None);
        }
        rec.count += 1;
        self.term_id(p, TermKind::Meta, &text).map(Some)
    }

    /// Indexes a merged trace: a new trace gets a row (the `reserved` one when folding), a
    /// trace whose start time changed moves to a new row with its children, and a trace that
    /// stays on its row moves only the index entries that changed. Returns the row and terms.
    pub(super) fn index(
        &mut self,
        p: u32,
        id: &str,
        old: Option<(IdRecord, TraceHeader)>,
        m: &Merged,
        reserved: Option<u32>,
    ) -> Result<(u32, Terms)> {
        let terms = self.trace_terms(p, m.status, &m.body)?;
        let row = match old {
            Some((idr, h)) if idr.start_ms == m.start_ms => {
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
                    .remove(trace_key(p, idr.start_ms, id).as_slice())?;
                let row = self.allocate_row(p, m.start_ms, id, None)?;
                self.index_row(p, row, &terms, true)?;
                self.move_children(p, h.row, row)?;
                row
            }
            None => {
                let row = self.allocate_row(p, m.start_ms, id, reserved)?;
                self.index_row(p, row, &terms, true)?;
                self.state(p)?.live += 1;
                row
            }
        };
        Ok((row, terms))
    }
}

/// Traces read per step while an upgrade indexes a file, so that its memory stays bounded
/// whatever the file's size.
const UPGRADE_BATCH: usize = 4096;

/// One stored trace as an upgrade step sees it: its project, primary key, header and body.
pub(crate) struct StoredTrace {
    pub p: u32,
    pub key: Vec<u8>,
    pub header: TraceHeader,
    pub body: TraceBody,
}

impl Writer<'_> {
    /// Calls `step` on every indexed trace of the file, in primary-key order, `UPGRADE_BATCH`
    /// at a time. Pending traces are folded first, through the ordinary upsert of this build
    /// (which indexes them fully), and the rows they took are not visited.
    fn each_stored_trace(
        &mut self,
        mut step: impl FnMut(&mut Self, StoredTrace) -> Result<()>,
    ) -> Result<()> {
        let mut indexed: HashMap<u32, u32> = HashMap::new();
        for e in self.t.project_state.iter()? {
            let (k, v) = e?;
            indexed.insert(k.value(), decode_project_state(v.value())?.indexed_rows);
        }
        // Loading a project's state folds its pending traces.
        for p in indexed.keys() {
            self.state(*p)?;
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(UPGRADE_BATCH);
            let range = match &after {
                Some(k) => self.t.traces.range::<&[u8]>(k.as_slice()..)?,
                None => self.t.traces.range::<&[u8]>(..)?,
            };
            for e in range {
                let (k, v) = e?;
                if after.as_deref() == Some(k.value()) {
                    continue;
                }
                batch.push((k.value().to_vec(), v.value().to_vec()));
                if batch.len() >= UPGRADE_BATCH {
                    break;
                }
            }
            let Some((last, _)) = batch.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (key, value) in batch {
                let (p, _, _) = decode_trace_key(&key)?;
                let (header, body) = decode_trace(&value)?;
                if indexed.get(&p).is_none_or(|n| header.row >= *n) {
                    continue; // a pending trace, folded above
                }
                step(
                    self,
                    StoredTrace {
                        p,
                        key,
                        header,
                        body,
                    },
                )?;
            }
        }
    }

    /// The format-4 upgrade's index step: every stored trace gets its `userId`, `sessionId`
    /// and metadata terms (from its body) in its header and in the bitmaps.
    pub(crate) fn index_format4_terms(&mut self) -> Result<()> {
        self.each_stored_trace(|w, t| {
            let StoredTrace {
                p,
                key,
                mut header,
                body,
            } = t;
            let status =
                Status::from_code(header.status).ok_or_else(|| Error::corrupted("trace status"))?;
            let all = w.trace_terms(p, status, &body)?;
            let added = all
                .user
                .map(|t| (TermKind::User, t))
                .into_iter()
                .chain(all.session.map(|t| (TermKind::Session, t)))
                .chain(all.meta.iter().map(|t| (TermKind::Meta, *t)));
            for (kind, term) in added {
                w.set_term(p, kind, term, header.row, true)?;
            }
            header.user_id = all.user;
            header.session_id = all.session;
            header.meta_ids = all.meta;
            w.t.traces
                .insert(key.as_slice(), encode_trace(&header, &body).as_slice())?;
            Ok(())
        })
    }

    /// The format-5 upgrade's index step: every stored trace gets its span terms (from its
    /// spans) and its sort-key entries (from its body).
    pub(crate) fn index_format5(&mut self) -> Result<()> {
        self.each_stored_trace(|w, t| {
            w.upgrade_span_terms(&t)?;
            w.upgrade_sort_keys(&t)?;
            Ok(())
        })
    }

    /// Format 6 over a format-5 file: each stored trace's span-and-ERROR pair terms
    /// (`TermKind::on_error_span`), added to its span terms.
    pub(crate) fn index_format6(&mut self) -> Result<()> {
        self.each_stored_trace(|w, t| w.index_stored_error_pairs(t.p, t.header.row))
    }

    /// Format 5: the span terms of one stored trace, from its stored spans.
    fn upgrade_span_terms(&mut self, t: &StoredTrace) -> Result<()> {
        self.index_stored_spans(t.p, t.header.row)
    }

    /// Format 5: the sort-index entries of one stored trace, as for a new row.
    fn upgrade_sort_keys(&mut self, t: &StoredTrace) -> Result<()> {
        let (_, start_ms, id) = decode_trace_key(&t.key)?;
        let place = super::sort_keys::SortPlace::of(start_ms, t.header.row, &t.body);
        self.put_sort_keys(t.p, id, None, place)
    }
}
