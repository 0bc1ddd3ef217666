//! `tracestore migrate --to-clickhouse URL`: copies the database file into ClickHouse with a
//! progress bar, resumably (see `Store::migrate_to_clickhouse`).

use super::{open_read_only, CliError, ClickHouseArgs};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;

#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    /// The ClickHouse HTTP interface to copy into, e.g. http://127.0.0.1:8123.
    #[arg(long, value_name = "URL")]
    to_clickhouse: String,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Copy everything again instead of resuming from the last copied trace.
    #[arg(long)]
    restart: bool,
}

pub(super) fn run(db: &Path, args: MigrateArgs) -> Result<(), CliError> {
    let store = open_read_only(db)?;
    let cfg = args.clickhouse.config(&args.to_clickhouse);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} trace(s) ({per_sec}, {elapsed}, about {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut resumed = 0;
    let copied = store
        .migrate_to_clickhouse(&cfg, args.restart, |p| {
            bar.set_length(p.total);
            bar.set_position(p.copied);
            resumed = p.resumed;
        })
        .map_err(|e| {
            bar.abandon();
            CliError::new(format!(
                "migrating {} to ClickHouse at {} stopped: {e}; run the same command again to \
                 resume",
                db.display(),
                args.to_clickhouse
            ))
        })?;
    bar.finish_and_clear();
    if resumed > 0 {
        eprintln!(
            "copied {copied} trace(s) to ClickHouse at {} (database {}); {resumed} were copied \
             by an earlier run",
            args.to_clickhouse, args.clickhouse.clickhouse_database
        );
    } else {
        eprintln!(
            "copied {copied} trace(s) to ClickHouse at {} (database {})",
            args.to_clickhouse, args.clickhouse.clickhouse_database
        );
    }
    Ok(())
}
