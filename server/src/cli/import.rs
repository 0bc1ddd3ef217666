//! `tracestore import`: a JSON or JSON Lines file into a project, in batches the library
//! accepts (at most `MAX_BATCH_TRACES` traces and `MAX_BATCH_BYTES` bytes each).
//!
//! Each batch is atomic; batches are not atomic together. The whole file is parsed before the
//! first batch is written, so a syntax error anywhere writes nothing; a validation error in a
//! batch stops the import after the batches before it were committed (re-running the import is
//! safe for traces that carry ids: ingest upserts by id).

use super::{open_store, CliError, Format};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::path::Path;
use std::time::Instant;
use tracestore::limits::{MAX_BATCH_BYTES, MAX_BATCH_TRACES};
use tracestore::IngestSummary;

/// Most parse errors listed before the rest are summarized.
const MAX_REPORTED_ERRORS: usize = 20;
/// `{"traces":[` and `]}` around the items of one batch.
const BODY_HEAD: &str = "{\"traces\":[";
const BODY_TAIL: &str = "]}";

/// Where an item came from, for error messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// 1-based line of a JSON Lines file.
    Line(usize),
    /// 0-based index in a JSON array.
    Item(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(n) => write!(f, "line {n}"),
            Origin::Item(i) => write!(f, "item {i}"),
        }
    }
}

struct Item {
    origin: Origin,
    raw: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapper {
    traces: Vec<Box<RawValue>>,
}

pub(super) fn run(db: &Path, file: &Path, project: &str, format: Format) -> Result<(), CliError> {
    let started = Instant::now();
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display())))?;
    let items = parse(file, &bytes, format)?;
    if items.is_empty() {
        return Err(CliError::new(format!("{} holds no traces", file.display())));
    }
    let batches = plan_batches(&items)?;
    let store = open_store(db, true)?;

    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} traces ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut total = IngestSummary::default();
    for range in batches {
        let batch = &items[range.clone()];
        let body = body(batch);
        match store.ingest_json(project, body.as_bytes()) {
            Ok(s) => {
                total.created += s.created;
                total.updated += s.updated;
                total.spans += s.spans;
                total.scores += s.scores;
                bar.inc(batch.len() as u64);
            }
            Err(e) => {
                bar.abandon();
                let details = e
                    .details()
                    .iter()
                    .map(|d| name_item(batch, d.field(), d.message()))
                    .collect();
                let committed = total.created + total.updated;
                let first = batch
                    .first()
                    .map_or_else(String::new, |i| i.origin.to_string());
                let why = if e.details().is_empty() {
                    format!(" ({})", e.public_message())
                } else {
                    String::new()
                };
                return Err(CliError::with_details(
                    format!(
                        "the batch starting at {first} was rejected{why}; nothing of it was written \
                         ({committed} trace(s) from earlier batches were imported)"
                    ),
                    details,
                ));
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "imported {} trace(s) from {} into project \"{project}\": {} created, {} updated, {} span(s), {} score(s) in {:.2}s",
        items.len(),
        file.display(),
        total.created,
        total.updated,
        total.spans,
        total.scores,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The file's trace items, each with its origin. Every syntax error is reported before anything
/// is written.
fn parse(file: &Path, bytes: &[u8], format: Format) -> Result<Vec<Item>, CliError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = match format {
        Format::Auto if ext == "jsonl" || ext == "ndjson" => Format::Jsonl,
        Format::Auto if first == Some(b'[') => Format::Json,
        Format::Auto => {
            // `{` starts both a {"traces": [...]} document and a JSON Lines file.
            match parse_json(bytes) {
                Ok(items) => return Ok(items),
                Err(json_err) => {
                    let first_line = bytes
                        .split(|b| *b == b'\n')
                        .find(|l| !l.trim_ascii().is_empty());
                    let is_object_line = first_line
                        .and_then(|l| {
                            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(l)
                                .ok()
                        })
                        .is_some();
                    if !is_object_line {
                        return Err(json_err);
                    }
                    Format::Jsonl
                }
            }
        }
        f => f,
    };
    match format {
        Format::Jsonl => parse_jsonl(bytes),
        _ => parse_json(bytes),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Vec<Item>, CliError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let raws = if first == Some(b'[') {
        serde_json::from_slice::<Vec<Box<RawValue>>>(bytes)
    } else {
        serde_json::from_slice::<Wrapper>(bytes).map(|w| w.traces)
    }
    .map_err(|e| {
        CliError::new(format!(
            "not a JSON document of traces ({{\"traces\": [...]}} or [...]): {e}"
        ))
    })?;
    Ok(raws
        .into_iter()
        .enumerate()
        .map(|(i, raw)| Item {
            origin: Origin::Item(i),
            raw,
        })
        .collect())
}

fn parse_jsonl(bytes: &[u8]) -> Result<Vec<Item>, CliError> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut bad = 0usize;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let origin = Origin::Line(i + 1);
        match serde_json::from_slice::<Box<RawValue>>(line) {
            Ok(raw) => items.push(Item { origin, raw }),
            Err(e) => {
                bad += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(format!("{origin}: invalid JSON: {e}"));
                }
            }
        }
    }
    if bad > 0 {
        if bad > errors.len() {
            errors.push(format!("... and {} more", bad - errors.len()));
        }
        return Err(CliError::with_details(
            format!("{bad} line(s) are not valid JSON; nothing was imported"),
            errors,
        ));
    }
    Ok(items)
}

/// Splits the items into consecutive batches of at most `MAX_BATCH_TRACES` traces whose body
/// stays within `MAX_BATCH_BYTES`.
fn plan_batches(items: &[Item]) -> Result<Vec<std::ops::Range<usize>>, CliError> {
    let overhead = BODY_HEAD.len() + BODY_TAIL.len();
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = overhead;
    for (i, item) in items.iter().enumerate() {
        let len = item.raw.get().len();
        if overhead + len > MAX_BATCH_BYTES {
            return Err(CliError::new(format!(
                "{}: the trace is {len} bytes; one ingest batch holds at most {MAX_BATCH_BYTES} bytes",
                item.origin
            )));
        }
        let sep = usize::from(i > start);
        if i - start == MAX_BATCH_TRACES || size + sep + len > MAX_BATCH_BYTES {
            batches.push(start..i);
            start = i;
            size = overhead + len;
        } else {
            size += sep + len;
        }
    }
    if start < items.len() {
        batches.push(start..items.len());
    }
    Ok(batches)
}

fn body(batch: &[Item]) -> String {
    let len: usize = batch.iter().map(|i| i.raw.get().len() + 1).sum();
    let mut s = String::with_capacity(BODY_HEAD.len() + len + BODY_TAIL.len());
    s.push_str(BODY_HEAD);
    for (i, item) in batch.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item.raw.get());
    }
    s.push_str(BODY_TAIL);
    s
}

/// `traces[3].spans[1].cost` of a batch → `line 17: spans[1].cost: <message>`.
fn name_item(batch: &[Item], field: &str, message: &str) -> String {
    let located = field.strip_prefix("traces[").and_then(|rest| {
        let (index, tail) = rest.split_once(']')?;
        let item = batch.get(index.parse::<usize>().ok()?)?;
        Some((item.origin, tail.strip_prefix('.').unwrap_or(tail)))
    });
    match located {
        Some((origin, "")) => format!("{origin}: {message}"),
        Some((origin, tail)) => format!("{origin}: {tail}: {message}"),
        None => format!("{field}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lens: &[usize]) -> Vec<Item> {
        lens.iter()
            .enumerate()
            .map(|(i, n)| {
                let text = format!("\"{}\"", "x".repeat(n - 2));
                Item {
                    origin: Origin::Item(i),
                    raw: RawValue::from_string(text).unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let big = MAX_BATCH_BYTES / 3;
        // (item sizes, expected batches)
        let cases: Vec<(Vec<usize>, Vec<std::ops::Range<usize>>)> = vec![
            (vec![10; 2500], vec![0..1000, 1000..2000, 2000..2500]),
            (vec![big; 4], vec![0..2, 2..4]),
            (vec![10, big, big, big, 10], vec![0..3, 3..5]),
        ];
        for (lens, want) in cases {
            let it = items(&lens);
            let got = plan_batches(&it).unwrap();
            assert_eq!(got, want, "{:?}", &lens[..lens.len().min(5)]);
            for r in got {
                assert!(body(&it[r]).len() <= MAX_BATCH_BYTES);
            }
        }
        assert!(plan_batches(&items(&[MAX_BATCH_BYTES])).is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let it = vec![
            Item {
                origin: Origin::Line(3),
                raw: RawValue::from_string("{}".into()).unwrap(),
            },
            Item {
                origin: Origin::Line(7),
                raw: RawValue::from_string("{}".into()).unwrap(),
            },
        ];
        let cases = [
            (
                "traces[1].spans[0].cost",
                "must be >= 0",
                "line 7: spans[0].cost: must be >= 0",
            ),
            ("traces[0]", "bad", "line 3: bad"),
            ("traces", "too many", "traces: too many"),
        ];
        for (field, msg, want) in cases {
            assert_eq!(name_item(&it, field, msg), want);
        }
    }
}
