//! Storage backends for the reliability tests: an in-memory disk that outlives a store
//! ([`SharedMem`], [`MemBackend`]), a wrapper that fails chosen operations ([`FaultyBackend`]) and
//! a power-loss simulator that records crash images around every sync ([`PowerLoss`]).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracestore::backends::StorageBackend;

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
