//! The indexes of the keyed fields (`durationMs`, `totalCost`, `totalTokens`), kept in the write
//! that changes the trace: one `sort_keys` entry per indexed trace and field (the keyed orders'
//! index, and the exact values at the ends of a range), and the row's bit in its value bucket's
//! bitmap (the ranges' index, `query::ranges`).
//!
//! An entry is keyed by the trace's value, start and id, and holds its row and `changed`: the
//! generation of the write that last changed this value while the trace stayed on its row (0
//! for a new row). A walk under a keyed order skips entries changed after it began, so a trace
//! whose key changes mid-walk appears at most once (ARCHITECTURE.md, "Sort orders").

use super::Writer;
use crate::error::Result;
use crate::query::order::SortValue;
use crate::query::ranges::bucket_term;
use crate::query::sorted::sort_values;
use crate::schema::*;

/// Where a trace stands in the sort index: its start, row and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SortPlace {
    pub start_ms: i64,
    pub row: u32,
    pub values: [SortValue; 3],
}

impl SortPlace {
    pub(super) fn of(start_ms: i64, row: u32, body: &TraceBody) -> SortPlace {
        SortPlace {
            start_ms,
            row,
            values: sort_values(start_ms, body.end_ms, &body.total_cost, body.total_tokens),
        }
    }
}

impl Writer<'_> {
    /// Moves a trace's sort entries from `old` (None for a new trace) to `new`. On the same row
    /// only the values that changed are rewritten, stamped with the generation this write
    /// commits as; a new or moved row's entries are stamped 0 (the row limit keeps them out of
    /// older walks).
    pub(super) fn put_sort_keys(
        &mut self,
        p: u32,
        id: &str,
        old: Option<SortPlace>,
        new: SortPlace,
    ) -> Result<()> {
        let same_row = old.is_some_and(|o| o.row == new.row && o.start_ms == new.start_ms);
        let stamp = if same_row {
            self.state(p)?.generation + 1
        } else {
            0
        };
        for (i, field) in SORT_FIELDS.into_iter().enumerate() {
            if let Some(o) = old {
                if same_row && o.values[i] == new.values[i] {
                    continue;
                }
                let k = sort_key(p, field, o.values[i], o.start_ms, id);
                self.t.sort_keys.remove(k.as_slice())?;
                if let Some((kind, b)) = bucket_term(field, o.values[i]) {
                    self.set_term(p, kind, b, o.row, false)?;
                }
            }
            if let Some((kind, b)) = bucket_term(field, new.values[i]) {
                self.term_id(p, kind, &b.to_string())?;
                self.set_term(p, kind, b, new.row, true)?;
            }
            let k = sort_key(p, field, new.values[i], new.start_ms, id);
            let entry = SortEntry {
                row: new.row,
                changed: stamp,
            };
            self.t
                .sort_keys
                .insert(k.as_slice(), encode_sort_entry(&entry).as_slice())?;
        }
        Ok(())
    }

    /// Removes a deleted trace's sort entries and bucket bits.
    pub(super) fn remove_sort_keys(&mut self, p: u32, id: &str, old: SortPlace) -> Result<()> {
        for (i, field) in SORT_FIELDS.into_iter().enumerate() {
            let k = sort_key(p, field, old.values[i], old.start_ms, id);
            self.t.sort_keys.remove(k.as_slice())?;
            if let Some((kind, b)) = bucket_term(field, old.values[i]) {
                self.set_term(p, kind, b, old.row, false)?;
            }
        }
        Ok(())
    }
}
