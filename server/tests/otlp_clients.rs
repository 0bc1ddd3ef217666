//! Real OTLP clients against the receiver: the OpenTelemetry Python SDK with its OTLP/HTTP
//! protobuf exporter (plain and gzip), OpenInference's OpenAI instrumentation against a fake
//! OpenAI server, and the Node SDK with its OTLP/HTTP JSON exporter. The scripts in
//! `tests/otlp_clients/` are configured only by the standard variables
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and `OTEL_EXPORTER_OTLP_HEADERS`.
//!
//! The clients are installed by `.ci/otlp-clients.sh`; the tests read `TRACESTORE_OTLP_PYTHON`
//! (the venv's python) and `TRACESTORE_OTLP_NODE_MODULES`, and each says it is skipped when its
//! variable is unset. Every test here asserts the stored tree, so each needs the OTLP mapping
//! and storage behind `Store::ingest_otlp`.

mod common;

use common::{key, memory_store, TestServer};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_clients")
}

/// The variable's value, or None after printing why the test is skipped.
fn client_env(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            // Straight to stderr, past the test harness's capture, so that a run shows it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped ({what}): run .ci/otlp-clients.sh and set {var}"
            );
            None
        }
    }
}

/// Runs a client script against `server` with `key`; returns the JSON of its last stdout line.
async fn run_client(server: &TestServer, key: &str, mut cmd: Command) -> Value {
    cmd.env(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        server.url("/v1/traces"),
    )
    .env(
        "OTEL_EXPORTER_OTLP_HEADERS",
        format!("Authorization=Bearer {key}"),
    )
    // Nothing else may steer the exporters.
    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
    .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
    .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    .env_remove("OTEL_EXPORTER_OTLP_COMPRESSION")
    .env_remove("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
    .env("OTEL_SDK_DISABLED", "false")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    // The server runs on this runtime: wait for the script on the blocking pool.
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("the client starts");
        let started = Instant::now();
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if started.elapsed() > SCRIPT_TIMEOUT {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("waited");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    // A script prints JSON; the README's example prints a bare trace id.
    serde_json::from_str(last).unwrap_or_else(|_| Value::String(last.trim().to_string()))
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// The stored trace's `data`, via `GET /api/v1/traces/{id}`.
async fn stored(server: &TestServer, key: &str, trace_id: &str) -> Value {
    let r = server
        .get(&format!("/api/v1/traces/{trace_id}"), Some(key))
        .await;
    r.data().clone()
}

fn span<'a>(trace: &'a Value, id: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("span {id} in {trace:#}"))
}

/// The text of a payload (a string as is, anything else as JSON text).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn python_sdk_tree(gzip: bool) {
    let Some(python) = client_env("TRACESTORE_OTLP_PYTHON", "Python OpenTelemetry SDK") else {
        return;
    };
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let mut cmd = Command::new(python);
    cmd.arg(scripts().join("sdk_tree.py"))
        .arg(if gzip { "gzip" } else { "none" });
    let ids = run_client(&server, &k, cmd).await;
    let t = stored(&server, &k, str_of(&ids, "traceId")).await;
    assert_eq!(t["name"], "support-agent", "{t:#}");
    assert_eq!(t["spanCount"], 3);
    assert_eq!(t["status"], "OK");
    assert_eq!(t["totalTokens"], 50);
    assert_eq!(t["userId"], "user-42");
    assert!(text(&t["input"]).contains("where is my order?"), "{t:#}");
    assert!(text(&t["output"]).contains("it ships tomorrow"), "{t:#}");
    let root = span(&t, str_of(&ids, "root"));
    assert!(root["parentId"].is_null(), "{root:#}");
    assert_eq!(root["kind"], "AGENT");
    assert_eq!(root["name"], "support-agent");
    let llm = span(&t, str_of(&ids, "llm"));
    assert_eq!(llm["parentId"], ids["root"]);
    assert_eq!(llm["kind"], "LLM");
    assert_eq!(llm["name"], "chat gpt-4o-mini");
    assert_eq!(llm["model"], "gpt-4o-mini");
    assert_eq!(llm["inputTokens"], 42);
    assert_eq!(llm["outputTokens"], 8);
    assert_eq!(llm["totalTokens"], 50);
    let tool = span(&t, str_of(&ids, "tool"));
    assert_eq!(tool["parentId"], ids["root"]);
    assert_eq!(tool["kind"], "TOOL");
    assert_eq!(tool["name"], "lookup-order");
}

#[tokio::test]
async fn python_sdk_protobuf_exporter_stores_the_tree() {
    python_sdk_tree(false).await;
}

#[tokio::test]
async fn python_sdk_protobuf_exporter_with_gzip_stores_the_tree() {
    python_sdk_tree(true).await;
}

/// The README's Python example, exactly as printed there, with only the two variables the
/// README says to set.
#[tokio::test]
async fn the_readme_python_example_works_as_printed() {
    let Some(python) = client_env("TRACESTORE_OTLP_PYTHON", "README example") else {
        return;
    };
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README");
    let section = readme
        .split("## Send traces from OpenTelemetry")
        .nth(1)
        .expect("the README has the section");
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a python block in the section");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("example.py");
    std::fs::write(&file, code).expect("write the example");
    let store = memory_store();
    let k = key(&store, "demo");
    let server = TestServer::start(store).await;
    let mut cmd = Command::new(python);
    cmd.arg(&file);
    let out = run_client(&server, &k, cmd).await;
    let trace_id = out.as_str().expect("the example prints the trace id");
    assert_eq!(trace_id.len(), 32, "{out}");
    let t = stored(&server, &k, trace_id).await;
    assert_eq!(t["name"], "support-agent", "{t:#}");
    assert_eq!(t["totalTokens"], 17, "{t:#}");
    assert_eq!(t["input"], "where is my order?", "{t:#}");
    let spans = t["spans"].as_array().expect("spans");
    // Both spans start in the same millisecond, so their order is by id: find them by kind.
    assert_eq!(spans.len(), 2, "{t:#}");
    let of = |kind: &str| spans.iter().find(|s| s["kind"] == kind).expect(kind);
    let (agent, llm) = (of("AGENT"), of("LLM"));
    assert!(agent["parentId"].is_null());
    assert_eq!(llm["model"], "gpt-4o");
    assert_eq!(llm["parentId"], agent["id"]);
}

#[tokio::test]
async fn openinference_openai_instrumentation_stores_one_llm_span_under_the_agent() {
    let Some(python) = client_env("TRACESTORE_OTLP_PYTHON", "OpenInference OpenAI") else {
        return;
    };
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let mut cmd = Command::new(python);
    cmd.arg(scripts().join("openinference_chat.py"));
    let out = run_client(&server, &k, cmd).await;
    let t = stored(&server, &k, str_of(&out, "traceId")).await;
    let agent_id = str_of(&out, "agent");
    let agent = span(&t, agent_id);
    assert_eq!(agent["kind"], "AGENT", "{t:#}");
    assert!(agent["parentId"].is_null());
    let spans = t["spans"].as_array().expect("spans");
    let llms: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "LLM").collect();
    assert_eq!(llms.len(), 1, "{t:#}");
    let llm = llms[0];
    assert_eq!(llm["parentId"], agent_id, "{llm:#}");
    assert_eq!(llm["model"], str_of(&out, "model"));
    assert_eq!(llm["inputTokens"], 11);
    assert_eq!(llm["outputTokens"], 7);
    assert_eq!(llm["totalTokens"], 18);
    assert!(
        !llm["input"].is_null() && !llm["output"].is_null(),
        "{llm:#}"
    );
    assert!(
        text(&llm["input"]).contains(str_of(&out, "prompt")),
        "{llm:#}"
    );
    assert!(
        text(&llm["output"]).contains(str_of(&out, "answer")),
        "{llm:#}"
    );
    // Usage is counted once: the agent span carries none of it.
    assert_eq!(t["totalTokens"], 18, "{t:#}");
    assert_eq!(t["name"], "capital-agent");
}

#[tokio::test]
async fn node_json_exporter_stores_the_tree() {
    let Some(modules) = client_env("TRACESTORE_OTLP_NODE_MODULES", "Node OpenTelemetry SDK") else {
        return;
    };
    let store = memory_store();
    let k = key(&store, "acme");
    let server = TestServer::start(store).await;
    let mut cmd = Command::new("node");
    cmd.arg(scripts().join("node_tree.js"))
        .env("NODE_PATH", modules);
    let ids = run_client(&server, &k, cmd).await;
    // SimpleSpanProcessor sends the child first, then the root, in two requests.
    let t = stored(&server, &k, str_of(&ids, "traceId")).await;
    assert_eq!(t["name"], "node-agent", "{t:#}");
    assert_eq!(t["spanCount"], 2);
    let root = span(&t, str_of(&ids, "root"));
    assert!(root["parentId"].is_null(), "{root:#}");
    assert_eq!(root["kind"], "AGENT");
    let child = span(&t, str_of(&ids, "child"));
    assert_eq!(child["parentId"], ids["root"]);
    assert_eq!(child["kind"], "TOOL");
    assert_eq!(child["name"], "node-tool");
}
