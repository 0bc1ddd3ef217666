//! Read-side caches, and `ProjectView`: one project seen through one snapshot, with the lookups
//! the planner and executors need.
//!
//! Three kinds of cached facts, with different validity rules:
//! - **Row identities** (`row -> (start, id)`, kept per block of rows) never change once
//!   committed: row numbers are never reused. They are cached with no invalidation at all.
//! - **Everything derived from index state** (term counts, the name dictionary, decoded bitmap
//!   partitions) is tagged with the project's `generation`, which every committed write to the
//!   project bumps. A view uses a cache entry only when the generations are equal, so a reader
//!   never sees index state from another snapshot.
//! - **Pending traces** (the write buffer's heads, decoded and in query order) are tagged with the
//!   project's `(next_row, indexed_rows)`: a buffered write raises `next_row`, a fold raises
//!   `indexed_rows`, and nothing else changes the pending set, so equal tags mean equal sets.

use crate::error::{Error, Result};
use crate::limits::{BITMAP_CACHE_BYTES, BLOCK_ROWS, PENDING_CACHE_BYTES, ROW_CACHE_BLOCKS};
use crate::schema::*;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// One distinct term of a project (a trace name, a tag), with its live row count.
#[derive(Debug)]
pub(crate) struct TermEntry {
    pub id: u32,
    pub text: String,
    pub count: u64,
}

/// Index state of one project at one generation.
#[derive(Debug)]
struct ProjectCache {
    generation: u64,
    /// The name and tag dictionaries, each read whole on first use.
    names: OnceLock<Arc<Vec<TermEntry>>>,
    tags: OnceLock<Arc<Vec<TermEntry>>>,
    /// The span-name and span-model dictionaries, likewise.
    span_names: OnceLock<Arc<Vec<TermEntry>>>,
    span_models: OnceLock<Arc<Vec<TermEntry>>>,
    /// Live rows per value bucket of each range field (duration, cost, tokens), by bucket.
    buckets: [OnceLock<Arc<Vec<u64>>>; 3],
    terms: RwLock<HashMap<(u8, u32), u64>>,
    term_ids: RwLock<HashMap<(u8, String), Option<u32>>>,
    bitmaps: RwLock<HashMap<(u8, u32, u32), Arc<RoaringBitmap>>>,
    /// Bytes of this cache's bitmaps, counted in the store-wide `budget` too.
    bitmap_bytes: AtomicUsize,
    budget: Arc<AtomicUsize>,
}

impl Drop for ProjectCache {
    fn drop(&mut self) {
        self.budget
            .fetch_sub(self.bitmap_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// One block's row identities, `(start, id)` by `row % BLOCK_ROWS`, each filled on first use.
/// Candidates are visited block by block, so a page looks its block up once and then indexes an
/// array, instead of probing a large hash table per candidate.
pub(crate) type BlockRows = Arc<[OnceLock<(i64, Arc<str>)>]>;

/// (project, block) → row identities: facts that never change once committed.
type RowMap = HashMap<(u32, u32), BlockRows, BuildHasherDefault<RowHasher>>;

/// A multiply-rotate hasher for (project, block) keys; they are numbers the store allocated, not
/// input an attacker chooses, so SipHash's collision resistance buys nothing.
#[derive(Default)]
struct RowHasher(u64);

impl Hasher for RowHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u32(u32::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(32) ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// A project's pending traces (heads only), newest first, as of one `(next_row, indexed_rows)`.
pub(crate) type PendingList = Arc<Vec<(Arc<str>, Arc<PendingHead>)>>;

#[derive(Debug)]
struct PendingEntry {
    tag: (u32, u32),
    list: PendingList,
    bytes: usize,
}

#[derive(Debug, Default)]
struct PendingCache {
    projects: HashMap<u32, PendingEntry>,
    bytes: usize,
}

/// The time bounds of every block of a project in one snapshot, in block order from block 0.
/// Every block but a snapshot's last is full, and a full block's bounds never change (rows are
/// appended), so the full blocks' records are shared across snapshots and only the last block
/// (and any filled since the shared list was extended) is read from the snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct BlockBounds {
    full: Arc<Vec<BlockRecord>>,
    /// How many of `full` this snapshot uses (an older snapshot may have fewer blocks).
    used: usize,
    /// The blocks after those, read from the snapshot; the last one may still grow.
    tail: Vec<BlockRecord>,
}

impl BlockBounds {
    /// Blocks in the snapshot.
    pub(crate) fn len(&self) -> u32 {
        (self.used + self.tail.len()) as u32
    }

    /// The bounds of block `b`, if the snapshot has it.
    pub(crate) fn get(&self, b: u32) -> Option<BlockRecord> {
        let b = b as usize;
        if b < self.used {
            Some(self.full[b])
        } else {
            self.tail.get(b - self.used).copied()
        }
    }

    /// The blocks of `chunk` that the snapshot has, oldest first.
    pub(crate) fn in_chunk(
        &self,
        chunk: u32,
    ) -> impl DoubleEndedIterator<Item = (u32, BlockRecord)> + '_ {
        let (from, to) = chunk_blocks(chunk, 0, self.len().saturating_sub(1));
        (from..=to).filter_map(move |b| self.get(b).map(|r| (b, r)))
    }

    /// Whether some block of `chunk` may hold a row with a start time in `lo_ms..hi_ms`.
    pub(crate) fn chunk_meets(&self, chunk: u32, lo_ms: i64, hi_ms: i64) -> bool {
        self.in_chunk(chunk)
            .any(|(_, r)| r.max_ms >= lo_ms && r.min_ms < hi_ms)
    }
}

/// The store's caches; shared by all readers.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    rows: RwLock<RowMap>,
    /// Each project's full blocks' bounds (see [`BlockBounds`]); 24 bytes per `BLOCK_ROWS` rows.
    blocks: RwLock<HashMap<u32, Arc<Vec<BlockRecord>>>>,
    pending: RwLock<PendingCache>,
    projects: RwLock<HashMap<u32, Arc<ProjectCache>>>,
    /// Bytes of decoded bitmaps held by all project caches together.
    bitmap_budget: Arc<AtomicUsize>,
}

impl Caches {
    /// The pending traces of project `p` in snapshot `t`, whose state has `next_row` and
    /// `indexed_rows`, put in query order by `sort` when read (the order is the query layer's).
    pub(crate) fn pending(
        &self,
        t: &ReadTables,
        p: u32,
        next_row: u32,
        indexed_rows: u32,
        sort: impl FnOnce(&mut Vec<(Arc<str>, Arc<PendingHead>)>),
    ) -> Result<PendingList> {
        let tag = (next_row, indexed_rows);
        if let Some(e) = self.pending.read().expect("cache lock").projects.get(&p) {
            if e.tag == tag {
                return Ok(e.list.clone());
            }
        }
        let mut list = Vec::new();
        let mut bytes = 0;
        for e in t.pending()?.range(pending_range(p))? {
            let (k, v) = e?;
            bytes += k.value().1.len() + v.value().len();
            list.push((
                Arc::<str>::from(k.value().1),
                Arc::new(decode_pending_head(v.value())?),
            ));
        }
        sort(&mut list);
        let list = Arc::new(list);
        let mut cache = self.pending.write().expect("cache lock");
        // Both parts of the tag only grow, so a larger tag is a newer snapshot: keep the newest.
        let newer = cache.projects.get(&p).is_none_or(|e| e.tag <= tag);
        if newer && bytes <= PENDING_CACHE_BYTES {
            if let Some(old) = cache.projects.remove(&p) {
                cache.bytes -= old.bytes;
            }
            if cache.bytes + bytes > PENDING_CACHE_BYTES {
                cache.projects.clear();
                cache.bytes = 0;
            }
            cache.bytes += bytes;
            cache.projects.insert(
                p,
                PendingEntry {
                    tag,
                    list: list.clone(),
                    bytes,
                },
            );
        }
        Ok(list)
    }

    fn project(&self, p: u32, generation: u64) -> Arc<ProjectCache> {
        if let Some(c) = self.projects.read().expect("cache lock").get(&p) {
            if c.generation == generation {
                return c.clone();
            }
        }
        let fresh = Arc::new(ProjectCache {
            generation,
            names: OnceLock::new(),
            tags: OnceLock::new(),
            span_names: OnceLock::new(),
            span_models: OnceLock::new(),
            buckets: Default::default(),
            terms: RwLock::default(),
            term_ids: RwLock::default(),
            bitmaps: RwLock::default(),
            bitmap_bytes: AtomicUsize::new(0),
            budget: self.bitmap_budget.clone(),
        });
        let mut map = self.projects.write().expect("cache lock");
        match map.get(&p) {
            // An older snapshot than the cached one: use a private cache, keep the newer one.
            Some(c) if c.generation > generation => fresh,
            Some(c) if c.generation == generation => c.clone(),
            _ => {
                map.insert(p, fresh.clone());
                fresh
            }
        }
    }
}

/// One project through one read snapshot.
pub(crate) struct ProjectView<'a> {
    pub t: &'a ReadTables,
    pub p: u32,
    caches: &'a Caches,
    cache: Arc<ProjectCache>,
}

impl<'a> ProjectView<'a> {
    pub(crate) fn new(t: &'a ReadTables, caches: &'a Caches, p: u32, generation: u64) -> Self {
        ProjectView {
            t,
            p,
            caches,
            cache: caches.project(p, generation),
        }
    }

    /// Live rows carrying a term.
    pub(crate) fn term_count(&self, kind: TermKind, term: u32) -> Result<u64> {
        let key = (kind.code(), term);
        if let Some(n) = self.cache.terms.read().expect("cache lock").get(&key) {
            return Ok(*n);
        }
        let n = match self.t.terms()?.get((self.p, kind.code(), term))? {
            Some(v) => decode_term(v.value())?.count,
            None => 0,
        };
        self.cache.terms.write().expect("cache lock").insert(key, n);
        Ok(n)
    }

    /// The id of a tag, if any trace of the project ever carried it.
    pub(crate) fn tag_id(&self, tag: &str) -> Result<Option<u32>> {
        self.term_id(TermKind::Tag, tag)
    }

    /// The id of a term's text (of any kind but status), if the project ever had it.
    pub(crate) fn term_id(&self, kind: TermKind, text: &str) -> Result<Option<u32>> {
        let key = (kind.code(), text.to_string());
        if let Some(id) = self.cache.term_ids.read().expect("cache lock").get(&key) {
            return Ok(*id);
        }
        let id = match self.t.term_ids()?.get((self.p, kind.code(), text))? {
            Some(v) => Some(decode_u32(v.value())?),
            None => None,
        };
        self.cache
            .term_ids
            .write()
            .expect("cache lock")
            .insert(key, id);
        Ok(id)
    }

    /// Every distinct trace name of the project with its live count.
    pub(crate) fn names(&self) -> Result<Arc<Vec<TermEntry>>> {
        self.dictionary(TermKind::Name, &self.cache.names)
    }

    /// Every tag of the project, by id, with its live row count.
    pub(crate) fn tags(&self) -> Result<Arc<Vec<TermEntry>>> {
        self.dictionary(TermKind::Tag, &self.cache.tags)
    }

    /// Every distinct span name of the project, with the live rows whose traces carry it.
    pub(crate) fn span_names(&self) -> Result<Arc<Vec<TermEntry>>> {
        self.dictionary(TermKind::SpanName, &self.cache.span_names)
    }

    /// Every distinct span model of the project, with the live rows whose traces carry it.
    pub(crate) fn span_models(&self) -> Result<Arc<Vec<TermEntry>>> {
        self.dictionary(TermKind::SpanModel, &self.cache.span_models)
    }

    /// The live row count of every value bucket of a bucket kind (`query::ranges`), indexed by
    /// bucket number, read whole on first use: a range sums many buckets' counts.
    pub(crate) fn bucket_counts(&self, kind: TermKind, buckets: u32) -> Result<Arc<Vec<u64>>> {
        let slot = match kind {
            TermKind::DurationBucket => &self.cache.buckets[0],
            TermKind::CostBucket => &self.cache.buckets[1],
            TermKind::TokensBucket => &self.cache.buckets[2],
            _ => return Err(Error::corrupted("not a bucket kind")),
        };
        if let Some(c) = slot.get() {
            return Ok(c.clone());
        }
        let mut out = vec![0u64; buckets as usize];
        for e in self
            .t
            .terms()?
            .range(kind_terms_range(self.p, kind.code()))?
        {
            let (key, v) = e?;
            let b = key.value().2 as usize;
            let n = out
                .get_mut(b)
                .ok_or_else(|| Error::corrupted("bucket term out of range"))?;
            *n = decode_term(v.value())?.count;
        }
        Ok(slot.get_or_init(|| Arc::new(out)).clone())
    }

    fn dictionary(
        &self,
        kind: TermKind,
        slot: &OnceLock<Arc<Vec<TermEntry>>>,
    ) -> Result<Arc<Vec<TermEntry>>> {
        if let Some(n) = slot.get() {
            return Ok(n.clone());
        }
        let mut out = Vec::new();
        for e in self
            .t
            .terms()?
            .range(kind_terms_range(self.p, kind.code()))?
        {
            let (key, v) = e?;
            let rec = decode_term(v.value())?;
            out.push(TermEntry {
                id: key.value().2,
                text: rec.text,
                count: rec.count,
            });
        }
        Ok(slot.get_or_init(|| Arc::new(out)).clone())
    }

    /// One decoded bitmap partition (empty when absent).
    pub(crate) fn bitmap(
        &self,
        kind: TermKind,
        term: u32,
        chunk: u32,
    ) -> Result<Arc<RoaringBitmap>> {
        let key = (kind.code(), term, chunk);
        if let Some(b) = self.cache.bitmaps.read().expect("cache lock").get(&key) {
            return Ok(b.clone());
        }
        let bm = match self.t.bitmaps()?.get((self.p, kind.code(), term, chunk))? {
            Some(v) => decode_bitmap(v.value())?,
            None => RoaringBitmap::new(),
        };
        let bm = Arc::new(bm);
        let size = bm.serialized_size();
        // The budget is store-wide; a project cache returns its share when it is dropped.
        if self.cache.budget.fetch_add(size, Ordering::Relaxed) + size <= BITMAP_CACHE_BYTES {
            self.cache.bitmap_bytes.fetch_add(size, Ordering::Relaxed);
            self.cache
                .bitmaps
                .write()
                .expect("cache lock")
                .insert(key, bm.clone());
        } else {
            self.cache.budget.fetch_sub(size, Ordering::Relaxed);
        }
        Ok(bm)
    }

    /// The time bounds of every block of the project in this snapshot.
    pub(crate) fn block_bounds(&self) -> Result<BlockBounds> {
        let table = self.t.blocks()?;
        let Some(last) = table.range(blocks_range(self.p, 0, u32::MAX))?.next_back() else {
            return Ok(BlockBounds::default());
        };
        let last = last?.0.value().1 as usize;
        let full = self
            .caches
            .blocks
            .read()
            .expect("cache lock")
            .get(&self.p)
            .cloned()
            .unwrap_or_default();
        // Blocks before the snapshot's last are full here, and a shared record is the same
        // in every snapshot that has its block; the last block is always read here.
        let used = full.len().min(last);
        let mut tail = Vec::with_capacity(last + 1 - used);
        for e in table.range(blocks_range(self.p, used as u32, last as u32))? {
            let (k, v) = e?;
            if k.value().1 as usize != used + tail.len() {
                return Err(Error::corrupted("a block record is missing"));
            }
            tail.push(decode_block(v.value())?);
        }
        if used + tail.len() != last + 1 {
            return Err(Error::corrupted("a block record is missing"));
        }
        if last > full.len() {
            // Blocks filled since the shared list was last extended: share them too.
            let mut map = self.caches.blocks.write().expect("cache lock");
            let cur = map.entry(self.p).or_default();
            if cur.len() == full.len() {
                let mut grown = Vec::with_capacity(last);
                grown.extend_from_slice(&full);
                grown.extend_from_slice(&tail[..last - used]);
                *cur = Arc::new(grown);
            }
        }
        Ok(BlockBounds { full, used, tail })
    }

    /// The identity slots of one block of the project's rows (shared, filled on first use).
    pub(crate) fn block_rows(&self, block: u32) -> BlockRows {
        let key = (self.p, block);
        if let Some(b) = self.caches.rows.read().expect("cache lock").get(&key) {
            return b.clone();
        }
        let fresh: BlockRows = (0..BLOCK_ROWS).map(|_| OnceLock::new()).collect();
        let mut rows = self.caches.rows.write().expect("cache lock");
        if rows.len() >= ROW_CACHE_BLOCKS && !rows.contains_key(&key) {
            rows.clear();
        }
        rows.entry(key).or_insert(fresh).clone()
    }

    /// The (start, id) of a row that is live in this snapshot; `slots` is its block's.
    pub(crate) fn row_in<'b>(&self, slots: &'b BlockRows, row: u32) -> Result<&'b (i64, Arc<str>)> {
        let slot = &slots[block_slot(row)];
        if let Some(r) = slot.get() {
            return Ok(r);
        }
        let rec = match self.t.rows()?.get((self.p, row))? {
            Some(v) => decode_row(v.value())?,
            None => {
                return Err(Error::corrupted(format!(
                    "bitmap bit for missing row {row}"
                )))
            }
        };
        Ok(slot.get_or_init(|| (rec.start_ms, Arc::from(rec.id))))
    }
}
