//! `tracestore serve`: the HTTP server, optionally with the demo dataset.

use super::{open_store, CliError};
use crate::api::{
    ServerConfig, DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW_SECS, DEFAULT_REQUEST_TIMEOUT_SECS,
};
use crate::demo::{self, DEMO_PROJECT, DEMO_TRACES};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long shutdown waits for blocking store calls still running (such as timed-out ones).
const SHUTDOWN_GRACE_SECS: u64 = 10;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
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
    /// Load the demo dataset (when the "demo" project is empty), create a demo API key and
    /// print working curl commands.
    #[arg(long)]
    demo: bool,
    /// Traces the demo generates (about 90% go to the "demo" project).
    #[arg(long, value_name = "N", default_value_t = DEMO_TRACES, requires = "demo")]
    demo_traces: usize,
}

pub(super) fn run(db: &Path, args: ServeArgs) -> Result<(), CliError> {
    init_logging();
    let store = Arc::new(open_store(db, true)?);
    tracing::info!(db = %db.display(), "store opened");
    let demo_key = if args.demo {
        Some(prepare_demo(&store, args.demo_traces)?)
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
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", args.addr)))?;
        let local = listener
            .local_addr()
            .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
        if let Some(key) = &demo_key {
            print_demo(&store, local, key)?;
        }
        tracing::info!(
            addr = %local,
            rate_limit = config.rate_limit,
            rate_window_secs = config.rate_window.as_secs(),
            "listening on http://{local}"
        );
        crate::api::serve(listener, Arc::clone(&store), config, shutdown_signal())
            .await
            .map_err(|e| CliError::new(format!("server error: {e}")))
    });
    runtime.shutdown_timeout(Duration::from_secs(SHUTDOWN_GRACE_SECS));
    served?;
    match Arc::try_unwrap(store) {
        Ok(store) => {
            drop(store);
            tracing::info!("store closed; shut down cleanly");
        }
        Err(_) => tracing::warn!("store still in use by a blocking call at exit"),
    }
    Ok(())
}

fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .try_init();
}

/// Loads the demo dataset when the demo project is empty, then creates a demo key.
fn prepare_demo(store: &tracestore::Store, traces: usize) -> Result<String, CliError> {
    if demo::demo_is_empty(store)? {
        let started = Instant::now();
        let bar = ProgressBar::new(traces as u64);
        bar.set_style(
            ProgressStyle::with_template("loading demo data [{bar:40}] {pos}/{len} traces ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let in_demo = demo::load_demo(store, traces, |n| bar.set_position(n))?;
        bar.finish_and_clear();
        tracing::info!(
            traces,
            in_demo_project = in_demo,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "demo data loaded"
        );
    } else {
        tracing::info!("demo project already has data; not loading it again");
    }
    Ok(store.create_api_key(DEMO_PROJECT)?.key)
}

fn print_demo(store: &tracestore::Store, local: SocketAddr, key: &str) -> Result<(), CliError> {
    let host = if local.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        local
    };
    let ex = demo::examples(store, &format!("http://{host}"), key)?;
    let [errors, next, dates] = &ex.commands;
    println!();
    println!("Demo API key for project \"{DEMO_PROJECT}\" (shown once): {key}");
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
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received; finishing in-flight requests"),
        _ = terminate => tracing::info!("SIGTERM received; finishing in-flight requests"),
    }
}
