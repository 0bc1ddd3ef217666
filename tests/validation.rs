//! Every 400 rule of the contract, as a table: each case lists the parameters and the fields the
//! error must name. Then every way to tamper with a cursor.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use support::simple::*;
use tracestore::{ErrorCode, QueryRequest, Status, Store};

type Params<'a> = Vec<(&'a str, &'a str)>;

/// Runs `params` through the one parser and checks the error names exactly `fields` (in any
/// order), or that it succeeds when `fields` is empty.
fn check(store: &Store, params: &[(&str, &str)], fields: &[&str]) {
    let got = store.query_params("p", params.iter().copied());
    match (got, fields.is_empty()) {
        (Ok(_), true) => {}
        (Ok(_), false) => panic!("{params:?} should fail on {fields:?}"),
        (Err(e), true) => panic!("{params:?} should pass, got {e}"),
        (Err(e), false) => {
            assert_eq!(e.code(), ErrorCode::Validation, "{params:?}");
            assert_eq!(e.code(), ErrorCode::Validation);
            let mut named: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
            named.sort();
            let mut want = fields.to_vec();
            want.sort();
            assert_eq!(named, want, "{params:?}: {e}");
            assert!(e.details().iter().all(|d| !d.message().is_empty()));
        }
    }
}

fn store() -> Store {
    let s = Store::in_memory().unwrap();
    let batch = (0..30)
        .map(|i| {
            input(&MTrace {
                id: format!("t{i:02}"),
                name: "support-agent".into(),
                status: if i % 3 == 0 {
                    Status::Error
                } else {
                    Status::Ok
                },
                start_ms: BASE_MS + i * 1000,
                tags: vec!["production".into()],
            })
        })
        .collect();
    s.ingest("p", batch).unwrap();
    s.ingest(
        "q",
        vec![input(&MTrace {
            id: "x".into(),
            name: "n".into(),
            status: Status::Ok,
            start_ms: BASE_MS,
            tags: vec![],
        })],
    )
    .unwrap();
    s
}

#[test]
fn the_contract_table() {
    let s = store();
    let long_name = "n".repeat(257);
    let ok_name = "é".repeat(256);
    let tags21 = (0..21)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let tags20 = (0..20)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let long_tag = "x".repeat(65);
    let long_id = "x".repeat(129);
    let long_meta_key = format!("metadata.{}", "k".repeat(65));
    let eleven_meta: Vec<(String, &str)> =
        (0..11).map(|i| (format!("metadata.k{i}"), "v")).collect();
    let cases: Vec<(Params, Vec<&str>)> = vec![
        // limit
        (vec![("limit", "0")], vec!["limit"]),
        (vec![("limit", "101")], vec!["limit"]),
        (vec![("limit", "-1")], vec!["limit"]),
        (vec![("limit", "abc")], vec!["limit"]),
        (vec![("limit", "5.0")], vec!["limit"]),
        (vec![("limit", "")], vec!["limit"]),
        (vec![("limit", "1")], vec![]),
        (vec![("limit", "100")], vec![]),
        // name
        (vec![("name", long_name.as_str())], vec!["name"]),
        (vec![("name", ok_name.as_str())], vec![]),
        (vec![("name", "")], vec![]),
        // status
        (vec![("status", "ok")], vec![]),
        (vec![("status", "Error")], vec![]),
        (vec![("status", "FAILED")], vec!["status"]),
        (vec![("status", "")], vec!["status"]),
        // tags
        (vec![("tags", tags21.as_str())], vec!["tags"]),
        (vec![("tags", tags20.as_str())], vec![]),
        (vec![("tags", long_tag.as_str())], vec!["tags"]),
        (vec![("tags", " production , ,production,")], vec![]),
        (vec![("tags", "")], vec![]),
        // anyTags and excludeTags: the rules of `tags`; empty means no filter
        (vec![("anyTags", tags21.as_str())], vec!["anyTags"]),
        (vec![("anyTags", tags20.as_str())], vec![]),
        (
            vec![("excludeTags", long_tag.as_str())],
            vec!["excludeTags"],
        ),
        (vec![("excludeTags", " a, ,a,")], vec![]),
        (vec![("anyTags", ""), ("excludeTags", "")], vec![]),
        // include: a comma-separated subset of total and facets, exact
        (vec![("include", "total")], vec![]),
        (vec![("include", "facets, total")], vec![]),
        (vec![("include", "total,total")], vec![]),
        (vec![("include", "")], vec!["include"]),
        (vec![("include", ",")], vec!["include"]),
        (vec![("include", "Total")], vec!["include"]),
        (vec![("include", "total,count")], vec!["include"]),
        (vec![("orderBy", "totalCost.desc")], vec![]),
        (vec![("orderBy", "startTime.asc")], vec![]),
        (vec![("orderBy", "")], vec!["orderBy"]),
        (vec![("orderBy", "totalcost.desc")], vec!["orderBy"]),
        (vec![("orderBy", "totalCost")], vec!["orderBy"]),
        (vec![("orderBy", "cost.desc")], vec!["orderBy"]),
        (vec![("orderBy", " startTime.desc")], vec!["orderBy"]),
        // userId and sessionId: exact ids; empty means no filter
        (vec![("userId", "user-7")], vec![]),
        (vec![("userId", "")], vec![]),
        (vec![("userId", "has space")], vec!["userId"]),
        (vec![("sessionId", long_id.as_str())], vec!["sessionId"]),
        (vec![("sessionId", "tab\there")], vec!["sessionId"]),
        // metadata.KEY: a key of [A-Za-z0-9_.-], at most 64 characters; at most 10 of them
        (vec![("metadata.environment", "prod")], vec![]),
        (vec![("metadata.a.b-c_9", "1"), ("metadata.x", "")], vec![]),
        (vec![("metadata.", "prod")], vec!["metadata."]),
        (vec![("metadata.bad key", "x")], vec!["metadata.bad key"]),
        (vec![("metadata.a=b", "x")], vec!["metadata.a=b"]),
        (
            vec![(long_meta_key.as_str(), "x")],
            vec![long_meta_key.as_str()],
        ),
        (
            eleven_meta.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            vec!["metadata"],
        ),
        (
            vec![("metadata.env", "a"), ("metadata.env", "b")],
            vec!["metadata.env"],
        ),
        // ranges: digits only (leading zeros allowed), decimals without sign or exponent
        (
            vec![("minDurationMs", "0"), ("maxDurationMs", "0100")],
            vec![],
        ),
        (vec![("minDurationMs", "")], vec!["minDurationMs"]),
        (vec![("maxDurationMs", "-1")], vec!["maxDurationMs"]),
        (vec![("minDurationMs", "1.5")], vec!["minDurationMs"]),
        (vec![("minDurationMs", "1e3")], vec!["minDurationMs"]),
        (vec![("minDurationMs", "+5")], vec!["minDurationMs"]),
        (
            vec![("minDurationMs", "99999999999999999999999")],
            vec!["minDurationMs"],
        ),
        (
            vec![("minDurationMs", "10"), ("maxDurationMs", "9")],
            vec!["maxDurationMs"],
        ),
        (vec![("minCost", "0.0034"), ("maxCost", "1")], vec![]),
        (vec![("minCost", "007.50")], vec![]),
        (vec![("minCost", "")], vec!["minCost"]),
        (vec![("minCost", "-0.1")], vec!["minCost"]),
        (vec![("maxCost", "1e-3")], vec!["maxCost"]),
        (vec![("maxCost", ".5")], vec!["maxCost"]),
        (vec![("maxCost", "5.")], vec!["maxCost"]),
        (
            vec![("minCost", "0.50"), ("maxCost", "0.4999")],
            vec!["maxCost"],
        ),
        (vec![("minCost", "0.50"), ("maxCost", "0.5")], vec![]),
        (vec![("minTokens", "5"), ("maxTokens", "5")], vec![]),
        (vec![("maxTokens", "x")], vec!["maxTokens"]),
        (
            vec![
                ("minTokens", "9"),
                ("maxTokens", "1"),
                ("minCost", "a"),
                ("maxDurationMs", ""),
            ],
            vec!["maxTokens", "minCost", "maxDurationMs"],
        ),
        // span conditions: spanName at most 256 characters, spanModel exact, spanKind and
        // spanStatus enum values in any case; an empty spanName or spanModel means no filter,
        // an empty spanKind or spanStatus is an error
        (vec![("spanName", long_name.as_str())], vec!["spanName"]),
        (vec![("spanName", ok_name.as_str())], vec![]),
        (vec![("spanName", "")], vec![]),
        (vec![("spanModel", "")], vec![]),
        (vec![("spanModel", "gpt-4o")], vec![]),
        (vec![("spanKind", "llm")], vec![]),
        (vec![("spanKind", "Retriever")], vec![]),
        (vec![("spanKind", "EVALUATOR")], vec![]),
        (vec![("spanKind", "FUNCTION")], vec!["spanKind"]),
        (vec![("spanKind", "")], vec!["spanKind"]),
        (vec![("spanKind", " LLM")], vec!["spanKind"]),
        (vec![("spanStatus", "error")], vec![]),
        (vec![("spanStatus", "FAILED")], vec!["spanStatus"]),
        (vec![("spanStatus", "")], vec!["spanStatus"]),
        (
            vec![("spanName", "chat"), ("spanName", "chat")],
            vec!["spanName"],
        ),
        (
            vec![
                ("spanName", long_name.as_str()),
                ("spanModel", ""),
                ("spanKind", "robot"),
                ("spanStatus", "maybe"),
                ("status", "x"),
            ],
            vec!["spanName", "spanKind", "spanStatus", "status"],
        ),
        // dates
        (vec![("startDate", "2026-03-01")], vec![]),
        (vec![("startDate", "2026-03-01T00:00:00Z")], vec![]),
        (
            vec![("startDate", "2026-03-01T00:00:00.123456+05:30")],
            vec![],
        ),
        (
            vec![("startDate", "2026-03-01T00:00:00")],
            vec!["startDate"],
        ),
        (vec![("startDate", "yesterday")], vec!["startDate"]),
        (vec![("startDate", "2026-02-30")], vec!["startDate"]),
        (vec![("endDate", "")], vec!["endDate"]),
        (
            vec![("startDate", "2026-03-02"), ("endDate", "2026-03-01")],
            vec!["endDate"],
        ),
        (
            vec![("startDate", "2026-03-01"), ("endDate", "2026-03-01")],
            vec![],
        ),
        // unknown and repeated parameters
        (vec![("start_date", "2026-03-01")], vec!["start_date"]),
        (vec![("Limit", "5")], vec!["Limit"]),
        (vec![("status", "OK"), ("status", "ERROR")], vec!["status"]),
        (vec![("limit", "5"), ("limit", "5")], vec!["limit"]),
        // every offending parameter at once
        (
            vec![
                ("limit", "0"),
                ("status", "x"),
                ("startDate", "y"),
                ("bogus", "1"),
                ("cursor", "!!"),
            ],
            vec!["limit", "status", "startDate", "bogus", "cursor"],
        ),
        (
            vec![
                ("anyTags", tags21.as_str()),
                ("include", "everything"),
                ("excludeTags", long_tag.as_str()),
            ],
            vec!["anyTags", "include", "excludeTags"],
        ),
        (
            vec![("orderBy", "newest"), ("limit", "0"), ("minCost", "-1")],
            vec!["orderBy", "limit", "minCost"],
        ),
        // cursors that were never issued
        (vec![("cursor", "")], vec!["cursor"]),
        (
            vec![("cursor", "eyJpZCI6Imxhc3QtdHJhY2UtaWQifQ")],
            vec!["cursor"],
        ),
        (vec![("cursor", "not base64 !")], vec!["cursor"]),
        (
            vec![("cursor", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            vec!["cursor"],
        ),
    ];
    for (params, fields) in &cases {
        check(&s, params, fields);
    }
    // The unknown-parameter message lists the known ones.
    let e = s.query_params("p", [("start_date", "x")]).unwrap_err();
    assert!(e.details()[0].message().contains("startDate"), "{e}");
}

fn real_cursor(s: &Store, project: &str, params: &[(&str, &str)]) -> String {
    s.query_params(project, params.iter().copied())
        .unwrap()
        .next_cursor
        .expect("a next page")
}

fn assert_cursor_rejected(s: &Store, project: &str, token: &str) {
    let e = s.query_params(project, [("cursor", token)]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation, "{token}");
    assert_eq!(e.details().len(), 1);
    assert_eq!(e.details()[0].field(), "cursor");
    // The typed path agrees.
    if let Ok(req) = QueryRequest::builder().cursor(token).build() {
        let e = s.query(project, &req).unwrap_err();
        assert_eq!(e.details()[0].field(), "cursor");
    }
}

#[test]
fn every_flipped_bit_of_a_real_cursor_is_rejected() {
    let s = store();
    for params in [
        &[("limit", "2")][..],
        &[("limit", "1"), ("status", "ERROR"), ("tags", "production")],
    ] {
        let c = real_cursor(&s, "p", params);
        assert!(s.query_params("p", [("cursor", c.as_str())]).is_ok());
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut m = raw.clone();
                m[i] ^= 1 << bit;
                assert_cursor_rejected(&s, "p", &URL_SAFE_NO_PAD.encode(&m));
            }
        }
        // Truncation at every length, and extension.
        for n in 0..c.len() {
            assert_cursor_rejected(&s, "p", &c[..n.max(1)]);
        }
        assert_cursor_rejected(&s, "p", &format!("{c}A"));
        assert_cursor_rejected(&s, "p", &format!("{c}AAAA"));
        // Padding or a standard-alphabet character makes it not ours either.
        assert_cursor_rejected(&s, "p", &format!("{c}="));
        // Another project's cursor.
        assert_cursor_rejected(&s, "q", &c);
        assert_cursor_rejected(&s, "nonexistent", &c);
        // An unknown version.
        let mut v = raw.clone();
        v[0] = 2;
        assert_cursor_rejected(&s, "p", &URL_SAFE_NO_PAD.encode(&v));
    }
}

#[test]
fn a_cursor_from_another_store_is_rejected() {
    let a = store();
    let b = store();
    let c = real_cursor(&a, "p", &[("limit", "3")]);
    assert_cursor_rejected(&b, "p", &c);
}

#[test]
fn changed_filters_with_a_cursor_are_rejected() {
    let s = store();
    let c = real_cursor(&s, "p", &[("limit", "2"), ("status", "ERROR")]);
    for other in [
        vec![("status", "OK")],
        vec![("status", "ERROR"), ("name", "support")],
        vec![("tags", "production")],
        vec![("startDate", "2026-01-01")],
        vec![("anyTags", "production")],
        vec![("excludeTags", "v2")],
    ] {
        let mut params = other.clone();
        params.push(("cursor", c.as_str()));
        let e = s.query_params("p", params.iter().copied()).unwrap_err();
        assert_eq!(e.details()[0].field(), "cursor", "{other:?}");
    }
    // The same filters (any case, any tag order), a new limit and `include` are fine.
    assert!(s
        .query_params(
            "p",
            [
                ("status", "error"),
                ("cursor", c.as_str()),
                ("limit", "7"),
                ("include", "total")
            ]
        )
        .is_ok());
    let c = real_cursor(
        &s,
        "p",
        &[
            ("limit", "1"),
            ("anyTags", "v2,production"),
            ("excludeTags", "x"),
        ],
    );
    assert!(s
        .query_params(
            "p",
            [("anyTags", "production, v2,v2"), ("cursor", c.as_str())]
        )
        .is_ok());
}

#[test]
fn bad_project_names_and_ids_never_panic() {
    let s = store();
    for p in ["", "has space", &"x".repeat(129), "tab\t"] {
        assert_eq!(
            s.query_params(p, [("limit", "1")]).unwrap_err().code(),
            ErrorCode::Validation
        );
    }
    for id in ["", "nope", &"x".repeat(500), "new\nline"] {
        assert_eq!(
            s.get_trace("p", id).unwrap_err().code(),
            ErrorCode::NotFound
        );
        assert_eq!(
            s.delete_trace("p", id).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }
    // Another project's id is the same NOT_FOUND as a nonexistent one.
    let a = s.get_trace("q", "t01").unwrap_err();
    let b = s.get_trace("q", "never").unwrap_err();
    assert_eq!((a.code(), a.to_string()), (b.code(), b.to_string()));
}

/// Past `MAX_METADATA_VALUES_PER_KEY` distinct values, a key's new values are not indexed, and
/// a filter on it tests the stored metadata: still exact, for old and new values, on every
/// plan, with totals; keys under the cap stay on their bitmaps.
#[test]
fn a_metadata_key_over_its_value_cap_stays_exact() {
    let store = Store::builder()
        .durability(tracestore::Durability::Deferred)
        .in_memory()
        .unwrap();
    let cap = tracestore::limits::MAX_METADATA_VALUES_PER_KEY as usize;
    let n = cap + 25;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(serde_json::json!({
            "id": format!("r{i:06}"), "name": "n", "startTime": "2026-03-01T00:00:00Z",
            "metadata": {"requestId": i, "env": if i % 2 == 0 { "prod" } else { "dev" }},
        }));
        if batch.len() == 1000 || i == n - 1 {
            let body = serde_json::json!({ "traces": std::mem::take(&mut batch) }).to_string();
            store.ingest_json("p", body.as_bytes()).unwrap();
        }
    }
    for i in [0, 7, cap - 1, cap, cap + 3, n - 1] {
        let v = i.to_string();
        let page = store
            .query_params(
                "p",
                [("metadata.requestId", v.as_str()), ("include", "total")],
            )
            .unwrap();
        let ids: Vec<&str> = page.traces.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, [format!("r{i:06}")], "requestId={i}");
        assert_eq!(page.total, Some(1));
        let with_env = store
            .query_params(
                "p",
                [
                    ("metadata.requestId", v.as_str()),
                    ("metadata.env", "dev"),
                    ("include", "total"),
                ],
            )
            .unwrap();
        assert_eq!(
            with_env.total,
            Some((i % 2) as u64),
            "requestId={i} env=dev"
        );
    }
    let page = store
        .query_params(
            "p",
            [("metadata.requestId", "no-such"), ("include", "total")],
        )
        .unwrap();
    assert_eq!(page.total, Some(0));
    let page = store
        .query_params("p", [("metadata.env", "prod"), ("include", "total")])
        .unwrap();
    assert_eq!(page.total, Some(n.div_ceil(2) as u64));
    assert!(store.verify().unwrap().is_empty());
}

/// Range filters: inclusive bounds on durationMs, totalCost (exact decimals) and totalTokens;
/// a running trace never matches a duration bound; cursors carry the ranges.
#[test]
fn range_filters_are_inclusive_and_exact() {
    let store = Store::in_memory().unwrap();
    let body = serde_json::json!({"traces": [
        {"id": "fast", "name": "n", "startTime": "2026-03-01T00:00:00Z", "endTime": "2026-03-01T00:00:00.100Z",
         "spans": [{"id": "s", "cost": "0.10", "inputTokens": 10, "outputTokens": 5}]},
        {"id": "slow", "name": "n", "startTime": "2026-03-01T00:00:01Z", "endTime": "2026-03-01T00:00:03Z",
         "spans": [{"id": "s", "cost": "0.3", "inputTokens": 100, "outputTokens": 0}]},
        {"id": "running", "name": "n", "startTime": "2026-03-01T00:00:02Z",
         "spans": [{"id": "s", "cost": "0.1000001", "inputTokens": 15}]},
    ]})
    .to_string();
    store.ingest_json("p", body.as_bytes()).unwrap();
    let ids = |params: &[(&str, &str)]| -> Vec<String> {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("include", "total"));
        let page = store.query_params("p", all).unwrap();
        assert_eq!(page.total, Some(page.traces.len() as u64));
        page.traces.iter().map(|t| t.id.clone()).collect()
    };
    assert_eq!(ids(&[("minDurationMs", "100")]), ["slow", "fast"]);
    assert_eq!(ids(&[("maxDurationMs", "100")]), ["fast"]);
    assert_eq!(
        ids(&[("minDurationMs", "101"), ("maxDurationMs", "2000")]),
        ["slow"]
    );
    assert_eq!(
        ids(&[("minDurationMs", "0")]),
        ["slow", "fast"],
        "running never matches"
    );
    assert_eq!(ids(&[("minCost", "0.1")]), ["running", "slow", "fast"]);
    assert_eq!(ids(&[("maxCost", "0.100")]), ["fast"]);
    assert_eq!(
        ids(&[("minCost", "0.1000001"), ("maxCost", "0.2")]),
        ["running"]
    );
    assert_eq!(
        ids(&[("minTokens", "15"), ("maxTokens", "15")]),
        ["running", "fast"]
    );
    assert_eq!(ids(&[("maxTokens", "14")]), Vec::<String>::new());
    // A cursor carries its ranges; a different range beside it is refused.
    let page = store
        .query_params("p", [("minCost", "0.1"), ("limit", "1")])
        .unwrap();
    let c = page.next_cursor.unwrap();
    let next = store.query_params("p", [("cursor", c.as_str())]).unwrap();
    assert_eq!(
        next.traces
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["slow", "fast"]
    );
    assert!(store
        .query_params("p", [("cursor", c.as_str()), ("minCost", "0.10")])
        .is_ok());
    let e = store
        .query_params("p", [("cursor", c.as_str()), ("minCost", "0.2")])
        .unwrap_err();
    assert_eq!(e.details()[0].field(), "cursor");
}

#[test]
fn span_conditions_with_a_cursor_must_agree_after_normalization() {
    let s = Store::in_memory().unwrap();
    let traces: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({"id": format!("t{i}"), "name": "agent",
                "startTime": ts(i * 1000).to_string(),
                "spans": [{"id": "a", "name": "Chat-Completion", "model": "gpt-4o", "kind": "LLM",
                           "status": "ERROR"}]})
        })
        .collect();
    s.ingest_json(
        "p",
        serde_json::json!({"traces": traces}).to_string().as_bytes(),
    )
    .unwrap();
    let first = [
        ("limit", "2"),
        ("spanName", "CHAT"),
        ("spanModel", "gpt-4o"),
        ("spanKind", "llm"),
        ("spanStatus", "Error"),
    ];
    let c = real_cursor(&s, "p", &first);
    // The same conditions in another case (spanName lowercased; kind and status are enums),
    // or left out, continue the walk.
    let page = s
        .query_params(
            "p",
            [
                ("cursor", c.as_str()),
                ("spanName", "chat"),
                ("spanKind", "LLM"),
                ("spanStatus", "ERROR"),
            ],
        )
        .unwrap();
    // The limit is not carried: the other four follow.
    assert_eq!(page.traces.len(), 4);
    // A different condition, or a model in another case (exact), is refused.
    for other in [
        vec![("spanName", "completion")],
        vec![("spanModel", "GPT-4o")],
        vec![("spanModel", "gpt-4o-mini")],
        vec![("spanKind", "TOOL")],
        vec![("spanStatus", "OK")],
    ] {
        let mut params = other.clone();
        params.push(("cursor", c.as_str()));
        let e = s.query_params("p", params.iter().copied()).unwrap_err();
        assert_eq!(e.details()[0].field(), "cursor", "{other:?}");
    }
    // A cursor without span conditions refuses them.
    let plain = real_cursor(&s, "p", &[("limit", "2")]);
    let e = s
        .query_params("p", [("cursor", plain.as_str()), ("spanKind", "LLM")])
        .unwrap_err();
    assert_eq!(e.details()[0].field(), "cursor");
}
