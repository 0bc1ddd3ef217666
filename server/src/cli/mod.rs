//! The `tracestore` command line: `serve`, `keys`, `import`, `query`, `export`, `show` and
//! `retention`.

mod export;
mod import;
mod keys;
mod migrate;
mod query;
mod remote;
mod retention;
mod serve;
mod show;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracestore::Store;

/// The database file used when `--db` is not given.
pub const DEFAULT_DB: &str = "./tracestore.redb";

#[derive(Debug, Parser)]
#[command(
    name = "tracestore",
    version,
    about = "An embedded store for LLM-agent traces, with an HTTP API"
)]
struct Cli {
    /// The database file [default: ./tracestore.redb]. `serve`, `import` and `keys create`
    /// create it when absent; `query`, `export`, `show` and `keys list` only read it and never
    /// create it.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (GET/POST /api/v1/traces, GET/DELETE /api/v1/traces/{id}, ...).
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys, in a database file or on a running server.
    Keys(keys::KeysArgs),
    /// Import traces from a JSON ({"traces": [...]} or an array) or JSON Lines file.
    Import(ImportArgs),
    /// Query a project's traces with the parameters of GET /api/v1/traces.
    Query(query::QueryArgs),
    /// Export every trace of a project matching `query`'s filters, as JSON Lines or CSV.
    Export(export::ExportArgs),
    /// Show one trace of a project: a header line and its span tree.
    Show(show::ShowArgs),
    /// Delete a project's traces that started before an instant, in a database file or on a
    /// running server.
    Retention(retention::RetentionArgs),
    /// Copy every trace of the database file into ClickHouse, resumably, for
    /// `serve --engine clickhouse`.
    Migrate(migrate::MigrateArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// The project to import into.
    #[arg(long)]
    project: String,
    /// The file format; `auto` looks at the extension and the first character.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
}

/// Input formats of `import`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Auto,
    Json,
    Jsonl,
}

/// A failure of a subcommand, printed as `error: ...` with exit status 1.
#[derive(Debug)]
pub struct CliError {
    message: String,
    details: Vec<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            details: Vec::new(),
        }
    }
    pub fn with_details(message: impl Into<String>, details: Vec<String>) -> Self {
        CliError {
            message: message.into(),
            details,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for d in &self.details {
            write!(f, "\n  - {d}")?;
        }
        Ok(())
    }
}

impl From<tracestore::Error> for CliError {
    fn from(e: tracestore::Error) -> Self {
        if e.details().is_empty() {
            // Locally, the full message (storage causes included) is the helpful one.
            CliError::new(e.to_string())
        } else {
            let details = e
                .details()
                .iter()
                .map(|d| format!("{}: {}", d.field(), d.message()))
                .collect();
            CliError::with_details(
                format!("{} ({})", validation_headline(&e), e.code()),
                details,
            )
        }
    }
}

fn validation_headline(e: &tracestore::Error) -> String {
    let fields: Vec<&str> = e.details().iter().map(|d| d.field()).collect();
    format!("invalid {}", fields.join(", "))
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let db = Db(cli.db);
    match cli.command {
        Command::Serve(args) => serve::run(db.path(), args),
        Command::Keys(args) => keys::run(&db, args),
        Command::Import(args) => import::run(db.path(), &args.file, &args.project, args.format),
        Command::Query(args) => query::run(db.path(), args),
        Command::Export(args) => export::run(db.path(), args),
        Command::Show(args) => show::run(db.path(), args),
        Command::Retention(args) => retention::run(&db, args),
        Command::Migrate(args) => migrate::run(db.path(), args),
    }
}

/// Where in ClickHouse: the flags `serve --engine clickhouse` and `migrate --to-clickhouse`
/// share (each command has its own URL flag).
#[derive(Debug, clap::Args)]
pub(crate) struct ClickHouseArgs {
    /// The ClickHouse database the engine creates its tables in.
    #[arg(long, value_name = "NAME", default_value = "tracestore")]
    pub clickhouse_database: String,
    /// A cluster of the ClickHouse servers' `remote_servers`: the tables are created on it,
    /// sharded by trace, behind `Distributed` tables.
    #[arg(long, value_name = "NAME")]
    pub clickhouse_cluster: Option<String>,
    /// With --clickhouse-cluster on a cluster without distributed DDL (no ZooKeeper or
    /// Keeper): the HTTP URL of every server of the cluster, once each; the tables are created
    /// on each.
    #[arg(long, value_name = "URL", requires = "clickhouse_cluster")]
    pub clickhouse_shard_url: Vec<String>,
}

impl ClickHouseArgs {
    pub(crate) fn config(&self, url: &str) -> tracestore::ClickHouseConfig {
        let mut cfg =
            tracestore::ClickHouseConfig::new(url).database(self.clickhouse_database.clone());
        if let Some(c) = &self.clickhouse_cluster {
            cfg = cfg
                .cluster(c.clone())
                .shard_urls(self.clickhouse_shard_url.clone());
        }
        cfg
    }
}

/// The `--db` flag: commands that can also work on a server refuse it together with
/// `--server`, so that a command is never quietly run on the default file instead.
struct Db(Option<PathBuf>);

impl Db {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(DEFAULT_DB))
    }
    /// Fails when `--db` was given alongside `--server`.
    fn check_remote(&self) -> Result<(), CliError> {
        match &self.0 {
            Some(p) => Err(CliError::new(format!(
                "--db {} and --server cannot be used together: pass one of them",
                p.display()
            ))),
            None => Ok(()),
        }
    }
}

/// Opens the store for writing; `create` says whether a missing file may be created.
fn open_store(db: &Path, create: bool) -> Result<Store, CliError> {
    if !create && !db.exists() {
        return Err(no_database(db));
    }
    Store::open(db).map_err(|e| open_error(db, e))
}

/// Opens an existing store for reading only: a missing file is not created, and a file that is
/// not a store (an empty one included) is left exactly as it is.
fn open_read_only(db: &Path) -> Result<Store, CliError> {
    match std::fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_database(db)),
        Ok(m) if m.is_file() && m.len() == 0 => {
            return Err(CliError::new(format!(
                "{} is an empty file, not a tracestore database (it was left as it is; \
                 pass --db PATH to read another file)",
                db.display()
            )))
        }
        _ => {}
    }
    Store::builder()
        .open_read_only(db)
        .map_err(|e| open_error(db, e))
}

fn no_database(db: &Path) -> CliError {
    CliError::new(format!(
        "no database at {} (create one with `tracestore import`, `keys create` or `serve`, or pass --db PATH)",
        db.display()
    ))
}

fn open_error(db: &Path, e: tracestore::Error) -> CliError {
    let hint = if e.is_database_in_use() {
        " (is a server or another command using it?)"
    } else if e.to_string().contains("repair aborted") {
        // redb's words for a file that was not closed cleanly (a crash or a kill): a read-only
        // open may not repair it. The library has no predicate for this case yet.
        " (the file was not closed cleanly; a command that writes, such as `serve` or \
         `keys create`, repairs it when it opens the file)"
    } else {
        ""
    };
    CliError::new(format!(
        "cannot open the database at {}: {e}{hint}",
        db.display()
    ))
}

/// A plain text table: a header row, then rows, columns padded to their widest cell. Columns
/// listed in `right` are right-aligned (numbers).
fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.push_str(&format!("{cell:>w$}"));
            } else {
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
