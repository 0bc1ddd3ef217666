//! The `tracestore` binary end to end: keys (on a file and against a server), import, query,
//! show, retention, read-only opening, and `serve` (demo, shutdown, logging).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
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

    // The prefix as printed, with or without `ts_`.
    let out = ok(run(&db, &["keys", "revoke", &format!("ts_{prefix}")]));
    assert!(out.contains("revoked 1 key(s)"), "{out}");
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

    // Totals and facets of the whole matching set, whatever the page size.
    let out = ok(run(
        &db,
        &[
            "query",
            "--project",
            "acme",
            "--limit",
            "1",
            "--exclude-tags",
            "nothing",
            "--any-tags",
            "v2,eu",
            "--include",
            "total,facets",
        ],
    ));
    assert!(
        out.contains("total: 3 matching trace(s)")
            && out.contains("status: OK 2, ERROR 1")
            && out.contains("names: support-agent (3)")
            && out.contains("production (3)"),
        "{out}"
    );
    let out = ok(run(
        &db,
        &[
            "query",
            "--project",
            "acme",
            "--exclude-tags",
            "v2",
            "--include",
            "total",
            "--json",
        ],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["total"], 0);
    assert!(v["data"].get("facets").is_none(), "{out}");
    let err = failed(run(
        &db,
        &["query", "--project", "acme", "--include", "everything"],
    ));
    assert!(err.contains("--include"), "{err}");

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

/// An agent run: a root with children and a grandchild, tools with the same startTime, an
/// ERROR span with a two-line message, a span whose parent never arrived, a two-span parent
/// cycle and a span in a cycle with itself; sent out of order.
fn agent_run() -> String {
    json!({"traces": [{
        "id": "run-1", "name": "support-agent", "status": "ERROR",
        "startTime": "2026-03-14T10:00:00Z", "endTime": "2026-03-14T10:00:02.345Z",
        "input": {"question": "where is my order?"}, "output": "tomorrow",
        "spans": [
            {"id": "tool-b", "parentId": "root", "name": "lookup", "kind": "TOOL",
             "startTime": "2026-03-14T10:00:01Z", "endTime": "2026-03-14T10:00:01.040Z",
             "status": "ERROR", "statusMessage": "timeout after 30s\n  at lookup()"},
            {"id": "late", "parentId": "never-sent", "name": "summarize", "kind": "LLM",
             "startTime": "2026-03-14T10:00:02Z", "model": "gpt-4o-mini", "totalTokens": 7},
            {"id": "root", "name": "agent", "kind": "AGENT",
             "startTime": "2026-03-14T10:00:00Z", "endTime": "2026-03-14T10:00:02.300Z"},
            {"id": "llm-1", "parentId": "root", "name": "chat", "kind": "LLM",
             "startTime": "2026-03-14T10:00:00.100Z", "endTime": "2026-03-14T10:00:00.920Z",
             "model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.00340",
             "input": [{"role": "user"}], "output": {"role": "assistant"},
             "attributes": {"temperature": 0.2}},
            {"id": "guard", "parentId": "llm-1", "name": "pii-check", "kind": "GUARDRAIL",
             "startTime": "2026-03-14T10:00:00.500Z", "endTime": "2026-03-14T10:00:00.600Z"},
            {"id": "tool-a", "parentId": "root", "name": "search", "kind": "TOOL",
             "startTime": "2026-03-14T10:00:01Z", "endTime": "2026-03-14T10:00:01.200Z",
             "status": "ERROR"},
            {"id": "loop-2", "parentId": "loop-1", "name": "step-b", "kind": "CHAIN",
             "startTime": "2026-03-14T10:00:01.600Z"},
            {"id": "loop-1", "parentId": "loop-2", "name": "step-a", "kind": "CHAIN",
             "startTime": "2026-03-14T10:00:01.500Z"},
            {"id": "self", "parentId": "self", "kind": "UNKNOWN"}
        ]
    }]})
    .to_string()
}

/// `show` draws the header and the span tree exactly; a missing trace (or another project's)
/// is a clear error with exit 1; `--json` is the endpoint's envelope.
#[test]
fn show_draws_the_span_tree() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let file = write(dir.path(), "run.json", &agent_run());
    ok(run(
        &db,
        &["import", file.to_str().unwrap(), "--project", "acme"],
    ));
    let out = ok(run(&db, &["show", "run-1", "--project", "acme"]));
    let want = "\
support-agent  run-1  ERROR  2.35 s  157 tokens  $0.0034
├─ UNKNOWN (unnamed)  (parent cycle cut here: parent self)
├─ AGENT agent  2.30 s
│  ├─ LLM chat  820 ms  gpt-4o  150 tokens  $0.0034
│  │  └─ GUARDRAIL pii-check  100 ms
│  ├─ TOOL search  200 ms  ✗ ERROR
│  └─ TOOL lookup  40 ms  ✗ ERROR: timeout after 30s
├─ CHAIN step-a  (parent cycle cut here: parent loop-2)
│  └─ CHAIN step-b
└─ LLM summarize  gpt-4o-mini  7 tokens  (parent never-sent not found)
";
    assert_eq!(out, want, "\n{out}");

    for (id, project) in [("missing", "acme"), ("run-1", "other")] {
        let err = failed(run(&db, &["show", id, "--project", project]));
        assert!(
            err.starts_with(&format!(
                "error: no trace \"{id}\" in project \"{project}\" of {}",
                db.display()
            )),
            "{err}"
        );
    }

    let out = ok(run(&db, &["show", "run-1", "--project", "acme", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["error"].is_null());
    assert_eq!(v["data"]["id"], "run-1");
    assert_eq!(v["data"]["output"], "tomorrow");
    assert_eq!(v["data"]["spans"].as_array().unwrap().len(), 9);
}

/// Runs the binary without `--db` (the `--server` forms).
fn run_bare(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TRACESTORE_ADMIN_KEY")
        .env_remove("TRACESTORE_KEY")
        .output()
        .expect("the binary runs")
}

/// Text a child writes, collected by a thread, with a way to wait for a piece of it.
#[derive(Clone, Default)]
struct Collected(Arc<(Mutex<(String, bool)>, Condvar)>);

impl Collected {
    fn spawn(pipe: impl Read + Send + 'static) -> Collected {
        let c = Collected::default();
        let out = c.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line).unwrap_or(0);
                let (m, cv) = &*out.0;
                let mut g = m.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.push_str(&line);
                cv.notify_all();
            }
        });
        c
    }
    fn text(&self) -> String {
        self.0 .0.lock().unwrap().0.clone()
    }
    /// Waits until the text contains `needle`; returns the text so far.
    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut g = m.lock().unwrap();
        loop {
            if g.0.contains(needle) {
                return g.0.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline && !g.1,
                "{needle:?} never came (ended: {}):\n{}",
                g.1,
                g.0
            );
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
}

/// A `tracestore serve` child on an ephemeral port.
struct Served {
    child: Child,
    out: Collected,
    err: Collected,
}

impl Served {
    fn spawn(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = Collected::spawn(child.stdout.take().unwrap());
        let err = Collected::spawn(child.stderr.take().unwrap());
        Served { child, out, err }
    }
    /// Starts a server and waits until it prints its address.
    fn start(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Served, String) {
        let s = Served::spawn(db, extra, env);
        let base = s.base();
        (s, base)
    }
    /// `http://127.0.0.1:PORT`, from the stdout line.
    fn base(&self) -> String {
        let text = self.wait_stdout_line("listening on http://");
        text.split("listening on ")
            .nth(1)
            .and_then(|s| s.lines().next())
            .expect("an address")
            .to_string()
    }
    fn wait_stdout_line(&self, needle: &str) -> String {
        let text = self.out.wait_for(needle, Duration::from_secs(60));
        let start = text.find(needle).unwrap();
        // Wait for the end of that line too.
        let tail = &text[start..];
        if !tail.contains('\n') {
            return self
                .out
                .wait_for(&format!("{tail}\n"), Duration::from_secs(10));
        }
        text
    }
    fn pid(&self) -> String {
        self.child.id().to_string()
    }
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    /// Waits for the exit; returns the status and how long it took.
    fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return (s, started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("server did not stop in {timeout:?}:\n{}", self.err.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// SIGTERM, then the exit status and full stderr.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let (status, _) = self.wait_exit(Duration::from_secs(20));
        let logs = self.err.wait_for("", Duration::from_secs(0));
        assert!(status.success(), "{logs}");
        self.err.text()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: the status and the JSON body (Null when the
/// body is not JSON).
fn http(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let addr = base.strip_prefix("http://").expect("an http URL");
    let mut conn = std::net::TcpStream::connect(addr).expect("connects");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).expect("a response");
    let status: u16 = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {raw}"));
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The demo key of the stdout of `serve --demo`.
fn demo_key(printed: &str) -> String {
    printed
        .split("Demo API key for project \"demo\": ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .expect("a key")
        .to_string()
}

/// Traces per project in the store at `db` (opened read-only, so no server may hold it).
fn counts(db: &Path) -> BTreeMap<String, u64> {
    let store = tracestore::Store::builder()
        .open_read_only(db)
        .expect("opens");
    let mut out = BTreeMap::new();
    for p in ["demo", "other-team", "sandbox"] {
        let mut n = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("limit".to_string(), "100".to_string())];
            if let Some(c) = &cursor {
                params.push(("cursor".to_string(), c.clone()));
            }
            let page = store.query_params(p, params).expect("query");
            n += page.traces.len() as u64;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out.insert(p.to_string(), n);
    }
    out
}

/// Traces per project of the full demo dataset of `traces` traces.
fn expected_counts(traces: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in ["demo", "other-team", "sandbox"] {
        out.insert(p.to_string(), 0);
    }
    for (p, _) in tracestore::demo::Generator::new(tracestore_server::demo::demo_config(traces)) {
        *out.get_mut(&p).unwrap() += 1;
    }
    out
}

fn demo_state(db: &Path) -> Value {
    let path = tracestore_server::demo::demo_state_path(db);
    serde_json::from_slice(&std::fs::read(&path).expect("a demo state file")).unwrap()
}

/// `serve --demo` on an ephemeral port: the printed key and curl commands work, the address is
/// printed on stdout, and SIGINT shuts the server down cleanly.
#[tokio::test]
async fn serve_demo_prints_working_commands_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.redb");
    let (mut server, base) = Served::start(&db, &["--demo", "--demo-traces", "8000"], &[]);
    let printed = server.out.text();
    let key = demo_key(&printed);
    assert!(printed.contains("demo.redb.demo.json"), "{printed}");
    let all: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("curl \""))
        .map(|l| l.trim_end_matches("\" \\"))
        .collect();
    // Three list queries, then one trace's tree, the counts, an export and an OTLP send (run
    // as printed by `tests/http_detail.rs`).
    assert_eq!(all.len(), 7, "{printed}");
    assert!(all[3].contains("?payloads=false"), "{printed}");
    assert!(all[4].contains("include=total,facets"), "{printed}");
    assert!(all[5].contains("/api/v1/export/traces?"), "{printed}");
    assert!(all[6].ends_with("/v1/traces"), "{printed}");
    let urls = &all[..3];
    assert!(
        urls.iter().all(|u| u.starts_with(&base)),
        "{base} {printed}"
    );
    assert!(urls[0].ends_with("/api/v1/traces?limit=20&status=ERROR&name=support-agent"));
    assert!(urls[1].contains("/api/v1/traces?cursor="));
    assert!(urls[2].ends_with("/api/v1/traces?startDate=2026-03-01T00:00:00Z&endDate=2026-03-15T00:00:00Z&tags=production,v2"));
    let client = reqwest::Client::new();
    for url in urls {
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

    server.signal("INT");
    let (exit, _) = server.wait_exit(Duration::from_secs(20));
    let logs = server.err.wait_for("shut down", Duration::from_secs(5));
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
    // The state file holds the key, readable by its owner only.
    let state = demo_state(&db);
    assert_eq!(state["key"], key.as_str());
    assert_eq!(state["complete"], true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tracestore_server::demo::demo_state_path(&db))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A busy port fails before the store is opened: no database, no key, no state file.
#[test]
fn serve_demo_on_a_busy_port_makes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.redb");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--demo", "--demo-traces", "1000", "--addr", &addr])
        .output()
        .unwrap();
    let err = failed(o);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!db.exists(), "no database was made");
    assert!(!tracestore_server::demo::demo_state_path(&db).exists());

    // The same on an existing database: no key is added.
    ok(run(&db, &["keys", "create", "--project", "acme"]));
    let o = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--demo", "--demo-traces", "1000", "--addr", &addr])
        .output()
        .unwrap();
    failed(o);
    let list = ok(run(&db, &["keys", "list"]));
    assert_eq!(list.lines().count(), 2, "one key only: {list}");
    assert!(!tracestore_server::demo::demo_state_path(&db).exists());
    assert_eq!(counts(&db)["demo"], 0);
    drop(taken);
}

/// A demo load killed midway is completed by the next start, which shows the same key; a
/// third start loads nothing and shows it again.
#[test]
fn serve_demo_completes_an_interrupted_load_and_keeps_its_key() {
    const TRACES: usize = 16_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.redb");
    let traces = TRACES.to_string();
    let args = ["--demo", "--demo-traces", traces.as_str()];
    let debug = [("RUST_LOG", "info,tracestore_server=debug")];

    let mut first = Served::spawn(&db, &args, &debug);
    first
        .err
        .wait_for("demo batch loaded", Duration::from_secs(60));
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert!(
        !first.out.text().contains("listening on"),
        "killed during the load"
    );
    let state = demo_state(&db);
    assert_eq!(state["complete"], false, "{state}");
    let key = state["key"].as_str().unwrap().to_string();
    // A read-only command cannot repair the killed process's file, and says how.
    let err = failed(run(&db, &["query", "--project", "demo"]));
    assert!(err.contains("not closed cleanly"), "{err}");
    // Opening it for writing repairs it.
    drop(tracestore::Store::open(&db).expect("repairs"));
    let partial = counts(&db);
    let full = expected_counts(TRACES);
    assert!(partial["demo"] > 0 && partial != full, "{partial:?}");

    // A different --demo-traces does not change the dataset being completed.
    let (second, _) = Served::start(&db, &["--demo", "--demo-traces", "500"], &[]);
    assert_eq!(demo_key(&second.out.text()), key);
    let logs = second.stop();
    assert!(logs.contains("interrupted demo load completed"), "{logs}");
    assert_eq!(counts(&db), full);
    assert_eq!(demo_state(&db)["complete"], true);

    let (third, base) = Served::start(&db, &args, &[]);
    assert_eq!(demo_key(&third.out.text()), key);
    let (status, body) = http(&base, "GET", "/api/v1/traces?limit=1", Some(&key), None);
    assert_eq!(status, 200, "{body}");
    let logs = third.stop();
    assert!(logs.contains("demo data already loaded"), "{logs}");
    assert_eq!(counts(&db), full);
    // One demo key in the database, whatever the number of starts.
    let list = ok(run(&db, &["keys", "list"]));
    assert_eq!(list.matches(" demo ").count(), 1, "{list}");
}

/// Revoking the demo key makes the next `serve --demo` mint and keep a new one, without
/// reloading anything.
#[test]
fn serve_demo_replaces_a_revoked_demo_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.redb");
    let args = ["--demo", "--demo-traces", "1000"];
    let (first, _) = Served::start(&db, &args, &[]);
    let old = demo_key(&first.out.text());
    first.stop();
    ok(run(&db, &["keys", "revoke", &old[..11]]));
    let (second, base) = Served::start(&db, &args, &[]);
    let new = demo_key(&second.out.text());
    assert_ne!(new, old);
    assert_eq!(
        http(&base, "GET", "/api/v1/traces", Some(&old), None).0,
        401
    );
    assert_eq!(
        http(&base, "GET", "/api/v1/traces", Some(&new), None).0,
        200
    );
    let logs = second.stop();
    assert!(logs.contains("demo data already loaded"), "{logs}");
    assert_eq!(demo_state(&db)["key"], new.as_str());
    let (third, _) = Served::start(&db, &args, &[]);
    assert_eq!(demo_key(&third.out.text()), new);
    third.stop();
}

/// `keys create --admin` on a file; the admin key is listed as "(admin)". A write command on a
/// file a server holds says so; a read-only one too.
#[test]
fn keys_create_admin_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let o = run(&db, &["keys", "create", "--admin"]);
    let key = ok(o).trim().to_string();
    assert!(key.starts_with("ts_"), "{key}");
    let list = ok(run(&db, &["keys", "list"]));
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3]),
        (&key[3..11], "(admin)", "-"),
        "{list}"
    );
    // --project and --admin are exclusive, and one of them is needed.
    assert_eq!(
        run(&db, &["keys", "create", "--admin", "--project", "p"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&db, &["keys", "create"]).status.code(), Some(2));

    let (server, _) = Served::start(&db, &[], &[]);
    for args in [
        &["keys", "create", "--admin"][..],
        &["keys", "list"][..],
        &["query", "--project", "p"][..],
    ] {
        let err = failed(run(&db, args));
        assert!(
            err.contains("is a server or another command using it?"),
            "{args:?}: {err}"
        );
    }
    server.stop();
}

/// `query` and `keys list` never create or format a file: a missing file stays missing, an
/// empty one stays empty, one that is not a store stays as it was, and only a file held by
/// another process gets the "is a server using it?" hint.
#[test]
fn read_only_commands_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    let empty = write(dir.path(), "empty.redb", "");
    let junk = write(
        dir.path(),
        "junk.redb",
        "this is not a database, just some text\n",
    );
    for args in [
        &["query", "--project", "p"][..],
        &["keys", "list"][..],
        &["show", "t-1", "--project", "p"][..],
    ] {
        let err = failed(run(&missing, args));
        assert!(err.contains("no database at"), "{err}");
        assert!(!missing.exists(), "{args:?} created the file");

        let err = failed(run(&empty, args));
        assert!(
            err.contains("empty file, not a tracestore database"),
            "{err}"
        );
        assert!(!err.contains("is a server"), "{err}");
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "{args:?}");

        let err = failed(run(&junk, args));
        assert!(err.contains("cannot open the database"), "{err}");
        assert!(!err.contains("is a server"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&junk).unwrap(),
            "this is not a database, just some text\n"
        );
    }
    // `query --json` too.
    failed(run(&empty, &["query", "--project", "p", "--json"]));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // A store nobody writes to is read without being changed.
    let db = dir.path().join("t.redb");
    ok(run(&db, &["keys", "create", "--project", "p"]));
    let before = std::fs::read(&db).unwrap();
    ok(run(&db, &["keys", "list"]));
    ok(run(&db, &["query", "--project", "p"]));
    assert!(
        std::fs::read(&db).unwrap() == before,
        "a read changed the file"
    );
}

/// Traces a few days apart, to cut with `retention`.
fn import_days(db: &Path, dir: &Path, project: &str) {
    let lines: Vec<String> = (1..=5)
        .map(|d| trace_line(&format!("t{d}"), "OK", &format!("2026-03-0{d}T12:00:00Z")))
        .collect();
    let file = write(dir, &format!("{project}.jsonl"), &lines.join("\n"));
    ok(run(
        db,
        &["import", file.to_str().unwrap(), "--project", project],
    ));
}

fn ids(db: &Path, project: &str) -> Vec<String> {
    let out = ok(run(db, &["query", "--project", project, "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["data"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// `retention` on a file: deletes what started before the instant, in that project only,
/// prints how many on stdout and its progress on stderr.
#[test]
fn retention_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    import_days(&db, dir.path(), "acme");
    import_days(&db, dir.path(), "other");
    let o = run(
        &db,
        &["retention", "--project", "acme", "--before", "2026-03-03"],
    );
    let err = stderr(&o);
    let out = ok(o);
    assert!(
        out.starts_with(
            "deleted 2 trace(s) of project \"acme\" that started before 2026-03-03T00:00:00.000Z"
        ),
        "{out}"
    );
    assert!(err.contains("2 trace(s) deleted so far"), "{err}");
    assert_eq!(ids(&db, "acme"), ["t5", "t4", "t3"]);
    assert_eq!(ids(&db, "other").len(), 5);
    // RFC 3339 with an offset; nothing left before it the second time.
    let out = ok(run(
        &db,
        &[
            "retention",
            "--project",
            "acme",
            "--before",
            "2026-03-04T14:00:00+02:00",
        ],
    ));
    assert!(out.starts_with("deleted 1 trace(s)"), "{out}");
    let out = ok(run(
        &db,
        &["retention", "--project", "acme", "--before", "2026-03-04"],
    ));
    assert!(out.starts_with("deleted 0 trace(s)"), "{out}");
    assert_eq!(ids(&db, "acme"), ["t5", "t4"]);

    let err = failed(run(
        &db,
        &["retention", "--project", "acme", "--before", "last week"],
    ));
    assert!(err.contains("invalid --before"), "{err}");
    let missing = dir.path().join("missing.redb");
    let err = failed(run(
        &missing,
        &["retention", "--project", "acme", "--before", "2026-03-04"],
    ));
    assert!(err.contains("no database"), "{err}");
    assert!(!missing.exists());
    // --project is for files: on a server the key decides the project.
    let o = run_bare(&[
        "retention",
        "--project",
        "acme",
        "--before",
        "2026-03-04",
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `keys create|list|revoke --server URL --admin-key KEY` through the admin routes: a key made
/// there works at once, and after `revoke` its very next request gets 401.
#[test]
fn keys_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let admin = ok(run(&db, &["keys", "create", "--admin"]))
        .trim()
        .to_string();
    let (server, base) = Served::start(&db, &[], &[]);
    let remote = |args: &[&str]| -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", base.as_str(), "--admin-key", admin.as_str()]);
        run_bare(&all)
    };

    let o = remote(&["keys", "create", "--project", "acme"]);
    let err = stderr(&o);
    let key = ok(o).trim().to_string();
    assert!(key.starts_with("ts_"), "{key}");
    assert!(err.contains("for project \"acme\""), "{err}");
    let (status, body) = http(&base, "GET", "/api/v1/traces", Some(&key), None);
    assert_eq!(status, 200, "{body}");

    let o = remote(&["keys", "create", "--admin"]);
    let admin2 = ok(o).trim().to_string();
    assert!(admin2.starts_with("ts_") && admin2 != admin);

    let list = ok(remote(&["keys", "list"]));
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(list.starts_with("PREFIX"), "{list}");
    assert_eq!(rows.len(), 3, "{list}");
    assert!(
        rows.contains(&vec![&key[3..11], "acme", rows[1][2], "-"]),
        "{list}"
    );
    assert_eq!(
        rows.iter().filter(|r| r[1] == "(admin)").count(),
        2,
        "{list}"
    );
    assert!(!list.contains(&key) && !list.contains(&admin));
    // The env var works as the flag does.
    let o = Command::new(BIN)
        .args(["keys", "list", "--server", &base])
        .env("TRACESTORE_ADMIN_KEY", &admin2)
        .output()
        .unwrap();
    assert_eq!(ok(o), list);

    // Revoke with the printed prefix, `ts_` included; the key is refused at once.
    let printed = format!("ts_{}", &key[3..11]);
    let out = ok(remote(&["keys", "revoke", &printed]));
    assert!(out.contains("revoked 1 key(s)"), "{out}");
    let (status, body) = http(&base, "GET", "/api/v1/traces", Some(&key), None);
    assert_eq!(status, 401, "{body}");
    let err = failed(remote(&["keys", "revoke", &key[3..11]]));
    assert!(err.contains("no active API key"), "{err}");
    let list = ok(remote(&["keys", "list"]));
    let row = list.lines().find(|l| l.starts_with(&key[3..11])).unwrap();
    assert!(
        row.split_whitespace().nth(3).unwrap().starts_with("20"),
        "{list}"
    );

    // A project key, a wrong key, no key: clear refusals.
    let p2 = ok(remote(&["keys", "create", "--project", "p2"]))
        .trim()
        .to_string();
    let err = failed(run_bare(&[
        "keys",
        "list",
        "--server",
        &base,
        "--admin-key",
        &p2,
    ]));
    assert!(err.contains("403") && err.contains("FORBIDDEN"), "{err}");
    let err = failed(run_bare(&[
        "keys",
        "list",
        "--server",
        &base,
        "--admin-key",
        "ts_00000000_nope",
    ]));
    assert!(err.contains("401") && err.contains("--admin-key"), "{err}");
    let err = failed(run_bare(&["keys", "list", "--server", &base]));
    assert!(err.contains("--admin-key"), "{err}");
    // --db with --server is refused rather than quietly ignored.
    let err = failed(run(
        &db,
        &["keys", "list", "--server", &base, "--admin-key", &admin],
    ));
    assert!(err.contains("cannot be used together"), "{err}");
    server.stop();
    // The revocations are in the file.
    let list = ok(run(&db, &["keys", "list"]));
    assert_eq!(list.lines().count(), 5, "{list}");
    let err = failed(run_bare(&[
        "keys",
        "list",
        "--server",
        &base,
        "--admin-key",
        &admin,
    ]));
    assert!(err.contains("cannot reach the server"), "{err}");
}

/// `retention --server URL --key KEY`: DELETE /api/v1/traces?before=... for the key's project.
#[test]
fn retention_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    import_days(&db, dir.path(), "acme");
    import_days(&db, dir.path(), "other");
    let key = ok(run(&db, &["keys", "create", "--project", "acme"]))
        .trim()
        .to_string();
    let (server, base) = Served::start(&db, &[], &[]);
    let out = ok(run_bare(&[
        "retention",
        "--before",
        "2026-03-03",
        "--server",
        &base,
        "--key",
        &key,
    ]));
    assert!(out.starts_with("deleted 2 trace(s)"), "{out}");
    let (status, body) = http(&base, "GET", "/api/v1/traces", Some(&key), None);
    assert_eq!(status, 200, "{body}");
    let left: Vec<&str> = body["data"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["t5", "t4", "t3"]);
    // The key from the environment.
    let o = Command::new(BIN)
        .args([
            "retention",
            "--before",
            "2026-03-04T00:00:00Z",
            "--server",
            &base,
        ])
        .env("TRACESTORE_KEY", &key)
        .output()
        .unwrap();
    assert!(ok(o).starts_with("deleted 1 trace(s)"));
    // The server's 400 names the parameter.
    let err = failed(run_bare(&[
        "retention",
        "--before",
        "soon",
        "--server",
        &base,
        "--key",
        &key,
    ]));
    assert!(err.contains("400") && err.contains("before"), "{err}");
    let err = failed(run_bare(&[
        "retention",
        "--before",
        "2026-03-04",
        "--server",
        &base,
        "--key",
        "ts_00000000_x",
    ]));
    assert!(err.contains("401") && err.contains("--key"), "{err}");
    server.stop();
    assert_eq!(ids(&db, "other").len(), 5, "other projects are untouched");
}

/// Opens a POST whose body never finishes; returns the connection (keep it open).
fn stalled_upload(base: &str, key: &str) -> std::net::TcpStream {
    let addr = base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /api/v1/traces HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"traces\": ["
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.flush().unwrap();
    // Let the server start reading the body.
    std::thread::sleep(Duration::from_millis(300));
    conn
}

/// One SIGTERM with an upload stalled mid-body: the server stops accepting and exits within
/// the shutdown deadline anyway (5 s), cleanly.
#[test]
fn sigterm_exits_within_the_deadline_despite_a_stalled_upload() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let key = ok(run(&db, &["keys", "create", "--project", "p"]))
        .trim()
        .to_string();
    let (mut server, base) = Served::start(&db, &[], &[]);
    let _conn = stalled_upload(&base, &key);
    server.signal("TERM");
    let (status, took) = server.wait_exit(Duration::from_secs(20));
    let logs = server.err.text();
    assert!(status.success(), "{logs}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}\n{logs}"
    );
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("shutdown deadline passed"), "{logs}");
    // Nothing was written, and the store opens.
    assert!(ids(&db, "p").is_empty());
}

/// A second signal during shutdown exits at once.
#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let key = ok(run(&db, &["keys", "create", "--project", "p"]))
        .trim()
        .to_string();
    let (mut server, base) = Served::start(&db, &[], &[]);
    let _conn = stalled_upload(&base, &key);
    server.signal("TERM");
    server
        .err
        .wait_for("SIGTERM received", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    server.signal("INT");
    let (status, took) = server.wait_exit(Duration::from_secs(20));
    let logs = server.err.text();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(took < Duration::from_secs(2), "{took:?}\n{logs}");
    assert!(logs.contains("received twice"), "{logs}");
    // The store is intact.
    assert!(ids(&db, "p").is_empty());
    ok(run(&db, &["keys", "list"]));
}

/// RUST_LOG takes EnvFilter's syntax; the address is on stdout even with logs off.
#[test]
fn logging_follows_rust_log_and_the_address_is_always_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let key = ok(run(&db, &["keys", "create", "--project", "p"]))
        .trim()
        .to_string();

    let (server, base) = Served::start(&db, &[], &[("RUST_LOG", "off")]);
    assert_eq!(
        http(&base, "GET", "/api/v1/traces", Some(&key), None).0,
        200
    );
    let logs = server.stop();
    assert!(logs.is_empty(), "{logs}");

    // Per-target directives: request logs off, the rest at info.
    let (server, base) = Served::start(
        &db,
        &[],
        &[("RUST_LOG", "info,tracestore_server::api=warn")],
    );
    assert_eq!(
        http(&base, "GET", "/api/v1/traces", Some(&key), None).0,
        200
    );
    let logs = server.stop();
    assert!(
        logs.contains("listening on") && !logs.contains("status=200"),
        "{logs}"
    );

    // A bad filter falls back to info, with a warning.
    let (server, base) = Served::start(&db, &[], &[("RUST_LOG", "=[bad")]);
    assert_eq!(
        http(&base, "GET", "/api/v1/traces", Some(&key), None).0,
        200
    );
    let logs = server.stop();
    assert!(logs.contains("ignoring RUST_LOG"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
}

/// `export` on a file: every match of the `query` filters, JSON Lines on stdout by default or
/// CSV into `--out`, the count on stderr (no progress display when stderr is not a terminal),
/// the flags named in errors, and nothing created or written on failure.
#[test]
fn export_to_stdout_and_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.redb");
    let jsonl = [
        trace_line("a", "OK", "2026-03-14T10:00:00Z"),
        trace_line("b", "ERROR", "2026-03-14T11:00:00Z"),
        trace_line("c", "OK", "2026-03-14T12:00:00Z"),
    ]
    .join("\n");
    let file = write(dir.path(), "traces.jsonl", &jsonl);
    for project in ["acme", "other"] {
        ok(run(
            &db,
            &["import", file.to_str().unwrap(), "--project", project],
        ));
    }
    let before = std::fs::read(&db).unwrap();

    // JSON Lines on stdout: the list endpoint's rows, newest first.
    let o = run(&db, &["export", "--project", "acme"]);
    assert_eq!(
        stderr(&o),
        "exported 3 trace(s)\n",
        "no progress off a terminal"
    );
    let out = ok(o);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let page: Value =
        serde_json::from_str(&ok(run(&db, &["query", "--project", "acme", "--json"]))).unwrap();
    assert_eq!(&Value::from(rows.clone()), &page["data"]["traces"]);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c", "b", "a"]);

    // The query's filter flags, CSV into a file.
    let csv_path = dir.path().join("errors.csv");
    let o = run(
        &db,
        &[
            "export",
            "--project",
            "acme",
            "--status",
            "error",
            "--tags",
            "production",
            "--start-date",
            "2026-03-14",
            "--format",
            "csv",
            "--out",
            csv_path.to_str().unwrap(),
        ],
    );
    assert!(
        stderr(&o).contains("exported 1 trace(s) to"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ok(o), "", "nothing on stdout with --out");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], tracestore::CSV_COLUMNS.join(","));
    assert!(
        lines[1].starts_with("b,support-agent,ERROR,2026-03-14T11:00:00.000Z,"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial")),
        "no temporary file is left"
    );

    // Bad values are named by their flags; nothing is written.
    let bad_out = dir.path().join("bad.jsonl");
    let err = failed(run(
        &db,
        &[
            "export",
            "--project",
            "acme",
            "--start-date",
            "soon",
            "--status",
            "maybe",
            "--out",
            bad_out.to_str().unwrap(),
        ],
    ));
    assert!(
        err.contains("--start-date") && err.contains("--status"),
        "{err}"
    );
    assert!(!bad_out.exists());
    let missing = dir.path().join("missing.redb");
    assert!(failed(run(&missing, &["export", "--project", "acme"])).contains("no database at"));
    assert!(!missing.exists());
    assert!(
        std::fs::read(&db).unwrap() == before,
        "export changed the file"
    );
}
