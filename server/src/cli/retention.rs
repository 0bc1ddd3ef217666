//! `tracestore retention`: delete a project's traces that started before an instant, in a
//! database file (`Store::delete_before`, with progress on stderr) or on a running server
//! (`DELETE /api/v1/traces?before=...` with the project's key).

use super::remote::Remote;
use super::{open_store, CliError, Db};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tracestore::Timestamp;

#[derive(Debug, Args)]
pub(super) struct RetentionArgs {
    /// The project whose traces to delete (on a server, the key decides the project).
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    project: Option<String>,
    /// Delete the traces whose startTime is before this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "INSTANT")]
    before: String,
    /// Run it on a running server at this base URL (such as http://127.0.0.1:8080) instead of
    /// a database file.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The project's API key for --server.
    #[arg(
        long,
        value_name = "KEY",
        env = "TRACESTORE_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
}

pub(super) fn run(db: &Db, args: RetentionArgs) -> Result<(), CliError> {
    match (&args.server, &args.project) {
        (Some(server), _) => {
            db.check_remote()?;
            let key = args.key.clone().ok_or_else(|| {
                CliError::new("--server needs --key KEY (or TRACESTORE_KEY): the project's API key")
            })?;
            let remote = Remote::new(server, key, "--key")?;
            let data = remote.call(
                Method::DELETE,
                &["api", "v1", "traces"],
                &[("before", args.before.as_str())],
                None,
            )?;
            let deleted = data["deleted"].as_u64().ok_or_else(|| {
                CliError::new(format!(
                    "the server's answer has no \"deleted\": {data} (is it a tracestore server of this version?)"
                ))
            })?;
            println!(
                "deleted {deleted} trace(s) that started before {}",
                args.before
            );
            Ok(())
        }
        (None, Some(project)) => on_file(db, project, &args.before),
        (None, None) => Err(CliError::new("pass --project NAME (or --server URL)")),
    }
}

fn on_file(db: &Db, project: &str, before: &str) -> Result<(), CliError> {
    let cutoff = Timestamp::parse(before).map_err(|_| {
        CliError::new(format!(
            "invalid --before {before:?}: expected an RFC 3339 instant such as \
             2026-03-14T10:00:00Z, or a date such as 2026-03-14"
        ))
    })?;
    let store = open_store(db.path(), false)?;
    let started = Instant::now();
    let on_terminal = std::io::stderr().is_terminal();
    let spinner = ProgressBar::new_spinner();
    if on_terminal {
        spinner.set_style(
            ProgressStyle::with_template("{spinner} deleting: {pos} trace(s) so far ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.enable_steady_tick(Duration::from_millis(120));
    }
    let deleted = store.delete_before(project, cutoff, |n| {
        if on_terminal {
            spinner.set_position(n);
        } else {
            // One line per committed transaction (RETENTION_BATCH traces), for logs.
            eprintln!("retention: {n} trace(s) deleted so far");
        }
    });
    spinner.finish_and_clear();
    let deleted = deleted?;
    println!(
        "deleted {deleted} trace(s) of project \"{project}\" that started before {cutoff} in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
