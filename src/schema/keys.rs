//! Key encodings and key ranges. All integers in keys are big-endian, so byte order equals
//! numeric order; the row → block and row → chunk arithmetic lives here too.

use crate::error::{Error, Result};
use crate::limits::{BLOCK_ROWS, CHUNK_ROWS};
use crate::query::order::{SortField, SortValue};

/// The key range of one project's pending traces.
pub(crate) fn pending_range(p: u32) -> std::ops::Range<(u32, &'static str)> {
    (p, "")..(p.saturating_add(1), "")
}

/// Maps an i64 to a u64 whose big-endian byte order equals the i64's numeric order.
fn order_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn unorder_i64(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// Primary key: `project u32 BE | start_ms (i64, sign-flipped, BE) | id bytes`.
/// Byte order equals (project, start, id) order, so a reverse range scan yields the query order.
pub(crate) fn trace_key(project: u32, start_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + id.len());
    k.extend_from_slice(&project.to_be_bytes());
    k.extend_from_slice(&order_i64(start_ms));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The smallest primary key of `project` with a start >= `start_ms`.
pub(crate) fn trace_key_lower(project: u32, start_ms: i64) -> Vec<u8> {
    trace_key(project, start_ms, "")
}

/// The first key after every key of `project`.
pub(crate) fn project_key_end(project: u32) -> Vec<u8> {
    match project.checked_add(1) {
        Some(p) => p.to_be_bytes().to_vec(),
        None => vec![0xFF; 13],
    }
}

pub(crate) fn decode_trace_key(k: &[u8]) -> Result<(u32, i64, &str)> {
    if k.len() < 12 {
        return Err(Error::corrupted("trace key too short"));
    }
    let project = u32::from_be_bytes(k[0..4].try_into().map_err(|_| Error::corrupted("key"))?);
    let start = unorder_i64(k[4..12].try_into().map_err(|_| Error::corrupted("key"))?);
    let id = std::str::from_utf8(&k[12..]).map_err(|_| Error::corrupted("trace id not UTF-8"))?;
    Ok((project, start, id))
}

/// Child key (spans, scores): `project u32 BE | trace row u32 BE | child id bytes`. Rows are
/// allocated in arrival order, so children are appended, and a trace's children are one
/// contiguous prefix range. A trace whose row moves takes its children along.
pub(crate) fn child_key(project: u32, row: u32, child_id: &str) -> Vec<u8> {
    let mut k = child_prefix(project, row);
    k.extend_from_slice(child_id.as_bytes());
    k
}

pub(crate) fn child_prefix(project: u32, row: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 40);
    k.extend_from_slice(&project.to_be_bytes());
    k.extend_from_slice(&row.to_be_bytes());
    k
}

/// The first key after every key that starts with `prefix`, or None if there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn decode_child_key(k: &[u8]) -> Result<(u32, u32, &str)> {
    if k.len() < 8 {
        return Err(Error::corrupted("child key too short"));
    }
    let project = u32::from_be_bytes(k[0..4].try_into().map_err(|_| Error::corrupted("key"))?);
    let row = u32::from_be_bytes(k[4..8].try_into().map_err(|_| Error::corrupted("key"))?);
    let cid = std::str::from_utf8(&k[8..]).map_err(|_| Error::corrupted("child key"))?;
    Ok((project, row, cid))
}

pub(crate) fn block_of(row: u32) -> u32 {
    row / BLOCK_ROWS
}

/// The bitmap partition (chunk) a row falls in.
pub(crate) fn chunk_of(row: u32) -> u32 {
    row / CHUNK_ROWS
}

/// A row's position inside its chunk: the bit a bitmap partition stores for it.
pub(crate) fn chunk_offset(row: u32) -> u32 {
    row % CHUNK_ROWS
}

/// The row at `offset` of `chunk` (the inverse of `chunk_of` and `chunk_offset`).
pub(crate) fn chunk_row(chunk: u32, offset: u32) -> u32 {
    chunk * CHUNK_ROWS + offset
}

/// Blocks per chunk: a chunk holds exactly this many whole blocks.
pub(crate) const BLOCKS_PER_CHUNK: u32 = CHUNK_ROWS / BLOCK_ROWS;

/// The chunk a block falls in.
pub(crate) fn chunk_of_block(block: u32) -> u32 {
    block / BLOCKS_PER_CHUNK
}

/// The blocks of `chunk` that lie in `lo..=hi`, as an inclusive range.
pub(crate) fn chunk_blocks(chunk: u32, lo: u32, hi: u32) -> (u32, u32) {
    (
        lo.max(chunk * BLOCKS_PER_CHUNK),
        hi.min(chunk * BLOCKS_PER_CHUNK + BLOCKS_PER_CHUNK - 1),
    )
}

/// The chunk offsets of `block`'s rows: `lo..lo + BLOCK_ROWS`.
pub(crate) fn block_offsets(block: u32) -> std::ops::Range<u32> {
    let lo = (block * BLOCK_ROWS) % CHUNK_ROWS;
    lo..lo + BLOCK_ROWS
}

/// A row's slot inside its block.
pub(crate) fn block_slot(row: u32) -> usize {
    (row % BLOCK_ROWS) as usize
}

/// The key range of every primary key of `p` (all start times).
pub(crate) fn project_trace_range(p: u32) -> (Vec<u8>, Vec<u8>) {
    (trace_key_lower(p, i64::MIN), project_key_end(p))
}

/// The key range of one trace's children (spans or scores).
pub(crate) fn child_range(p: u32, row: u32) -> (Vec<u8>, Vec<u8>) {
    let prefix = child_prefix(p, row);
    let end = prefix_end(&prefix).expect("a child prefix ends in a project id and a row");
    (prefix, end)
}

/// The key range of one project's trace ids.
pub(crate) fn ids_range(p: u32) -> std::ops::Range<(u32, &'static str)> {
    (p, "")..(p.saturating_add(1), "")
}

/// The key range of one project's rows.
pub(crate) fn rows_range(p: u32) -> std::ops::RangeInclusive<(u32, u32)> {
    (p, 0)..=(p, u32::MAX)
}

/// The key range of one project's blocks `from..=to`.
pub(crate) fn blocks_range(p: u32, from: u32, to: u32) -> std::ops::RangeInclusive<(u32, u32)> {
    (p, from)..=(p, to)
}

/// The key range of every term of one kind of a project.
pub(crate) fn kind_terms_range(p: u32, kind: u8) -> std::ops::RangeInclusive<(u32, u8, u32)> {
    (p, kind, 0)..=(p, kind, u32::MAX)
}

/// The key range of every term of a project.
pub(crate) fn terms_range(p: u32) -> std::ops::RangeInclusive<(u32, u8, u32)> {
    (p, 0, 0)..=(p, u8::MAX, u32::MAX)
}

/// The key range of every bitmap partition of a project.
pub(crate) fn bitmaps_range(p: u32) -> std::ops::RangeInclusive<(u32, u8, u32, u32)> {
    (p, 0, 0, 0)..=(p, u8::MAX, u32::MAX, u32::MAX)
}

/// The keyed sort fields, each with its own part of the `sort_keys` table.
pub(crate) const SORT_FIELDS: [SortField; 3] =
    [SortField::Duration, SortField::Cost, SortField::Tokens];

fn sort_field_code(f: SortField) -> u8 {
    match f {
        SortField::StartTime => 0xFF, // never stored: the primary key is its index
        SortField::Duration => 0,
        SortField::Cost => 1,
        SortField::Tokens => 2,
    }
}

/// A sort value's bytes, whose byte order is the value's order (fixed length per field, except
/// that a running trace's duration is the single byte 0, below every finished one's `1 | u64`).
fn sort_value_bytes(k: &mut Vec<u8>, v: SortValue) {
    match v {
        SortValue::None => {}
        SortValue::Duration(None) => k.push(0),
        SortValue::Duration(Some(d)) => {
            k.push(1);
            k.extend_from_slice(&d.to_be_bytes());
        }
        // Both parts are below 2^96 (a Decimal's mantissa), so 12 bytes each hold them.
        SortValue::Cost(int, frac) => {
            k.extend_from_slice(&int.to_be_bytes()[4..]);
            k.extend_from_slice(&frac.to_be_bytes()[4..]);
        }
        SortValue::Tokens(t) => k.extend_from_slice(&t.to_be_bytes()),
    }
}

/// The prefix of every sort-index key of one field of a project.
pub(crate) fn sort_field_prefix(p: u32, f: SortField) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(&p.to_be_bytes());
    k.push(sort_field_code(f));
    k
}

/// The prefix of the sort-index keys of one value: the traces that tie on it.
pub(crate) fn sort_value_prefix(p: u32, f: SortField, v: SortValue) -> Vec<u8> {
    let mut k = sort_field_prefix(p, f);
    sort_value_bytes(&mut k, v);
    k
}

/// Sort-index key: `project u32 | field u8 | value | start_ms (sign-flipped) | id`. Byte order
/// is (value, start, id) order, so a reverse range yields value descending, then startTime and
/// id descending.
pub(crate) fn sort_key(p: u32, f: SortField, v: SortValue, start_ms: i64, id: &str) -> Vec<u8> {
    let mut k = sort_value_prefix(p, f, v);
    k.extend_from_slice(&order_i64(start_ms));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The value, start and id of a sort-index key of field `f` (the project and field included).
pub(crate) fn decode_sort_key(k: &[u8], f: SortField) -> Result<(SortValue, i64, &str)> {
    let bad = || Error::corrupted("sort key");
    let rest = k.get(5..).ok_or_else(bad)?;
    let take = |b: &[u8], n: usize| -> Result<u128> {
        let mut full = [0u8; 16];
        full[16 - n..].copy_from_slice(b.get(..n).ok_or_else(bad)?);
        Ok(u128::from_be_bytes(full))
    };
    let (value, rest) = match f {
        SortField::StartTime => return Err(bad()),
        SortField::Duration => match rest.first() {
            Some(0) => (SortValue::Duration(None), &rest[1..]),
            Some(1) => (
                SortValue::Duration(Some(take(&rest[1..], 8)? as u64)),
                rest.get(9..).ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        },
        SortField::Cost => (
            SortValue::Cost(take(rest, 12)?, take(rest.get(12..).ok_or_else(bad)?, 12)?),
            rest.get(24..).ok_or_else(bad)?,
        ),
        SortField::Tokens => (
            SortValue::Tokens(take(rest, 8)? as u64),
            rest.get(8..).ok_or_else(bad)?,
        ),
    };
    let start = unorder_i64(
        rest.get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let id = std::str::from_utf8(&rest[8..]).map_err(|_| bad())?;
    Ok((value, start, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_key_order_is_query_order() {
        let a = trace_key(1, -5, "b");
        let b = trace_key(1, 3, "a");
        let c = trace_key(1, 3, "ab");
        let d = trace_key(1, 3, "b");
        let e = trace_key(2, i64::MIN, "");
        assert!(a < b && b < c && c < d && d < e);
        assert!(d < project_key_end(1) && project_key_end(1) <= e);
        assert_eq!(decode_trace_key(&c).unwrap(), (1, 3, "ab"));
    }

    #[test]
    fn prefix_end_is_exclusive_bound() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
