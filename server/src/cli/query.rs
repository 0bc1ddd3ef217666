//! `tracestore query`: the endpoint's parameters as flags, through the library's one parser.

use super::{open_read_only, table, CliError};
use clap::Args;
use std::path::Path;
use tracestore::{Page, Trace};

#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    /// The project to query.
    #[arg(long)]
    project: String,
    #[command(flatten)]
    filters: FilterArgs,
    /// Page size, 1 to 100 (50 when absent).
    #[arg(long)]
    limit: Option<String>,
    /// The nextCursor of a previous page.
    #[arg(long)]
    cursor: Option<String>,
    /// Also count the whole matching set: `total`, `facets`, or `total,facets`.
    #[arg(long, value_name = "WHAT")]
    include: Option<String>,
    /// Print the endpoint's exact JSON envelope instead of a table.
    #[arg(long)]
    json: bool,
}

/// The list query's filters as flags, shared by `query` and `export`.
#[derive(Debug, Args)]
pub(super) struct FilterArgs {
    /// OK or ERROR (case-insensitive).
    #[arg(long)]
    status: Option<String>,
    /// Case-insensitive substring of the trace name.
    #[arg(long)]
    name: Option<String>,
    /// Comma-separated tags; a trace must carry all of them.
    #[arg(long)]
    tags: Option<String>,
    /// Keep traces with startTime >= this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "INSTANT")]
    start_date: Option<String>,
    /// Keep traces with startTime < this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "INSTANT")]
    end_date: Option<String>,
    /// Comma-separated tags; a trace must carry at least one of them.
    #[arg(long)]
    any_tags: Option<String>,
    /// Comma-separated tags; a trace must carry none of them.
    #[arg(long)]
    exclude_tags: Option<String>,
    /// Exact userId.
    #[arg(long)]
    user_id: Option<String>,
    /// Exact sessionId.
    #[arg(long)]
    session_id: Option<String>,
    /// Inclusive lower bound on durationMs (a running trace never matches).
    #[arg(long, value_name = "MS")]
    min_duration_ms: Option<String>,
    /// Inclusive upper bound on durationMs.
    #[arg(long, value_name = "MS")]
    max_duration_ms: Option<String>,
    /// Inclusive lower bound on totalCost (an exact decimal).
    #[arg(long, value_name = "USD")]
    min_cost: Option<String>,
    /// Inclusive upper bound on totalCost.
    #[arg(long, value_name = "USD")]
    max_cost: Option<String>,
    /// Inclusive lower bound on totalTokens.
    #[arg(long, value_name = "N")]
    min_tokens: Option<String>,
    /// Inclusive upper bound on totalTokens.
    #[arg(long, value_name = "N")]
    max_tokens: Option<String>,
    /// Span condition: case-insensitive substring of a span's name. The span conditions hold
    /// together on one span of the trace.
    #[arg(long)]
    span_name: Option<String>,
    /// Span condition: a span's exact model.
    #[arg(long)]
    span_model: Option<String>,
    /// Span condition: a span's kind (LLM, CHAIN, TOOL, AGENT, RETRIEVER, EMBEDDING, RERANKER,
    /// GUARDRAIL, EVALUATOR or UNKNOWN; case-insensitive).
    #[arg(long)]
    span_kind: Option<String>,
    /// Span condition: a span's status, OK or ERROR (case-insensitive).
    #[arg(long)]
    span_status: Option<String>,
    /// The sort order: startTime.desc (default), startTime.asc, durationMs.desc|asc,
    /// totalCost.desc|asc, totalTokens.desc|asc.
    #[arg(long, value_name = "ORDER")]
    order_by: Option<String>,
    /// KEY=VALUE: the trace's top-level metadata KEY equals VALUE (repeatable; all must hold).
    #[arg(long, value_name = "KEY=VALUE")]
    metadata: Vec<String>,
}

/// Endpoint parameter → the flag that sets it, for error messages: the filters (in
/// `FilterArgs::pairs` order), then the page flags.
const FLAGS: [(&str, &str); 23] = [
    ("status", "--status"),
    ("name", "--name"),
    ("tags", "--tags"),
    ("startDate", "--start-date"),
    ("endDate", "--end-date"),
    ("anyTags", "--any-tags"),
    ("excludeTags", "--exclude-tags"),
    ("userId", "--user-id"),
    ("sessionId", "--session-id"),
    ("minDurationMs", "--min-duration-ms"),
    ("maxDurationMs", "--max-duration-ms"),
    ("minCost", "--min-cost"),
    ("maxCost", "--max-cost"),
    ("minTokens", "--min-tokens"),
    ("maxTokens", "--max-tokens"),
    ("spanName", "--span-name"),
    ("spanModel", "--span-model"),
    ("spanKind", "--span-kind"),
    ("spanStatus", "--span-status"),
    ("orderBy", "--order-by"),
    ("limit", "--limit"),
    ("cursor", "--cursor"),
    ("include", "--include"),
];

/// The (parameter, value) pairs of the flags that were given (`values` in `FLAGS` order), as
/// an HTTP query string would carry them. The library parses and validates them; this layer
/// never does.
fn given(flags: &[(&'static str, &str)], values: &[&Option<String>]) -> Vec<(String, String)> {
    flags
        .iter()
        .zip(values)
        .filter_map(|((param, _), v)| v.as_ref().map(|v| (param.to_string(), v.clone())))
        .collect()
}

impl FilterArgs {
    /// The filter flags that were given, as (parameter, value) pairs; `--metadata K=V` is the
    /// parameter `metadata.K` (a value without `=` names the key alone, which the library then
    /// refuses or takes as empty, as it would over HTTP).
    pub(super) fn pairs(&self) -> Vec<(String, String)> {
        let values = [
            &self.status,
            &self.name,
            &self.tags,
            &self.start_date,
            &self.end_date,
            &self.any_tags,
            &self.exclude_tags,
            &self.user_id,
            &self.session_id,
            &self.min_duration_ms,
            &self.max_duration_ms,
            &self.min_cost,
            &self.max_cost,
            &self.min_tokens,
            &self.max_tokens,
            &self.span_name,
            &self.span_model,
            &self.span_kind,
            &self.span_status,
            &self.order_by,
        ];
        let mut pairs = given(&FLAGS[..values.len()], &values);
        for m in &self.metadata {
            let (k, v) = m.split_once('=').unwrap_or((m.as_str(), ""));
            pairs.push((format!("metadata.{k}"), v.to_string()));
        }
        pairs
    }
}

impl QueryArgs {
    /// The flags that were given, as (parameter, value) pairs.
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = self.filters.pairs();
        pairs.extend(given(
            &FLAGS[FLAGS.len() - 3..],
            &[&self.limit, &self.cursor, &self.include],
        ));
        pairs
    }
}

pub(super) fn run(db: &Path, args: QueryArgs) -> Result<(), CliError> {
    let store = open_read_only(db)?;
    let result = store.query_params(&args.project, args.pairs());
    if args.json {
        // The exact envelope the endpoint would send, errors included.
        let (text, outcome) = match result {
            Ok(page) => (
                crate::error::success_json(&page, true)
                    .map_err(|e| CliError::new(format!("cannot serialize the page: {e}")))?,
                Ok(()),
            ),
            Err(e) => {
                let api = crate::error::ApiError::from(e);
                let failed = CliError::new(format!("query failed: {api}"));
                (api.envelope_json(true), Err(failed))
            }
        };
        println!("{text}");
        return outcome;
    }
    let page = result.map_err(flag_error)?;
    print!("{}", render(&page));
    Ok(())
}

/// A validation error in terms of the flags the user typed.
pub(super) fn flag_error(e: tracestore::Error) -> CliError {
    if e.details().is_empty() {
        return e.into();
    }
    let details = e
        .details()
        .iter()
        .map(|d| {
            let flag = match FLAGS.iter().find(|(p, _)| *p == d.field()) {
                Some((_, f)) => f.to_string(),
                None => match d.field().strip_prefix("metadata.") {
                    Some(key) => format!("--metadata {key}=..."),
                    None if d.field() == "metadata" => "--metadata".to_string(),
                    None => d.field().to_string(),
                },
            };
            format!("{flag}: {}", d.message())
        })
        .collect();
    CliError::with_details("invalid query", details)
}

fn row(t: &Trace) -> Vec<String> {
    vec![
        t.id.clone(),
        t.name.clone(),
        t.status.to_string(),
        t.start_time.to_string(),
        t.duration_ms
            .map_or_else(|| "running".to_string(), |d| format!("{d} ms")),
        t.total_cost.normalize().to_string(),
        t.total_tokens.to_string(),
        t.tags.join(","),
    ]
}

/// The table view of a page, then the cursor to the next one.
pub(crate) fn render(page: &Page) -> String {
    let mut out = String::new();
    if page.traces.is_empty() {
        out.push_str("no traces match\n");
    } else {
        let rows: Vec<Vec<String>> = page.traces.iter().map(row).collect();
        out.push_str(&table(
            &[
                "ID", "NAME", "STATUS", "START", "DURATION", "COST", "TOKENS", "TAGS",
            ],
            &rows,
            &[4, 5, 6],
        ));
        out.push_str(&format!("\n{} trace(s)\n", page.traces.len()));
    }
    match &page.next_cursor {
        Some(c) => out.push_str(&format!("next cursor: {c}\n")),
        None => out.push_str("next cursor: none (last page)\n"),
    }
    if let Some(total) = page.total {
        out.push_str(&format!("total: {total} matching trace(s)\n"));
    }
    if let Some(f) = &page.facets {
        out.push_str(&format!(
            "status: OK {}, ERROR {}\n",
            f.status.ok, f.status.error
        ));
        for (label, values) in [
            ("names", &f.names),
            ("tags", &f.tags),
            ("models", &f.models),
        ] {
            let shown: Vec<String> = values
                .iter()
                .map(|v| format!("{} ({})", v.value, v.count))
                .collect();
            let shown = if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            };
            out.push_str(&format!("{label}: {shown}\n"));
        }
    }
    out
}
