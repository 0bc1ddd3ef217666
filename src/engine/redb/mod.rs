//! The embedded engine: one redb file (or backend) owned by this process. Reads run on MVCC
//! snapshots in parallel and never block the single writer, nor it them.
//!
//! This file holds opening, the transaction boundaries of every operation and the failure rule
//! (a failed commit poisons the engine until it is reopened); `ops` implements the `Engine`
//! trait on top of them. The rooms it uses: `schema` (what is stored), `write` (the writer),
//! `pending` (the write buffer), `run` with `query::{plan, exec}` (the executor), `cache`, `verify`.

mod export;
#[cfg(feature = "otlp")]
mod group;
mod ops;
mod run;

use crate::error::{Error, Result};
use crate::schema::*;
use crate::write::Writer;
use redb::ReadableDatabase;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub(crate) use crate::cache::Caches;

/// How commits reach the disk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sync {
    /// fsync before a commit returns.
    Immediate,
    /// No sync, except every `DEFERRED_COMMITS_PER_SYNC`-th commit: a crash may lose recent
    /// commits, never corrupt the file.
    Deferred,
}

/// The file, opened for writing or only for reading.
enum Db {
    ReadWrite(redb::Database),
    /// Opened with redb's `ReadOnlyDatabase`: nothing is ever written, not even the format
    /// version or the cursor secret, so an unwritable or foreign file is never changed.
    ReadOnly(redb::ReadOnlyDatabase),
}

/// The redb engine.
pub(crate) struct RedbEngine {
    db: Db,
    secret: Vec<u8>,
    sync: Sync,
    /// Most pending traces per project (`StoreBuilder::write_buffer_traces`).
    write_buffer_traces: u32,
    caches: Caches,
    /// Set when a write fails in storage: every later call fails until the store is reopened.
    poisoned: AtomicBool,
    /// Commits since the last durable one, under `Sync::Deferred`.
    unsynced: AtomicU32,
    /// Concurrent OTLP requests share transactions (see `group`).
    #[cfg(feature = "otlp")]
    otlp_group: group::Group<OtlpJob, u64>,
}

/// One OTLP request's checked traces, for a project.
#[cfg(feature = "otlp")]
pub(super) type OtlpJob = (String, Vec<crate::otlp::OtlpTrace>);

impl std::fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbEngine")
            .field("sync", &self.sync)
            .field("write_buffer_traces", &self.write_buffer_traces)
            .finish_non_exhaustive()
    }
}

impl RedbEngine {
    /// Opens an engine over `db`: checks (or writes) the format version, upgrading an older
    /// format in place, and reads (or creates) the cursor secret, in one durable transaction.
    pub(crate) fn open(db: redb::Database, sync: Sync, write_buffer_traces: u32) -> Result<Self> {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let (secret, upgraded) = {
            let mut t = WriteTables::open(&txn)?;
            let upgraded = check_format(&mut t)?;
            (cursor_secret(&mut t)?, upgraded)
        };
        if let Some(from) = upgraded {
            // The indexes the old format lacks, built from the stored traces in the upgrade's
            // own transaction: a crash before the commit leaves the old format whole.
            let mut w = Writer::open(&txn)?;
            if from <= FORMAT_VERSION_V3 {
                w.index_format4_terms()?;
            }
            if from <= FORMAT_VERSION_V4 {
                // Format 5's span terms already include format 6's pairs when built now.
                w.index_format5()?;
            } else {
                w.index_format6()?;
            }
            w.flush()?;
        }
        txn.commit()?;
        Ok(RedbEngine {
            db: Db::ReadWrite(db),
            secret,
            sync,
            write_buffer_traces,
            caches: Caches::default(),
            poisoned: AtomicBool::new(false),
            unsynced: AtomicU32::new(0),
            #[cfg(feature = "otlp")]
            otlp_group: Default::default(),
        })
    }

    /// Opens an existing file for reading only. Its format must be the current one (an older
    /// format needs one read-write open to be upgraded) and it must hold a cursor secret (else it
    /// is not a tracestore file).
    pub(crate) fn open_read_only(db: redb::ReadOnlyDatabase) -> Result<Self> {
        let t = ReadTables::new(db.begin_read()?);
        let version = t
            .meta()?
            .get(META_FORMAT_VERSION)?
            .map(|v| v.value().to_vec());
        if version.as_deref() != Some([FORMAT_VERSION].as_slice()) {
            return Err(Error::storage(format!(
                "format version {version:?} cannot be read read-only (this build reads \
                 {FORMAT_VERSION}; an older format is upgraded by one read-write open)"
            )));
        }
        let secret = match t.meta()?.get(META_CURSOR_SECRET)? {
            Some(v) if v.value().len() == 32 => v.value().to_vec(),
            _ => return Err(Error::corrupted("no cursor secret: not a tracestore file")),
        };
        drop(t);
        Ok(RedbEngine {
            db: Db::ReadOnly(db),
            secret,
            sync: Sync::Deferred,
            write_buffer_traces: 0,
            caches: Caches::default(),
            poisoned: AtomicBool::new(false),
            unsynced: AtomicU32::new(0),
            #[cfg(feature = "otlp")]
            otlp_group: Default::default(),
        })
    }

    /// The read-write database, or `READ_ONLY`.
    fn writable(&mut self) -> Result<&mut redb::Database> {
        match &mut self.db {
            Db::ReadWrite(db) => Ok(db),
            Db::ReadOnly(_) => Err(Error::read_only()),
        }
    }

    /// Runs `f` in one write transaction; commits if it returns Ok, aborts otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let out = self.transact(|txn| {
            let mut w = Writer::open(txn)?;
            let out = f(&mut w)?;
            w.flush()?;
            Ok(Some(out))
        })?;
        Ok(out.expect("the closure always commits"))
    }

    /// Runs `f` in one write transaction: commits when it returns `Ok(Some)`, aborts when it
    /// returns `Ok(None)` or an error.
    fn transact<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.check_poisoned()?;
        let Db::ReadWrite(db) = &self.db else {
            return Err(Error::read_only());
        };
        let result: Result<Option<T>> = (|| {
            let mut txn = db.begin_write()?;
            txn.set_durability(self.durability())?;
            match f(&txn)? {
                Some(out) => {
                    txn.commit()?;
                    Ok(Some(out))
                }
                None => {
                    txn.abort()?;
                    Ok(None)
                }
            }
        })();
        if let Err(e) = &result {
            if e.is_storage() {
                // A failed commit may or may not have reached the disk; until the store is
                // reopened, no answer (read or write) could be trusted to match what survives.
                self.poisoned.store(true, Ordering::SeqCst);
            }
        }
        result
    }

    /// The durability of the next commit: every commit under `Sync::Immediate`; under
    /// `Sync::Deferred`, one in `DEFERRED_COMMITS_PER_SYNC` (see that limit for why). Counted
    /// per transaction begun, so an aborted one counts too; only the bound matters.
    fn durability(&self) -> redb::Durability {
        match self.sync {
            Sync::Immediate => redb::Durability::Immediate,
            Sync::Deferred => {
                let n = self.unsynced.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= crate::limits::DEFERRED_COMMITS_PER_SYNC {
                    self.unsynced.store(0, Ordering::Relaxed);
                    redb::Durability::Immediate
                } else {
                    redb::Durability::None
                }
            }
        }
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::storage(
                "a write failed in storage; reopen the store before using it again",
            ));
        }
        Ok(())
    }

    fn read(&self) -> Result<ReadTables> {
        self.check_poisoned()?;
        let txn = match &self.db {
            Db::ReadWrite(db) => db.begin_read()?,
            Db::ReadOnly(db) => db.begin_read()?,
        };
        Ok(ReadTables::new(txn))
    }
}

/// The cursor secret, created with the database.
fn cursor_secret(t: &mut WriteTables<'_>) -> Result<Vec<u8>> {
    use redb::ReadableTable;
    let existing = t.meta.get(META_CURSOR_SECRET)?.map(|v| v.value().to_vec());
    match existing {
        Some(s) if s.len() == 32 => Ok(s),
        Some(_) => Err(Error::corrupted("cursor secret has the wrong length")),
        None => {
            let mut s = vec![0u8; 32];
            getrandom::fill(&mut s).map_err(|e| Error::storage(e.to_string()))?;
            t.meta.insert(META_CURSOR_SECRET, s.as_slice())?;
            Ok(s)
        }
    }
}
