//! Table definitions, and the typed handles through which every other module reaches them.

use crate::error::Result;
use redb::{ReadOnlyTable, ReadTransaction, Table, TableDefinition, WriteTransaction};
use std::cell::OnceCell;

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
/// `child_key(project, trace row, span id)` → span record.
pub(crate) const SPANS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spans");
/// `child_key(project, trace row, span id)` → the span's payload record, and
/// `child_key(project, trace row, "")` → the trace's. Only reading one trace opens this table.
pub(crate) const PAYLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("payloads");
/// `child_key(project, trace row, score id)` → score record.
pub(crate) const SCORES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("scores");
/// (project, trace id) → pending trace: a new trace committed durably by a small write but not
/// yet indexed. Its row number is reserved; the next larger write of the project folds it into
/// the tables above.
pub(crate) const PENDING: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("pending");
/// (project, trace row) → the row's span terms: for each (kind, term) some span of the trace
/// carries, how many of its spans do. Read and written by writes only (and `verify`).
pub(crate) const SPAN_TERMS: TableDefinition<(u32, u32), &[u8]> =
    TableDefinition::new("span_terms");
/// key hash (hex) → API key record.
/// The keyed orders' index: `sort_key` → `SortEntry` (three entries per indexed trace).
pub(crate) const SORT_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sort_keys");
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
    pub payloads: Table<'t, &'static [u8], &'static [u8]>,
    pub scores: Table<'t, &'static [u8], &'static [u8]>,
    pub api_keys: Table<'t, &'static str, &'static [u8]>,
    pub pending: Table<'t, (u32, &'static str), &'static [u8]>,
    pub sort_keys: Table<'t, &'static [u8], &'static [u8]>,
    pub span_terms: Table<'t, (u32, u32), &'static [u8]>,
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
            payloads: txn.open_table(PAYLOADS)?,
            scores: txn.open_table(SCORES)?,
            api_keys: txn.open_table(API_KEYS)?,
            pending: txn.open_table(PENDING)?,
            sort_keys: txn.open_table(SORT_KEYS)?,
            span_terms: txn.open_table(SPAN_TERMS)?,
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

type BitmapTable = ReadOnlyTable<(u32, u8, u32, u32), &'static [u8]>;
type TermTable = ReadOnlyTable<(u32, u8, u32), &'static [u8]>;
type TermIdTable = ReadOnlyTable<(u32, u8, &'static str), &'static [u8]>;

/// The tables of one read transaction (one MVCC snapshot), each opened on first use: a query
/// opens only the tables its plan touches.
pub(crate) struct ReadTables {
    txn: ReadTransaction,
    meta: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
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
    payloads: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    scores: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    api_keys: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    pending: OnceCell<ReadOnlyTable<(u32, &'static str), &'static [u8]>>,
    sort_keys: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    span_terms: OnceCell<ReadOnlyTable<(u32, u32), &'static [u8]>>,
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
            meta: OnceCell::new(),
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
            payloads: OnceCell::new(),
            scores: OnceCell::new(),
            api_keys: OnceCell::new(),
            pending: OnceCell::new(),
            sort_keys: OnceCell::new(),
            span_terms: OnceCell::new(),
        }
    }
    lazy_table!(meta, META, &'static str, &'static [u8]);
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
    lazy_table!(payloads, PAYLOADS, &'static [u8], &'static [u8]);
    lazy_table!(scores, SCORES, &'static [u8], &'static [u8]);
    lazy_table!(api_keys, API_KEYS, &'static str, &'static [u8]);
    lazy_table!(pending, PENDING, (u32, &'static str), &'static [u8]);
    lazy_table!(sort_keys, SORT_KEYS, &'static [u8], &'static [u8]);
    lazy_table!(span_terms, SPAN_TERMS, (u32, u32), &'static [u8]);

    /// Size statistics of every table: (name, stored bytes, metadata bytes, fragmented bytes).
    pub(crate) fn table_stats(&self) -> Result<Vec<(&'static str, redb::TableStats)>> {
        use redb::ReadableTableMetadata;
        Ok(vec![
            ("projects", self.projects()?.stats()?),
            ("project_state", self.project_state()?.stats()?),
            ("traces", self.traces()?.stats()?),
            ("trace_ids", self.ids()?.stats()?),
            ("rows", self.rows()?.stats()?),
            ("blocks", self.blocks()?.stats()?),
            ("bitmaps", self.bitmaps()?.stats()?),
            ("terms", self.terms()?.stats()?),
            ("term_ids", self.term_ids()?.stats()?),
            ("spans", self.spans()?.stats()?),
            ("payloads", self.payloads()?.stats()?),
            ("scores", self.scores()?.stats()?),
            ("api_keys", self.api_keys()?.stats()?),
            ("pending", self.pending()?.stats()?),
            ("sort_keys", self.sort_keys()?.stats()?),
            ("span_terms", self.span_terms()?.stats()?),
        ])
    }
}
