//! `tracestore serve`: the HTTP server, optionally with the demo dataset.

use super::{open_store, CliError};
use crate::api::{
    AppState, ServerConfig, DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW_SECS,
    DEFAULT_REQUEST_TIMEOUT_SECS,
};
use crate::demo::{self, DemoState, DEMO_PROJECT, DEMO_TRACES};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracestore::{ErrorCode, Principal, Store};

/// How long shutdown may take after the first SIGTERM or Ctrl-C: in-flight requests (and the
/// blocking store calls behind them) get this long to finish, then the process exits anyway. A
/// second signal exits at once. A request cut off this way loses nothing committed: every
/// write is one atomic transaction.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// After the deadline, how long the runtime waits for blocking store calls while it drops the
/// connections, so that the store can still be closed cleanly when they are done.
const FORCED_CLOSE_GRACE: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The address to listen on. It serves every route, the OTLP/HTTP receiver
    /// `POST /v1/traces` included.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A second address (such as 127.0.0.1:4318, the OTLP/HTTP port) serving only the OTLP/HTTP
    /// receiver `POST /v1/traces`, with the same store, keys, rate limits and shutdown.
    #[arg(long, value_name = "ADDR")]
    otlp_addr: Option<SocketAddr>,
    /// Requests allowed per API key in each rate-limit window.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: u32,
    /// The length of a rate-limit window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RATE_WINDOW_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    rate_window_secs: u64,
    /// How long one request may take before it is answered with a 500, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    request_timeout_secs: u64,
    /// Load the demo dataset (completing an interrupted load), keep one demo API key in
    /// `<db>.demo.json` (mode 0600) across restarts, and print working curl commands.
    #[arg(long)]
    demo: bool,
    /// Traces the demo generates (about 90% go to the "demo" project).
    #[arg(long, value_name = "N", default_value_t = DEMO_TRACES, requires = "demo")]
    demo_traces: usize,
    /// The storage engine: `redb`, the embedded file given by --db (the default), or
    /// `clickhouse`, a ClickHouse server or cluster given by --clickhouse-url.
    #[arg(long, value_enum, default_value_t = EngineKind::Redb)]
    engine: EngineKind,
    /// The ClickHouse HTTP interface, e.g. http://127.0.0.1:8123 (with --engine clickhouse).
    #[arg(
        long,
        value_name = "URL",
        env = "TRACESTORE_CLICKHOUSE_URL",
        required_if_eq("engine", "clickhouse")
    )]
    clickhouse_url: Option<String>,
    #[command(flatten)]
    clickhouse: super::ClickHouseArgs,
}

/// The storage engine `serve` runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum EngineKind {
    /// The embedded redb file.
    Redb,
    /// A ClickHouse server or cluster.
    Clickhouse,
}

impl ServeArgs {
    /// Opens the store on the chosen engine.
    fn open(&self, db: &Path) -> Result<Store, CliError> {
        match self.engine {
            EngineKind::Redb => open_store(db, true),
            EngineKind::Clickhouse => {
                let url = self.clickhouse_url.clone().unwrap_or_default();
                let cfg = self.clickhouse.config(&url);
                Store::builder()
                    .open_clickhouse(&cfg)
                    .map_err(|e| CliError::new(format!("cannot open ClickHouse at {url}: {e}")))
            }
        }
    }
}

pub(super) fn run(db: &Path, args: ServeArgs) -> Result<(), CliError> {
    init_logging();
    // Bind first: a busy port fails before the store is opened, demo data loaded or a key made.
    let listener = std::net::TcpListener::bind(args.addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
    let otlp_listener = match args.otlp_addr {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    CliError::new(format!("cannot listen on {addr} (--otlp-addr): {e}"))
                })?;
            let bound = l
                .local_addr()
                .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
            Some((l, bound))
        }
        None => None,
    };

    let store = Arc::new(args.open(db)?);
    match args.engine {
        EngineKind::Redb => tracing::info!(db = %db.display(), "store opened"),
        EngineKind::Clickhouse => tracing::info!(
            url = args.clickhouse_url.as_deref().unwrap_or_default(),
            database = %args.clickhouse.clickhouse_database,
            "ClickHouse store opened"
        ),
    }
    // Until the signal handlers are installed below, SIGTERM and Ctrl-C end the process at
    // once, which is safe: the demo load is resumable.
    // The demo key is kept beside the database file, or, on ClickHouse, in the working
    // directory under the database's name.
    let demo_base = match args.engine {
        EngineKind::Redb => db.to_path_buf(),
        EngineKind::Clickhouse => PathBuf::from(format!(
            "tracestore-clickhouse-{}",
            args.clickhouse.clickhouse_database
        )),
    };
    let demo = if args.demo {
        Some(prepare_demo(&demo_base, &store, args.demo_traces)?)
    } else {
        None
    };

    let config = ServerConfig {
        rate_limit: args.rate_limit,
        rate_window: Duration::from_secs(args.rate_window_secs),
        request_timeout: Duration::from_secs(args.request_timeout_secs),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let stopped = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| CliError::new(format!("cannot listen on {local}: {e}")))?;
        let otlp = match otlp_listener {
            Some((l, bound)) => Some((
                tokio::net::TcpListener::from_std(l)
                    .map_err(|e| CliError::new(format!("cannot listen on {bound}: {e}")))?,
                bound,
            )),
            None => None,
        };
        let signals = Signals::new()
            .map_err(|e| CliError::new(format!("cannot install the signal handlers: {e}")))?;
        if let Some((state, path)) = &demo {
            print_demo(&store, local, state, path)?;
        }
        // On stdout whatever RUST_LOG says, for scripts and for anyone who turned logs off.
        println!("listening on http://{local}");
        tracing::info!(
            addr = %local,
            rate_limit = config.rate_limit,
            rate_window_secs = config.rate_window.as_secs(),
            "listening on http://{local}"
        );
        if let Some((_, bound)) = &otlp {
            println!("OTLP/HTTP receiver on http://{bound}/v1/traces");
            tracing::info!(addr = %bound, "OTLP/HTTP receiver on http://{bound}/v1/traces");
        }
        let otlp = otlp.map(|(l, _)| l);
        Ok::<_, CliError>(
            serve_until_signals(listener, otlp, Arc::clone(&store), config, signals).await,
        )
    })?;
    match stopped {
        Stopped::Finished(served, deadline) => {
            // Blocking store calls still running (such as timed-out ones) get the rest of the
            // deadline.
            runtime
                .shutdown_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
            served.map_err(|e| CliError::new(format!("server error: {e}")))?;
        }
        Stopped::Deadline => {
            tracing::warn!(
                deadline_secs = SHUTDOWN_DEADLINE.as_secs_f64(),
                "shutdown deadline passed; dropping the requests still in flight"
            );
            runtime.shutdown_timeout(FORCED_CLOSE_GRACE);
        }
        Stopped::Again(signal) => {
            tracing::warn!(
                "{signal} received again; exiting without waiting for in-flight requests"
            );
            // Dropping the connections takes no time; the store is closed if no blocking call
            // holds it after FORCED_CLOSE_GRACE, so that the next open needs no repair.
            runtime.shutdown_timeout(FORCED_CLOSE_GRACE);
            close(store);
            return Err(CliError::new(format!(
                "{signal} received twice: exited without waiting for in-flight requests"
            )));
        }
    }
    close(store);
    Ok(())
}

/// Closes the store when nothing else holds it.
fn close(store: Arc<Store>) {
    match Arc::try_unwrap(store) {
        Ok(store) => {
            drop(store);
            tracing::info!("store closed; shut down cleanly");
        }
        Err(_) => tracing::warn!(
            "store still in use by a blocking call at exit; committed writes are kept, the \
             call in progress is not (the next open repairs the file)"
        ),
    }
}

/// How [`serve_until_signals`] ended.
enum Stopped {
    /// The server stopped by itself (an error) or after the first signal, with the instant
    /// by which the rest of shutdown must be done.
    Finished(std::io::Result<()>, tokio::time::Instant),
    /// In-flight requests were still running at the deadline.
    Deadline,
    /// A second signal, named, arrived during shutdown.
    Again(&'static str),
}

/// Serves (on the OTLP listener too, when there is one: one state, so one store and one set of
/// rate-limit counters) until the first signal, then shuts both down gracefully within
/// [`SHUTDOWN_DEADLINE`], or at once on a second signal.
async fn serve_until_signals(
    listener: tokio::net::TcpListener,
    otlp: Option<tokio::net::TcpListener>,
    store: Arc<Store>,
    config: ServerConfig,
    mut signals: Signals,
) -> Stopped {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let state = AppState::new(store, &config);
    let main = crate::api::serve_state(listener, state.clone(), stopped(stopping.clone()));
    let otlp = otlp.map(|l| crate::api::serve_otlp_state(l, state, stopped(stopping)));
    let mut server = tokio::spawn(async move {
        match otlp {
            None => main.await,
            // Either failing ends both.
            Some(otlp) => tokio::try_join!(main, otlp).map(|_| ()),
        }
    });
    let joined = |r: Result<std::io::Result<()>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(std::io::Error::other(format!("server task failed: {e}"))))
    };
    let first = tokio::select! {
        r = &mut server => {
            let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
            return Stopped::Finished(joined(r), deadline);
        }
        s = signals.recv() => s,
    };
    tracing::info!(
        deadline_secs = SHUTDOWN_DEADLINE.as_secs_f64(),
        "{first} received; finishing in-flight requests"
    );
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    tokio::select! {
        r = &mut server => Stopped::Finished(joined(r), deadline),
        () = tokio::time::sleep_until(deadline) => Stopped::Deadline,
        s = signals.recv() => Stopped::Again(s),
    }
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.interrupt.recv() => "SIGINT",
                Some(()) = self.terminate.recv() => "SIGTERM",
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` with `EnvFilter`'s full syntax (such as
/// `info,tracestore_server=debug`); `info` when it is unset or empty.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("{v:?}: {e}"))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
    if let Some(bad) = bad {
        tracing::warn!("ignoring RUST_LOG {bad}; logging at info");
    }
}

/// Gets the demo ready: its key, and its dataset loaded in full.
///
/// One demo key is kept across restarts: its plaintext is stored in a [`DemoState`] file next
/// to the database (`<db>.demo.json`, mode 0600), and each start shows that same key again as
/// long as it still works in this database. A key the user revoked is replaced by a new one
/// (saved in the same file); a state file whose key this database does not know (the database
/// was replaced) is ignored and rewritten.
///
/// The load is resumable: the state file is written with `complete: false` before the first
/// batch and `complete: true` after the last, and a start that finds `complete: false` runs
/// [`demo::load_demo_resumable`], which skips what the interrupted run already committed. A
/// store whose demo project has data but which has no state file (not loaded by `--demo`) is
/// not loaded over.
fn prepare_demo(db: &Path, store: &Store, traces: usize) -> Result<(DemoState, PathBuf), CliError> {
    let path = demo::demo_state_path(db);
    let file_error = |e: std::io::Error| {
        CliError::new(format!(
            "cannot use the demo state file {}: {e} (delete it to start the demo over)",
            path.display()
        ))
    };
    let saved = DemoState::read(&path).map_err(file_error)?;
    let mut state = match saved {
        Some(mut s) => match store.authenticate_principal(&s.key) {
            Ok(Principal::Project(p)) if p == DEMO_PROJECT => Some(s),
            Err(e) if e.code() == ErrorCode::Unauthorized && known_prefix(store, &s.prefix)? => {
                let k = store.create_api_key(DEMO_PROJECT)?;
                tracing::info!(old = %s.prefix, new = %k.prefix, "the demo key was revoked; made a new one");
                s.key = k.key;
                s.prefix = k.prefix;
                s.write(&path).map_err(file_error)?;
                Some(s)
            }
            Err(e) if e.code() != ErrorCode::Unauthorized => return Err(e.into()),
            _ => {
                tracing::info!(file = %path.display(), "the demo state file is for another database; starting over");
                None
            }
        },
        None => None,
    };
    let state = match state.take() {
        Some(s) => s,
        None => {
            let fresh = demo::demo_is_empty(store)?;
            let k = store.create_api_key(DEMO_PROJECT)?;
            let s = DemoState {
                key: k.key,
                prefix: k.prefix,
                traces,
                complete: !fresh,
            };
            s.write(&path).map_err(file_error)?;
            if !fresh {
                tracing::info!("demo project already has data; not loading it again");
            }
            s
        }
    };
    if state.complete {
        tracing::info!(key = %state.prefix, "demo data already loaded");
        return Ok((state, path));
    }
    if state.traces != traces {
        tracing::info!(
            traces = state.traces,
            "completing the interrupted demo load of {} traces (--demo-traces applies to a new database)",
            state.traces
        );
    }
    let started = Instant::now();
    let bar = ProgressBar::new(state.traces as u64);
    bar.set_style(
        ProgressStyle::with_template("loading demo data [{bar:40}] {pos}/{len} traces ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let total = state.traces;
    let load = demo::load_demo_resumable(store, total, |n| {
        bar.set_position(n);
        tracing::debug!(done = n, total, "demo batch loaded");
    })?;
    bar.finish_and_clear();
    tracing::info!(
        traces = total,
        in_demo_project = load.in_demo,
        written = load.written,
        already_there = load.skipped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{}",
        if load.skipped > 0 {
            "interrupted demo load completed"
        } else {
            "demo data loaded"
        }
    );
    let state = DemoState {
        complete: true,
        ..state
    };
    state.write(&path).map_err(file_error)?;
    Ok((state, path))
}

/// True when this database has (or had) a key with this prefix.
fn known_prefix(store: &Store, prefix: &str) -> Result<bool, CliError> {
    Ok(store.list_api_keys()?.iter().any(|k| k.prefix == prefix))
}

fn print_demo(
    store: &Store,
    local: SocketAddr,
    state: &DemoState,
    path: &Path,
) -> Result<(), CliError> {
    let key = &state.key;
    let host = if local.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    let ex = demo::examples(store, &format!("http://{host}"), key)?;
    let [errors, next, dates] = &ex.commands;
    println!();
    println!("Demo API key for project \"{DEMO_PROJECT}\": {key}");
    println!(
        "(kept in {} with mode 0600; every `serve --demo` on this database shows it again)",
        path.display()
    );
    println!();
    println!("# Get the last 20 error traces for a specific agent");
    println!("{errors}");
    println!();
    println!(
        "# Paginate through results (cursor = nextCursor of the first example's page 1: {})",
        ex.cursor.as_deref().unwrap_or("none")
    );
    println!("{next}");
    println!();
    println!("# Filter by date range and tags");
    println!("{dates}");
    println!();
    for (comment, cmd) in &ex.more {
        println!("# {comment}");
        println!("{cmd}");
        println!();
    }
    println!("# Send traces from any OpenTelemetry SDK or collector (OTLP/HTTP, protobuf or JSON)");
    println!("export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://{host}/v1/traces");
    println!("export OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer {key}\"");
    println!();
    Ok(())
}
