//! The bodies of the fuzz targets, shared with `tests/fuzz_regressions.rs` so that every crash
//! input replays in `cargo test` through the very same checks.

use super::*;
use std::sync::OnceLock;
use tracestore::{Error, ErrorCode, Page, QueryRequest, Status, Store, TraceInput};

/// Splits bytes into query-string pairs: `&` separates pairs, the first `=` splits a pair.
/// Not percent-decoded: the library receives decoded strings, and any string is fair.
pub fn pairs_of(data: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(data);
    s.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

/// A small read-only store shared by the query targets: two projects, forty traces.
pub fn query_store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = Store::in_memory().expect("store");
        for (pi, project) in PROJECTS.iter().enumerate() {
            let items: Vec<TraceInput> = (0..20u8)
                .map(|i| {
                    Item {
                        id: i,
                        name: Some(i % 5),
                        status: Some(if i % 3 == 0 {
                            Status::Error
                        } else {
                            Status::Ok
                        }),
                        start_s: Some((i as i64 * 7 + pi as i64) % 40),
                        end_s: None,
                        tags: Some(vec![i % 5, (i / 5) % 5]),
                        metadata: None,
                        spans: vec![],
                        scores: vec![],
                    }
                    .input()
                })
                .collect();
            store.ingest(project, items).expect("seed ingest");
        }
        store
    })
}

fn assert_validation(e: &Error, what: &str) {
    assert_eq!(
        e.code(),
        ErrorCode::Validation,
        "{what}: expected a validation error, got {e:?}"
    );
    assert!(
        !e.details().is_empty(),
        "{what}: a validation error names its fields"
    );
}

/// `query_params`: arbitrary (key, value) pairs give a query or a validation error, never a
/// panic, never an internal error; a page holds at most `limit` traces of this project, in order.
pub fn query_params(data: &[u8]) {
    let pairs = pairs_of(data);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let parsed = QueryRequest::from_params(refs.iter().copied());
    if let Err(e) = &parsed {
        assert_validation(e, "from_params");
    }
    let store = query_store();
    match store.query_params("p", refs.iter().copied()) {
        Ok(page) => {
            let req = parsed.expect("query_params accepted what from_params refused");
            check_page(&page, req.limit(), "p");
        }
        Err(e) => assert_validation(&e, "query_params"),
    }
}

/// A page is in strict (startTime desc, id desc) order, within `limit`, and holds only traces of
/// `project` (the seed store gives each project its own start times).
pub fn check_page(page: &Page, limit: u32, project: &str) {
    assert!(page.traces.len() <= limit as usize);
    for w in page.traces.windows(2) {
        assert!(
            (w[0].start_time, w[0].id.as_bytes()) > (w[1].start_time, w[1].id.as_bytes()),
            "order"
        );
    }
    let pi = PROJECTS
        .iter()
        .position(|p| *p == project)
        .expect("known project") as i64;
    for t in &page.traces {
        let n: i64 = t.id[1..].parse().expect("seed id");
        assert_eq!(
            t.start_time.as_millis(),
            BASE_MS + ((n * 7 + pi) % 40) * 1000,
            "trace {} is not {project}'s",
            t.id
        );
    }
}

/// Real cursors of the seed store: of project "p" (several queries and depths) and of "q".
pub fn real_cursors() -> &'static (Vec<String>, Vec<String>) {
    static CURSORS: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    CURSORS.get_or_init(|| {
        let store = query_store();
        let mut out = (Vec::new(), Vec::new());
        for (project, list) in [("p", &mut out.0), ("q", &mut out.1)] {
            for params in [
                vec![("limit", "3")],
                vec![("limit", "2"), ("status", "ERROR")],
                vec![("limit", "1"), ("tags", "prod")],
                vec![("limit", "4"), ("name", "t"), ("startDate", "2026-02-25")],
            ] {
                let mut page = store.query_params(project, params).expect("seed query");
                while let Some(c) = page.next_cursor.clone() {
                    // Opaque: neither a filter value nor the position can be read out of it.
                    let raw = base64url(&c).expect("a cursor is base64url");
                    let last = page.traces.last().expect("a cursor follows a full page");
                    for needle in ["prod", last.id.as_str()] {
                        let n = needle.as_bytes();
                        assert!(
                            !raw.windows(n.len()).any(|w| w == n),
                            "cursor reveals {needle:?}"
                        );
                    }
                    list.push(c.clone());
                    if list.len() % 3 == 0 {
                        break;
                    }
                    page = store
                        .query_params(project, [("cursor", c.as_str())])
                        .expect("seed page");
                }
            }
        }
        out
    })
}

/// Decodes unpadded URL-safe base64 (the cursor alphabet), or None for any other character. The
/// fuzz crate has no base64 dependency, so this is written out.
pub fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Runs a cursor against project "p": either a page inside "p", or a validation error on the
/// `cursor` field.
pub fn try_cursor(cursor: &str, limit: Option<&str>) -> Result<Page, Error> {
    let mut params = vec![("cursor", cursor)];
    if let Some(l) = limit {
        params.push(("limit", l));
    }
    let r = query_store().query_params("p", params.iter().copied());
    match &r {
        Ok(page) => check_page(page, 100, "p"),
        Err(e) => {
            assert_validation(e, "cursor");
            assert!(
                e.details().iter().any(|d| d.field() == "cursor")
                    || e.details().iter().all(|d| d.field() == "limit"),
                "a bad cursor must be reported on the cursor field: {e:?}"
            );
        }
    }
    r
}

/// `cursor`: arbitrary strings, and mutations of real cursors (bit flips, byte edits, truncation,
/// extension, another project's cursor).
pub fn cursor(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mine, theirs) = real_cursors();
    match mode % 4 {
        0 => {
            let s = String::from_utf8_lossy(rest);
            let _ = try_cursor(&s, None);
        }
        1 | 2 => {
            let mut g = ByteGen::new(rest);
            let base = &mine[g.byte() as usize % mine.len()];
            let mut bytes = base.as_bytes().to_vec();
            for _ in 0..1 + g.below(4) {
                let at = g.u16() as usize % bytes.len().max(1);
                match g.below(4) {
                    0 => {
                        if let Some(b) = bytes.get_mut(at) {
                            *b ^= 1 << g.below(8);
                        }
                    }
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at.min(bytes.len()), g.byte()),
                    _ => {
                        if let Some(b) = bytes.get_mut(at) {
                            *b = g.byte();
                        }
                    }
                }
            }
            let s = String::from_utf8_lossy(&bytes).into_owned();
            let r = try_cursor(&s, Some("5"));
            if s == *base {
                assert!(r.is_ok(), "an untouched cursor must work");
            }
            // Authenticated encryption: any other decoded byte string is refused.
            if base64url(&s).is_some_and(|b| Some(&b) != base64url(base).as_ref()) {
                assert!(r.is_err(), "a changed cursor was accepted");
            }
        }
        _ => {
            let c = &theirs[rest.first().copied().unwrap_or(0) as usize % theirs.len()];
            let e = try_cursor(c, None).expect_err("another project's cursor must be refused");
            assert!(e.details().iter().any(|d| d.field() == "cursor"));
        }
    }
}

/// `ingest_json`: arbitrary bytes as an ingest body are either rejected with a validation error
/// (or 413) and nothing is written, or written with `verify()` clean and every created trace
/// readable.
pub fn ingest_json(data: &[u8]) {
    let store = Store::in_memory().expect("store");
    match store.ingest_json("p", data) {
        Err(e) => {
            assert!(
                matches!(e.code(), ErrorCode::Validation | ErrorCode::PayloadTooLarge),
                "ingest_json: {e:?}"
            );
            let page = store
                .query("p", &QueryRequest::builder().limit(1).build().expect("q"))
                .expect("query");
            assert!(page.traces.is_empty(), "a rejected batch wrote something");
        }
        Ok(summary) => {
            let mut n = 0usize;
            let mut req = QueryRequest::builder().limit(100).build().expect("q");
            loop {
                let page = store.query("p", &req).expect("query");
                for t in &page.traces {
                    let d = store.get_trace("p", &t.id).expect("created trace readable");
                    assert_eq!(d.spans.len(), t.span_count as usize);
                    assert_eq!(d.scores.len(), t.score_count as usize);
                    let cost: rust_decimal::Decimal = d.spans.iter().filter_map(|s| s.cost).sum();
                    assert_eq!(cost, t.total_cost, "totalCost of {}", t.id);
                }
                n += page.traces.len();
                match page.next_cursor {
                    Some(c) => {
                        req = QueryRequest::builder()
                            .cursor(&c)
                            .limit(100)
                            .build()
                            .expect("c")
                    }
                    None => break,
                }
            }
            assert_eq!(n, summary.created, "created traces vs stored traces");
            assert_verified(&store);
        }
    }
}

/// `record_decode`: every stored-record decoder on arbitrary bytes: an error, never a panic.
pub fn record_decode(data: &[u8]) {
    tracestore::fuzz_decode_any(data);
}

/// `ops_model`: see [`run_faulty`].
pub fn ops_model(data: &[u8]) {
    run_faulty(data);
}

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by name, for corpus replay.
pub const TARGETS: [(&str, Target); 5] = [
    ("query_params", query_params),
    ("cursor", cursor),
    ("ingest_json", ingest_json),
    ("record_decode", record_decode),
    ("ops_model", ops_model),
];
