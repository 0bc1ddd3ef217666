//! The `tracestore` binary: keys, import, query, and `serve --demo` end to end.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tracestore");

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn failed(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

fn trace_line(id: &str, status: &str, start: &str) -> String {
    json!({
        "id": id, "name": "support-agent", "status": status, "startTime": start, "endTime": start,
        "tags": ["production", "v2"],
        "spans": [{"id": "s1", "model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.0034"}],
        "scores": [{"id": "q", "name": "quality", "value": 1}]
    })
    .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn keys_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let key = ok(run(&db, &["keys", "create", "--project", "acme"]))
        .trim()
        .to_string();
    assert!(
        key.starts_with("ts_") && !key.contains(char::is_whitespace),
        "{key}"
    );
    let prefix = &key[3..11];
    let list = ok(run(&db, &["keys", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("PREFIX") && lines[0].contains("REVOKED"),
        "{list}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[1], row[3]), (prefix, "acme", "-"), "{list}");
    assert!(!list.contains(&key), "the key is never listed");

    ok(run(&db, &["keys", "revoke", prefix]));
    let list = ok(run(&db, &["keys", "list"]));
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(row[3].starts_with("20"), "a revocation date: {list}");
    assert!(failed(run(&db, &["keys", "revoke", prefix])).contains("no active API key"));
    // Commands that only read refuse to create a database.
    let missing = dir.path().join("missing.redb");
    assert!(failed(run(&missing, &["keys", "list"])).contains("no database"));
    assert!(!missing.exists());
}

#[test]
fn import_jsonl_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let jsonl = [
        trace_line("a", "OK", "2026-03-14T10:00:00Z"),
        String::new(),
        trace_line("b", "ERROR", "2026-03-14T11:00:00Z"),
        trace_line("c", "OK", "2026-03-14T12:00:00Z"),
    ]
    .join("\n");
    let file = write(dir.path(), "traces.jsonl", &jsonl);
    let out = ok(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "acme"],
    ));
    assert!(
        out.contains("imported 3 trace(s)")
            && out.contains("3 created")
            && out.contains("3 span(s)"),
        "{out}"
    );

    // --json prints the endpoint's envelope.
    let out = ok(run(
        &db,
        &["query", "--project", "acme", "--limit", "2", "--json"],
    ));
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null());
    // Field order as the endpoint sends it: data before error, traces before nextCursor.
    let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} in {out}"));
    assert!(
        pos("\"data\"") < pos("\"traces\"")
            && pos("\"traces\"") < pos("\"nextCursor\"")
            && pos("\"nextCursor\"") < pos("\"error\""),
        "{out}"
    );
    assert!(
        pos("\"id\"") < pos("\"name\"") && pos("\"name\"") < pos("\"status\""),
        "{out}"
    );
    let ids: Vec<&str> = v["data"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c", "b"]);
    assert_eq!(v["data"]["traces"][0]["totalCost"], "0.0034");
    let cursor = v["data"]["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let out = ok(run(
        &db,
        &["query", "--project", "acme", "--cursor", &cursor, "--json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["traces"][0]["id"], "a");
    assert!(v["data"]["nextCursor"].is_null());

    // Filters as flags.
    let out = ok(run(
        &db,
        &[
            "query",
            "--project",
            "acme",
            "--status",
            "error",
            "--tags",
            "production,v2",
            "--start-date",
            "2026-03-14",
            "--end-date",
            "2026-03-15T00:00:00Z",
            "--name",
            "SUPPORT",
            "--json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["traces"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["traces"][0]["id"], "b");

    // The table.
    let out = ok(run(&db, &["query", "--project", "acme"]));
    let lines: Vec<&str> = out.lines().collect();
    for col in [
        "ID", "NAME", "STATUS", "START", "DURATION", "COST", "TOKENS", "TAGS",
    ] {
        assert!(lines[0].contains(col), "{out}");
    }
    assert!(
        lines[1].starts_with("c ")
            && lines[1].contains("support-agent")
            && lines[1].contains("0.0034")
            && lines[1].contains("150")
            && lines[1].contains("production,v2"),
        "{out}"
    );
    assert!(out.contains("next cursor: none"), "{out}");

    // Bad flags are the library's 400s, named by flag; --json prints the error envelope.
    let err = failed(run(
        &db,
        &[
            "query",
            "--project",
            "acme",
            "--limit",
            "0",
            "--status",
            "maybe",
        ],
    ));
    assert!(err.contains("--limit") && err.contains("--status"), "{err}");
    let o = run(
        &db,
        &[
            "query",
            "--project",
            "acme",
            "--cursor",
            "garbage",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(v["error"]["details"][0]["field"], "cursor");
}

#[test]
fn import_json_forms_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let wrapper = format!(
        "{{\n  \"traces\": [\n    {},\n    {}\n  ]\n}}\n",
        trace_line("w1", "OK", "2026-03-01T00:00:00Z"),
        trace_line("w2", "OK", "2026-03-02T00:00:00Z")
    );
    let file = write(dir.path(), "wrapped.json", &wrapper);
    assert!(ok(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "p"]
    ))
    .contains("2 created"));
    let array = format!(
        "[{}, {}]",
        trace_line("w2", "ERROR", "2026-03-02T00:00:00Z"),
        trace_line("a1", "OK", "2026-03-03T00:00:00Z")
    );
    let file = write(dir.path(), "array.json", &array);
    let out = ok(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "p"],
    ));
    assert!(out.contains("1 created, 1 updated"), "{out}");

    // A syntax error on a line: named, and nothing is written.
    let jsonl = format!(
        "{}\n{{not json\n",
        trace_line("x1", "OK", "2026-03-04T00:00:00Z")
    );
    let file = write(dir.path(), "broken.jsonl", &jsonl);
    let err = failed(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "p"],
    ));
    assert!(err.contains("line 2"), "{err}");
    // An invalid trace: named by line and field, and its batch is not written.
    let mut bad: Value =
        serde_json::from_str(&trace_line("x2", "OK", "2026-03-04T00:00:00Z")).unwrap();
    bad["spans"][0]["cost"] = json!("-5");
    let jsonl = format!(
        "{}\n\n{}\n",
        trace_line("x1", "OK", "2026-03-04T00:00:00Z"),
        bad
    );
    let file = write(dir.path(), "invalid.jsonl", &jsonl);
    let err = failed(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "p"],
    ));
    assert!(err.contains("line 3: spans[0].cost"), "{err}");
    let out = ok(run(&db, &["query", "--project", "p", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v["data"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1", "w2", "w1"]);
    assert!(failed(run(
        &db,
        &["import", "/nonexistent.jsonl", "--project", "p"]
    ))
    .contains("cannot read"));
}

/// `serve --demo` on an ephemeral port: the printed key and curl commands work, and SIGINT
/// shuts the server down cleanly.
#[tokio::test]
async fn serve_demo_prints_working_commands_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.redb");
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args([
            "serve",
            "--demo",
            "--demo-traces",
            "8000",
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let mut line = String::new();
    while printed.matches("curl \"").count() < 3
        || !printed.ends_with("\"\n")
        || printed.lines().count() < 12
    {
        line.clear();
        if out.read_line(&mut line).expect("read") == 0 {
            break;
        }
        printed.push_str(&line);
    }
    let key = printed
        .split("Demo API key for project \"demo\": ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .expect("a key")
        .to_string();
    let urls: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("curl \""))
        .map(|l| l.trim_end_matches("\" \\"))
        .collect();
    assert_eq!(urls.len(), 3, "{printed}");
    assert!(urls[0].ends_with("/api/v1/traces?limit=20&status=ERROR&name=support-agent"));
    assert!(urls[1].contains("/api/v1/traces?cursor="));
    assert!(urls[2].ends_with("/api/v1/traces?startDate=2026-03-01T00:00:00Z&endDate=2026-03-15T00:00:00Z&tags=production,v2"));
    let client = reqwest::Client::new();
    for url in &urls {
        let res = client
            .get(*url)
            .bearer_auth(&key)
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status(), 200, "{url}");
        let v: Value = res.json().await.unwrap();
        assert!(!v["data"]["traces"].as_array().unwrap().is_empty(), "{url}");
    }
    let first: Value = client
        .get(urls[0])
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"]["traces"].as_array().unwrap().len(), 20);
    assert!(first["data"]["nextCursor"].is_string());

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(exit.success(), "{logs}");
    assert!(logs.contains("listening on http://127.0.0.1:"), "{logs}");
    assert!(
        logs.contains("SIGINT received") && logs.contains("shut down cleanly"),
        "{logs}"
    );
    assert!(
        logs.contains("status=200") && logs.contains("project=demo"),
        "{logs}"
    );
    assert!(!logs.contains(&key), "the key is never logged");
}
