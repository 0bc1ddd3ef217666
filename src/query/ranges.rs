//! The index of the range filters (`minDurationMs`…`maxTokens`): value buckets.
//!
//! Each keyed field (duration, cost, tokens) maps a trace's value to one of `BUCKETS` buckets:
//! the values 0–15 exactly, then eight buckets per power of two (each spans 1/8 of its octave,
//! about 9% of its value). A trace row is in its bucket's bitmap (term kinds 11–13, the term id
//! being the bucket number; a running trace has no duration bucket). A range then resolves, in
//! one snapshot, to one exact index input:
//! - the buckets it covers whole, as the union of their bitmaps;
//! - plus the rows whose values lie in the range's partly covered ends (at most two buckets'
//!   worth), read from the `sort_keys` index, which holds every indexed row's exact value, and
//!   only when an executor first needs them ([`Edges`]): the scan plan tests values itself, so
//!   a range query that scans never reads them.
//!
//! Costs are bucketed by their value in nanodollars (saturating); the range test at the ends is
//! exact on the stored decimal.

use super::filter::Input;
use super::order::{SortField, SortValue};
use crate::cache::ProjectView;
use crate::error::{Error, Result};
use crate::limits::CHUNK_ROWS;
use crate::schema::*;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Buckets per field: 16 exact small values, then 8 per octave from 16 up to 2^64.
pub(crate) const BUCKETS: u32 = 16 + 60 * 8;

/// The bucket of a u64 value.
pub(crate) fn bucket_of(v: u64) -> u32 {
    if v < 16 {
        return v as u32;
    }
    let e = 63 - v.leading_zeros(); // v's highest set bit, >= 4
    let m = ((v >> (e - 3)) & 7) as u32;
    16 + (e - 4) * 8 + m
}

/// The values of bucket `b`: `[lo, hi)` (as u128, so that the last bucket's end fits).
fn bucket_span(b: u32) -> (u128, u128) {
    if b < 16 {
        return (b as u128, b as u128 + 1);
    }
    let e = (b - 16) / 8 + 4;
    let m = ((b - 16) % 8) as u128;
    ((8 + m) << (e - 3), (9 + m) << (e - 3))
}

/// The term kind of a field's buckets.
pub(crate) fn bucket_kind(f: SortField) -> Option<TermKind> {
    match f {
        SortField::StartTime => None,
        SortField::Duration => Some(TermKind::DurationBucket),
        SortField::Cost => Some(TermKind::CostBucket),
        SortField::Tokens => Some(TermKind::TokensBucket),
    }
}

const NANOS: u128 = 1_000_000_000;
/// A cost's fraction unit (10^-28) per nanodollar.
const FRAC_PER_NANO: u128 = 10_000_000_000_000_000_000;

/// The u64 a value is bucketed by (None: a running trace's duration, in no bucket).
fn bucket_value(v: SortValue) -> Option<u64> {
    match v {
        SortValue::None | SortValue::Duration(None) => None,
        SortValue::Duration(Some(d)) => Some(d),
        SortValue::Tokens(t) => Some(t),
        SortValue::Cost(int, frac) => {
            let nanos = int
                .saturating_mul(NANOS)
                .saturating_add(frac / FRAC_PER_NANO);
            Some(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
    }
}

/// The smallest value of field `f` whose bucket value is `x` (for a cost: `x` nanodollars).
fn value_at(f: SortField, x: u128) -> SortValue {
    let x64 = u64::try_from(x).unwrap_or(u64::MAX);
    match f {
        SortField::Duration => SortValue::Duration(Some(x64)),
        SortField::Tokens => SortValue::Tokens(x64),
        SortField::Cost => SortValue::Cost(x / NANOS, (x % NANOS) * FRAC_PER_NANO),
        SortField::StartTime => SortValue::None,
    }
}

/// The bucket term of a trace's value of field `f`.
pub(crate) fn bucket_term(f: SortField, v: SortValue) -> Option<(TermKind, u32)> {
    Some((bucket_kind(f)?, bucket_of(bucket_value(v)?)))
}

/// Total order of two values of one field (both finished).
fn le(a: SortValue, b: SortValue) -> bool {
    rank(a) <= rank(b)
}

fn rank(v: SortValue) -> (u128, u128) {
    match v {
        SortValue::None | SortValue::Duration(None) => (0, 0),
        SortValue::Duration(Some(d)) => (d as u128, 0),
        SortValue::Tokens(t) => (t as u128, 0),
        SortValue::Cost(i, f) => (i, f),
    }
}

/// The index input of the inclusive range `[lo, hi]` of field `f` (`hi` None: unbounded), in
/// the snapshot `v`: the buckets inside the range whole, and the rows of its partly covered
/// ends read from the sort index. Exact.
pub(crate) fn range_input(
    v: &ProjectView<'_>,
    f: SortField,
    lo: SortValue,
    hi: Option<SortValue>,
    label: String,
) -> Result<Input> {
    let kind = bucket_kind(f).ok_or_else(|| Error::corrupted("range on startTime"))?;
    // The buckets that lie inside the range whole: a contiguous run.
    let full: Vec<u32> = (0..BUCKETS)
        .filter(|b| {
            let (a, z) = bucket_span(*b);
            le(lo, value_at(f, a))
                && hi.is_none_or(|h| z <= u64::MAX as u128 && le(value_at(f, z), h))
        })
        .collect();
    let counts = v.bucket_counts(kind, BUCKETS)?;
    let mut terms = Vec::new();
    let mut rows = 0u64;
    for b in &full {
        let n = counts[*b as usize];
        if n > 0 {
            terms.push(*b);
            rows += n;
        }
    }
    // The ends: values in [lo, first full bucket) and [after the last full bucket, hi].
    let field_end =
        prefix_end(&sort_field_prefix(v.p, f)).ok_or_else(|| Error::corrupted("sort key range"))?;
    let key_of = |x: SortValue| sort_value_prefix(v.p, f, x);
    let hi_end = match hi {
        Some(h) => prefix_end(&key_of(h)).ok_or_else(|| Error::corrupted("sort key range"))?,
        None => field_end,
    };
    let spans: Vec<(Vec<u8>, Vec<u8>)> = match (full.first(), full.last()) {
        (Some(first), Some(last)) => {
            let (a, _) = bucket_span(*first);
            let (_, z) = bucket_span(*last);
            let mut s = vec![(key_of(lo), key_of(value_at(f, a)))];
            // Past the last bucket there is nothing above it.
            if z <= u64::MAX as u128 {
                s.push((key_of(value_at(f, z)), hi_end));
            }
            s
        }
        _ => vec![(key_of(lo), hi_end)],
    };
    // The ends are read only when an executor needs them (the scan tests values itself); the
    // estimate counts their buckets whole, an upper bound.
    let spans: Vec<(Vec<u8>, Vec<u8>)> = spans.into_iter().filter(|(a, z)| a < z).collect();
    let mut partial: Vec<u32> = [Some(lo), hi]
        .into_iter()
        .flatten()
        .filter_map(|x| bucket_value(x).map(bucket_of))
        .filter(|b| !full.contains(b))
        .collect();
    partial.dedup();
    if !spans.is_empty() {
        for b in partial {
            rows += counts[b as usize];
        }
    }
    Ok(Input {
        kind,
        terms,
        rows,
        label,
        extra: (!spans.is_empty()).then(|| {
            Arc::new(Edges {
                spans,
                rows: OnceLock::new(),
            })
        }),
    })
}

/// The rows of a range's partly covered end buckets: the sort-index key spans that hold them,
/// read into per-chunk bitmaps on first use, from the snapshot the query was planned in.
#[derive(Debug)]
pub(crate) struct Edges {
    spans: Vec<(Vec<u8>, Vec<u8>)>,
    rows: OnceLock<HashMap<u32, RoaringBitmap>>,
}

impl Edges {
    /// The edge rows in `chunk`, if any.
    pub(crate) fn in_chunk<'e>(
        &'e self,
        v: &ProjectView<'_>,
        chunk: u32,
    ) -> Result<Option<&'e RoaringBitmap>> {
        if let Some(m) = self.rows.get() {
            return Ok(m.get(&chunk));
        }
        let t = v.t.sort_keys()?;
        let mut rows: HashMap<u32, RoaringBitmap> = HashMap::new();
        for (from, to) in &self.spans {
            for e in t.range::<&[u8]>(from.as_slice()..to.as_slice())? {
                let (_, val) = e?;
                let row = decode_sort_entry(val.value())?.row;
                rows.entry(chunk_of(row))
                    .or_default()
                    .insert(row % CHUNK_ROWS);
            }
        }
        Ok(self.rows.get_or_init(|| rows).get(&chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut prev = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v}");
            assert!(b >= prev, "monotone at {v}");
            prev = b;
            let (lo, hi) = bucket_span(b);
            assert!(
                lo <= v as u128 && (v as u128) < hi,
                "{v} in bucket {b} [{lo}, {hi})"
            );
        }
        for b in 0..BUCKETS - 1 {
            assert_eq!(bucket_span(b).1, bucket_span(b + 1).0, "contiguous at {b}");
        }
        assert_eq!(bucket_span(BUCKETS - 1).1, 1u128 << 64);
    }

    #[test]
    fn costs_bucket_by_nanodollars() {
        let c = |int, frac| bucket_value(SortValue::Cost(int, frac)).unwrap();
        assert_eq!(c(0, 0), 0);
        assert_eq!(c(0, FRAC_PER_NANO), 1);
        assert_eq!(c(0, FRAC_PER_NANO - 1), 0);
        assert_eq!(c(2, 5 * FRAC_PER_NANO), 2_000_000_005);
        assert_eq!(c(u128::MAX / 2, 0), u64::MAX);
        // value_at is the smallest value of its bucket value.
        let v = value_at(SortField::Cost, 2_000_000_005);
        assert_eq!(bucket_value(v), Some(2_000_000_005));
        assert_eq!(v, SortValue::Cost(2, 5 * FRAC_PER_NANO));
    }
}
