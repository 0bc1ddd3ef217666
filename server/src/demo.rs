//! The demo dataset behind `serve --demo`: the library's deterministic generator, loaded in
//! batches, the seed document's three curl examples made runnable against it, and two more: one
//! trace's span tree without payloads, and a span sent over OTLP/HTTP.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tracestore::demo::{DemoConfig, Generator};
use tracestore::{ErrorCode, Result, Store};

/// The project the demo key belongs to.
pub const DEMO_PROJECT: &str = "demo";
/// The other projects the generator fills, so that tenant isolation can be seen.
pub const DEMO_OTHER_PROJECTS: [&str; 2] = ["other-team", "sandbox"];
/// Traces generated in total (about 90% land in [`DEMO_PROJECT`]).
pub const DEMO_TRACES: usize = 20_000;
/// Traces per ingest batch while loading.
pub const DEMO_BATCH_TRACES: usize = 1000;

/// The seed document's first example, unchanged.
pub const EXAMPLE_ERRORS_QUERY: &str = "limit=20&status=ERROR&name=support-agent";
/// The seed document's third example, unchanged.
pub const EXAMPLE_DATES_TAGS_QUERY: &str =
    "startDate=2026-03-01T00:00:00Z&endDate=2026-03-15T00:00:00Z&tags=production,v2";
/// Totals and facets of the error traces, on a one-trace page.
pub const EXAMPLE_COUNTS_QUERY: &str = "status=ERROR&limit=1&include=total,facets";
/// A CSV export of the error traces tagged production.
pub const EXAMPLE_EXPORT_QUERY: &str = "status=ERROR&tags=production&format=csv";

/// The generator configuration of the demo.
pub fn demo_config(traces: usize) -> DemoConfig {
    let mut projects = vec![DEMO_PROJECT.to_string()];
    projects.extend(DEMO_OTHER_PROJECTS.iter().map(|p| p.to_string()));
    DemoConfig {
        traces,
        projects,
        ..DemoConfig::default()
    }
}

/// True when the demo project has no traces yet.
pub fn demo_is_empty(store: &Store) -> Result<bool> {
    Ok(store
        .query_params(DEMO_PROJECT, [("limit", "1")])?
        .traces
        .is_empty())
}

/// Loads `traces` generated traces in batches of [`DEMO_BATCH_TRACES`], calling
/// `progress(traces_loaded_so_far)` after each batch. Returns how many landed in
/// [`DEMO_PROJECT`].
pub fn load_demo(store: &Store, traces: usize, mut progress: impl FnMut(u64)) -> Result<u64> {
    let mut gen = Generator::new(demo_config(traces));
    let mut loaded = 0u64;
    let mut in_demo = 0u64;
    loop {
        let groups = gen.next_batch(DEMO_BATCH_TRACES);
        if groups.is_empty() {
            return Ok(in_demo);
        }
        for (project, batch) in groups {
            let n = batch.len() as u64;
            store.ingest(&project, batch)?;
            loaded += n;
            if project == DEMO_PROJECT {
                in_demo += n;
            }
        }
        progress(loaded);
    }
}

/// What [`load_demo_resumable`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoLoad {
    /// Traces of the dataset that belong to [`DEMO_PROJECT`].
    pub in_demo: u64,
    /// Traces written by this call.
    pub written: u64,
    /// Traces skipped because an earlier, interrupted load had already written them.
    pub skipped: u64,
}

/// Loads the demo dataset like [`load_demo`], but completes an interrupted load instead of
/// starting over: the generator is deterministic, and each group of a batch is one atomic
/// ingest, so a group whose last trace is already in the store was written whole by an earlier
/// run and is skipped. Calls `progress(traces_done_so_far)` after each batch.
pub fn load_demo_resumable(
    store: &Store,
    traces: usize,
    mut progress: impl FnMut(u64),
) -> Result<DemoLoad> {
    let mut gen = Generator::new(demo_config(traces));
    let mut done = 0u64;
    let mut load = DemoLoad::default();
    loop {
        let groups = gen.next_batch(DEMO_BATCH_TRACES);
        if groups.is_empty() {
            return Ok(load);
        }
        for (project, batch) in groups {
            let n = batch.len() as u64;
            let last = batch.last().and_then(|t| t.id.clone());
            let written_before = match last {
                Some(id) => match store.get_trace(&project, &id) {
                    Ok(_) => true,
                    Err(e) if e.code() == ErrorCode::NotFound => false,
                    Err(e) => return Err(e),
                },
                None => false,
            };
            if written_before {
                load.skipped += n;
            } else {
                store.ingest(&project, batch)?;
                load.written += n;
            }
            done += n;
            if project == DEMO_PROJECT {
                load.in_demo += n;
            }
        }
        progress(done);
    }
}

/// What `serve --demo` keeps next to the database ([`demo_state_path`]): the demo key's
/// plaintext, so that every restart shows the same key, and whether the dataset was loaded in
/// full, so that an interrupted load is completed by the next start.
///
/// The file is written with mode 0600 (it holds a working key), through a temporary file and a
/// rename, so it is never half-written. It is written before the load starts (`complete:
/// false`) and again when the load is done (`complete: true`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DemoState {
    /// The demo key, as `keys create` printed it.
    pub key: String,
    /// Its prefix, as `keys list` shows it.
    pub prefix: String,
    /// How many traces the dataset has (`--demo-traces` of the first start).
    pub traces: usize,
    /// True once every trace of the dataset was written.
    pub complete: bool,
}

/// The demo state file of the database at `db`: `<db>.demo.json` in the same directory.
pub fn demo_state_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".demo.json");
    db.with_file_name(name)
}

impl DemoState {
    /// Reads the state file; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> std::io::Result<Option<DemoState>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the state file atomically, readable by its owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::io::Write::write_all(&mut file, &text)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    }
}

/// The trace id of [`EXAMPLE_OTLP_BODY`]: a re-sent export replaces its span, so the example
/// can be run any number of times.
pub const EXAMPLE_OTLP_TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
/// The OTLP example's body: one LLM span (OpenInference attributes) in OTLP/JSON, on
/// 2026-03-31 like the newest demo traces.
pub const EXAMPLE_OTLP_BODY: &str = concat!(
    r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"support-agent"}}]},"#,
    r#""scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","#,
    r#""name":"chat","kind":3,"startTimeUnixNano":"1774951200000000000","endTimeUnixNano":"1774951201200000000","#,
    r#""attributes":[{"key":"openinference.span.kind","value":{"stringValue":"LLM"}},"#,
    r#"{"key":"llm.model_name","value":{"stringValue":"gpt-4o"}}]}]}]}]}"#
);

/// The seed document's three examples, as runnable commands against `base_url` (such as
/// `http://127.0.0.1:8080`) with `key`. The pagination example uses the real `nextCursor` of
/// the first example's first page, which is returned alongside.
#[derive(Clone, Debug)]
pub struct Examples {
    pub cursor: Option<String>,
    pub commands: [String; 3],
    /// Further examples, each with the comment line to print above it (without `# `): the
    /// span tree of the first example's first trace (`?payloads=false`), when there is one,
    /// the total and facets of the error traces, a CSV export, and an OTLP/HTTP send.
    pub more: Vec<(String, String)>,
}

/// Builds [`Examples`] for the demo project of `store`.
pub fn examples(store: &Store, base_url: &str, key: &str) -> Result<Examples> {
    let first = store.query_params(DEMO_PROJECT, pairs(EXAMPLE_ERRORS_QUERY))?;
    let cursor = first.next_cursor;
    let url = |q: &str| format!("{base_url}/api/v1/traces?{q}");
    let curl = |q: &str| {
        format!(
            "curl \"{}\" \\\n  -H \"Authorization: Bearer {key}\"",
            url(q)
        )
    };
    let page2 = format!("cursor={}", cursor.as_deref().unwrap_or(""));
    let mut more = Vec::new();
    if let Some(t) = first.traces.first() {
        more.push((
            "One trace's span tree, without inputs, outputs or attributes (the first trace above)"
                .to_string(),
            format!(
                "curl \"{base_url}/api/v1/traces/{}?payloads=false\" \\\n  -H \"Authorization: Bearer {key}\"",
                t.id
            ),
        ));
    }
    more.push((
        "Count every error trace, with its top names and tags (exact, from the indexes)"
            .to_string(),
        curl(EXAMPLE_COUNTS_QUERY),
    ));
    more.push((
        "Export every error trace tagged production, as CSV (no page limit, one snapshot)"
            .to_string(),
        format!(
            "curl \"{base_url}/api/v1/export/traces?{EXAMPLE_EXPORT_QUERY}\" \\\n  -H \"Authorization: Bearer {key}\""
        ),
    ));
    more.push((
        "Send a span over OTLP/HTTP (OTLP/JSON; exporters send application/x-protobuf here too)"
            .to_string(),
        format!(
            "curl \"{base_url}/v1/traces\" \\\n  -H \"Authorization: Bearer {key}\" \\\n  \
             -H \"Content-Type: application/json\" \\\n  -d '{EXAMPLE_OTLP_BODY}'"
        ),
    ));
    Ok(Examples {
        commands: [
            curl(EXAMPLE_ERRORS_QUERY),
            curl(&page2),
            curl(EXAMPLE_DATES_TAGS_QUERY),
        ],
        cursor,
        more,
    })
}

/// The decoded pairs of a query string, as the server would pass them to the library.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
