//! The span terms of a trace row: the index behind the span conditions (`spanName`,
//! `spanModel`, `spanKind`, `spanStatus`).
//!
//! A row's bit in a span-term bitmap (kinds `SpanName`, `SpanModel`, `SpanKind`, `SpanStatus`)
//! is set when at least one span of the trace carries the term. To keep that exact when spans
//! are replaced, the writer keeps, per row, how many of the trace's spans carry each term
//! (`span_terms[(project, row)]`): a term's bit is set when its count goes 0 → 1 and cleared
//! when it goes 1 → 0, and the term record counts rows, like every other term (invariant 5).
//!
//! Every change of a row's spans goes through here: the spans of a new trace
//! (`insert_new_children`), a span sent again with the same id (`upsert_children`, which knows
//! the replaced span), a delete, and a row move (`move_children`). The records are cached per
//! transaction and written back by `flush`. The list path never reads this table.

use super::Writer;
use crate::error::{Error, Result};
use crate::model::{SpanKind, Status};
use crate::schema::*;
use foldhash::{HashMap, HashSet};
use redb::ReadableTable;
use std::collections::BTreeMap;

/// Per (kind code, term): how many spans of the row carry it (entries are at least 1).
type RowTerms = BTreeMap<(u8, u32), u32>;

/// The span-term records of the rows a transaction touched.
#[derive(Default)]
pub(super) struct SpanTermsCache {
    rows: HashMap<(u32, u32), RowTerms>,
    dirty: HashSet<(u32, u32)>,
}

impl Writer<'_> {
    /// The terms one span carries: its name and model when it has them, its kind and status
    /// always. Term records are created for new texts.
    fn span_term_ids(&mut self, p: u32, s: &SpanRecord) -> Result<Vec<(TermKind, u32)>> {
        let mut out = Vec::with_capacity(4);
        for (kind, text) in [
            (TermKind::SpanName, &s.name),
            (TermKind::SpanModel, &s.model),
        ] {
            if let Some(text) = text {
                out.push((kind, self.term_id(p, kind, text)?));
            }
        }
        let kind = SpanKind::from_code(s.kind).ok_or_else(|| Error::corrupted("span kind"))?;
        out.push((
            TermKind::SpanKind,
            self.term_id(p, TermKind::SpanKind, kind.as_str())?,
        ));
        let status = Status::from_code(s.status).ok_or_else(|| Error::corrupted("span status"))?;
        out.push((
            TermKind::SpanStatus,
            self.term_id(p, TermKind::SpanStatus, status.as_str())?,
        ));
        if status == Status::Error {
            // The pairs with ERROR on this same span: `spanStatus=ERROR` beside one other span
            // condition is then exact from one bitmap.
            for (base, id) in out.clone() {
                let text = match base {
                    TermKind::SpanName => s.name.as_deref(),
                    TermKind::SpanModel => s.model.as_deref(),
                    TermKind::SpanKind => Some(kind.as_str()),
                    _ => None,
                };
                if let (Some(pair), Some(text)) = (base.on_error_span(), text) {
                    self.ensure_term_record(p, pair, id, text)?;
                    out.push((pair, id));
                }
            }
        }
        Ok(out)
    }

    /// The row's span-term counts, loaded on first use in the transaction. `fresh`: the row was
    /// created in this transaction, so it has no record to read.
    fn row_span_terms(&mut self, p: u32, row: u32, fresh: bool) -> Result<&mut RowTerms> {
        if !self.span_terms.rows.contains_key(&(p, row)) {
            let mut terms = RowTerms::new();
            if !fresh {
                if let Some(v) = self.t.span_terms.get((p, row))? {
                    for (kind, term, n) in decode_span_terms(v.value())?.terms {
                        terms.insert((kind, term), n);
                    }
                }
            }
            self.span_terms.rows.insert((p, row), terms);
        }
        Ok(self
            .span_terms
            .rows
            .get_mut(&(p, row))
            .expect("inserted above"))
    }

    /// Counts one span of `row` in (`on`) or out: a term's bit is set when its first span
    /// arrives and cleared when its last one leaves.
    fn count_span(
        &mut self,
        p: u32,
        row: u32,
        s: &SpanRecord,
        on: bool,
        fresh: bool,
    ) -> Result<()> {
        let ids = self.span_term_ids(p, s)?;
        self.count_terms(p, row, ids, on, fresh)
    }

    /// Counts span terms of one span of `row` in or out (see `count_span`).
    fn count_terms(
        &mut self,
        p: u32,
        row: u32,
        ids: Vec<(TermKind, u32)>,
        on: bool,
        fresh: bool,
    ) -> Result<()> {
        for (kind, term) in ids {
            let terms = self.row_span_terms(p, row, fresh)?;
            let key = (kind.code(), term);
            let n = terms.get(&key).copied().unwrap_or(0);
            let next = if on {
                n + 1
            } else {
                n.checked_sub(1).ok_or_else(|| {
                    Error::corrupted(format!(
                        "row {row} has no span with {} {term}",
                        kind.label()
                    ))
                })?
            };
            if next == 0 {
                terms.remove(&key);
            } else {
                terms.insert(key, next);
            }
            self.span_terms.dirty.insert((p, row));
            if (n == 0) != (next == 0) {
                self.set_term(p, kind, term, row, on)?;
            }
        }
        Ok(())
    }

    /// The spans of a trace created in this transaction (its row is new).
    pub(super) fn count_new_spans<'s>(
        &mut self,
        p: u32,
        row: u32,
        spans: impl IntoIterator<Item = &'s SpanRecord>,
    ) -> Result<()> {
        for s in spans {
            self.count_span(p, row, s, true, true)?;
        }
        Ok(())
    }

    /// A span written to a stored trace: `new` replaces `prev` (None: a span that did not
    /// exist). The new span is counted first, so a term both carry never flips.
    pub(super) fn replace_span(
        &mut self,
        p: u32,
        row: u32,
        prev: Option<&SpanRecord>,
        new: &SpanRecord,
    ) -> Result<()> {
        self.count_span(p, row, new, true, false)?;
        if let Some(prev) = prev {
            self.count_span(p, row, prev, false, false)?;
        }
        Ok(())
    }

    /// A deleted trace: every span term of its row leaves the bitmaps.
    pub(super) fn drop_span_terms(&mut self, p: u32, row: u32) -> Result<()> {
        let terms = std::mem::take(self.row_span_terms(p, row, false)?);
        self.span_terms.dirty.insert((p, row));
        for (kind, term) in terms.into_keys() {
            self.set_term(p, span_kind_of(kind)?, term, row, false)?;
        }
        Ok(())
    }

    /// A trace moved from row `from` to row `to` (its startTime changed): its span terms move
    /// along.
    pub(super) fn move_span_terms(&mut self, p: u32, from: u32, to: u32) -> Result<()> {
        let terms = std::mem::take(self.row_span_terms(p, from, false)?);
        self.span_terms.dirty.insert((p, from));
        for (kind, term) in terms.keys() {
            let kind = span_kind_of(*kind)?;
            self.set_term(p, kind, *term, from, false)?;
            self.set_term(p, kind, *term, to, true)?;
        }
        self.span_terms.rows.insert((p, to), terms);
        self.span_terms.dirty.insert((p, to));
        Ok(())
    }

    /// The format-5 upgrade of one stored trace: its span terms from its stored spans.
    pub(super) fn index_stored_spans(&mut self, p: u32, row: u32) -> Result<()> {
        let (lo, hi) = child_range(p, row);
        let mut spans = Vec::new();
        for e in self.t.spans.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
            spans.push(decode_span(e?.1.value())?);
        }
        // A format-4 file has no span-terms record. The record is written at once rather than
        // cached, so the upgrade's memory stays bounded whatever the file's size.
        for s in &spans {
            self.count_span(p, row, s, true, true)?;
        }
        self.span_terms.dirty.remove(&(p, row));
        if let Some(terms) = self.span_terms.rows.remove(&(p, row)) {
            self.write_span_terms((p, row), &terms)?;
        }
        Ok(())
    }

    /// Format 6 over a format-5 row: counts the pair terms of its ERROR spans into the row's
    /// existing span terms, and writes its record at once (memory stays bounded).
    pub(super) fn index_stored_error_pairs(&mut self, p: u32, row: u32) -> Result<()> {
        let (lo, hi) = child_range(p, row);
        let mut spans = Vec::new();
        for e in self.t.spans.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
            let s = decode_span(e?.1.value())?;
            if s.status == Status::Error.code() {
                spans.push(s);
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        for s in &spans {
            let pairs: Vec<(TermKind, u32)> = self
                .span_term_ids(p, s)?
                .into_iter()
                .filter(|(k, _)| TermKind::SPAN_KINDS[4..].contains(k))
                .collect();
            self.count_terms(p, row, pairs, true, false)?;
        }
        self.span_terms.dirty.remove(&(p, row));
        if let Some(terms) = self.span_terms.rows.remove(&(p, row)) {
            self.write_span_terms((p, row), &terms)?;
        }
        Ok(())
    }

    /// Writes the touched rows' records back (an empty one is removed).
    pub(super) fn flush_span_terms(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.span_terms.rows);
        // In key order: the new rows' records are appended at the table's end.
        let mut dirty: Vec<(u32, u32)> = std::mem::take(&mut self.span_terms.dirty)
            .into_iter()
            .collect();
        dirty.sort_unstable();
        for key in dirty {
            self.write_span_terms(key, &rows[&key])?;
        }
        Ok(())
    }

    fn write_span_terms(&mut self, key: (u32, u32), terms: &RowTerms) -> Result<()> {
        if terms.is_empty() {
            self.t.span_terms.remove(key)?;
        } else {
            let rec = SpanTermsRecord {
                terms: terms.iter().map(|(&(k, t), &n)| (k, t, n)).collect(),
            };
            self.t
                .span_terms
                .insert(key, encode_span_terms(&rec).as_slice())?;
        }
        Ok(())
    }
}

fn span_kind_of(code: u8) -> Result<TermKind> {
    TermKind::from_code(code)
        .filter(|k| TermKind::SPAN_KINDS.contains(k))
        .ok_or_else(|| Error::corrupted(format!("span terms record: kind {code}")))
}
