//! Key management over HTTP (the admin routes and their 401/403 answers, revocation taking
//! effect on the very next request) and retention (`DELETE /api/v1/traces?before=`).

mod common;

use common::{key, memory_store, trace_json, Resp, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tracestore::Store;
use tracestore_server::ServerConfig;

const KEYS: &str = "/api/v1/admin/keys";

fn admin_key(store: &Store) -> String {
    store.create_admin_key().expect("admin key").key
}

async fn create(server: &TestServer, admin: &str, body: Value) -> Resp {
    server.post(KEYS, admin, body.to_string()).await
}

fn ingest(store: &Store, project: &str, items: &[(&str, &str)]) {
    let traces: Vec<Value> = items
        .iter()
        .map(|(id, start)| trace_json(id, "support-agent", start, &["production"]))
        .collect();
    store
        .ingest_json(project, json!({ "traces": traces }).to_string().as_bytes())
        .expect("ingest");
}

#[tokio::test]
async fn admin_routes_create_list_and_revoke_keys() {
    let store = memory_store();
    let admin = admin_key(&store);
    let server = TestServer::start(store.clone()).await;

    // A project key: 201, its plaintext once, and it works on the project's routes.
    let r = create(&server, &admin, json!({"project": "acme"})).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    assert!(r.body["error"].is_null());
    let made = &r.body["data"];
    let project_key = made["key"].as_str().expect("key").to_string();
    let prefix = made["prefix"].as_str().expect("prefix").to_string();
    assert!(project_key.starts_with(&format!("ts_{prefix}_")), "{made}");
    assert_eq!(
        (&made["project"], &made["admin"]),
        (&json!("acme"), &json!(false))
    );
    r.rate();
    let r = server.get("/api/v1/traces", Some(&project_key)).await;
    assert_eq!(r.data()["traces"], json!([]));

    // An admin key: it manages keys too.
    let r = create(&server, &admin, json!({"admin": true})).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    assert_eq!(
        (&r.body["data"]["project"], &r.body["data"]["admin"]),
        (&json!(""), &json!(true))
    );
    let second_admin = r.body["data"]["key"].as_str().unwrap().to_string();
    let r = create(
        &server,
        &second_admin,
        json!({"project": "globex", "admin": false}),
    )
    .await;
    assert_eq!(r.status, 201, "{:#}", r.body);

    // The list: every key's prefix, project and dates, never a key.
    let r = server.get(KEYS, Some(&admin)).await;
    let keys = r.data()["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 4, "{keys:#?}");
    for k in &keys {
        for field in ["prefix", "project", "admin", "createdAt", "revokedAt"] {
            assert!(k.get(field).is_some(), "{field} in {k}");
        }
        assert!(k.get("key").is_none());
        assert!(k["revokedAt"].is_null());
    }
    let text = r.body.to_string();
    for plaintext in [&admin, &project_key, &second_admin] {
        assert!(
            !text.contains(plaintext.as_str()),
            "a key's plaintext is listed"
        );
    }
    let listed: Vec<(&str, bool)> = keys
        .iter()
        .map(|k| {
            (
                k["project"].as_str().unwrap(),
                k["admin"].as_bool().unwrap(),
            )
        })
        .collect();
    for want in [("", true), ("acme", false), ("globex", false)] {
        assert!(listed.contains(&want), "{want:?} in {listed:?}");
    }

    // Revoke by the printed prefix, and by it with `ts_`: one key each, then 404.
    let r = server.delete(&format!("{KEYS}/{prefix}"), &admin).await;
    assert_eq!(r.data()["revoked"], 1);
    let r = server.delete(&format!("{KEYS}/{prefix}"), &admin).await;
    assert_eq!(
        (r.status, r.error_code()),
        (404, "NOT_FOUND"),
        "{:#}",
        r.body
    );
    let r = server.delete(&format!("{KEYS}/ts_{prefix}"), &admin).await;
    assert_eq!(r.status, 404, "already revoked");
    let other = store.create_api_key("acme").expect("key");
    let r = server
        .delete(&format!("{KEYS}/ts_{}", other.prefix), &admin)
        .await;
    assert_eq!(r.data()["revoked"], 1);
    for unknown in ["00000000", "ts_00000000", "ts_", "not-a-prefix", "%FF"] {
        let r = server.delete(&format!("{KEYS}/{unknown}"), &admin).await;
        assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"), "{unknown}");
    }

    // The list shows the revocations.
    let r = server.get(KEYS, Some(&admin)).await;
    let revoked: Vec<&str> = r.data()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revokedAt"].is_string())
        .map(|k| k["prefix"].as_str().unwrap())
        .collect();
    let mut want = vec![prefix.as_str(), other.prefix.as_str()];
    let mut got = revoked.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_key_revoked_over_http_is_refused_on_its_very_next_request() {
    let store = memory_store();
    let admin = admin_key(&store);
    let project = store.create_api_key("acme").expect("key");
    let server = TestServer::start(store.clone()).await;
    let r = server.get("/api/v1/traces", Some(&project.key)).await;
    assert_eq!(r.status, 200);

    let r = server
        .delete(&format!("{KEYS}/ts_{}", project.prefix), &admin)
        .await;
    assert_eq!(r.data()["revoked"], 1);
    for path in ["/api/v1/traces", "/api/v1/traces/anything"] {
        let r = server.get(path, Some(&project.key)).await;
        assert_eq!((r.status, r.error_code()), (401, "UNAUTHORIZED"), "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = server
        .post("/api/v1/traces", &project.key, r#"{"traces":[]}"#)
        .await;
    assert_eq!(r.status, 401);

    // An admin key revoked (here by itself) stops at once too.
    let prefix = &admin[3..11];
    let r = server.delete(&format!("{KEYS}/{prefix}"), &admin).await;
    assert_eq!(r.data()["revoked"], 1);
    let r = server.get(KEYS, Some(&admin)).await;
    assert_eq!((r.status, r.error_code()), (401, "UNAUTHORIZED"));
}

#[tokio::test]
async fn admin_routes_take_only_admin_keys_and_project_routes_only_project_keys() {
    let store = memory_store();
    let admin = admin_key(&store);
    let project = key(&store, "acme");
    ingest(&store, "acme", &[("t1", "2026-03-01T10:00:00Z")]);
    let config = ServerConfig {
        rate_limit: 5,
        rate_window: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(store.clone(), config).await;
    let unknown = format!("{}X", &admin[..admin.len() - 1]);
    let admin_requests = |k: Option<&str>| {
        let c = &server.client;
        let reqs = vec![
            (
                "POST keys",
                c.post(server.url(KEYS))
                    .header("content-type", "application/json")
                    .body(r#"{"project":"acme"}"#),
            ),
            ("GET keys", c.get(server.url(KEYS))),
            (
                "DELETE keys/{prefix}",
                c.delete(server.url(&format!("{KEYS}/{}", &admin[3..11]))),
            ),
        ];
        reqs.into_iter()
            .map(|(what, r)| match k {
                Some(k) => (what, r.bearer_auth(k)),
                None => (what, r),
            })
            .collect::<Vec<_>>()
    };
    for (who, k, status, code) in [
        ("no key", None, 401, "UNAUTHORIZED"),
        (
            "an unknown key",
            Some(unknown.as_str()),
            401,
            "UNAUTHORIZED",
        ),
        ("a project key", Some(project.as_str()), 403, "FORBIDDEN"),
    ] {
        for (what, req) in admin_requests(k) {
            let r = server.send(req).await;
            assert_eq!(
                (r.status, r.error_code()),
                (status, code),
                "{who} on {what}: {:#}",
                r.body
            );
            if status == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Bearer"),
                    "{who} on {what}"
                );
            } else {
                assert!(r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("admin key"));
            }
            // Refused requests consume no quota.
            assert_eq!(r.rate().1, 5, "{who} on {what}");
        }
    }
    // An admin key on every project route: 403, nothing read, written or deleted.
    let c = &server.client;
    let project_requests = vec![
        ("GET traces", c.get(server.url("/api/v1/traces"))),
        ("GET traces/{id}", c.get(server.url("/api/v1/traces/t1"))),
        (
            "DELETE traces/{id}",
            c.delete(server.url("/api/v1/traces/t1")),
        ),
        (
            "DELETE traces?before",
            c.delete(server.url("/api/v1/traces?before=9999-01-01")),
        ),
        (
            "POST traces",
            c.post(server.url("/api/v1/traces"))
                .header("content-type", "application/json")
                .body(
                    json!({"traces": [trace_json("t2", "x", "2026-03-02T00:00:00Z", &[])]})
                        .to_string(),
                ),
        ),
    ];
    for (what, req) in project_requests {
        let r = server.send(req.bearer_auth(&admin)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (403, "FORBIDDEN"),
            "{what}: {:#}",
            r.body
        );
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project key"));
        assert_eq!(r.rate().1, 5, "{what}");
    }
    assert!(store.get_trace("acme", "t1").is_ok());
    assert!(store.get_trace("acme", "t2").is_err());
    // Each kind of key still works where it belongs, and is then counted.
    let r = server.get(KEYS, Some(&admin)).await;
    assert_eq!((r.status, r.rate().1), (200, 4));
    let r = server.get("/api/v1/traces", Some(&project)).await;
    assert_eq!((r.status, r.rate().1), (200, 4));
}

#[tokio::test]
async fn create_key_refuses_bad_bodies_naming_the_field() {
    let store = memory_store();
    let admin = admin_key(&store);
    let server = TestServer::start(store.clone()).await;
    let before = store.list_api_keys().unwrap().len();
    for (body, field) in [
        ("{}", "project"),
        (r#"{"admin": false}"#, "project"),
        (r#"{"project": "acme", "admin": true}"#, "admin"),
        (r#"{"project": 7}"#, "project"),
        (r#"{"project": ""}"#, "project"),
        (r#"{"project": "has space"}"#, "project"),
        (r#"{"admin": "yes"}"#, "admin"),
        (r#"{"project": "acme", "role": "x"}"#, "role"),
        ("[]", "body"),
        ("not json", "body"),
        ("", "body"),
    ] {
        let r = server.post(KEYS, &admin, body).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "VALIDATION_ERROR"),
            "{body}: {:#}",
            r.body
        );
        assert_eq!(r.detail_fields(), vec![field], "{body}");
    }
    // Not JSON at all: 415; a declared body far over the admin limit: 413.
    let r = server
        .send(
            server
                .client
                .post(server.url(KEYS))
                .bearer_auth(&admin)
                .header("content-type", "text/plain")
                .body(r#"{"project":"acme"}"#),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    let big = format!(r#"{{"project":"acme","pad":"{}"}}"#, "x".repeat(100_000));
    let r = server.post(KEYS, &admin, big).await;
    assert_eq!((r.status, r.error_code()), (413, "PAYLOAD_TOO_LARGE"));
    assert_eq!(
        store.list_api_keys().unwrap().len(),
        before,
        "no key was made"
    );
}

async fn ids(server: &TestServer, k: &str) -> Vec<String> {
    common::walk_ids(server, k, "limit=100").await
}

#[tokio::test]
async fn retention_deletes_the_traces_before_the_cutoff_and_reports_the_count() {
    let store = memory_store();
    let acme = key(&store, "acme");
    let other = key(&store, "other");
    ingest(
        &store,
        "acme",
        &[
            ("a1", "2026-03-01T00:00:00Z"),
            ("a2", "2026-03-09T23:59:59.999Z"),
            ("a3", "2026-03-10T00:00:00Z"),
            ("a4", "2026-03-20T12:00:00Z"),
            ("a5", "2026-03-20T12:00:00.001Z"),
        ],
    );
    ingest(&store, "other", &[("o1", "2026-03-01T00:00:00Z")]);
    let server = TestServer::start(store.clone()).await;

    // A bare date is midnight UTC; the trace at midnight stays.
    let r = server
        .delete("/api/v1/traces?before=2026-03-10", &acme)
        .await;
    assert_eq!(r.data()["deleted"], 2, "{:#}", r.body);
    r.rate();
    assert_eq!(ids(&server, &acme).await, vec!["a5", "a4", "a3"]);
    for gone in ["a1", "a2"] {
        let r = server
            .get(&format!("/api/v1/traces/{gone}"), Some(&acme))
            .await;
        assert_eq!(r.status, 404, "{gone}");
    }
    // Nothing left before it: 0.
    let r = server
        .delete("/api/v1/traces?before=2026-03-10", &acme)
        .await;
    assert_eq!(r.data()["deleted"], 0);
    // RFC 3339 with an offset; sub-millisecond digits count: a4 (.000) started before
    // 12:00:00.0005Z, a5 (.001) did not.
    let r = server
        .delete(
            "/api/v1/traces?before=2026-03-20T13:00:00.0005%2B01:00",
            &acme,
        )
        .await;
    assert_eq!(r.data()["deleted"], 2, "{:#}", r.body);
    assert_eq!(ids(&server, &acme).await, vec!["a5"]);
    // Another project's traces are another project's.
    assert_eq!(ids(&server, &other).await, vec!["o1"]);
    let r = server
        .delete("/api/v1/traces?before=9999-12-31", &acme)
        .await;
    assert_eq!(r.data()["deleted"], 1);
    assert!(ids(&server, &acme).await.is_empty());
    assert_eq!(ids(&server, &other).await, vec!["o1"]);
    assert!(store.verify().unwrap().is_empty());
}

#[tokio::test]
async fn retention_refuses_a_missing_bad_or_unknown_parameter_by_name() {
    let store = memory_store();
    let acme = key(&store, "acme");
    ingest(&store, "acme", &[("a1", "2026-03-01T00:00:00Z")]);
    let store: Arc<Store> = store;
    let server = TestServer::start(store.clone()).await;
    for (query, fields) in [
        ("", vec!["before"]),
        ("?", vec!["before"]),
        ("?before=", vec!["before"]),
        ("?before=yesterday", vec!["before"]),
        ("?before=2026-13-01", vec!["before"]),
        ("?before=1969-12-31", vec!["before"]),
        ("?before=2026-03-14T10:00:00", vec!["before"]),
        ("?before=2026-03-01&before=2026-03-02", vec!["before"]),
        ("?before=2026-03-01&limit=5", vec!["limit"]),
        ("?startDate=2026-03-01", vec!["startDate", "before"]),
        ("?before=%FF", vec!["before"]),
        ("?before=x&=y", vec!["", "before"]),
    ] {
        let r = server
            .delete(&format!("/api/v1/traces{query}"), &acme)
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "VALIDATION_ERROR"),
            "{query}: {:#}",
            r.body
        );
        assert_eq!(r.detail_fields(), fields, "{query}: {:#}", r.body);
    }
    let r = server.delete("/api/v1/traces", &acme).await;
    let msg = r.body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(msg.contains("required"), "{msg}");
    assert!(store.get_trace("acme", "a1").is_ok(), "nothing was deleted");
}
