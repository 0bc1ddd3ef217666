//! `tracestore export`: every trace matching `query`'s filters, as JSON Lines or CSV, to
//! standard output or a file. Read-only, like `query`; the flags become the endpoint's
//! parameters (`format` included) and the library parses them.

use super::query::{flag_error, FilterArgs};
use super::{open_read_only, CliError};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracestore::{ExportRequest, ExportWriter};

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// The project to export.
    #[arg(long)]
    project: String,
    #[command(flatten)]
    filters: FilterArgs,
    /// jsonl: one trace object per line (the list endpoint's rows); csv: a header row, then one
    /// row per trace.
    #[arg(long, value_enum, default_value_t = OutFormat::Jsonl)]
    format: OutFormat,
    /// Write to this file (replaced whole once the export is complete) instead of standard
    /// output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The values of `--format`: the endpoint's `format` parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OutFormat {
    Jsonl,
    Csv,
}

impl OutFormat {
    fn param(self) -> &'static str {
        match self {
            OutFormat::Jsonl => "jsonl",
            OutFormat::Csv => "csv",
        }
    }
}

pub(super) fn run(db: &Path, args: ExportArgs) -> Result<(), CliError> {
    let mut pairs = args.filters.pairs();
    pairs.push(("format".to_string(), args.format.param().to_string()));
    let req = ExportRequest::from_params(pairs).map_err(flag_error)?;
    let store = open_read_only(db)?;
    let bar = progress();
    let exported = match &args.out {
        None => {
            let stdout = std::io::stdout().lock();
            write_export(&store, &args.project, &req, stdout, &bar)
        }
        Some(path) => to_file(path, |file| {
            write_export(&store, &args.project, &req, file, &bar)
        }),
    };
    bar.finish_and_clear();
    let n = exported?;
    match &args.out {
        Some(p) => eprintln!("exported {n} trace(s) to {}", p.display()),
        None => eprintln!("exported {n} trace(s)"),
    }
    Ok(())
}

/// A spinner with the count and rate on stderr, only when stderr is a terminal.
fn progress() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} exporting: {pos} trace(s) ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn write_export(
    store: &tracestore::Store,
    project: &str,
    req: &ExportRequest,
    out: impl Write,
    bar: &ProgressBar,
) -> Result<u64, CliError> {
    let mut w = ExportWriter::new(req.format(), std::io::BufWriter::new(out));
    let n = w
        .header()
        .and_then(|()| {
            store.export(project, req, |t| {
                w.write(t)?;
                bar.inc(1);
                Ok(())
            })
        })
        .map_err(flag_error)?;
    w.finish().map_err(CliError::from)?;
    Ok(n)
}

/// Runs `write` into a temporary file beside `path` and renames it to `path` when it succeeds,
/// so that `path` never holds a partial export; the temporary file is removed on failure.
fn to_file(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<u64, CliError>,
) -> Result<u64, CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::new(format!("--out {}: must name a file", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tracestore-partial");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", tmp.display())))?;
    let result = write(&mut file).and_then(|n| {
        file.sync_all()
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            CliError::new(format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                path.display()
            ))
        })?;
        Ok(n)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
