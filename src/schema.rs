//! The one owner of the redb schema: table definitions, key encodings, record formats and the
//! format version. No other module names a table or knows a byte layout.
//!
//! Every stored value starts with a one-byte record version. Decoding checks it, and every
//! decoder returns an error (never a panic) on bytes it does not understand.

use crate::error::{Error, Result};
use crate::limits::BLOCK_ROWS;
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;

/// The on-disk format version, stored under `META["format_version"]`. A store written with
/// another version is refused at open.
pub(crate) const FORMAT_VERSION: u8 = 2;
/// The previous format version, upgraded in place at open (see [`migrate_from_v1`]).
pub(crate) const FORMAT_VERSION_V1: u8 = 1;
/// The record version byte at the start of every stored value.
pub(crate) const RECORD_V1: u8 = 1;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
pub(crate) const PROJECT_STATE: TableDefinition<u32, &[u8]> = TableDefinition::new("project_state");
/// Primary table: `trace_key(project, start, id)` → trace record.
pub(crate) const TRACES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("traces");
/// (project, id) → id record (start, row).
pub(crate) const IDS: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("trace_ids");
/// (project, row) → row record (start, id).
pub(crate) const ROWS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("rows");
/// (project, block) → block record (min start, max start, prefix max).
pub(crate) const BLOCKS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("blocks");
/// (project, kind, term, chunk) → bitmap of the chunk's rows that carry the term.
pub(crate) const BITMAPS: TableDefinition<(u32, u8, u32, u32), &[u8]> =
    TableDefinition::new("bitmaps");
/// (project, kind, term) → term record (live row count, text).
pub(crate) const TERMS: TableDefinition<(u32, u8, u32), &[u8]> = TableDefinition::new("terms");
/// (project, kind, text) → term id record.
pub(crate) const TERM_IDS: TableDefinition<(u32, u8, &str), &[u8]> =
    TableDefinition::new("term_ids");
/// `child_key(project, trace id, span id)` → span record.
pub(crate) const SPANS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spans");
/// `child_key(project, trace id, score id)` → score record.
pub(crate) const SCORES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("scores");
/// (project, trace id) → pending trace: a new trace committed durably by a small write but not
/// yet indexed. Its row number is reserved; the next larger write of the project folds it into
/// the tables above.
pub(crate) const PENDING: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("pending");
/// key hash (hex) → API key record.
pub(crate) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// Every table, opened in one write transaction. Other modules reach tables only through this.
pub(crate) struct WriteTables<'t> {
    pub meta: Table<'t, &'static str, &'static [u8]>,
    pub projects: Table<'t, &'static str, &'static [u8]>,
    pub project_state: Table<'t, u32, &'static [u8]>,
    pub traces: Table<'t, &'static [u8], &'static [u8]>,
    pub ids: Table<'t, (u32, &'static str), &'static [u8]>,
    pub rows: Table<'t, (u32, u32), &'static [u8]>,
    pub blocks: Table<'t, (u32, u32), &'static [u8]>,
    pub bitmaps: Table<'t, (u32, u8, u32, u32), &'static [u8]>,
    pub terms: Table<'t, (u32, u8, u32), &'static [u8]>,
    pub term_ids: Table<'t, (u32, u8, &'static str), &'static [u8]>,
    pub spans: Table<'t, &'static [u8], &'static [u8]>,
    pub scores: Table<'t, &'static [u8], &'static [u8]>,
    pub api_keys: Table<'t, &'static str, &'static [u8]>,
    pub pending: Table<'t, (u32, &'static str), &'static [u8]>,
}

impl<'t> WriteTables<'t> {
    /// Opens (creating on first use) every table.
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(WriteTables {
            meta: txn.open_table(META)?,
            projects: txn.open_table(PROJECTS)?,
            project_state: txn.open_table(PROJECT_STATE)?,
            traces: txn.open_table(TRACES)?,
            ids: txn.open_table(IDS)?,
            rows: txn.open_table(ROWS)?,
            blocks: txn.open_table(BLOCKS)?,
            bitmaps: txn.open_table(BITMAPS)?,
            terms: txn.open_table(TERMS)?,
            term_ids: txn.open_table(TERM_IDS)?,
            spans: txn.open_table(SPANS)?,
            scores: txn.open_table(SCORES)?,
            api_keys: txn.open_table(API_KEYS)?,
            pending: txn.open_table(PENDING)?,
        })
    }
}

/// The few tables a buffered (small) write touches: it reads the project and the id index, and
/// writes only the pending table and the project state.
pub(crate) struct BufferTables<'t> {
    pub projects: Table<'t, &'static str, &'static [u8]>,
    pub ids: Table<'t, (u32, &'static str), &'static [u8]>,
    pub project_state: Table<'t, u32, &'static [u8]>,
    pub pending: Table<'t, (u32, &'static str), &'static [u8]>,
}

impl<'t> BufferTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(BufferTables {
            projects: txn.open_table(PROJECTS)?,
            ids: txn.open_table(IDS)?,
            project_state: txn.open_table(PROJECT_STATE)?,
            pending: txn.open_table(PENDING)?,
        })
    }
}

/// The key range of one project's pending traces.
pub(crate) fn pending_range(p: u32) -> std::ops::Range<(u32, &'static str)> {
    (p, "")..(p.saturating_add(1), "")
}

/// Upgrades a format-1 store in place: project states gain `indexed_rows` (equal to `next_row`,
/// since format 1 indexed every row at once). Runs inside the open transaction.
pub(crate) fn migrate_from_v1(t: &mut WriteTables<'_>) -> Result<()> {
    #[derive(Deserialize)]
    struct ProjectStateV1 {
        next_row: u32,
        live: u64,
        next_name_id: u32,
        next_tag_id: u32,
        generation: u64,
    }
    let mut states = Vec::new();
    for e in t.project_state.iter()? {
        let (k, v) = e?;
        let old: ProjectStateV1 = decode(v.value(), "format-1 project state")?;
        states.push((
            k.value(),
            ProjectState {
                next_row: old.next_row,
                indexed_rows: old.next_row,
                live: old.live,
                next_name_id: old.next_name_id,
                next_tag_id: old.next_tag_id,
                generation: old.generation,
            },
        ));
    }
    for (p, st) in states {
        t.project_state
            .insert(p, encode_project_state(&st).as_slice())?;
    }
    t.meta
        .insert(META_FORMAT_VERSION, [FORMAT_VERSION].as_slice())?;
    Ok(())
}

type BitmapTable = ReadOnlyTable<(u32, u8, u32, u32), &'static [u8]>;
type TermTable = ReadOnlyTable<(u32, u8, u32), &'static [u8]>;
type TermIdTable = ReadOnlyTable<(u32, u8, &'static str), &'static [u8]>;

/// The tables of one read transaction (one MVCC snapshot), each opened on first use: a query
/// opens only the tables its plan touches.
pub(crate) struct ReadTables {
    txn: ReadTransaction,
    projects: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    project_state: OnceCell<ReadOnlyTable<u32, &'static [u8]>>,
    traces: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    ids: OnceCell<ReadOnlyTable<(u32, &'static str), &'static [u8]>>,
    rows: OnceCell<ReadOnlyTable<(u32, u32), &'static [u8]>>,
    blocks: OnceCell<ReadOnlyTable<(u32, u32), &'static [u8]>>,
    bitmaps: OnceCell<BitmapTable>,
    terms: OnceCell<TermTable>,
    term_ids: OnceCell<TermIdTable>,
    spans: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    scores: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    api_keys: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    pending: OnceCell<ReadOnlyTable<(u32, &'static str), &'static [u8]>>,
}

macro_rules! lazy_table {
    ($name:ident, $def:ident, $k:ty, $v:ty) => {
        pub(crate) fn $name(&self) -> Result<&ReadOnlyTable<$k, $v>> {
            if let Some(t) = self.$name.get() {
                return Ok(t);
            }
            let t = self.txn.open_table($def)?;
            Ok(self.$name.get_or_init(|| t))
        }
    };
}

impl ReadTables {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        ReadTables {
            txn,
            projects: OnceCell::new(),
            project_state: OnceCell::new(),
            traces: OnceCell::new(),
            ids: OnceCell::new(),
            rows: OnceCell::new(),
            blocks: OnceCell::new(),
            bitmaps: OnceCell::new(),
            terms: OnceCell::new(),
            term_ids: OnceCell::new(),
            spans: OnceCell::new(),
            scores: OnceCell::new(),
            api_keys: OnceCell::new(),
            pending: OnceCell::new(),
        }
    }
    lazy_table!(projects, PROJECTS, &'static str, &'static [u8]);
    lazy_table!(project_state, PROJECT_STATE, u32, &'static [u8]);
    lazy_table!(traces, TRACES, &'static [u8], &'static [u8]);
    lazy_table!(ids, IDS, (u32, &'static str), &'static [u8]);
    lazy_table!(rows, ROWS, (u32, u32), &'static [u8]);
    lazy_table!(blocks, BLOCKS, (u32, u32), &'static [u8]);
    lazy_table!(bitmaps, BITMAPS, (u32, u8, u32, u32), &'static [u8]);
    lazy_table!(terms, TERMS, (u32, u8, u32), &'static [u8]);
    lazy_table!(term_ids, TERM_IDS, (u32, u8, &'static str), &'static [u8]);
    lazy_table!(spans, SPANS, &'static [u8], &'static [u8]);
    lazy_table!(scores, SCORES, &'static [u8], &'static [u8]);
    lazy_table!(api_keys, API_KEYS, &'static str, &'static [u8]);
    lazy_table!(pending, PENDING, (u32, &'static str), &'static [u8]);

    /// Size statistics of every table: (name, stored bytes, metadata bytes, fragmented bytes).
    pub(crate) fn table_stats(&self) -> Result<Vec<(&'static str, redb::TableStats)>> {
        use redb::ReadableTableMetadata;
        Ok(vec![
            ("projects", self.projects()?.stats()?),
            ("project_state", self.project_state()?.stats()?),
            ("traces", self.traces()?.stats()?),
            ("ids", self.ids()?.stats()?),
            ("rows", self.rows()?.stats()?),
            ("blocks", self.blocks()?.stats()?),
            ("bitmaps", self.bitmaps()?.stats()?),
            ("terms", self.terms()?.stats()?),
            ("term_ids", self.term_ids()?.stats()?),
            ("spans", self.spans()?.stats()?),
            ("scores", self.scores()?.stats()?),
            ("api_keys", self.api_keys()?.stats()?),
            ("pending", self.pending()?.stats()?),
        ])
    }
}

pub(crate) const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_CURSOR_SECRET: &str = "cursor_secret";
pub(crate) const META_NEXT_PROJECT: &str = "next_project_id";

/// Index kinds: the second component of a bitmap or term key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TermKind {
    Status = 0,
    Name = 1,
    Tag = 2,
}

impl TermKind {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            TermKind::Status => "status",
            TermKind::Name => "name",
            TermKind::Tag => "tag",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

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

pub(crate) fn chunk_of(row: u32) -> u32 {
    row / crate::limits::CHUNK_ROWS
}

// ---------------------------------------------------------------------------------------------
// Records

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    // postcard only fails on serializer-unsupported types, which no record here contains.
    out.extend(postcard::to_allocvec(v).expect("postcard encodes every record type"));
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => {
            let (v, tail) = postcard::take_from_bytes(rest)
                .map_err(|e| Error::corrupted(format!("{what}: {e}")))?;
            if !tail.is_empty() {
                return Err(Error::corrupted(format!("{what}: trailing bytes")));
            }
            Ok(v)
        }
        Some((v, _)) => Err(Error::corrupted(format!(
            "{what}: unknown record version {v}"
        ))),
        None => Err(Error::corrupted(format!("{what}: empty record"))),
    }
}

/// An exact decimal as (mantissa, scale): a few bytes as postcard varints, where
/// `Decimal::serialize()` would take 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Money {
    mantissa: i128,
    scale: u8,
}

impl Money {
    pub(crate) fn from_decimal(d: rust_decimal::Decimal) -> Money {
        let d = d.normalize();
        Money {
            mantissa: d.mantissa(),
            scale: d.scale() as u8,
        }
    }
    /// An error (not a panic) for a mantissa or scale out of Decimal's range.
    pub(crate) fn to_decimal(self) -> Result<rust_decimal::Decimal> {
        rust_decimal::Decimal::try_from_i128_with_scale(self.mantissa, self.scale as u32)
            .map_err(|_| Error::corrupted("money out of range"))
    }
}

/// The fields that filters test, encoded first so a scan can check them without decoding the
/// body (names, tags, metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceHeader {
    pub row: u32,
    pub status: u8,
    pub name_id: u32,
    /// Sorted, distinct.
    pub tag_ids: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceBody {
    pub name: String,
    pub tags: Vec<String>,
    pub end_ms: Option<i64>,
    pub created_ms: i64,
    pub metadata: String,
    pub total_cost: Money,
    pub total_tokens: u64,
    pub span_count: u32,
    pub score_count: u32,
}

/// Trace record: `version u8 | postcard(TraceHeader) | postcard(TraceBody)`.
pub(crate) fn encode_trace(h: &TraceHeader, b: &TraceBody) -> Vec<u8> {
    debug_assert!(
        h.tag_ids.windows(2).all(|w| w[0] < w[1]),
        "tag ids sorted and distinct"
    );
    debug_assert_eq!(h.tag_ids.len(), b.tags.len());
    let mut out = encode(h);
    out.extend(postcard::to_allocvec(b).expect("postcard encodes every record type"));
    out
}

/// Decodes only the header; the scan executor calls this for every row it tests.
pub(crate) fn decode_trace_header(bytes: &[u8]) -> Result<(TraceHeader, &[u8])> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::take_from_bytes::<TraceHeader>(rest)
            .map_err(|e| Error::corrupted(format!("trace header: {e}"))),
        Some((v, _)) => Err(Error::corrupted(format!(
            "trace: unknown record version {v}"
        ))),
        None => Err(Error::corrupted("trace: empty record")),
    }
}

pub(crate) fn decode_trace(bytes: &[u8]) -> Result<(TraceHeader, TraceBody)> {
    let (h, rest) = decode_trace_header(bytes)?;
    let (b, tail) = postcard::take_from_bytes::<TraceBody>(rest)
        .map_err(|e| Error::corrupted(format!("trace body: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted("trace: trailing bytes"));
    }
    if h.tag_ids.len() != b.tags.len() || crate::model::Status::from_code(h.status).is_none() {
        return Err(Error::corrupted("trace: header and body disagree"));
    }
    Ok((h, b))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdRecord {
    pub start_ms: i64,
    pub row: u32,
}
pub(crate) fn encode_id(r: &IdRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_id(b: &[u8]) -> Result<IdRecord> {
    decode(b, "id record")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RowRecord {
    pub start_ms: i64,
    pub id: String,
}
pub(crate) fn encode_row(r: &RowRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_row(b: &[u8]) -> Result<RowRecord> {
    decode(b, "row record")
}

/// Time bounds of one block of `BLOCK_ROWS` rows. Only the project's last block ever changes
/// (rows are appended), so `prefix_max` of every earlier block is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRecord {
    pub min_ms: i64,
    pub max_ms: i64,
    /// max(max_ms) over this block and every block before it.
    pub prefix_max_ms: i64,
}
pub(crate) fn encode_block(r: &BlockRecord) -> Vec<u8> {
    debug_assert!(r.min_ms <= r.max_ms && r.max_ms <= r.prefix_max_ms);
    encode(r)
}
pub(crate) fn decode_block(b: &[u8]) -> Result<BlockRecord> {
    let r: BlockRecord = decode(b, "block record")?;
    if r.min_ms > r.max_ms || r.max_ms > r.prefix_max_ms {
        return Err(Error::corrupted("block record: bounds out of order"));
    }
    Ok(r)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TermRecord {
    /// Live rows carrying the term.
    pub count: u64,
    pub text: String,
}
pub(crate) fn encode_term(r: &TermRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_term(b: &[u8]) -> Result<TermRecord> {
    decode(b, "term record")
}
pub(crate) fn encode_u32(v: u32) -> Vec<u8> {
    encode(&v)
}
pub(crate) fn decode_u32(b: &[u8]) -> Result<u32> {
    decode(b, "u32 record")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectState {
    /// Next row number to allocate; rows are never reused.
    pub next_row: u32,
    /// Rows below this are in the tables and indexes (or deleted); rows from here to `next_row`
    /// are reserved by the project's pending traces, one each.
    pub indexed_rows: u32,
    /// Live traces.
    pub live: u64,
    pub next_name_id: u32,
    pub next_tag_id: u32,
    /// Bumped by every committed write to the project; read caches are tagged with it.
    pub generation: u64,
}
pub(crate) fn encode_project_state(r: &ProjectState) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_project_state(b: &[u8]) -> Result<ProjectState> {
    let s: ProjectState = decode(b, "project state")?;
    if s.indexed_rows > s.next_row {
        return Err(Error::corrupted(
            "project state: indexed rows beyond next row",
        ));
    }
    Ok(s)
}

/// What a query needs of a pending trace; decoded without its children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingHead {
    /// The row reserved for the trace.
    pub row: u32,
    pub start_ms: i64,
    pub status: u8,
    /// Exactly the body the trace will have once folded (aggregates included).
    pub body: TraceBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingChildren {
    /// Distinct ids.
    pub spans: Vec<(String, SpanRecord)>,
    /// Distinct ids.
    pub scores: Vec<(String, ScoreRecord)>,
}

/// Pending record: `version u8 | postcard(PendingHead) | postcard(PendingChildren)`.
pub(crate) fn encode_pending(h: &PendingHead, c: &PendingChildren) -> Vec<u8> {
    let mut out = encode(h);
    out.extend(postcard::to_allocvec(c).expect("postcard encodes every record type"));
    out
}

fn decode_pending_parts(bytes: &[u8]) -> Result<(PendingHead, &[u8])> {
    let (h, rest) = match bytes.split_first() {
        Some((&RECORD_V1, rest)) => postcard::take_from_bytes::<PendingHead>(rest)
            .map_err(|e| Error::corrupted(format!("pending head: {e}")))?,
        Some((v, _)) => {
            return Err(Error::corrupted(format!(
                "pending: unknown record version {v}"
            )))
        }
        None => return Err(Error::corrupted("pending: empty record")),
    };
    if crate::model::Status::from_code(h.status).is_none() {
        return Err(Error::corrupted("pending: status code"));
    }
    Ok((h, rest))
}

/// Decodes only the head; queries call this for every pending trace of a project.
pub(crate) fn decode_pending_head(bytes: &[u8]) -> Result<PendingHead> {
    Ok(decode_pending_parts(bytes)?.0)
}

pub(crate) fn decode_pending(bytes: &[u8]) -> Result<(PendingHead, PendingChildren)> {
    let (h, rest) = decode_pending_parts(bytes)?;
    let (c, tail) = postcard::take_from_bytes::<PendingChildren>(rest)
        .map_err(|e| Error::corrupted(format!("pending children: {e}")))?;
    if !tail.is_empty() {
        return Err(Error::corrupted("pending: trailing bytes"));
    }
    Ok((h, c))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpanRecord {
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: u64,
    pub cost: Option<Money>,
}
pub(crate) fn encode_span(r: &SpanRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_span(b: &[u8]) -> Result<SpanRecord> {
    decode(b, "span record")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum ScoreValueRecord {
    Number(f64),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScoreRecord {
    pub name: String,
    pub value: ScoreValueRecord,
    pub comment: Option<String>,
}
pub(crate) fn encode_score(r: &ScoreRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_score(b: &[u8]) -> Result<ScoreRecord> {
    decode(b, "score record")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    pub prefix: String,
    pub project: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}
pub(crate) fn encode_api_key(r: &ApiKeyRecord) -> Vec<u8> {
    encode(r)
}
pub(crate) fn decode_api_key(b: &[u8]) -> Result<ApiKeyRecord> {
    decode(b, "api key record")
}

/// Bitmap value: `version u8 | roaring portable serialization`.
pub(crate) fn encode_bitmap(bm: &roaring::RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bm.serialized_size());
    out.push(RECORD_V1);
    bm.serialize_into(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Checked deserialization: malformed bytes are an error, never a panic.
pub(crate) fn decode_bitmap(b: &[u8]) -> Result<roaring::RoaringBitmap> {
    match b.split_first() {
        Some((&RECORD_V1, rest)) => roaring::RoaringBitmap::deserialize_from(rest)
            .map_err(|e| Error::corrupted(format!("bitmap: {e}"))),
        Some((v, _)) => Err(Error::corrupted(format!(
            "bitmap: unknown record version {v}"
        ))),
        None => Err(Error::corrupted("bitmap: empty record")),
    }
}

/// Decodes any stored value by table name; used by the `record_decode` fuzz target so that every
/// decoder is exercised on arbitrary bytes.
#[doc(hidden)]
pub fn fuzz_decode_any(bytes: &[u8]) {
    let _ = decode_trace(bytes);
    let _ = decode_id(bytes);
    let _ = decode_row(bytes);
    let _ = decode_block(bytes);
    let _ = decode_term(bytes);
    let _ = decode_u32(bytes);
    let _ = decode_project_state(bytes);
    let _ = decode_span(bytes);
    let _ = decode_score(bytes);
    let _ = decode_api_key(bytes);
    let _ = decode_bitmap(bytes);
    let _ = decode_pending(bytes);
    let _ = decode_trace_key(bytes);
    let _ = decode_child_key(bytes);
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
    fn records_round_trip_and_reject_garbage() {
        let h = TraceHeader {
            row: 7,
            status: 1,
            name_id: 3,
            tag_ids: vec![1, 4],
        };
        let b = TraceBody {
            name: "n".into(),
            tags: vec!["x".into(), "y".into()],
            end_ms: Some(5),
            created_ms: 9,
            metadata: "{}".into(),
            total_cost: Money::from_decimal(rust_decimal::Decimal::new(34, 4)),
            total_tokens: 10,
            span_count: 1,
            score_count: 0,
        };
        let bytes = encode_trace(&h, &b);
        assert_eq!(decode_trace(&bytes).unwrap(), (h.clone(), b));
        assert_eq!(decode_trace_header(&bytes).unwrap().0, h);
        assert!(decode_trace(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(decode_trace(&v2).is_err());
        assert!(decode_bitmap(&[1, 0xFF, 0xFF]).is_err());
        fuzz_decode_any(&[]);
    }

    #[test]
    fn prefix_end_is_exclusive_bound() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
