//! Concurrency: one writer thread ingests continuously while 8 reader threads page through random
//! queries on a shared `Arc<Store>`.
//!
//! - Every walk keeps the pagination guarantee: no duplicate, strict (startTime desc, id desc)
//!   order, every returned trace matches the filters, and every trace committed before the walk
//!   started appears (the writer only inserts, so all of them still match).
//! - Readers never wait for the writer: pages keep completing while a write transaction is open
//!   (the writer ingests large batches and counts the commits during which no page completed).
//! - The writer never waits for readers: its commit latency with readers is of the same order as
//!   without (both printed).
//! - Nothing deadlocks: a watchdog aborts the process if the run overruns.
//!
//! About 10 s by default; `TRACESTORE_CONCURRENCY_SECS` sets a longer run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tracestore::{Durability, QueryRequest, Status, Store, Timestamp, TraceInput};

const BASE_MS: i64 = 1_772_000_000_000;
const READERS: usize = 8;
const PRELOAD: u64 = 6000;
const WINDOW_MS: u64 = 120_000;
const NAMES: [&str; 4] = ["support-agent", "tool-call", "planner", "Support-Bot"];
const TAGS: [&str; 4] = ["prod", "dev", "v1", "v2"];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Everything about a trace follows from its sequence number.
#[derive(Clone, Debug)]
struct T {
    id: String,
    name: &'static str,
    status: Status,
    start_ms: i64,
    tags: Vec<String>,
}

fn trace(seq: u64) -> T {
    let h = mix(seq);
    T {
        id: format!("t{seq:08}"),
        name: NAMES[(h % 4) as usize],
        status: if h.is_multiple_of(7) {
            Status::Error
        } else {
            Status::Ok
        },
        start_ms: BASE_MS + ((h >> 8) % WINDOW_MS) as i64,
        tags: TAGS
            .iter()
            .enumerate()
            .filter(|(i, _)| (h >> (20 + i)) & 1 == 1)
            .map(|(_, t)| t.to_string())
            .collect(),
    }
}

fn input(t: &T) -> TraceInput {
    TraceInput {
        status: Some(t.status),
        tags: Some(t.tags.clone()),
        ..TraceInput::new(
            t.id.clone(),
            t.name,
            Timestamp::from_millis(t.start_ms).expect("ts"),
        )
    }
}

#[derive(Clone, Debug, Default)]
struct Q {
    name: Option<&'static str>,
    status: Option<Status>,
    tag: Option<&'static str>,
    window: Option<(i64, i64)>,
}

impl Q {
    fn random(r: u64) -> Q {
        let mut q = Q::default();
        match r % 6 {
            0 => {}
            1 => q.status = Some(Status::Error),
            2 => q.tag = Some(TAGS[(r >> 8) as usize % 4]),
            3 => q.name = Some("support"),
            4 => {
                let a = ((r >> 8) % WINDOW_MS) as i64;
                q.window = Some((BASE_MS + a, BASE_MS + a + 20_000));
            }
            _ => {
                q.status = Some(Status::Ok);
                q.tag = Some("prod");
            }
        }
        q
    }
    fn matches(&self, t: &T) -> bool {
        self.name.is_none_or(|n| t.name.to_lowercase().contains(n))
            && self.status.is_none_or(|s| s == t.status)
            && self.tag.is_none_or(|g| t.tags.iter().any(|x| x == g))
            && self
                .window
                .is_none_or(|(a, b)| t.start_ms >= a && t.start_ms < b)
    }
    fn request(&self, limit: u32) -> QueryRequest {
        let mut b = QueryRequest::builder().limit(limit);
        if let Some(n) = self.name {
            b = b.name(n);
        }
        if let Some(s) = self.status {
            b = b.status(s);
        }
        if let Some(g) = self.tag {
            b = b.tags([g]);
        }
        if let Some((a, e)) = self.window {
            b = b
                .start_date(Timestamp::from_millis(a).expect("ts"))
                .end_date(Timestamp::from_millis(e).expect("ts"));
        }
        b.build().expect("valid query")
    }
}

struct Shared {
    store: Store,
    /// Traces with sequence numbers below this are committed.
    committed: AtomicU64,
    pages: AtomicU64,
    walks: AtomicU64,
    stop: AtomicBool,
}

/// One walk of all pages of a random query, checking the pagination guarantee. Returns the
/// latency of each page.
fn walk(s: &Shared, r: u64, lat: &mut Vec<Duration>) {
    let q = Q::random(r);
    let limit = [10, 25, 50, 100][(r >> 40) as usize % 4];
    // Everything committed before the first page must appear exactly once.
    let committed_at_start = s.committed.load(Ordering::SeqCst);
    let mut req = q.request(limit);
    let mut seen: HashSet<String> = HashSet::new();
    let mut last: Option<(i64, String)> = None;
    loop {
        let t0 = Instant::now();
        let page = s.store.query("c", &req).expect("query");
        lat.push(t0.elapsed());
        s.pages.fetch_add(1, Ordering::Relaxed);
        for t in &page.traces {
            let seq: u64 = t.id[1..].parse().expect("id");
            let want = trace(seq);
            assert!(q.matches(&want), "{q:?} returned non-matching {}", t.id);
            assert_eq!(
                (t.start_time.as_millis(), t.status),
                (want.start_ms, want.status)
            );
            let key = (t.start_time.as_millis(), t.id.clone());
            if let Some(prev) = &last {
                assert!(
                    (prev.0, prev.1.as_bytes()) > (key.0, key.1.as_bytes()),
                    "{q:?}: order broken: {prev:?} then {key:?}"
                );
            }
            assert!(seen.insert(t.id.clone()), "{q:?}: {} twice", t.id);
            last = Some(key);
        }
        match page.next_cursor {
            Some(c) => {
                req = QueryRequest::builder()
                    .cursor(&c)
                    .limit(limit)
                    .build()
                    .expect("cursor")
            }
            None => break,
        }
    }
    for seq in 0..committed_at_start {
        let t = trace(seq);
        if q.matches(&t) {
            assert!(
                seen.contains(&t.id),
                "{q:?}: missed {} committed before the walk",
                t.id
            );
        }
    }
    s.walks.fetch_add(1, Ordering::Relaxed);
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct WriterStats {
    commits: Vec<Duration>,
    /// Commits of at least 20 ms during which no reader completed a page.
    stalls: usize,
    long_commits: usize,
}

fn writer(s: &Shared, until: Instant, batch: u64) -> WriterStats {
    let mut st = WriterStats {
        commits: Vec::new(),
        stalls: 0,
        long_commits: 0,
    };
    while Instant::now() < until {
        let from = s.committed.load(Ordering::SeqCst);
        let items: Vec<TraceInput> = (from..from + batch).map(|q| input(&trace(q))).collect();
        let pages_before = s.pages.load(Ordering::SeqCst);
        let t0 = Instant::now();
        s.store.ingest("c", items).expect("ingest");
        let d = t0.elapsed();
        let pages_after = s.pages.load(Ordering::SeqCst);
        s.committed.store(from + batch, Ordering::SeqCst);
        st.commits.push(d);
        if d >= Duration::from_millis(20) {
            st.long_commits += 1;
            if pages_after == pages_before {
                st.stalls += 1;
            }
        }
    }
    st
}

fn readers(s: &Arc<Shared>, seed: u64) -> Vec<std::thread::JoinHandle<Vec<Duration>>> {
    (0..READERS)
        .map(|r| {
            let s = Arc::clone(s);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut x = seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                while !s.stop.load(Ordering::SeqCst) {
                    x = mix(x);
                    walk(&s, x, &mut lat);
                }
                lat
            })
        })
        .collect()
}

fn read_phase(s: &Arc<Shared>, secs: f64, seed: u64) -> (f64, Duration) {
    s.stop.store(false, Ordering::SeqCst);
    let p0 = s.pages.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let hs = readers(s, seed);
    std::thread::sleep(Duration::from_secs_f64(secs));
    s.stop.store(true, Ordering::SeqCst);
    let mut lat: Vec<Duration> = hs
        .into_iter()
        .flat_map(|h| h.join().expect("reader"))
        .collect();
    let rate = (s.pages.load(Ordering::SeqCst) - p0) as f64 / t0.elapsed().as_secs_f64();
    (rate, percentile(&mut lat, 0.99))
}

#[test]
fn one_writer_and_eight_readers() {
    let secs: f64 = std::env::var("TRACESTORE_CONCURRENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    // Watchdog: a deadlock must fail the run, not hang it.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let limit = Duration::from_secs_f64(secs * 3.0 + 60.0);
    std::thread::spawn(move || {
        if done_rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("concurrency: no progress within {limit:?}: deadlock");
            std::process::abort();
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::builder()
        .durability(Durability::Immediate)
        .open(dir.path().join("c.redb"))
        .expect("open");
    for chunk in (0..PRELOAD).collect::<Vec<_>>().chunks(1000) {
        store
            .ingest("c", chunk.iter().map(|q| input(&trace(*q))).collect())
            .expect("preload");
    }
    let s = Arc::new(Shared {
        store,
        committed: AtomicU64::new(PRELOAD),
        pages: AtomicU64::new(0),
        walks: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    // 1. Readers alone.
    let (rate_alone, p99_alone) = read_phase(&s, secs * 0.25, 1);
    // 2. The writer alone (small batches: commit latency).
    let alone = writer(
        &s,
        Instant::now() + Duration::from_secs_f64(secs * 0.125),
        20,
    );
    // 3. Both: small batches for latency, then large ones that hold the write transaction open.
    s.stop.store(false, Ordering::SeqCst);
    let p0 = s.pages.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let hs = readers(&s, 2);
    let mixed = writer(&s, Instant::now() + Duration::from_secs_f64(secs * 0.2), 20);
    let large = writer(
        &s,
        Instant::now() + Duration::from_secs_f64(secs * 0.3),
        1000,
    );
    s.stop.store(true, Ordering::SeqCst);
    let mut lat: Vec<Duration> = hs
        .into_iter()
        .flat_map(|h| h.join().expect("reader"))
        .collect();
    let rate_mixed = (s.pages.load(Ordering::SeqCst) - p0) as f64 / t0.elapsed().as_secs_f64();
    let p99_mixed = percentile(&mut lat, 0.99);
    let _ = done_tx.send(());

    let (mut ca, mut cm) = (alone.commits.clone(), mixed.commits.clone());
    let (c50a, c99a) = (percentile(&mut ca, 0.5), percentile(&mut ca, 0.99));
    let (c50m, c99m) = (percentile(&mut cm, 0.5), percentile(&mut cm, 0.99));
    println!(
        "concurrency: {READERS} readers, {} walks, {} traces at the end\n\
         \x20 readers alone:      {rate_alone:.0} pages/s, p99 page latency {p99_alone:?}\n\
         \x20 with the writer:    {rate_mixed:.0} pages/s, p99 page latency {p99_mixed:?}\n\
         \x20 commit (20 traces): alone p50 {c50a:?} p99 {c99a:?}; with readers p50 {c50m:?} p99 {c99m:?}\n\
         \x20 large commits (1000 traces) >= 20 ms: {}, during which no page completed: {}",
        s.walks.load(Ordering::SeqCst),
        s.committed.load(Ordering::SeqCst),
        large.long_commits,
        large.stalls,
    );
    assert!(
        s.walks.load(Ordering::SeqCst) > 0
            && !alone.commits.is_empty()
            && !mixed.commits.is_empty()
    );
    // Readers are not blocked by an open write transaction.
    assert!(
        large.long_commits > 0,
        "no commit was long enough to observe readers during it"
    );
    assert_eq!(
        large.stalls, 0,
        "readers made no progress during {} commits",
        large.stalls
    );
    // The writer is not blocked by readers: on 2 shared cores its latency grows with the CPU
    // the readers take, but stays of the same order (no waiting for readers to finish).
    assert!(
        c50m <= c50a * 20 + Duration::from_millis(50),
        "commit latency exploded with readers: p50 {c50a:?} -> {c50m:?}"
    );
    let v = s.store.verify().expect("verify");
    assert!(v.is_empty(), "verify: {v:?}");
}
