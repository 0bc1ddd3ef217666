//! The `tracestore` command line: `serve`, `keys`, `import` and `query`.

mod import;
mod query;
mod serve;

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
    /// The database file (created by `serve`, `import` and `keys create` when absent).
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_DB)]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (GET/POST /api/v1/traces, GET/DELETE /api/v1/traces/{id}, ...).
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import traces from a JSON ({"traces": [...]} or an array) or JSON Lines file.
    Import(ImportArgs),
    /// Query a project's traces with the parameters of GET /api/v1/traces.
    Query(query::QueryArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a project and print it (it is shown only this once).
    Create {
        /// The project the key gives access to.
        #[arg(long)]
        project: String,
    },
    /// List every key: prefix, project, creation date, revocation date.
    List,
    /// Revoke the key(s) with this prefix (the 8 hex characters after `ts_`).
    Revoke {
        /// The key prefix as `keys list` shows it.
        prefix: String,
    },
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
    match cli.command {
        Command::Serve(args) => serve::run(&cli.db, args),
        Command::Keys { command } => keys(&cli.db, command),
        Command::Import(args) => import::run(&cli.db, &args.file, &args.project, args.format),
        Command::Query(args) => query::run(&cli.db, args),
    }
}

/// Opens the store; `create` says whether a missing file may be created.
fn open_store(db: &Path, create: bool) -> Result<Store, CliError> {
    if !create && !db.exists() {
        return Err(CliError::new(format!(
            "no database at {} (create one with `tracestore import`, `keys create` or `serve`, or pass --db PATH)",
            db.display()
        )));
    }
    Store::open(db).map_err(|e| {
        CliError::new(format!(
            "cannot open the database at {}: {e} (is a server or another command using it?)",
            db.display()
        ))
    })
}

fn keys(db: &Path, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create { project } => {
            let store = open_store(db, true)?;
            let k = store.create_api_key(&project)?;
            eprintln!(
                "Created API key {} for project \"{}\". It is shown only once; store it now:",
                k.prefix, k.project
            );
            println!("{}", k.key);
        }
        KeysCommand::List => {
            let store = open_store(db, false)?;
            let keys = store.list_api_keys()?;
            if keys.is_empty() {
                eprintln!("no API keys (create one with `tracestore keys create --project NAME`)");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.prefix.clone(),
                        k.project.clone(),
                        k.created_at.to_string(),
                        k.revoked_at
                            .map_or_else(|| "-".to_string(), |t| t.to_string()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["PREFIX", "PROJECT", "CREATED", "REVOKED"], &rows, &[])
            );
        }
        KeysCommand::Revoke { prefix } => {
            let store = open_store(db, false)?;
            match store.revoke_api_key(&prefix)? {
                0 => {
                    return Err(CliError::new(format!(
                        "no active API key with prefix {prefix:?} (see `tracestore keys list`)"
                    )))
                }
                n => println!("revoked {n} key(s) with prefix {prefix}"),
            }
        }
    }
    Ok(())
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
