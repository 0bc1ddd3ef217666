//! Shared helpers for the reliability tests (and the `ops_model` fuzz target, which includes this
//! file by path): storage backends that fail or lose power on demand, a naive model of the
//! contract with spans and scores, and a byte-driven generator of operation sequences so that the
//! proptest twin and the fuzz target run the very same code.
//!
//! Only std, `tracestore`, `rust_decimal` and `serde_json` are used here: the fuzz crate includes
//! this file and has exactly those dependencies.
#![allow(dead_code)]

#[macro_use]
pub mod query;
pub mod targets;

use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracestore::backends::StorageBackend;
use tracestore::{
    ErrorCode, Page, PlanKind, QueryRequest, ScoreInput, ScoreValue, SpanInput, Status, Store,
    TraceInput,
};

pub use query::{ts, MQuery, ModelTrace, BASE_MS};

// =============================================================================================
// Backends

/// Bytes shared between backend instances, so that a store can be dropped and reopened over the
/// same data (the "disk" outlives the process).
#[derive(Clone, Debug, Default)]
pub struct SharedMem(Arc<RwLock<Vec<u8>>>);

impl SharedMem {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SharedMem(Arc::new(RwLock::new(bytes)))
    }
    pub fn snapshot(&self) -> Vec<u8> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }
    /// A backend over these bytes.
    pub fn backend(&self) -> MemBackend {
        MemBackend(self.clone())
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "out of range")
}

fn read_at(buf: &[u8], offset: u64, out: &mut [u8]) -> io::Result<()> {
    let start = usize::try_from(offset).map_err(|_| out_of_range())?;
    let src = buf
        .get(start..start.checked_add(out.len()).ok_or_else(out_of_range)?)
        .ok_or_else(out_of_range)?;
    out.copy_from_slice(src);
    Ok(())
}

fn write_at(buf: &mut Vec<u8>, offset: u64, data: &[u8]) -> io::Result<()> {
    let start = usize::try_from(offset).map_err(|_| out_of_range())?;
    let end = start.checked_add(data.len()).ok_or_else(out_of_range)?;
    // A file grows on write past its end; redb always set_len()s first, but be lenient.
    if end > buf.len() {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
    Ok(())
}

/// An in-memory backend over [`SharedMem`].
#[derive(Debug)]
pub struct MemBackend(SharedMem);

impl StorageBackend for MemBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        read_at(
            &self.0 .0.read().unwrap_or_else(|e| e.into_inner()),
            offset,
            out,
        )
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0
             .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        write_at(
            &mut self.0 .0.write().unwrap_or_else(|e| e.into_inner()),
            offset,
            data,
        )
    }
}

/// Which backend operations fail.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Nothing fails.
    Never,
    /// Only operation number `k` (0-based, counted from when the plan was armed) fails.
    Once(u64),
    /// Operation `k` and every later one fail: a disk that died.
    From(u64),
}

/// The shared, mutable fault plan of a [`FaultyBackend`]. Counts read, write, set_len and
/// sync_data (not len, which redb calls only to size the file).
#[derive(Debug)]
pub struct FaultPlan {
    ops: AtomicU64,
    injected: AtomicU64,
    mode: Mutex<FaultMode>,
    first_injected: Mutex<Option<String>>,
}

impl FaultPlan {
    pub fn new(mode: FaultMode) -> Arc<Self> {
        Arc::new(FaultPlan {
            ops: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            mode: Mutex::new(mode),
            first_injected: Mutex::new(None),
        })
    }
    /// Re-arms: the counter restarts at 0.
    pub fn arm(&self, mode: FaultMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.ops.store(0, Ordering::SeqCst);
    }
    /// Operations counted since the last arm.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }
    /// The first fault injected, e.g. "sync_data #31".
    pub fn first_injected(&self) -> Option<String> {
        self.first_injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Faults injected since creation.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }
    fn tick(&self, what: &str) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let fail = match *self.mode.lock().unwrap_or_else(|e| e.into_inner()) {
            FaultMode::Never => false,
            FaultMode::Once(k) => n == k,
            FaultMode::From(k) => n >= k,
        };
        if fail {
            self.injected.fetch_add(1, Ordering::SeqCst);
            self.first_injected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| format!("{what} #{n}"));
            Err(io::Error::other(format!("injected fault: {what} #{n}")))
        } else {
            Ok(())
        }
    }
}

/// Wraps a backend so that chosen operations fail with an I/O error (and do nothing).
#[derive(Debug)]
pub struct FaultyBackend<B: StorageBackend> {
    inner: B,
    plan: Arc<FaultPlan>,
}

impl<B: StorageBackend> FaultyBackend<B> {
    pub fn new(inner: B, plan: Arc<FaultPlan>) -> Self {
        FaultyBackend { inner, plan }
    }
}

impl<B: StorageBackend> StorageBackend for FaultyBackend<B> {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.plan.tick("read")?;
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan.tick("set_len")?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.plan.tick("sync_data")?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.plan.tick("write")?;
        self.inner.write(offset, data)
    }
}

/// One crash image: what the disk could hold if power were lost at this moment.
#[derive(Clone, Debug)]
pub struct CrashImage {
    /// Which sync_data call (0-based) this image was taken at.
    pub sync_no: u64,
    /// "before" (every write so far reached the disk, the sync had not returned), "after" (the
    /// sync returned) or "torn" (the last synced image plus a random subset of later writes).
    pub phase: &'static str,
    /// Operations acknowledged (returned Ok) when the image was taken.
    pub acked: u64,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct PowerState {
    /// What the process sees: every write applied.
    work: Vec<u8>,
    /// What survives a power loss: the image as of the last completed sync.
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<Pending>,
    syncs: u64,
    capture: bool,
    rng: u64,
    images: Vec<CrashImage>,
}

/// A power-loss simulator. Writes go to a working buffer; `sync_data` makes it durable. With
/// capturing on, every sync records the crash images around it: before the sync (all writes
/// landed), a torn image (some unsynced writes landed, some not) and after the sync.
#[derive(Clone, Debug, Default)]
pub struct PowerLoss {
    state: Arc<Mutex<PowerState>>,
    /// Bumped by the workload each time an operation returns Ok.
    pub acked: Arc<AtomicU64>,
}

impl PowerLoss {
    pub fn new(capture: bool, seed: u64) -> Self {
        let p = PowerLoss::default();
        {
            let mut s = p.lock();
            s.capture = capture;
            s.rng = seed | 1;
        }
        p
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, PowerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn backend(&self) -> PowerLossBackend {
        PowerLossBackend(self.clone())
    }
    /// The image a power loss right now would leave.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
    pub fn take_images(&self) -> Vec<CrashImage> {
        std::mem::take(&mut self.lock().images)
    }
    pub fn ack(&self) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// The backend side of [`PowerLoss`].
#[derive(Debug)]
pub struct PowerLossBackend(PowerLoss);

impl StorageBackend for PowerLossBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().work.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        read_at(&self.0.lock().work, offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.0.lock();
        let n = usize::try_from(len).map_err(|_| out_of_range())?;
        s.work.resize(n, 0);
        s.pending.push(Pending::SetLen(len));
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.0.lock();
        write_at(&mut s.work, offset, data)?;
        s.pending.push(Pending::Write(offset, data.to_vec()));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let acked = self.0.acked.load(Ordering::SeqCst);
        let mut s = self.0.lock();
        let sync_no = s.syncs;
        if s.capture {
            let before = s.work.clone();
            // Torn: the disk may have written any subset of the unsynced writes, in any order.
            // Size changes always land (the file system journals its metadata).
            let mut torn = s.durable.clone();
            let mut rng = s.rng;
            for p in &s.pending {
                match p {
                    Pending::SetLen(n) => torn.resize(*n as usize, 0),
                    Pending::Write(off, data) => {
                        if xorshift(&mut rng).is_multiple_of(2) {
                            let _ = write_at(&mut torn, *off, data);
                        }
                    }
                }
            }
            s.rng = rng;
            s.images.push(CrashImage {
                sync_no,
                phase: "before",
                acked,
                bytes: before,
            });
            if !s.pending.is_empty() {
                s.images.push(CrashImage {
                    sync_no,
                    phase: "torn",
                    acked,
                    bytes: torn,
                });
            }
        }
        s.durable = s.work.clone();
        s.pending.clear();
        s.syncs += 1;
        if s.capture {
            let after = s.durable.clone();
            s.images.push(CrashImage {
                sync_no,
                phase: "after",
                acked,
                bytes: after,
            });
        }
        Ok(())
    }
}

// =============================================================================================
// Model

pub const PROJECTS: [&str; 2] = ["p", "q"];
pub const NAMES: [&str; 5] = [
    "support-agent",
    "Support-Bot",
    "tool",
    "planner",
    "RAG-search",
];
pub const TAGS: [&str; 5] = ["prod", "dev", "v1", "v2", "Prod"];
pub const NAME_FILTERS: [&str; 6] = ["", "support", "SUPPORT", "agent", "t", "zzz"];

/// A span as the model keeps it: only what feeds the aggregates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MSpan {
    pub cost: Option<Decimal>,
    pub total_tokens: u64,
}

/// One trace as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MTrace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub tags: Vec<String>,
    pub metadata: String,
    pub spans: BTreeMap<String, MSpan>,
    pub scores: BTreeSet<String>,
}

model_trace_fields!(MTrace);

impl MTrace {
    pub fn total_cost(&self) -> Decimal {
        self.spans.values().filter_map(|s| s.cost).sum()
    }
    pub fn total_tokens(&self) -> u64 {
        self.spans.values().map(|s| s.total_tokens).sum()
    }
}

/// A naive model: per project, id -> trace; queries filter and sort a Vec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub projects: BTreeMap<String, BTreeMap<String, MTrace>>,
}

/// What the model says an operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Validation,
    NotFound,
    Deleted(u64),
}

impl Model {
    pub fn traces(&self, project: &str) -> Vec<&MTrace> {
        self.projects
            .get(project)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }
    pub fn get(&self, project: &str, id: &str) -> Option<&MTrace> {
        self.projects.get(project).and_then(|m| m.get(id))
    }
    pub fn answer(&self, project: &str, q: &MQuery) -> Vec<&MTrace> {
        q.answer(self.traces(project))
    }

    /// Applies an ingest batch: all items or none.
    pub fn ingest(&mut self, project: &str, items: &[Item]) -> Expect {
        let mut next = self.projects.get(project).cloned().unwrap_or_default();
        let mut ok = true;
        for it in items {
            let id = it.trace_id();
            let existing = next.get(&id).cloned();
            let mut t = match existing {
                Some(t) => t,
                None => {
                    let (Some(n), Some(s)) = (it.name, it.start_s) else {
                        ok = false;
                        continue;
                    };
                    MTrace {
                        id: id.clone(),
                        name: NAMES[n as usize].to_string(),
                        status: Status::Ok,
                        start_ms: BASE_MS + s * 1000,
                        end_ms: None,
                        tags: Vec::new(),
                        metadata: "{}".into(),
                        spans: BTreeMap::new(),
                        scores: BTreeSet::new(),
                    }
                }
            };
            if let Some(n) = it.name {
                t.name = NAMES[n as usize].to_string();
            }
            if let Some(s) = it.status {
                t.status = s;
            }
            if let Some(s) = it.start_s {
                t.start_ms = BASE_MS + s * 1000;
            }
            if let Some(e) = it.end_s {
                t.end_ms = Some(BASE_MS + e * 1000);
            }
            if let Some(tags) = &it.tags {
                t.tags = it.tag_strings(tags);
            }
            if let Some(m) = it.metadata {
                t.metadata = metadata_json(m);
            }
            if t.end_ms.is_some_and(|e| e < t.start_ms) {
                ok = false;
                continue;
            }
            for sp in &it.spans {
                t.spans.insert(
                    span_id(sp.id),
                    MSpan {
                        cost: sp.cost_micros.map(|c| Decimal::new(c as i64, 6)),
                        total_tokens: sp.input_tokens as u64 + sp.output_tokens as u64,
                    },
                );
            }
            for sc in &it.scores {
                t.scores.insert(score_id(*sc));
            }
            next.insert(id, t);
        }
        if !ok {
            return Expect::Validation;
        }
        self.projects.insert(project.to_string(), next);
        Expect::Ok
    }

    pub fn delete(&mut self, project: &str, id: &str) -> Expect {
        match self.projects.get_mut(project).and_then(|m| m.remove(id)) {
            Some(_) => Expect::Ok,
            None => Expect::NotFound,
        }
    }

    pub fn retention(&mut self, project: &str, cutoff_ms: i64) -> Expect {
        let Some(m) = self.projects.get_mut(project) else {
            return Expect::Deleted(0);
        };
        let before = m.len();
        m.retain(|_, t| t.start_ms >= cutoff_ms);
        Expect::Deleted((before - m.len()) as u64)
    }
}

impl Model {
    /// Applies a write operation as the contract says it must behave; reads change nothing.
    pub fn apply_write(&mut self, op: &Op) -> Expect {
        match op {
            Op::Ingest { project, items, .. } => self.ingest(PROJECTS[*project], items),
            Op::Delete { project, id } => self.delete(PROJECTS[*project], &trace_id(*id)),
            Op::Retention { project, cutoff_s } => {
                self.retention(PROJECTS[*project], BASE_MS + cutoff_s * 1000)
            }
            _ => Expect::Ok,
        }
    }
}

pub fn metadata_json(m: u8) -> String {
    format!("{{\"k\":{m}}}")
}
pub fn trace_id(n: u8) -> String {
    format!("t{n:02}")
}
pub fn span_id(n: u8) -> String {
    format!("s{n}")
}
pub fn score_id(n: u8) -> String {
    format!("q{n}")
}

// =============================================================================================
// Operations, generated from bytes

/// One span of an ingest item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSpan {
    pub id: u8,
    pub cost_micros: Option<u32>,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// One ingest item: a new trace, or an update of an existing one (fields left `None` are kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: u8,
    pub name: Option<u8>,
    pub status: Option<Status>,
    pub start_s: Option<i64>,
    pub end_s: Option<i64>,
    pub tags: Option<Vec<u8>>,
    pub metadata: Option<u8>,
    pub spans: Vec<ItemSpan>,
    pub scores: Vec<u8>,
}

impl Item {
    pub fn trace_id(&self) -> String {
        trace_id(self.id)
    }
    fn tag_strings(&self, tags: &[u8]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in tags {
            let s = TAGS[*t as usize].to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
    pub fn input(&self) -> TraceInput {
        TraceInput {
            id: Some(self.trace_id()),
            name: self.name.map(|n| NAMES[n as usize].to_string()),
            status: self.status,
            start_time: self.start_s.map(|s| ts(s * 1000)),
            end_time: self.end_s.map(|s| ts(s * 1000)),
            tags: self
                .tags
                .as_ref()
                .map(|t| t.iter().map(|i| TAGS[*i as usize].to_string()).collect()),
            metadata: self.metadata.map(|m| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&metadata_json(
                    m,
                ))
                .expect("metadata literal")
            }),
            spans: self
                .spans
                .iter()
                .map(|s| SpanInput {
                    id: Some(span_id(s.id)),
                    name: Some("llm".into()),
                    model: Some("gpt-4o".into()),
                    input_tokens: Some(s.input_tokens as u64),
                    output_tokens: Some(s.output_tokens as u64),
                    cost: s.cost_micros.map(|c| Decimal::new(c as i64, 6)),
                    ..Default::default()
                })
                .collect(),
            scores: self
                .scores
                .iter()
                .map(|s| ScoreInput {
                    id: Some(score_id(*s)),
                    name: "quality".into(),
                    value: if s % 2 == 0 {
                        ScoreValue::Number(*s as f64 / 10.0)
                    } else {
                        ScoreValue::Text(format!("v{s}"))
                    },
                    comment: None,
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Ingest {
        project: usize,
        items: Vec<Item>,
        json: bool,
    },
    Delete {
        project: usize,
        id: u8,
    },
    Retention {
        project: usize,
        cutoff_s: i64,
    },
    Query {
        project: usize,
        q: MQuery,
        limit: u32,
        plan: Option<PlanKind>,
    },
    Walk {
        project: usize,
        q: MQuery,
        limits: Vec<u32>,
        plan: Option<PlanKind>,
    },
    Get {
        project: usize,
        id: u8,
    },
    Reopen,
}

impl Op {
    /// True for operations that write (one logical transaction each).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. } | Op::Delete { .. } | Op::Retention { .. }
        )
    }
}

/// Reads choices from a byte string; past its end every choice is 0.
pub struct ByteGen<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteGen<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        ByteGen { data, pos: 0 }
    }
    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn below(&mut self, n: u32) -> u32 {
        self.byte() as u32 % n
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn chance(&mut self, in_256: u32) -> bool {
        (self.byte() as u32) < in_256
    }

    const IDS: u32 = 24;
    const TIMES_S: u32 = 40;

    fn item(&mut self) -> Item {
        let id = self.below(Self::IDS) as u8;
        // A third of the items are partial updates: most fields left out.
        let full = self.below(3) != 0;
        let opt = |g: &mut Self, p: u32| full || g.below(4) < p;
        let name = if opt(self, 1) {
            Some(self.below(NAMES.len() as u32) as u8)
        } else {
            None
        };
        let status = if opt(self, 2) {
            Some(if self.chance(100) {
                Status::Error
            } else {
                Status::Ok
            })
        } else {
            None
        };
        let start_s = if opt(self, 1) {
            Some(self.below(Self::TIMES_S) as i64)
        } else {
            None
        };
        let end_s = if self.below(3) == 0 {
            Some(self.below(Self::TIMES_S + 5) as i64)
        } else {
            None
        };
        let tags = if opt(self, 2) {
            let n = self.below(4);
            Some(
                (0..n)
                    .map(|_| self.below(TAGS.len() as u32) as u8)
                    .collect(),
            )
        } else {
            None
        };
        let metadata = if self.below(4) == 0 {
            Some(self.byte())
        } else {
            None
        };
        let spans = (0..self.below(4))
            .map(|_| ItemSpan {
                id: self.below(5) as u8,
                cost_micros: if self.below(5) == 0 {
                    None
                } else {
                    Some(self.u16() as u32 * 37)
                },
                input_tokens: self.u16() as u32,
                output_tokens: self.byte() as u32,
            })
            .collect();
        let scores = (0..self.below(3)).map(|_| self.below(4) as u8).collect();
        Item {
            id,
            name,
            status,
            start_s,
            end_s,
            tags,
            metadata,
            spans,
            scores,
        }
    }

    pub fn query(&mut self) -> MQuery {
        let mut q = MQuery::default();
        if self.below(3) == 0 {
            q.name = Some(NAME_FILTERS[self.below(NAME_FILTERS.len() as u32) as usize].into());
        }
        if self.below(3) == 0 {
            q.status = Some(if self.chance(128) {
                Status::Error
            } else {
                Status::Ok
            });
        }
        if self.below(3) == 0 {
            let mut tags: Vec<String> = (0..1 + self.below(2))
                .map(|_| TAGS[self.below(TAGS.len() as u32) as usize].to_string())
                .collect();
            tags.sort();
            tags.dedup();
            q.tags = tags;
        }
        if self.below(3) == 0 {
            q.start = Some(self.below(Self::TIMES_S) as i64 * 1000);
        }
        if self.below(3) == 0 {
            // Usually a valid window; sometimes endDate < startDate (a 400).
            q.end = Some(self.below(Self::TIMES_S + 2) as i64 * 1000);
        }
        q
    }

    fn plan(&mut self) -> Option<PlanKind> {
        match self.below(3) {
            0 => None,
            1 => Some(PlanKind::Scan),
            _ => Some(PlanKind::Bitmap),
        }
    }

    pub fn op(&mut self) -> Op {
        // Mostly project "p"; "q" is there to catch leaks between projects.
        let project = if self.below(4) == 0 { 1 } else { 0 };
        match self.below(20) {
            0..=6 => {
                let n = 1 + self.below(4);
                Op::Ingest {
                    project,
                    items: (0..n).map(|_| self.item()).collect(),
                    json: self.below(4) == 0,
                }
            }
            7..=8 => Op::Delete {
                project,
                id: self.below(Self::IDS) as u8,
            },
            9 => Op::Retention {
                project,
                cutoff_s: self.below(Self::TIMES_S + 5) as i64,
            },
            10..=12 => Op::Query {
                project,
                q: self.query(),
                limit: 1 + self.below(6),
                plan: self.plan(),
            },
            13..=15 => Op::Walk {
                project,
                q: self.query(),
                limits: (0..1 + self.below(3)).map(|_| 1 + self.below(7)).collect(),
                plan: self.plan(),
            },
            16..=17 => Op::Get {
                project,
                id: self.below(Self::IDS) as u8,
            },
            _ => Op::Reopen,
        }
    }

    /// Decodes operations until the bytes run out (at most `max`).
    pub fn ops(&mut self, max: usize) -> Vec<Op> {
        let mut out = Vec::new();
        while !self.exhausted() && out.len() < max {
            out.push(self.op());
        }
        out
    }
}

/// An ingest body for the JSON path, equivalent to `items`.
pub fn ingest_body(items: &[Item]) -> Vec<u8> {
    let traces: Vec<serde_json::Value> = items
        .iter()
        .map(|it| {
            let mut o = serde_json::Map::new();
            o.insert("id".into(), it.trace_id().into());
            if let Some(n) = it.name {
                o.insert("name".into(), NAMES[n as usize].into());
            }
            if let Some(s) = it.status {
                o.insert("status".into(), s.as_str().into());
            }
            if let Some(s) = it.start_s {
                o.insert("startTime".into(), ts(s * 1000).to_string().into());
            }
            if let Some(s) = it.end_s {
                o.insert("endTime".into(), ts(s * 1000).to_string().into());
            }
            if let Some(t) = &it.tags {
                let v: Vec<serde_json::Value> =
                    t.iter().map(|i| TAGS[*i as usize].into()).collect();
                o.insert("tags".into(), v.into());
            }
            if let Some(m) = it.metadata {
                o.insert(
                    "metadata".into(),
                    serde_json::from_str(&metadata_json(m)).expect("literal"),
                );
            }
            let spans: Vec<serde_json::Value> = it
                .spans
                .iter()
                .map(|s| {
                    let mut so = serde_json::json!({
                        "id": span_id(s.id),
                        "name": "llm",
                        "model": "gpt-4o",
                        "inputTokens": s.input_tokens,
                        "outputTokens": s.output_tokens,
                    });
                    if let Some(c) = s.cost_micros {
                        so["cost"] = Decimal::new(c as i64, 6).to_string().into();
                    }
                    so
                })
                .collect();
            o.insert("spans".into(), spans.into());
            let scores: Vec<serde_json::Value> = it
                .scores
                .iter()
                .map(|s| serde_json::json!({"id": score_id(*s), "name": "quality", "value": *s as f64 / 10.0}))
                .collect();
            o.insert("scores".into(), scores.into());
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "traces": traces })).expect("serializes")
}

// =============================================================================================
// Checks against the model

fn fail<T>(msg: String) -> Result<T, String> {
    Err(msg)
}

/// Compares one returned trace with the model's.
pub fn check_trace(t: &tracestore::Trace, m: &MTrace) -> Result<(), String> {
    let got = (
        &t.name,
        t.status,
        t.start_time.as_millis(),
        t.end_time.map(|e| e.as_millis()),
        t.duration_ms,
        &t.tags,
        t.metadata.as_json(),
        t.total_cost,
        t.total_tokens,
        t.span_count as usize,
        t.score_count as usize,
    );
    let want = (
        &m.name,
        m.status,
        m.start_ms,
        m.end_ms,
        m.end_ms.map(|e| e - m.start_ms),
        &m.tags,
        m.metadata.as_str(),
        m.total_cost(),
        m.total_tokens(),
        m.spans.len(),
        m.scores.len(),
    );
    if got != want {
        return fail(format!("trace {}: got {got:?}, model {want:?}", t.id));
    }
    Ok(())
}

fn check_page_traces(page: &Page, expected: &[&MTrace], what: &str) -> Result<(), String> {
    let ids: Vec<&str> = page.traces.iter().map(|t| t.id.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|t| t.id.as_str()).collect();
    if ids != want {
        return fail(format!("{what}: got ids {ids:?}, model {want:?}"));
    }
    for (t, m) in page.traces.iter().zip(expected) {
        check_trace(t, m)?;
    }
    Ok(())
}

fn params_ref(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn run_query(
    store: &Store,
    project: &str,
    req: &QueryRequest,
    plan: Option<PlanKind>,
) -> tracestore::Result<Page> {
    match plan {
        Some(p) => store.query_with_plan(project, req, p),
        None => store.query(project, req),
    }
}

/// Walks every page of `q` and compares the whole walk with the model. `limits` cycles.
pub fn check_walk(
    store: &Store,
    model: &Model,
    project: &str,
    q: &MQuery,
    limits: &[u32],
    plan: Option<PlanKind>,
) -> Result<(), tracestore::Error> {
    let expected = model.answer(project, q);
    let first = QueryRequest::from_params(params_ref(&q.params(limits[0])))?;
    let mut page = run_query(store, project, &first, plan)?;
    let mut pos = 0usize;
    let mut i = 0usize;
    loop {
        let limit = limits[i % limits.len()] as usize;
        let end = (pos + limit).min(expected.len());
        if let Err(m) = check_page_traces(
            &page,
            &expected[pos..end],
            &format!("walk page {i} of {q:?}"),
        ) {
            panic!("{m}");
        }
        pos = end;
        let more = pos < expected.len();
        assert_eq!(
            page.next_cursor.is_some(),
            more,
            "nextCursor must be null exactly at the end (page {i} of {q:?})"
        );
        let Some(c) = page.next_cursor.clone() else {
            return Ok(());
        };
        i += 1;
        let req = QueryRequest::builder()
            .cursor(&c)
            .limit(limits[i % limits.len()])
            .build()?;
        page = run_query(store, project, &req, plan)?;
    }
}

/// Compares everything the store holds for the model's projects with the model. Returns a
/// description of the first difference.
pub fn store_matches(store: &Store, model: &Model) -> Result<(), String> {
    for project in PROJECTS {
        let expected = model.answer(project, &MQuery::default());
        let mut got: Vec<tracestore::Trace> = Vec::new();
        let mut req = QueryRequest::builder()
            .limit(100)
            .build()
            .map_err(|e| e.to_string())?;
        loop {
            let page = store
                .query(project, &req)
                .map_err(|e| format!("query: {e}"))?;
            got.extend(page.traces);
            match page.next_cursor {
                Some(c) => {
                    req = QueryRequest::builder()
                        .cursor(&c)
                        .limit(100)
                        .build()
                        .map_err(|e| e.to_string())?
                }
                None => break,
            }
        }
        let ids: Vec<&str> = got.iter().map(|t| t.id.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|t| t.id.as_str()).collect();
        if ids != want {
            return fail(format!("project {project}: ids {ids:?}, model {want:?}"));
        }
        for (t, m) in got.iter().zip(&expected) {
            check_trace(t, m)?;
            let d = store
                .get_trace(project, &m.id)
                .map_err(|e| format!("get_trace {}: {e}", m.id))?;
            let spans: BTreeSet<&str> = d.spans.iter().map(|s| s.id.as_str()).collect();
            let want_spans: BTreeSet<&str> = m.spans.keys().map(|s| s.as_str()).collect();
            let scores: BTreeSet<&str> = d.scores.iter().map(|s| s.id.as_str()).collect();
            let want_scores: BTreeSet<&str> = m.scores.iter().map(|s| s.as_str()).collect();
            if spans != want_spans || scores != want_scores {
                return fail(format!(
                    "trace {}: spans {spans:?} scores {scores:?}, model {want_spans:?} {want_scores:?}",
                    m.id
                ));
            }
        }
    }
    Ok(())
}

/// Runs one operation against the store and checks its answer against the model (which it
/// updates). `Err` carries a store error (I/O faults); a wrong answer panics.
pub fn apply(store: &Store, model: &mut Model, op: &Op) -> Result<(), tracestore::Error> {
    match op {
        Op::Ingest {
            project,
            items,
            json,
        } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            let got = if *json {
                store.ingest_json(p, &ingest_body(items))
            } else {
                store.ingest(p, items.iter().map(Item::input).collect())
            };
            match (got, want) {
                (Ok(_), Expect::Ok) => *model = next,
                (Err(e), Expect::Validation) if e.code() == ErrorCode::Validation => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("ingest {items:?}: got {got:?}, model {want:?}"),
            }
        }
        Op::Delete { project, id } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            match (store.delete_trace(p, &trace_id(*id)), want) {
                (Ok(()), Expect::Ok) => *model = next,
                (Err(e), Expect::NotFound) if e.code() == ErrorCode::NotFound => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("delete {p}/{id}: got {got:?}, model {want:?}"),
            }
        }
        Op::Retention { project, cutoff_s } => {
            let p = PROJECTS[*project];
            let mut next = model.clone();
            let want = next.apply_write(op);
            match store.delete_before(p, ts(cutoff_s * 1000), |_| {}) {
                Ok(n) => {
                    assert_eq!(Expect::Deleted(n), want, "delete_before {p} {cutoff_s}s");
                    *model = next;
                }
                Err(e) if e.is_storage() => return Err(e),
                Err(e) => panic!("delete_before: unexpected {e:?}"),
            }
        }
        Op::Query {
            project,
            q,
            limit,
            plan,
        } => {
            let p = PROJECTS[*project];
            let params = q.params(*limit);
            let parsed = QueryRequest::from_params(params_ref(&params));
            if q.invalid() {
                let e = parsed.expect_err("endDate < startDate must be rejected");
                assert_eq!(e.code(), ErrorCode::Validation);
                let e2 = store
                    .query_params(p, params_ref(&params))
                    .expect_err("endDate < startDate must be rejected");
                assert_eq!(e2.code(), ErrorCode::Validation);
                return Ok(());
            }
            let req = parsed.expect("a valid query parses");
            let page = run_query(store, p, &req, *plan)?;
            let expected = model.answer(p, q);
            let n = (*limit as usize).min(expected.len());
            if let Err(m) = check_page_traces(&page, &expected[..n], &format!("query {q:?}")) {
                panic!("{m}");
            }
            assert_eq!(
                page.next_cursor.is_some(),
                expected.len() > n,
                "nextCursor of {q:?}"
            );
            // The same query through the string entry point gives the same page.
            if plan.is_none() {
                let again = store.query_params(p, params_ref(&params))?;
                assert_eq!(again.traces, page.traces, "query_params differs from query");
            }
        }
        Op::Walk {
            project,
            q,
            limits,
            plan,
        } => {
            if q.invalid() {
                return Ok(());
            }
            check_walk(store, model, PROJECTS[*project], q, limits, *plan)?;
        }
        Op::Get { project, id } => {
            let p = PROJECTS[*project];
            match (
                store.get_trace(p, &trace_id(*id)),
                model.get(p, &trace_id(*id)),
            ) {
                (Ok(d), Some(m)) => {
                    if let Err(msg) = check_trace(&d.trace, m) {
                        panic!("get_trace: {msg}");
                    }
                    let spans: BTreeMap<String, (u64, Option<Decimal>)> = d
                        .spans
                        .iter()
                        .map(|s| (s.id.clone(), (s.total_tokens, s.cost)))
                        .collect();
                    let want: BTreeMap<String, (u64, Option<Decimal>)> = m
                        .spans
                        .iter()
                        .map(|(k, s)| (k.clone(), (s.total_tokens, s.cost)))
                        .collect();
                    assert_eq!(spans, want, "spans of {p}/{id}");
                    let scores: BTreeSet<String> = d.scores.iter().map(|s| s.id.clone()).collect();
                    assert_eq!(scores, m.scores, "scores of {p}/{id}");
                }
                (Err(e), None) if e.code() == ErrorCode::NotFound => {}
                (Err(e), _) if e.is_storage() => return Err(e),
                (got, want) => panic!("get_trace {p}/{id}: got {got:?}, model {want:?}"),
            }
        }
        Op::Reopen => {}
    }
    Ok(())
}

pub fn assert_verified(store: &Store) {
    let v = store.verify().expect("verify runs");
    assert!(v.is_empty(), "verify found violations: {v:?}");
}

// =============================================================================================
// Runners

/// Runs `ops` against a store opened by `open`, with no faults: every answer must equal the
/// model's, and every step ends with `verify()` clean. `Reopen` drops the store and opens it
/// again, which must preserve every acknowledged write.
pub fn run_clean(ops: &[Op], mut open: impl FnMut() -> Store) -> Model {
    let mut model = Model::default();
    let mut store = Some(open());
    for (i, op) in ops.iter().enumerate() {
        if *op == Op::Reopen {
            drop(store.take());
            let mut s = open();
            assert!(
                s.check_integrity().expect("integrity check runs"),
                "step {i}: redb integrity"
            );
            if let Err(m) = store_matches(&s, &model) {
                panic!("step {i}: after reopen the store differs from the model: {m}");
            }
            store = Some(s);
        } else {
            let s = store.as_ref().expect("open");
            if let Err(e) = apply(s, &mut model, op) {
                panic!("step {i} {op:?}: storage error without any fault: {e:?}");
            }
        }
        assert_verified(store.as_ref().expect("open"));
    }
    model
}

/// What a faulty run exercised.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRunStats {
    pub ops: usize,
    pub faults_surfaced: usize,
    pub reopens: usize,
}

/// The `ops_model` fuzz target and its cargo-test twin: random operations over an in-memory
/// disk whose backend starts failing after N operations (N and the failure mode come from the
/// bytes). When a call fails, it must fail with a storage error (never a wrong answer, never a
/// panic); the store is then dropped and reopened over the same bytes without faults, and must
/// hold exactly the acknowledged writes, with the failed write either whole or absent.
pub fn run_faulty(data: &[u8]) -> FaultRunStats {
    let mut g = ByteGen::new(data);
    let mem = SharedMem::default();
    let plan = FaultPlan::new(FaultMode::Never);
    let open = |plan: &Arc<FaultPlan>| {
        Store::builder().with_backend(FaultyBackend::new(mem.backend(), plan.clone()))
    };
    let mut stats = FaultRunStats::default();
    let mut store = Some(open(&plan).expect("open without faults"));
    let mut model = Model::default();
    let arm = |g: &mut ByteGen<'_>| {
        let k = (g.u16() % 160) as u64;
        plan.arm(if g.chance(128) {
            FaultMode::Once(k)
        } else {
            FaultMode::From(k)
        });
    };
    arm(&mut g);
    let mut step = 0usize;
    while !g.exhausted() && step < 40 {
        let op = g.op();
        step += 1;
        stats.ops += 1;
        let mut candidates: Vec<Model> = vec![model.clone()];
        let failed = if op == Op::Reopen {
            true
        } else {
            let s = store.as_ref().expect("open");
            let mut after = model.clone();
            after.apply_write(&op);
            let result = match apply(s, &mut model, &op) {
                Ok(()) => {
                    // Acknowledged: from here on only the new state is acceptable.
                    candidates = vec![model.clone()];
                    s.verify().map(|v| {
                        assert!(v.is_empty(), "step {step} {op:?}: verify: {v:?}");
                    })
                }
                Err(e) => {
                    if after != candidates[0] {
                        candidates.push(after);
                    }
                    Err(e)
                }
            };
            match result {
                Ok(()) => false,
                Err(e) => {
                    assert!(
                        e.is_storage() && e.code() == ErrorCode::Internal,
                        "step {step} {op:?}: a fault must surface as a storage error, got {e:?}"
                    );
                    stats.faults_surfaced += 1;
                    true
                }
            }
        };
        if failed {
            // Power off, then back on without faults over the same bytes.
            drop(store.take());
            plan.arm(FaultMode::Never);
            stats.reopens += 1;
            let mut s = match open(&plan) {
                Ok(s) => s,
                Err(e) => panic!("step {step}: reopen after a fault failed: {e:?}"),
            };
            assert!(
                s.check_integrity().expect("integrity runs"),
                "step {step}: redb integrity"
            );
            assert_verified(&s);
            let diffs: Vec<String> = candidates
                .iter()
                .filter_map(|m| store_matches(&s, m).err())
                .collect();
            if diffs.len() == candidates.len() {
                panic!(
                    "step {step} {op:?}: after reopen the store is neither before nor after the \
                     failed operation: {diffs:?}"
                );
            }
            model = candidates
                .into_iter()
                .find(|m| store_matches(&s, m).is_ok())
                .expect("one matched");
            store = Some(s);
            arm(&mut g);
        }
    }
    stats
}
