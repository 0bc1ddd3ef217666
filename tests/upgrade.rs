//! In-place upgrades from committed fixtures of older formats. `tests/fixtures/format2.redb`
//! was written by the last format-2 build (41 demo traces in projects `acme` and `globex`, with
//! spans, scores, an update, a delete, four pending traces and one API key), and
//! `format2.json` holds what that build's `get_trace` returned for every trace.
//! `tests/fixtures/format3.redb` was written by the last format-3 build with the program beside
//! it (`make_format3.rs`: 43 traces with span trees, payloads, user and session ids, typed
//! metadata, an update, a delete, pending traces and an API key), and `format3.json` holds what
//! that build returned for every trace. `tests/fixtures/format4.redb` and `format4.json` were
//! written the same way by the last format-4 build (`make_format4.rs`, the same program), and
//! `format5.redb` and `format5.json` by the last format-5 build with the same program, its two
//! paths renamed to `format5`.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{json, Value};
use tracestore::{QueryRequest, Store};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const STATE: TableDefinition<u32, &[u8]> = TableDefinition::new("project_state");
const PENDING: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("pending");

fn fixture_copy(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("old.redb");
    std::fs::copy("tests/fixtures/format2.redb", &path).unwrap();
    path
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string("tests/fixtures/format2.json").unwrap()).unwrap()
}

fn format_version(path: &std::path::Path) -> Vec<u8> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let v = meta
        .get("format_version")
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    v
}

/// Every trace of `project`, newest first, as `get_trace` renders it.
fn all_details(store: &Store, project: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut req = QueryRequest::from_params([("limit", "100")]).unwrap();
    loop {
        let page = store.query(project, &req).unwrap();
        for t in &page.traces {
            out.push(serde_json::to_value(store.get_trace(project, &t.id).unwrap()).unwrap());
        }
        match page.next_cursor {
            Some(c) => req = QueryRequest::builder().cursor(&c).build().unwrap(),
            None => return out,
        }
    }
}

/// A format-2 trace detail as format 3 renders it: the trace gains `userId`, `sessionId`,
/// `input` and `output` (all null), and every span becomes a root of kind UNKNOWN with status
/// OK and no payloads.
fn as_format3(mut old: Value) -> Value {
    let o = old.as_object_mut().unwrap();
    for k in ["userId", "sessionId", "input", "output"] {
        o.insert(k.into(), Value::Null);
    }
    for s in o["spans"].as_array_mut().unwrap() {
        let s = s.as_object_mut().unwrap();
        s.insert("parentId".into(), Value::Null);
        s.insert("kind".into(), json!("UNKNOWN"));
        s.insert("status".into(), json!("OK"));
        for k in ["statusMessage", "input", "output", "attributes"] {
            s.insert(k.into(), Value::Null);
        }
    }
    old
}

#[test]
fn a_format_2_file_is_upgraded_in_place_by_its_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(&dir);
    assert_eq!(format_version(&path), [2]);
    let pending_before = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let n = txn.open_table(PENDING).unwrap().iter().unwrap().count();
        n
    };
    assert!(pending_before > 0, "the fixture holds pending traces");

    let expected = expected();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
    for project in ["acme", "globex"] {
        let want: Vec<Value> = expected[project]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(as_format3)
            .collect();
        assert_eq!(all_details(&store, project), want, "project {project}");
    }
    // The key still works, and the upgraded store takes every kind of write.
    let key = expected["apiKey"].as_str().unwrap();
    assert_eq!(store.authenticate(key).unwrap(), "acme");
    let some_id = expected["acme"][0]["id"].as_str().unwrap().to_string();
    let body = format!(
        r#"{{"traces":[{{"id":"{some_id}","userId":"u1","input":{{"q":"hi"}},
            "spans":[{{"id":"new","name":"tool","kind":"TOOL","parentId":"s0",
                       "output":"done"}}]}}]}}"#
    );
    store.ingest_json("acme", body.as_bytes()).unwrap();
    let t = store.get_trace("acme", &some_id).unwrap();
    assert_eq!(t.trace.user_id.as_deref(), Some("u1"));
    assert_eq!(t.input.unwrap().as_json(), r#"{"q":"hi"}"#);
    let new = t.spans.iter().find(|s| s.id == "new").unwrap();
    assert_eq!(new.parent_id.as_deref(), Some("s0"));
    assert_eq!(new.output.as_ref().unwrap().as_json(), r#""done""#);
    assert_eq!(store.verify().unwrap(), vec![]);
    drop(store);
    assert_eq!(format_version(&path), [6]);
    // A second open finds format 5 and changes nothing.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
}

/// A format-1 file (derived from the format-2 fixture: format 1 had no write buffer, so its
/// pending traces are dropped and its project states lose `indexed_rows`) is upgraded through
/// format 2 to format 5 in one open.
#[test]
fn a_format_1_file_is_upgraded_through_format_2() {
    #[derive(serde::Deserialize)]
    struct V2 {
        _next_row: u32,
        indexed_rows: u32,
        live: u64,
        next_name_id: u32,
        next_tag_id: u32,
        generation: u64,
    }
    #[derive(serde::Serialize)]
    struct V1 {
        next_row: u32,
        live: u64,
        next_name_id: u32,
        next_tag_id: u32,
        generation: u64,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(&dir);
    let mut dropped = Vec::new();
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("format_version", [1u8].as_slice()).unwrap();
            let mut pending = txn.open_table(PENDING).unwrap();
            for e in pending.iter().unwrap() {
                let (k, _) = e.unwrap();
                dropped.push(k.value().1.to_string());
            }
            pending.retain(|_, _| false).unwrap();
            let mut states = txn.open_table(STATE).unwrap();
            let old: Vec<(u32, Vec<u8>)> = states
                .iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    (k.value(), v.value().to_vec())
                })
                .collect();
            for (k, v) in old {
                let s: V2 = postcard::from_bytes(&v[1..]).unwrap();
                let mut bytes = vec![1u8];
                bytes.extend(
                    postcard::to_allocvec(&V1 {
                        next_row: s.indexed_rows,
                        live: s.live,
                        next_name_id: s.next_name_id,
                        next_tag_id: s.next_tag_id,
                        generation: s.generation,
                    })
                    .unwrap(),
                );
                states.insert(k, bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    assert!(!dropped.is_empty());
    let expected = expected();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
    for project in ["acme", "globex"] {
        let want: Vec<Value> = expected[project]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !dropped.iter().any(|d| d == t["id"].as_str().unwrap()))
            .cloned()
            .map(as_format3)
            .collect();
        assert_eq!(all_details(&store, project), want, "project {project}");
    }
    drop(store);
    assert_eq!(format_version(&path), [6]);
}

/// A copy of `tests/fixtures/{name}.redb` (of format `version`), opened (and so upgraded) and
/// verified, with the answers in `{name}.json`.
fn open_fixture(name: &str, version: u8) -> (tempfile::TempDir, std::path::PathBuf, Value, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of(&format!("tests/fixtures/{name}.redb"), &dir);
    assert_eq!(format_version(&path), [version]);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("tests/fixtures/{name}.json")).unwrap(),
    )
    .unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
    (dir, path, expected, store)
}

/// The fixture's API key still authenticates; after a close the file is of the current
/// format and reopens verified.
fn key_survives_and_reopens(store: Store, expected: &Value, path: &std::path::Path) {
    let key = expected["apiKey"].as_str().unwrap();
    assert_eq!(store.authenticate(key).unwrap(), "acme");
    drop(store);
    assert_eq!(format_version(path), [6]);
    let store = Store::open(path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
}

fn copy_of(fixture: &str, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("old.redb");
    std::fs::copy(fixture, &path).unwrap();
    path
}

/// The ids of `details` (newest first) whose trace satisfies `keep`.
fn ids_where(details: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    details
        .iter()
        .filter(|d| keep(d))
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every id a query returns, walking all its pages.
fn walk_ids(store: &Store, project: &str, params: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut req = QueryRequest::from_params(params.iter().copied()).unwrap();
    loop {
        let page = store.query(project, &req).unwrap();
        out.extend(page.traces.iter().map(|t| t.id.clone()));
        match page.next_cursor {
            Some(c) => req = QueryRequest::builder().cursor(&c).build().unwrap(),
            None => return out,
        }
    }
}

#[test]
fn a_format_3_file_is_upgraded_and_its_user_session_and_metadata_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of("tests/fixtures/format3.redb", &dir);
    assert_eq!(format_version(&path), [3]);
    let pending_before = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let n = txn.open_table(PENDING).unwrap().iter().unwrap().count();
        n
    };
    assert!(pending_before > 0, "the fixture holds pending traces");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/format3.json").unwrap())
            .unwrap();

    let store = Store::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), vec![]);
    for project in ["acme", "globex"] {
        let want = expected[project].as_array().unwrap();
        // Format 4 renders every trace exactly as format 3 did.
        assert_eq!(&all_details(&store, project), want, "project {project}");
        // The new filters find exactly the traces whose stored fields say so, indexed and
        // pending alike.
        for user in ["user-0", "user-2", "user-4", "nobody"] {
            let want_ids = ids_where(want, |d| d["userId"] == user);
            assert_eq!(
                walk_ids(&store, project, &[("userId", user), ("limit", "3")]),
                want_ids,
                "{user}"
            );
        }
        for session in ["session-0", "session-6"] {
            let want_ids = ids_where(want, |d| d["sessionId"] == session);
            assert_eq!(
                walk_ids(&store, project, &[("sessionId", session)]),
                want_ids,
                "{session}"
            );
        }
        for (key, value, json_value) in [
            ("environment", "prod", json!("prod")),
            ("environment", "staging", json!("staging")),
            ("tier", "2.5", json!(2.5)),
            ("tier", "1", json!(1)),
            ("tier", "3", json!(3)),
            ("beta", "true", json!(true)),
            ("region", "null", json!(null)),
        ] {
            let want_ids = ids_where(want, |d| d["metadata"].get(key) == Some(&json_value));
            let param = format!("metadata.{key}");
            let got = walk_ids(&store, project, &[(param.as_str(), value), ("limit", "4")]);
            assert_eq!(got, want_ids, "{key}={value}");
            let page = store
                .query_params(project, [(param.as_str(), value), ("include", "total")])
                .unwrap();
            assert_eq!(page.total, Some(want_ids.len() as u64), "{key}={value}");
        }
        // Objects and arrays never match; pairs combine with every other filter.
        assert!(walk_ids(&store, project, &[("metadata.nested", "{\"a\":1}")]).is_empty());
        let want_ids = ids_where(want, |d| {
            d["metadata"]["environment"] == "prod" && d["status"] == "ERROR"
        });
        assert_eq!(
            walk_ids(
                &store,
                project,
                &[("metadata.environment", "prod"), ("status", "error")]
            ),
            want_ids
        );
    }
    key_survives_and_reopens(store, &expected, &path);
}

#[test]
fn a_format_4_file_is_upgraded_and_renders_as_before() {
    let (_dir, path, expected, store) = open_fixture("format4", 4);
    for project in ["acme", "globex"] {
        let want = expected[project].as_array().unwrap();
        // Format 5 renders every trace exactly as format 4 did.
        assert_eq!(&all_details(&store, project), want, "project {project}");
        // Every order walks the upgraded traces (indexed and pending) in its order, with a
        // filter through the bitmaps and a range through the records.
        for order in tracestore::Order::ALL.map(|o| o.as_str()) {
            let mut sorted: Vec<&Value> = want.iter().collect();
            sorted.sort_by(|a, b| order_cmp(order, a, b));
            let ids: Vec<String> = sorted
                .iter()
                .map(|d| d["id"].as_str().unwrap().into())
                .collect();
            assert_eq!(
                walk_ids(&store, project, &[("orderBy", order), ("limit", "4")]),
                ids,
                "{order}"
            );
            let errors: Vec<String> = sorted
                .iter()
                .filter(|d| d["status"] == "ERROR" && d["totalTokens"].as_u64().unwrap() >= 200)
                .map(|d| d["id"].as_str().unwrap().into())
                .collect();
            let got = walk_ids(
                &store,
                project,
                &[
                    ("orderBy", order),
                    ("status", "error"),
                    ("minTokens", "200"),
                    ("limit", "3"),
                ],
            );
            assert_eq!(got, errors, "{order} with filters");
        }
        check_span_conditions(&store, project, want);
    }
    key_survives_and_reopens(store, &expected, &path);
}

#[test]
fn a_format_5_file_gains_the_error_span_pairs_and_renders_as_before() {
    let (_dir, path, expected, store) = open_fixture("format5", 5);
    for project in ["acme", "globex"] {
        let want = expected[project].as_array().unwrap();
        assert_eq!(&all_details(&store, project), want, "project {project}");
        // The span conditions, the pairs with spanStatus=ERROR among them, under both plans
        // and with totals: the pair bitmaps built by the upgrade agree with the spans.
        check_span_conditions(&store, project, want);
    }
    key_survives_and_reopens(store, &expected, &path);
}

/// The documented order of two trace details (`Less`: `a` first): the key, then startTime and
/// id descending; `startTime.asc` by startTime and id ascending; running traces last.
fn order_cmp(order: &str, a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let start = |d: &Value| {
        (
            d["startTime"].as_str().unwrap().to_string(),
            d["id"].as_str().unwrap().to_string(),
        )
    };
    let newest = start(b).cmp(&start(a));
    let (field, dir) = order.split_once('.').unwrap();
    let value = |d: &Value| -> Option<rust_decimal::Decimal> {
        match field {
            "durationMs" => d["durationMs"].as_u64().map(rust_decimal::Decimal::from),
            "totalCost" => Some(d["totalCost"].as_str().unwrap().parse().unwrap()),
            _ => Some(d["totalTokens"].as_u64().unwrap().into()),
        }
    };
    if field == "startTime" {
        return if dir == "desc" {
            newest
        } else {
            newest.reverse()
        };
    }
    let by = match (value(a), value(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if dir == "desc" => y.cmp(&x),
        (Some(x), Some(y)) => x.cmp(&y),
    };
    by.then(newest)
}

type Params = Vec<(&'static str, &'static str)>;
type SpanTest = Box<dyn Fn(&Value) -> bool>;

/// The traces of `details` (newest first) that have a span meeting `keep`.
fn ids_with_span(details: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    ids_where(details, |d| {
        d["spans"].as_array().unwrap().iter().any(&keep)
    })
}

/// The span conditions and the `models` facet on an upgraded file find exactly what the old
/// build's rendering of every trace says (the upgrade indexed the stored spans; pending traces
/// were folded through this build's upsert).
fn check_span_conditions(store: &Store, project: &str, want: &[Value]) {
    fn text(s: &Value, f: &str) -> Option<String> {
        s[f].as_str().map(str::to_string)
    }
    let cases: Vec<(Params, SpanTest)> = vec![
        (
            vec![("spanModel", "gpt-4o")],
            Box::new(|s| text(s, "model").as_deref() == Some("gpt-4o")),
        ),
        (
            vec![("spanModel", "claude-sonnet")],
            Box::new(|s| s["model"] == "claude-sonnet"),
        ),
        (vec![("spanModel", "GPT-4o")], Box::new(|_| false)),
        (
            vec![("spanKind", "agent")],
            Box::new(|s| s["kind"] == "AGENT"),
        ),
        (
            vec![("spanKind", "TOOL")],
            Box::new(|s| s["kind"] == "TOOL"),
        ),
        (vec![("spanKind", "CHAIN")], Box::new(|_| false)),
        (
            vec![("spanStatus", "error")],
            Box::new(|s| s["status"] == "ERROR"),
        ),
        (
            vec![("spanName", "CHAT-1")],
            Box::new(move |s| text(s, "name").is_some_and(|n| n.to_lowercase().contains("chat-1"))),
        ),
        (
            vec![("spanName", "retry")],
            Box::new(|s| s["name"] == "retry"),
        ),
        (
            vec![("spanModel", "gpt-4o-mini"), ("spanStatus", "ERROR")],
            Box::new(|s| s["model"] == "gpt-4o-mini" && s["status"] == "ERROR"),
        ),
        (
            vec![("spanKind", "TOOL"), ("spanStatus", "ERROR")],
            Box::new(|s| s["kind"] == "TOOL" && s["status"] == "ERROR"),
        ),
        (
            vec![("spanKind", "LLM"), ("spanStatus", "ERROR")],
            Box::new(|s| s["kind"] == "LLM" && s["status"] == "ERROR"),
        ),
        (
            vec![("spanName", "chat"), ("spanStatus", "ERROR")],
            Box::new(|s| {
                s["name"].as_str().is_some_and(|n| n.contains("chat")) && s["status"] == "ERROR"
            }),
        ),
        (
            vec![
                ("spanModel", "gpt-4o"),
                ("spanKind", "LLM"),
                ("spanStatus", "ERROR"),
            ],
            Box::new(|s| s["model"] == "gpt-4o" && s["kind"] == "LLM" && s["status"] == "ERROR"),
        ),
        (
            vec![
                ("spanName", "chat"),
                ("spanModel", "claude-sonnet"),
                ("spanKind", "LLM"),
                ("spanStatus", "OK"),
            ],
            Box::new(|s| {
                s["name"].as_str().is_some_and(|n| n.contains("chat"))
                    && s["model"] == "claude-sonnet"
                    && s["kind"] == "LLM"
                    && s["status"] == "OK"
            }),
        ),
    ];
    let mut nonempty = 0;
    for (params, keep) in &cases {
        let want_ids = ids_with_span(want, keep);
        nonempty += usize::from(!want_ids.is_empty());
        let mut p = params.clone();
        p.push(("limit", "3"));
        assert_eq!(
            walk_ids(store, project, &p),
            want_ids,
            "{project} {params:?}"
        );
        for plan in [tracestore::PlanKind::Scan, tracestore::PlanKind::Bitmap] {
            let req = QueryRequest::from_params(params.iter().copied()).unwrap();
            let got: Vec<String> = store
                .query_with_plan(project, &req, plan)
                .unwrap()
                .traces
                .iter()
                .map(|t| t.id.clone())
                .collect();
            assert_eq!(got, want_ids, "{project} {params:?} {plan:?}");
        }
        let mut p = params.clone();
        p.push(("include", "total"));
        let page = store.query_params(project, p.iter().copied()).unwrap();
        assert_eq!(
            page.total,
            Some(want_ids.len() as u64),
            "{project} {params:?}"
        );
    }
    assert!(nonempty >= 8, "the fixture exercises most conditions");
    // models: per model, the traces with at least one span of it; count desc, value asc.
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for d in want {
        let mut models: Vec<&str> = d["spans"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["model"].as_str())
            .collect();
        models.sort();
        models.dedup();
        for m in models {
            *counts.entry(m.to_string()).or_default() += 1;
        }
    }
    let mut want_models: Vec<(String, u64)> = counts.into_iter().collect();
    want_models.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let page = store
        .query_params(project, [("include", "facets")])
        .unwrap();
    let got: Vec<(String, u64)> = page
        .facets
        .unwrap()
        .models
        .iter()
        .map(|m| (m.value.clone(), m.count))
        .collect();
    assert_eq!(got, want_models, "{project}");
    assert_eq!(
        got.len(),
        3,
        "{project}: gpt-4o, gpt-4o-mini and claude-sonnet"
    );
}
