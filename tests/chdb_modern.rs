//! The ClickHouse engine's SQL on a modern ClickHouse, and its version-gated features both
//! ways. A store on the ClickHouse server the engine supports (18.16, which has none of the
//! modern features: the test checks that none was applied) gets a random dataset: demo
//! traces, traces full of quotes, backslashes and SQL keywords, upserts that leave several
//! versions of a row, and deletes (tombstone rows there). With the server's merges stopped,
//! its tables are dumped with every row version (no `FINAL`). Then the SQL of random list
//! queries (`tracestore::clickhouse_sql::query_sql`: the page, the total, the three facets and
//! the status counts; and the second page a cursor resumes, from `Store::explain`, values
//! inlined) runs on that server for the expected answers.
//! `tests/chdb/check.py` creates the tables in chdb (ClickHouse embedded in Python, a current
//! release) with the DDL the engine runs on that release (skip indexes, the `DateTime64`
//! column), loads the dumps as unmerged parts, runs the same SQL and compares every answer
//! byte for byte: the modern engine must parse the SQL, mean the same by it, and deduplicate
//! the versions with `FINAL` as the merge did, its skip indexes dropping granules without
//! changing an answer. Then it runs the lightweight deletes the engine issues there for the
//! deleted traces: every answer must stay the same, the live children must equal the old
//! server's, and no row of a deleted trace may be left. On a failure the corpus is kept and
//! its path shown.
//!
//! Needs `TRACESTORE_CLICKHOUSE_URL` (the server; `.ci/clickhouse.sh` starts one) and
//! `TRACESTORE_CHDB_PYTHON` (a Python with chdb; `eval "$(bash .ci/chdb.sh)"` makes a venv
//! under `target/` and sets it). Without either the test prints that it did not run, unless
//! `TRACESTORE_REQUIRE_CLICKHOUSE=1` (set by CI) makes that a failure.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
#[path = "support/clickhouse_data.rs"]
mod data;

use data::*;
use tracestore::{ClickHouseConfig, ErrorCode, QueryRequest, Store, TraceInput};

/// Demo traces in the dataset (the hostile ones come on top).
const TRACES: usize = 400;
/// Traces per ingest call.
const BATCH: usize = 60;
/// Upserts of stored traces: each leaves one more version of a row.
const UPSERTS: usize = TRACES / 3;
/// Upserts per ingest call.
const UPSERT_BATCH: usize = 8;
/// Traces deleted at the end: a newer version that `FINAL` must prefer.
const DELETES: usize = 12;
/// Random query parameter sets; each gives six SQL texts (and so does each of the
/// `HOSTILE_PARAMS` sets of every hostile text).
const PARAM_SETS: usize = 200;
/// The tables dumped from the server and loaded into chdb.
const TABLES: [&str; 5] = ["traces", "trace_ids", "spans", "scores", "payloads"];
/// The database the corpus's DDL creates in chdb (its queries name tables unqualified).
const CORPUS_DATABASE: &str = "tracestore";

/// The server at `url`, over HTTP: runs `sql` in `database` and returns the output, or panics
/// with the server's message.
fn run_sql(url: &str, database: &str, sql: &str) -> Vec<u8> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut child = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", "@-"])
        .arg(format!("{url}{sep}database={database}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("curl");
    assert!(
        out.status.success(),
        "ClickHouse at {url} refused {sql}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Drops the test's database when the test ends, passed or failed.
struct DropDatabase<'a> {
    url: &'a str,
    db: String,
}

impl Drop for DropDatabase<'_> {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args(["-sS", "--data-binary"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.db))
            .arg(self.url)
            .output();
    }
}

/// The dataset, ingested: demo traces and hostile ones in batches, then upserts of stored
/// traces (patches, late and re-costed spans, scores, moves), then deletes. Returns the
/// deleted traces as (project, id).
fn ingest_dataset(store: &Store, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let all = base_traces(&mut rng, seed, TRACES);
    for (p, batch) in project_batches(&all, BATCH) {
        store.ingest(&p, batch).expect("ingest a batch");
    }
    let mut patches: Vec<(String, TraceInput)> = Vec::new();
    for _ in 0..UPSERTS {
        let (p, t) = rng.pick(&all);
        patches.push((p.clone(), random_patch(&mut rng, t)));
    }
    // Sent a few at a time (with merges stopped, every insert is a part): one project and
    // each trace at most once per batch.
    patches.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pending: Vec<TraceInput> = Vec::new();
    let mut pending_project = String::new();
    for (p, patch) in patches {
        if pending.len() == UPSERT_BATCH
            || (!pending.is_empty() && pending_project != p)
            || pending.iter().any(|t| t.id == patch.id)
        {
            let batch = std::mem::take(&mut pending);
            store
                .ingest(&pending_project, batch)
                .expect("ingest upserts");
        }
        pending_project = p;
        pending.push(patch);
    }
    if !pending.is_empty() {
        store
            .ingest(&pending_project, pending)
            .expect("ingest upserts");
    }
    let mut deleted = Vec::new();
    for _ in 0..DELETES {
        let (p, t) = rng.pick(&all);
        let id = t.id.clone().unwrap();
        match store.delete_trace(p, &id) {
            Ok(()) => deleted.push((p.clone(), id)),
            // A trace picked twice is gone the second time.
            Err(e) => assert_eq!(e.code(), ErrorCode::NotFound, "delete: {e}"),
        }
    }
    deleted
}

/// The parameters a hostile text is given to alone, each matching the hostile trace's field.
const HOSTILE_PARAMS: [&str; 6] = [
    "name",
    "tags",
    "userId",
    "metadata.note",
    "spanName",
    "spanModel",
];

/// Each hostile text alone as the value of each of `HOSTILE_PARAMS`.
fn hostile_queries() -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for text in HOSTILE {
        for param in HOSTILE_PARAMS {
            let value = if param == "userId" {
                no_space(text)
            } else {
                text.to_string()
            };
            out.push(vec![(param.to_string(), value)]);
        }
    }
    out
}

/// Bytes as a JSON string, one code point per byte (latin-1): outputs can be binary.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[test]
fn the_engines_sql_answers_alike_on_a_modern_clickhouse() {
    let Some(url) = required_env("TRACESTORE_CLICKHOUSE_URL") else {
        return;
    };
    let Some(python) = required_env("TRACESTORE_CHDB_PYTHON") else {
        return;
    };
    let started = std::time::Instant::now();
    let out = Command::new(&python)
        .args(["-c", "import chdb; print(chdb.engine_version)"])
        .output()
        .expect("run the chdb python");
    assert!(out.status.success(), "no chdb: {out:?}");
    let chdb_version = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let db = format!("ts_chdb_{}", std::process::id());
    let _cleanup = DropDatabase {
        url: &url,
        db: db.clone(),
    };
    run_sql(&url, "default", &format!("DROP DATABASE IF EXISTS {db}"));
    let store = Store::builder()
        .open_clickhouse(&ClickHouseConfig::new(url.clone()).database(db.clone()))
        .expect("open the ClickHouse store");
    // This server is too old for every modern feature: none was applied, and its tables have
    // no skip index and no DateTime64 column.
    let features = run_sql(
        &url,
        &db,
        "SELECT count() FROM meta WHERE key LIKE 'feature.%' FORMAT TabSeparated",
    );
    assert_eq!(String::from_utf8_lossy(&features).trim(), "0");
    let create = run_sql(&url, &db, "SHOW CREATE TABLE traces FORMAT TabSeparated");
    let create = String::from_utf8_lossy(&create);
    assert!(
        !create.contains("INDEX") && !create.contains("DateTime64"),
        "{create}"
    );
    // No background merge may fold the versions away before the dump.
    for table in TABLES {
        run_sql(&url, &db, &format!("SYSTEM STOP MERGES {db}.{table}"));
    }
    let deleted = ingest_dataset(&store, 11);
    assert!(!deleted.is_empty(), "the dataset deleted no trace");
    eprintln!(
        "dataset ingested ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // Every row version, as the engine left them: FINAL has to pick the latest on both sides.
    let dir = tempfile::tempdir().unwrap();
    let mut tables = serde_json::Map::new();
    for table in TABLES {
        let rows = run_sql(
            &url,
            &db,
            &format!("SELECT * FROM {db}.{table} FORMAT TabSeparated"),
        );
        let path = dir.path().join(format!("{table}.tsv"));
        std::fs::write(&path, &rows).unwrap();
        tables.insert(table.into(), path.to_str().unwrap().into());
        if table == "traces" {
            let all = rows
                .split(|&b| b == b'\n')
                .filter(|r| !r.is_empty())
                .count();
            let latest = run_sql(
                &url,
                &db,
                &format!("SELECT count() FROM {db}.{table} FINAL FORMAT TabSeparated"),
            );
            let latest: usize = String::from_utf8_lossy(&latest).trim().parse().unwrap();
            assert!(
                all > latest + UPSERTS / 2,
                "{table}: {all} row versions for {latest} rows: the upserts left no versions"
            );
        }
    }

    // The expected answers come from the versions merged away: what FINAL must show of the
    // unmerged parts chdb gets (and one part, not one per insert, keeps the server fast).
    run_sql(&url, &db, &format!("SYSTEM START MERGES {db}.traces"));
    run_sql(&url, &db, &format!("OPTIMIZE TABLE {db}.traces FINAL"));
    let parts = run_sql(
        &url,
        &db,
        &format!(
            "SELECT count() FROM system.parts WHERE database = '{db}' AND table = 'traces' \
             AND active FORMAT TabSeparated"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&parts).trim(),
        "1",
        "traces not merged"
    );

    let mut rng = Rng(2026);
    let mut sets: Vec<(&str, Vec<(String, String)>)> = (0..PARAM_SETS)
        .map(|_| {
            let params = random_query(
                &mut rng,
                Extras {
                    limit: true,
                    include: false,
                },
            );
            (*rng.pick(&PROJECTS), params)
        })
        .collect();
    let hostile = hostile_queries();
    let hostile_sets = hostile.len();
    sets.extend(hostile.into_iter().map(|q| ("demo", q)));
    let mut queries = Vec::new();
    let mut pages_with_rows = 0;
    let mut hostile_with_rows = 0;
    let mut second_pages = 0;
    let mut answer = |sql: &str| {
        let expected = run_sql(&url, &db, &format!("{sql} FORMAT TabSeparated"));
        queries.push(serde_json::json!({"sql": sql, "expected": latin1(&expected)}));
        expected
    };
    for (n, (project, params)) in sets.iter().enumerate() {
        let texts = tracestore::clickhouse_sql::query_sql(project, params)
            .unwrap_or_else(|e| panic!("query_sql {params:?}: {e} {:?}", e.details()));
        for (i, sql) in texts.iter().enumerate() {
            let expected = answer(sql);
            // The first text is the page.
            if i == 0 && !expected.is_empty() {
                pages_with_rows += 1;
                hostile_with_rows += usize::from(n >= PARAM_SETS);
            }
        }
        // The second page's SQL (of pages of a few rows), with the condition a cursor resumes
        // after: `explain` shows the SQL a page runs.
        let mut first: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "limit")
            .cloned()
            .collect();
        first.push(("limit".into(), (1 + n % 4).to_string()));
        let req =
            QueryRequest::from_params(first.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        let page = store.query(project, &req).expect("first page");
        if let Some(cursor) = page.next_cursor {
            let mut next = first.clone();
            next.push(("cursor".into(), cursor));
            let req = QueryRequest::from_params(next.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap();
            let sql = store.explain(project, &req).expect("explain").sql.unwrap();
            assert!(
                !answer(&sql).is_empty(),
                "a second page with no rows: {sql}"
            );
            second_pages += 1;
        }
    }
    assert!(
        second_pages * 4 > sets.len(),
        "only {second_pages} of {} queries had a second page",
        sets.len()
    );

    // The modern engine deletes children by lightweight `DELETE` where this server wrote
    // tombstone rows: after those deletes, the children each version shows must agree, and no
    // row of a deleted trace may be left on the modern side.
    let mut deletes = Vec::new();
    let mut after_deletes = Vec::new();
    let mut tombstones = 0usize;
    // The deleted traces' ids, by project (projects with none left out).
    let deleted_by_project: Vec<(&str, Vec<String>)> = PROJECTS
        .iter()
        .map(|&project| {
            let ids = deleted
                .iter()
                .filter(|(p, _)| p == project)
                .map(|(_, id)| id.clone())
                .collect::<Vec<_>>();
            (project, ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    for table in ["spans", "scores", "payloads"] {
        let live = format!(
            "SELECT project, trace_id, child_id, version, record FROM {table} FINAL \
             WHERE deleted = 0 ORDER BY project, trace_id, child_id"
        );
        let expected = run_sql(&url, &db, &format!("{live} FORMAT TabSeparated"));
        after_deletes.push(serde_json::json!({"sql": live, "expected": latin1(&expected)}));
        for (project, ids) in &deleted_by_project {
            let client_ids = ids
                .iter()
                .map(|i| format!("'{}'", i.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(", ");
            let left = format!(
                "SELECT count() FROM {table} WHERE project = '{project}' \
                 AND has([{client_ids}], trace_id)"
            );
            // Here every child of a deleted trace is still a row (its tombstone)...
            let here = run_sql(&url, &db, &format!("{left} FORMAT TabSeparated"));
            tombstones += String::from_utf8_lossy(&here)
                .trim()
                .parse::<usize>()
                .unwrap();
            // ... and on the modern side none is left.
            after_deletes.push(serde_json::json!({"sql": left, "expected": "0\n"}));
        }
    }
    for (project, ids) in &deleted_by_project {
        deletes.extend(
            tracestore::clickhouse_sql::delete_sql(CORPUS_DATABASE, &chdb_version, project, ids)
                .unwrap(),
        );
    }
    assert!(
        tombstones > 0,
        "the deleted traces had no children to delete"
    );
    // Three statements (spans, scores, payloads) for each project with a deleted trace.
    assert!(
        !deletes.is_empty() && deletes.len() % 3 == 0,
        "lightweight deletes for ClickHouse {chdb_version}: {deletes:?}"
    );
    eprintln!(
        "{} SQL texts answered by the server: {pages_with_rows} of {} pages with rows, \
         {hostile_with_rows} of {hostile_sets} hostile ones, {second_pages} second pages, \
         {tombstones} children of deleted traces ({:.1} s)",
        queries.len(),
        sets.len(),
        started.elapsed().as_secs_f64()
    );
    // The generator must exercise real matches, not only empty answers.
    assert!(
        pages_with_rows * 2 > sets.len(),
        "{pages_with_rows} of {} pages had rows",
        sets.len()
    );
    assert!(
        hostile_with_rows * 2 > hostile_sets,
        "{hostile_with_rows} of {hostile_sets} hostile pages had rows"
    );

    // The engine's DDL for chdb's version (with every modern feature), with 16-row granules so
    // that the skip indexes have granules to skip in a small dataset.
    let ddl: Vec<String> = tracestore::clickhouse_sql::schema_sql(CORPUS_DATABASE, &chdb_version)
        .unwrap()
        .into_iter()
        .map(|s| {
            if s.starts_with("CREATE TABLE") {
                format!("{s} SETTINGS index_granularity = 16")
            } else {
                s
            }
        })
        .collect();
    assert!(
        ddl.iter().any(|s| s.contains("ngrambf_v1"))
            && ddl.iter().any(|s| s.contains("DateTime64")),
        "no modern feature for ClickHouse {chdb_version}: {ddl:?}"
    );
    let n_after = after_deletes.len();
    let corpus = serde_json::json!({
        "ddl": ddl,
        "tables": tables,
        "queries": queries,
        "deletes": deletes,
        "after_deletes": after_deletes,
    });
    let corpus_path = dir.path().join("corpus.json");
    std::fs::write(&corpus_path, serde_json::to_vec(&corpus).unwrap()).unwrap();
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb/check.py");
    let out = Command::new(&python)
        .arg(&check)
        .arg(&corpus_path)
        .output()
        .expect("run the chdb check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let want = format!("{0} of {0} queries identical", queries.len() * 2 + n_after);
    let skipped = stdout
        .lines()
        .find_map(|l| l.strip_prefix("skip indexes dropped granules in "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok());
    if !out.status.success() || !stdout.lines().any(|l| l == want) {
        // Kept for a rerun by hand: `$TRACESTORE_CHDB_PYTHON tests/chdb/check.py CORPUS`.
        let kept = dir.keep();
        panic!(
            "{check:?} failed ({}): expected {want:?}, got {stdout:?}; corpus kept at {}",
            out.status,
            kept.join("corpus.json").display()
        );
    }
    assert!(
        skipped.is_some_and(|n| n > 0),
        "the skip indexes dropped no granule: {stdout:?}"
    );
    eprintln!(
        "{} SQL texts of {} queries identical on chdb, before and after its lightweight \
         deletes, and {n_after} checks of the children; {} pages skipped granules by index \
         ({:.1} s)",
        queries.len(),
        sets.len(),
        skipped.unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
}
