//! The demo dataset behind `serve --demo`: the library's deterministic generator, loaded in
//! batches, and the seed document's three curl examples made runnable against it.

use tracestore::demo::{DemoConfig, Generator};
use tracestore::{Result, Store};

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

/// The seed document's three examples, as runnable commands against `base_url` (such as
/// `http://127.0.0.1:8080`) with `key`. The pagination example uses the real `nextCursor` of
/// the first example's first page, which is returned alongside.
#[derive(Clone, Debug)]
pub struct Examples {
    pub cursor: Option<String>,
    pub commands: [String; 3],
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
    Ok(Examples {
        commands: [
            curl(EXAMPLE_ERRORS_QUERY),
            curl(&page2),
            curl(EXAMPLE_DATES_TAGS_QUERY),
        ],
        cursor,
    })
}

/// The decoded pairs of a query string, as the server would pass them to the library.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
