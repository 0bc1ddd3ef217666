//! The ClickHouse engine against the embedded one: the same random dataset (demo traces, then
//! upserts that move, re-cost and end traces, late spans, scores, payload patches and deletes)
//! into both, then the same random queries (every filter, order, `include` and page size),
//! walked page by page with each engine's own cursors: every page, total, facet set and export
//! must be identical. Also: text full of quotes, backslashes and SQL keywords matches only
//! itself, and cursors of one engine are refused by the other.
//!
//! Needs a ClickHouse server at `TRACESTORE_CLICKHOUSE_URL` (`.ci/run` installs and starts one;
//! `scripts/clickhouse-dev.sh` starts one by hand). Without it the tests print that they did not
//! run, unless `TRACESTORE_REQUIRE_CLICKHOUSE=1` (set by CI) makes that a failure.
//! `TRACESTORE_CH_QUERIES=N` runs N random queries instead of the CI's 240.

use std::collections::HashSet;
#[path = "support/clickhouse_data.rs"]
mod data;

use data::*;
use tracestore::{ClickHouseConfig, ErrorCode, ExportRequest, Store, TraceInput};

const DEFAULT_QUERIES: usize = 240;

/// A fresh database for one test.
fn clickhouse_store(url: &str, test: &str) -> Store {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("ts_{test}_{}_{}", std::process::id(), nanos % 1_000_000_000);
    Store::builder()
        .open_clickhouse(&ClickHouseConfig::new(url).database(db))
        .expect("open the ClickHouse store")
}

/// One write, applied to both stores in the same order.
enum Op {
    Ingest(String, Vec<TraceInput>),
    Delete(String, String),
}

fn dataset(seed: u64, traces: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut ops = Vec::new();
    let all = base_traces(&mut rng, seed, traces);
    for (p, batch) in project_batches(&all, 37) {
        ops.push(Op::Ingest(p, batch));
    }
    // Upserts of stored traces, and deletes.
    for _ in 0..traces / 4 {
        let (p, t) = rng.pick(&all);
        if rng.chance(14) {
            ops.push(Op::Delete(p.clone(), t.id.clone().unwrap()));
        } else {
            ops.push(Op::Ingest(p.clone(), vec![random_patch(&mut rng, t)]));
        }
    }
    ops
}

/// Applies every op to both stores: each must answer alike (the same summary, or the same
/// refusal with the same fields).
fn apply(a: &Store, b: &Store, ops: &[Op]) {
    let answer = |s: &Store, op: &Op| -> Result<String, (ErrorCode, Vec<String>)> {
        let r = match op {
            Op::Ingest(p, batch) => s.ingest(p, batch.clone()).map(|sum| format!("{sum:?}")),
            Op::Delete(p, id) => s.delete_trace(p, id).map(|()| "deleted".to_string()),
        };
        r.map_err(|e| {
            (
                e.code(),
                e.details()
                    .iter()
                    .map(|d| format!("{}: {}", d.field(), d.message()))
                    .collect(),
            )
        })
    };
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(answer(a, op), answer(b, op), "op {i}");
    }
}

/// A page as both engines must agree on it: everything but each trace's `createdAt` (the
/// instant each engine first stored it) and the cursor's bytes.
fn comparable(page: &tracestore::Page) -> serde_json::Value {
    let mut v = serde_json::to_value(page).unwrap();
    for t in v["traces"].as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("createdAt");
    }
    let more = !v["nextCursor"].is_null();
    v["nextCursor"] = serde_json::Value::Bool(more);
    v
}

/// Walks a query on one store, page by page with its own cursors.
fn walk(s: &Store, project: &str, q: &[(String, String)], limit: u32) -> Vec<serde_json::Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut params = q.to_vec();
        params.push(("limit".into(), limit.to_string()));
        if let Some(c) = &cursor {
            // A continuation carries only the cursor (and what it may repeat).
            params.retain(|(k, _)| k == "limit" || k == "include");
            params.push(("cursor".into(), c.clone()));
        }
        let page = s.query_params(project, params).unwrap_or_else(|e| {
            panic!("query {q:?}: {e} {:?}", e.details());
        });
        pages.push(comparable(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return pages,
        }
    }
    panic!("query {q:?} did not end within 1000 pages");
}

fn export(s: &Store, project: &str, q: &[(String, String)]) -> Vec<serde_json::Value> {
    let pairs: Vec<(&str, &str)> = q
        .iter()
        .filter(|(k, _)| k != "include")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = ExportRequest::from_params(pairs).expect("export params");
    let mut out = Vec::new();
    s.export(project, &req, |t| {
        let mut v = serde_json::to_value(t).unwrap();
        v.as_object_mut().unwrap().remove("createdAt");
        out.push(v);
        Ok(())
    })
    .expect("export");
    out
}

/// The differential run: the dataset into both stores (into `ch` with every `retry_every`-th
/// ingest delivered twice, as a client retrying after a lost answer would), then the random
/// queries, exports and reads by id.
fn differential(ch: &Store, retry_every: usize) {
    let queries: usize = std::env::var("TRACESTORE_CH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_QUERIES);
    let embedded = Store::in_memory().unwrap();
    let ops = dataset(7, 600);
    apply(&embedded, ch, &ops);
    if retry_every > 0 {
        // The retried deliveries, after the fact: each re-sends a batch that already landed;
        // the stored state must not change. (Only the last delivery of each trace is re-sent,
        // which is what a retry after a lost answer is.)
        let before = export(ch, "demo", &[]);
        let mut last: std::collections::HashMap<String, usize> = Default::default();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Ingest(_, batch) => {
                    for t in batch {
                        last.insert(t.id.clone().unwrap(), i);
                    }
                }
                Op::Delete(_, id) => {
                    last.insert(id.clone(), i);
                }
            }
        }
        let mut retried = 0;
        for (i, op) in ops.iter().enumerate() {
            if let Op::Ingest(p, batch) = op {
                let latest = batch.iter().all(|t| last[t.id.as_ref().unwrap()] == i);
                if latest && i % retry_every == 0 {
                    // A patch of a trace deleted before it was sent is refused both times.
                    match ch.ingest(p, batch.clone()) {
                        Ok(_) => retried += 1,
                        Err(e) => assert_eq!(e.code(), ErrorCode::Validation, "{e}"),
                    }
                }
            }
        }
        assert!(retried > 0);
        assert_eq!(
            before,
            export(ch, "demo", &[]),
            "a retried delivery changed the store"
        );
        eprintln!("{retried} ingests delivered twice");
    }
    assert!(ch.verify().unwrap().is_empty(), "{:?}", ch.verify());

    let mut rng = Rng(99);
    let mut pages = 0usize;
    let mut nonempty = 0usize;
    for i in 0..queries {
        let q = random_query(
            &mut rng,
            Extras {
                limit: false,
                include: true,
            },
        );
        let project = *rng.pick(&PROJECTS);
        let limit = if rng.chance(10) {
            1 + rng.below(4) as u32
        } else {
            5 + rng.below(56) as u32
        };
        let want = walk(&embedded, project, &q, limit);
        let got = walk(ch, project, &q, limit);
        assert_eq!(want.len(), got.len(), "query {i} {q:?}: page counts");
        for (n, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w, g, "query {i} {q:?} limit {limit}: page {n}");
        }
        pages += want.len();
        nonempty += usize::from(!want[0]["traces"].as_array().unwrap().is_empty());
        if i % 8 == 0 {
            assert_eq!(
                export(&embedded, project, &q),
                export(ch, project, &q),
                "query {i} {q:?}: export"
            );
        }
    }
    eprintln!("{queries} queries, {pages} pages, {nonempty} with matches: identical");
    // The generator must exercise real matches, not only empty answers.
    assert!(
        nonempty * 2 > queries,
        "{nonempty} of {queries} queries matched anything"
    );

    // Every seventh trace read by id, with its spans, scores and payloads.
    for p in PROJECTS {
        let ids: Vec<String> = export(&embedded, p, &[])
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        for id in ids.iter().step_by(7) {
            let mut a = serde_json::to_value(embedded.get_trace(p, id).unwrap()).unwrap();
            let mut b = serde_json::to_value(ch.get_trace(p, id).unwrap()).unwrap();
            for v in [&mut a, &mut b] {
                v.as_object_mut().unwrap().remove("createdAt");
            }
            assert_eq!(a, b, "trace {id}");
        }
    }
}

#[test]
fn differential_against_the_embedded_engine() {
    let Some(url) = required_env("TRACESTORE_CLICKHOUSE_URL") else {
        return;
    };
    differential(&clickhouse_store(&url, "diff"), 0);
}

/// Two shards: `TRACESTORE_CLICKHOUSE_SHARDS` lists the HTTP URLs of the servers of cluster
/// `TRACESTORE_CLICKHOUSE_CLUSTER` (`.ci/run` starts two); the engine talks to the first.
#[test]
fn differential_on_two_shards_with_retried_ingests() {
    let Some(_) = required_env("TRACESTORE_CLICKHOUSE_URL") else {
        return;
    };
    let (Ok(shards), Ok(cluster)) = (
        std::env::var("TRACESTORE_CLICKHOUSE_SHARDS"),
        std::env::var("TRACESTORE_CLICKHOUSE_CLUSTER"),
    ) else {
        assert!(
            std::env::var("TRACESTORE_REQUIRE_CLICKHOUSE").as_deref() != Ok("1"),
            "TRACESTORE_REQUIRE_CLICKHOUSE=1 but the two-shard cluster is not set"
        );
        eprintln!("TRACESTORE_CLICKHOUSE_SHARDS is not set: the two-shard test did not run");
        return;
    };
    let urls: Vec<String> = shards.split(',').map(str::to_string).collect();
    let db = format!("ts_shards_{}", std::process::id());
    let ch = Store::builder()
        .open_clickhouse(
            &ClickHouseConfig::new(urls[0].clone())
                .database(db)
                .cluster(cluster)
                .shard_urls(urls.clone()),
        )
        .expect("open on the cluster");
    differential(&ch, 5);
    // Both shards hold traces: the data really is spread.
    for u in &urls {
        let out = std::process::Command::new("curl")
            .args(["-sf", u.as_str(), "--data-binary"])
            .arg(format!(
                "SELECT count() FROM ts_shards_{}.traces_local",
                std::process::id()
            ))
            .output()
            .expect("curl");
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(n > 0, "shard {u} holds no trace rows");
    }
}

#[test]
fn hostile_text_round_trips_and_matches_only_itself() {
    let Some(url) = required_env("TRACESTORE_CLICKHOUSE_URL") else {
        return;
    };
    let ch = clickhouse_store(&url, "hostile");
    let mut batch = Vec::new();
    for (i, text) in HOSTILE.iter().enumerate() {
        let mut m = serde_json::Map::new();
        m.insert("k".into(), text.to_string().into());
        batch.push(TraceInput {
            id: Some(format!("t{i}")),
            name: Some(text.to_string()),
            start_time: Some(ts(1_700_000_000_000 + i as i64)),
            tags: Some(vec![text.to_string()]),
            metadata: Some(m),
            user_id: Some(no_space(text)),
            session_id: Some(no_space(text)),
            ..TraceInput::default()
        });
    }
    ch.ingest("p';--", batch).unwrap();
    for (i, text) in HOSTILE.iter().enumerate() {
        let id = format!("t{i}");
        let t = ch.get_trace("p';--", &id).unwrap();
        assert_eq!(t.trace.name, *text);
        assert_eq!(t.trace.tags, vec![text.to_string()]);
        assert_eq!(t.trace.user_id, Some(no_space(text)));
        for (k, v) in [
            ("tags", text.to_string()),
            ("userId", no_space(text)),
            ("sessionId", no_space(text)),
            ("metadata.k", text.to_string()),
        ] {
            let page = ch.query_params("p';--", [(k, v.as_str())]).unwrap();
            let ids: Vec<&str> = page.traces.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(ids, vec![id.as_str()], "{k}={v:?}");
        }
        let page = ch.query_params("p';--", [("name", *text)]).unwrap();
        let ids: HashSet<&str> = page.traces.iter().map(|t| t.id.as_str()).collect();
        assert!(ids.contains(id.as_str()), "name {text:?}");
    }
    // A project name is a value too.
    assert!(ch
        .query_params("p", [("limit", "5")])
        .unwrap()
        .traces
        .is_empty());
}

#[test]
fn cursors_are_bound_to_their_engine_and_store() {
    let Some(url) = required_env("TRACESTORE_CLICKHOUSE_URL") else {
        return;
    };
    let ch = clickhouse_store(&url, "cursor");
    let ch2 = clickhouse_store(&url, "cursor2");
    let embedded = Store::in_memory().unwrap();
    let batch: Vec<TraceInput> = (0..5)
        .map(|i| TraceInput {
            id: Some(format!("t{i}")),
            name: Some("agent".into()),
            start_time: Some(ts(1_700_000_000_000 + i)),
            ..TraceInput::default()
        })
        .collect();
    for s in [&ch, &ch2, &embedded] {
        s.ingest("p", batch.clone()).unwrap();
    }
    let c = ch
        .query_params("p", [("limit", "2")])
        .unwrap()
        .next_cursor
        .unwrap();
    // The same engine continues it.
    let next = ch.query_params("p", [("cursor", c.as_str())]).unwrap();
    assert_eq!(next.traces[0].id, "t2");
    for other in [&ch2, &embedded] {
        let e = other
            .query_params("p", [("cursor", c.as_str())])
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation);
        assert_eq!(e.details()[0].field(), "cursor");
    }
}

#[test]
fn an_unreachable_server_is_unavailable() {
    // A port nothing listens on: opening fails with UNAVAILABLE, not a panic or a hang.
    let e = Store::builder()
        .open_clickhouse(&ClickHouseConfig::new("http://127.0.0.1:9"))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    // A database name is an identifier in DDL: refused unless it is plain.
    let e = Store::builder()
        .open_clickhouse(&ClickHouseConfig::new("http://127.0.0.1:9").database("x; DROP"))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
}

#[path = "support/clickhouse_server.rs"]
mod clickhouse_server;

/// A TCP proxy in front of a ClickHouse server that counts the HTTP requests it forwards and,
/// when armed, drops the connection at the start of the `cut_at`-th one and refuses every
/// connection until it is healed.
struct Proxy {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    cut_at: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let cut_at = Arc::new(AtomicUsize::new(usize::MAX));
        let down = Arc::new(AtomicBool::new(false));
        let (r, c, d) = (requests.clone(), cut_at.clone(), down.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                if d.load(SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                let (r, c, d) = (r.clone(), c.clone(), d.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let starts = buf[..n].windows(5).filter(|w| w == b"POST ").count();
                        let seen = r.fetch_add(starts, SeqCst) + starts;
                        if d.load(SeqCst) || seen >= c.load(SeqCst) {
                            d.store(true, SeqCst);
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            port,
            requests,
            cut_at,
            down,
        }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn cut_at(&self, n: usize) {
        self.cut_at.store(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn heal(&self) {
        self.cut_at
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Everything a store holds of a project, as comparable JSON: the export, and each trace read
/// by id with its children and payloads (without `createdAt`, each delivery's own instant).
fn contents(s: &Store, project: &str) -> Vec<serde_json::Value> {
    export(s, project, &[])
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap();
            let mut v = serde_json::to_value(s.get_trace(project, id).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("createdAt");
            v
        })
        .collect()
}

#[test]
fn an_ingest_cut_by_a_restart_then_retried_equals_one_clean_delivery() {
    let Some(ch) = clickhouse_server::PrivateClickHouse::start() else {
        return;
    };
    let proxy = Proxy::start(ch.http);
    let open = |db: &str| {
        Store::builder()
            .open_clickhouse(&ClickHouseConfig::new(proxy.url()).database(db))
            .unwrap()
    };
    let clean = open("clean");
    let cut = open("cut");
    let ops = dataset(11, 200);
    let (first, second) = ops.split_at(ops.len() / 2);
    // The first half lands in both; the second half's one big batch of updates and new traces
    // is what the restart interrupts.
    let deliver = |s: &Store, op: &Op| match op {
        Op::Ingest(p, b) => {
            let _ = s.ingest(p, b.clone());
        }
        Op::Delete(p, id) => {
            let _ = s.delete_trace(p, id);
        }
    };
    for op in first {
        deliver(&clean, op);
        deliver(&cut, op);
    }
    let mut batch: Vec<TraceInput> = Vec::new();
    for op in second {
        if let Op::Ingest(p, b) = op {
            if p == "demo" {
                for t in b {
                    // One item per trace in a batch (a later patch of the same trace merges).
                    if !batch.iter().any(|x| x.id == t.id)
                        && (t.name.is_some() || !t.spans.is_empty())
                    {
                        batch.push(t.clone());
                    }
                }
            }
        }
    }
    let before = proxy.count();
    clean.ingest("demo", batch.clone()).expect("clean delivery");
    let requests = proxy.count() - before;
    assert!(requests >= 4, "{requests} requests");

    // Cut the same delivery at the start of its second-to-last request (the trace rows: its
    // children are written, its rows not), then restart ClickHouse.
    proxy.cut_at(proxy.count() + requests - 1);
    let e = cut.ingest("demo", batch.clone()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    ch.kill();
    ch.restart();
    proxy.heal();
    // The batch is half-written (its children are there, its trace rows are not), and the
    // retry completes it.
    assert_ne!(
        contents(&clean, "demo"),
        contents(&cut, "demo"),
        "the cut left nothing half-done"
    );
    cut.ingest("demo", batch.clone()).expect("retried delivery");
    assert!(cut.verify().unwrap().is_empty(), "{:?}", cut.verify());
    let (a, b) = (contents(&clean, "demo"), contents(&cut, "demo"));
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b, "the retried delivery differs from the clean one");
}

/// Every trace of every project, read by id, `createdAt` included (a copy keeps it).
fn everything(s: &Store) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for p in s.projects().unwrap() {
        for t in export(s, &p, &[]) {
            let id = t["id"].as_str().unwrap();
            out.push((
                p.clone(),
                serde_json::to_value(s.get_trace(&p, id).unwrap()).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn migrate_copies_a_store_exactly_and_resumes_after_an_interruption() {
    let Some(ch) = clickhouse_server::PrivateClickHouse::start() else {
        return;
    };
    let proxy = Proxy::start(ch.http);
    let source = Store::in_memory().unwrap();
    let ops = dataset(5, 1300);
    let sink = Store::in_memory().unwrap();
    apply(&source, &sink, &ops);
    // A few new traces stay in the write buffer: the copy takes them too.
    source
        .ingest(
            "demo",
            vec![TraceInput {
                id: Some("pending-1".into()),
                name: Some("agent".into()),
                start_time: Some(ts(1_774_000_000_000)),
                ..TraceInput::default()
            }],
        )
        .unwrap();
    let cfg = ClickHouseConfig::new(proxy.url()).database("copy");
    // Cut the first run part-way: after its setup and a few batches.
    proxy.cut_at(proxy.count() + 40);
    let mut seen = Vec::new();
    let e = source
        .migrate_to_clickhouse(&cfg, false, |p| seen.push(p.clone()))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    assert!(!seen.is_empty(), "the cut came before the first batch");
    proxy.heal();
    let mut last = None;
    let copied = source
        .migrate_to_clickhouse(&cfg, false, |p| last = Some(p.clone()))
        .unwrap();
    let last = last.unwrap();
    assert!(last.resumed > 0, "{last:?}");
    assert_eq!(last.copied, last.total, "{last:?}");
    assert!(
        copied < last.total,
        "the resumed run copied everything again: {last:?}"
    );

    let target = Store::builder().open_clickhouse(&cfg).unwrap();
    assert!(target.verify().unwrap().is_empty());
    assert_eq!(everything(&source), everything(&target));
    // Run again from scratch: the same result (a trace already there is replaced whole).
    source.migrate_to_clickhouse(&cfg, true, |_| {}).unwrap();
    assert_eq!(everything(&source), everything(&target));
}
