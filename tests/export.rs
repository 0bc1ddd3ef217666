//! Export through the public API: every match exactly once and in order (equal to walking all
//! pages of the same query), pending traces included, one snapshot for the whole export, CSV
//! equal to JSON Lines field by field with RFC 4180 quoting, and memory flat in the number of
//! matches.
//!
//! The tests of this file run one at a time (`serial`): the memory test reads the process's
//! peak RSS, which other tests of the same binary would disturb.

use serde_json::Value;
use std::collections::HashSet;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use tracestore::demo::{DemoConfig, Generator};
use tracestore::{
    Durability, ErrorCode, ExportFormat, ExportRequest, QueryRequest, Status, Store, Timestamp,
    Trace, TraceInput, CSV_COLUMNS,
};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn memory_store() -> Store {
    Store::builder()
        .durability(Durability::Deferred)
        .in_memory()
        .expect("store")
}

/// Loads `n` demo traces into `store` in batches of 1000 (indexed, never buffered: each batch
/// is larger than the write buffer). Returns how many landed in each project.
fn load_demo(store: &Store, n: usize, projects: &[&str]) {
    let mut g = Generator::new(DemoConfig {
        traces: n,
        projects: projects.iter().map(|p| p.to_string()).collect(),
        spans: (1, 3),
        ..DemoConfig::default()
    });
    loop {
        let groups = g.next_batch(1000);
        if groups.is_empty() {
            break;
        }
        for (p, batch) in groups {
            store.ingest(&p, batch).expect("ingest");
        }
    }
}

/// Every page of `q` (pages of `limit`) concatenated, through `Store::query` and its cursors.
fn all_pages(store: &Store, project: &str, params: &[(&str, &str)], limit: u32) -> Vec<Trace> {
    let limit = limit.to_string();
    let mut first: Vec<(&str, &str)> = params.to_vec();
    first.push(("limit", &limit));
    let mut page = store
        .query(project, &QueryRequest::from_params(first).expect("query"))
        .expect("page");
    let mut out = Vec::new();
    loop {
        out.append(&mut page.traces);
        let Some(c) = page.next_cursor.take() else {
            return out;
        };
        let next = QueryRequest::from_params([("cursor", c.as_str()), ("limit", &limit)])
            .expect("continuation");
        page = store.query(project, &next).expect("page");
    }
}

fn export_params(store: &Store, project: &str, params: &[(&str, &str)]) -> Vec<Trace> {
    let req = ExportRequest::from_params(params.iter().copied()).expect("export request");
    let mut out = Vec::new();
    let n = store
        .export(project, &req, |t| {
            out.push(t.clone());
            Ok(())
        })
        .expect("export");
    assert_eq!(n, out.len() as u64, "the count is what the sink took");
    out
}

fn assert_strictly_ordered(traces: &[Trace]) {
    let mut seen = HashSet::new();
    for w in traces.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            (a.start_time, a.id.as_str()) > (b.start_time, b.id.as_str()),
            "newest first, then id descending: {} {} before {} {}",
            a.start_time,
            a.id,
            b.start_time,
            b.id
        );
    }
    for t in traces {
        assert!(seen.insert(&t.id), "{} exported twice", t.id);
    }
}

const QUERIES: &[&[(&str, &str)]] = &[
    &[],
    &[("status", "ERROR")],
    &[("status", "ok")],
    &[("tags", "production")],
    &[("tags", "production,v2")],
    &[("name", "support")],
    &[("name", "tool-")],
    &[("startDate", "2026-03-01"), ("endDate", "2026-03-15")],
    &[
        ("status", "OK"),
        ("tags", "production"),
        ("name", "agent"),
        ("startDate", "2026-02-10T12:00:00Z"),
    ],
    &[("name", "no-such-agent")],
    &[("tags", "no-such-tag")],
];

fn ids(traces: &[Trace]) -> Vec<&str> {
    traces.iter().map(|t| t.id.as_str()).collect()
}

#[test]
fn every_match_once_in_order_equal_to_all_pages() {
    let _g = serial();
    let store = memory_store();
    load_demo(&store, 6_000, &["demo", "other"]);
    for q in QUERIES {
        let exported = export_params(&store, "demo", q);
        let paged = all_pages(&store, "demo", q, 100);
        assert_eq!(ids(&exported), ids(&paged), "{q:?}");
        assert_eq!(exported, paged, "the same rows, field by field: {q:?}");
        assert_strictly_ordered(&exported);
        // Another project's traces never appear.
        let other: HashSet<String> = export_params(&store, "other", q)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert!(exported.iter().all(|t| !other.contains(&t.id)), "{q:?}");
    }
    // The unfiltered export spans many internal steps.
    let all = export_params(&store, "demo", &[]);
    assert!(
        all.len() > 3 * tracestore::limits::EXPORT_PAGE_TRACES as usize,
        "{}",
        all.len()
    );
    // A project nobody wrote to has nothing to export; a bad project name is refused.
    assert!(export_params(&store, "nobody", &[]).is_empty());
    let e = store
        .export("bad project", &ExportRequest::default(), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn from_query_exports_the_querys_filters_and_refuses_a_cursor() {
    let _g = serial();
    let store = memory_store();
    load_demo(&store, 2_000, &["demo"]);
    let q = QueryRequest::builder()
        .status(Status::Ok)
        .tags(["production"])
        .limit(7)
        .build()
        .unwrap();
    let req = ExportRequest::from_query(&q).unwrap();
    let mut exported = Vec::new();
    store
        .export("demo", &req, |t| {
            exported.push(t.clone());
            Ok(())
        })
        .unwrap();
    let paged = all_pages(
        &store,
        "demo",
        &[("status", "OK"), ("tags", "production")],
        50,
    );
    assert_eq!(exported, paged, "the query's limit does not cap an export");

    let page = store.query("demo", &q).unwrap();
    let cont = QueryRequest::builder()
        .cursor(page.next_cursor.as_deref().unwrap())
        .build()
        .unwrap();
    let e = ExportRequest::from_query(&cont).unwrap_err();
    assert_eq!(e.details()[0].field(), "cursor");
}

#[test]
fn a_sink_error_stops_the_export_and_is_returned() {
    let _g = serial();
    let store = memory_store();
    load_demo(&store, 2_000, &["demo"]);
    let mut taken = 0;
    let e = store
        .export("demo", &ExportRequest::default(), |_| {
            taken += 1;
            if taken == 3 {
                return Err(tracestore::Error::internal("the reader went away"));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(taken, 3, "nothing is handed over after the error");
    assert_eq!(e.code(), ErrorCode::Internal);
}

/// A trace of project `p` at `start` (minutes after a base instant).
fn trace_at(id: &str, name: &str, minute: i64, status: Status, tags: &[&str]) -> TraceInput {
    let base = Timestamp::parse("2026-03-14T10:00:00Z")
        .unwrap()
        .as_millis();
    TraceInput {
        status: Some(status),
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        ..TraceInput::new(
            id,
            name,
            Timestamp::from_millis(base + minute * 60_000).unwrap(),
        )
    }
}

#[test]
fn pending_traces_are_exported_as_a_query_returns_them() {
    let _g = serial();
    let store = memory_store();
    // 1,200 indexed traces, one a minute, then small ingests of new traces, which the write
    // buffer holds pending: between, before and after the indexed ones, and on equal start
    // times (the id breaks the tie).
    for half in [0..600, 600..1200] {
        let indexed: Vec<TraceInput> = half
            .map(|i| {
                let st = if i % 7 == 0 {
                    Status::Error
                } else {
                    Status::Ok
                };
                let tags: &[&str] = if i % 2 == 0 { &["prod"] } else { &[] };
                trace_at(&format!("i{i:05}"), "support-agent", i, st, tags)
            })
            .collect();
        store.ingest("acme", indexed).unwrap();
    }
    let mut pending_ids = Vec::new();
    for (k, minute) in [-5i64, 0, 3, 3, 599, 600, 1199, 1300, 1400, 250]
        .iter()
        .enumerate()
    {
        let id = format!("p{k:02}");
        let st = if k % 2 == 0 {
            Status::Error
        } else {
            Status::Ok
        };
        store
            .ingest(
                "acme",
                vec![trace_at(&id, "support-bot", *minute, st, &["prod"])],
            )
            .unwrap();
        pending_ids.push(id);
    }
    for q in [
        &[][..],
        &[("status", "ERROR")],
        &[("tags", "prod")],
        &[("name", "bot")],
        &[
            ("startDate", "2026-03-14T15:00:00Z"),
            ("endDate", "2026-03-14T20:00:00Z"),
        ],
    ] {
        let exported = export_params(&store, "acme", q);
        assert_eq!(exported, all_pages(&store, "acme", q, 100), "{q:?}");
        assert_eq!(exported, all_pages(&store, "acme", q, 1), "{q:?}");
        assert_strictly_ordered(&exported);
    }
    let all: HashSet<String> = export_params(&store, "acme", &[])
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(all.len(), 1210);
    assert!(pending_ids.iter().all(|id| all.contains(id)));
    assert!(store.verify().unwrap().is_empty());
}

#[test]
fn a_trace_written_during_an_export_is_not_in_it() {
    let _g = serial();
    let store = Arc::new(memory_store());
    load_demo(&store, 3_000, &["demo"]);
    // A few pending traces too, so that the buffer changes under the export as well.
    store
        .ingest(
            "demo",
            vec![trace_at("pending-before", "x-agent", 1, Status::Ok, &[])],
        )
        .unwrap();
    let before = all_pages(&store, "demo", &[], 100);
    let victim = before[before.len() / 2].id.clone();

    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let exporter = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut out = Vec::new();
            store
                .export("demo", &ExportRequest::default(), |t| {
                    if out.is_empty() {
                        // The first trace is out: the snapshot is taken. Wait for the writes.
                        started_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                    }
                    out.push(t.clone());
                    Ok(())
                })
                .expect("export");
            out
        })
    };
    started_rx.recv().unwrap();
    // While the sink blocks: a newest and an oldest trace (the walk reaches the oldest last),
    // a buffered one, a batch big enough to be indexed (folding the pending traces), an
    // update and a delete.
    let base = Timestamp::parse("2026-03-31T23:00:00Z").unwrap();
    store
        .ingest(
            "demo",
            vec![TraceInput::new("new-pending", "late-agent", base)],
        )
        .unwrap();
    let mut batch: Vec<TraceInput> = (0..100)
        .map(|i| TraceInput::new(format!("new-{i}"), "late-agent", base))
        .collect();
    batch.push(TraceInput::new(
        "new-oldest",
        "late-agent",
        Timestamp::parse("2000-01-01T00:00:00Z").unwrap(),
    ));
    batch.push(TraceInput {
        name: Some("renamed".into()),
        ..TraceInput::new(
            before.last().unwrap().id.clone(),
            "renamed",
            before.last().unwrap().start_time,
        )
    });
    store.ingest("demo", batch).unwrap();
    store.delete_trace("demo", &victim).unwrap();
    go_tx.send(()).unwrap();
    let exported = exporter.join().unwrap();

    assert_eq!(
        exported, before,
        "exactly the snapshot the export began with"
    );
    assert!(exported.iter().any(|t| t.id == victim));
    assert!(exported.iter().all(|t| !t.id.starts_with("new-")));
    // The writes did land.
    let after = export_params(&store, "demo", &[]);
    assert_eq!(after.len(), before.len() + 102 - 1);
    assert!(store.verify().unwrap().is_empty());
}

/// A CSV cell compared with the JSON value of the same field in the JSON Lines row.
fn assert_cell_is(col: &str, cell: &str, v: &Value) {
    match v {
        Value::Null => assert_eq!(cell, "", "{col}: null is an empty cell"),
        Value::String(s) => assert_eq!(cell, s, "{col}"),
        Value::Number(n) => assert_eq!(cell, n.to_string(), "{col}"),
        Value::Array(_) | Value::Object(_) => {
            let parsed: Value = serde_json::from_str(cell).expect("JSON text");
            assert_eq!(&parsed, v, "{col}");
            assert_eq!(cell, serde_json::to_string(v).unwrap(), "{col}: compact");
        }
        Value::Bool(_) => panic!("{col}: no boolean fields"),
    }
}

fn export_text(store: &Store, project: &str, params: &[(&str, &str)]) -> String {
    let req = ExportRequest::from_params(params.iter().copied()).unwrap();
    let mut out = Vec::new();
    store.export_to(project, &req, &mut out).unwrap();
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn csv_parses_back_to_the_jsonl_rows_field_by_field() {
    let _g = serial();
    let store = memory_store();
    load_demo(&store, 1_500, &["demo"]);
    // Traces whose text needs quoting, with nulls and set optional fields.
    let mut odd = Vec::new();
    for (i, name) in [
        "a,b",
        "say \"hi\"",
        "\"quoted\"",
        " leading and trailing ",
        "semi;colon",
        "line\u{2028}separator",
        "ünïcødé, \"both\"",
    ]
    .iter()
    .enumerate()
    {
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "note".into(),
            Value::String("multi\nline, \"text\"\r\n".into()),
        );
        metadata.insert("n".into(), Value::from(i));
        let end = Timestamp::parse("2026-03-31T12:00:01.5Z").unwrap();
        odd.push(TraceInput {
            end_time: (i % 2 == 0).then_some(end),
            user_id: (i % 3 == 0).then(|| format!("user-{i}")),
            session_id: (i % 3 == 1).then(|| "s,1\"x".to_string()),
            metadata: Some(metadata),
            tags: Some(vec!["a b".into(), "\"q\"".into()]),
            ..TraceInput::new(
                format!("odd-{i}"),
                *name,
                Timestamp::parse("2026-03-31T12:00:00Z").unwrap(),
            )
        });
    }
    store.ingest("demo", odd).unwrap();

    let jsonl = export_text(&store, "demo", &[]);
    let csv_text = export_text(&store, "demo", &[("format", "csv")]);
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 1_507);
    assert!(jsonl.ends_with('\n') && !jsonl.contains("\n\n"));

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), rows.len());
    for (rec, row) in records.iter().zip(&rows) {
        let obj = row.as_object().unwrap();
        assert_eq!(
            obj.len(),
            CSV_COLUMNS.len(),
            "the JSON row has the same fields"
        );
        for (col, cell) in CSV_COLUMNS.iter().zip(rec.iter()) {
            assert_cell_is(col, cell, &obj[*col]);
        }
    }
    // RFC 4180: CRLF record ends, quoted cells with doubled quotes.
    assert!(csv_text.starts_with("id,name,status,startTime,"));
    assert!(csv_text.contains("\"say \"\"hi\"\"\""));
    assert!(csv_text.contains(",\"a,b\","));
    let lf = csv_text.matches('\n').count();
    assert_eq!(
        lf,
        csv_text.matches("\r\n").count(),
        "every line ends in CRLF"
    );
    assert_eq!(lf, rows.len() + 1, "no line break inside a cell here");
    // The JSON rows are the list endpoint's trace objects.
    let page = store
        .query(
            "demo",
            &QueryRequest::from_params([("limit", "3")]).unwrap(),
        )
        .unwrap();
    for (t, row) in page.traces.iter().zip(&rows) {
        assert_eq!(&serde_json::to_value(t).unwrap(), row);
    }
    // An empty export: CSV still has its header, JSON Lines nothing.
    assert_eq!(
        export_text(&store, "demo", &[("format", "csv"), ("name", "zzz")]),
        format!("{}\r\n", CSV_COLUMNS.join(","))
    );
    assert_eq!(export_text(&store, "demo", &[("name", "zzz")]), "");
    assert_eq!(
        ExportRequest::from_params([("format", "csv")])
            .unwrap()
            .format(),
        ExportFormat::Csv
    );
}

/// Peak and current resident set size of this process, in KiB (`/proc/self/status`).
fn rss_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Resets the peak RSS to the current RSS (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `Write` that counts bytes and keeps none.
struct Counter(u64);
impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the child process that measures an export (`rss_child`): the store's path.
const CHILD_ENV: &str = "TRACESTORE_EXPORT_RSS_CHILD";
/// The redb page cache of the measured store.
const CACHE_BYTES: usize = 2 * 1024 * 1024;

/// Loads `n` demo traces into a file store, closes it, and measures an export of all of them
/// in a fresh child process (this test binary, running only `rss_child`), so that neither the
/// load nor the other tests of this binary left memory that the export could reuse unseen.
/// Returns the child's peak RSS growth in KiB and the bytes of its larger export; None where
/// /proc cannot tell.
fn export_rss_growth(n: usize) -> Option<(u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let store = Store::builder()
            .durability(Durability::Deferred)
            .cache_size_bytes(CACHE_BYTES)
            .open(&path)
            .unwrap();
        load_demo(&store, n, &["demo"]);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rss_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .env("TRACESTORE_EXPORT_RSS_N", n.to_string())
        .output()
        .expect("the child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text.lines().find_map(|l| l.split("RSS_RESULT ").nth(1))?;
    let mut nums = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    Some((nums.next()?, nums.next()?))
}

/// The measuring side of `export_rss_growth`; does nothing unless run as its child. Opens the
/// store, warms what every export touches once (the open, the plan's lookups), resets the peak
/// RSS, exports everything as CSV and as JSON Lines into a byte counter, and prints the peak
/// growth.
#[test]
fn rss_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let n: u64 = std::env::var("TRACESTORE_EXPORT_RSS_N")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::builder()
        .cache_size_bytes(CACHE_BYTES)
        .open_read_only(&path)
        .unwrap();
    let req = ExportRequest::from_params([("name", "no-such-trace")]).unwrap();
    store.export("demo", &req, |_| Ok(())).unwrap();
    if !reset_peak() {
        return;
    }
    let Some((_, rss_before)) = rss_kib() else {
        return;
    };
    let mut biggest = 0;
    for format in ExportFormat::ALL {
        let req = ExportRequest::default().with_format(format);
        let mut out = Counter(0);
        let count = store.export_to("demo", &req, &mut out).unwrap();
        assert_eq!(count, n);
        biggest = biggest.max(out.0);
    }
    let (peak_after, _) = rss_kib().unwrap();
    println!(
        "\nRSS_RESULT {} {biggest}",
        peak_after.saturating_sub(rss_before)
    );
}

/// The peak RSS growth allowed for an export, whatever its size: the redb page cache
/// (`CACHE_BYTES`, 2 MiB) filling up, the export's own step (`EXPORT_PAGE_TRACES` hits) and
/// the allocator's slack. Measured here: 2.2 MiB for 50,000 traces (20 MB of CSV), and
/// 2.1 MiB for 1,000,000 (403 MB of CSV).
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

#[test]
fn memory_is_flat_for_50k_traces() {
    let _g = serial();
    let Some((growth, bytes)) = export_rss_growth(50_000) else {
        eprintln!("skipped: /proc/self/clear_refs or /proc/self/status is not available");
        return;
    };
    eprintln!("50k traces: {bytes} bytes exported, peak RSS growth {growth} KiB");
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {growth} KiB exporting {bytes} bytes"
    );
    // The growth is the fixed part (the 2 MiB page cache filling, one step's hits), so the
    // export is several times larger than it even at this size (at 1M traces: 2.1 MiB for
    // 403 MB).
    assert!(
        growth * 1024 < bytes / 4,
        "far below the exported data: {growth} KiB for {bytes} bytes"
    );
}

/// 1,000,000 traces: `TRACESTORE_EXPORT_RSS=1 cargo test --test export memory_is_flat_for_1m
/// -- --nocapture` (loading takes minutes).
#[test]
fn memory_is_flat_for_1m_traces() {
    if std::env::var("TRACESTORE_EXPORT_RSS").as_deref() != Ok("1") {
        eprintln!("skipped: set TRACESTORE_EXPORT_RSS=1 to export 1,000,000 traces");
        return;
    }
    let _g = serial();
    let Some((growth, bytes)) = export_rss_growth(1_000_000) else {
        panic!("/proc/self/clear_refs or /proc/self/status is not available");
    };
    eprintln!("1M traces: {bytes} bytes exported, peak RSS growth {growth} KiB");
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {growth} KiB exporting {bytes} bytes"
    );
}
