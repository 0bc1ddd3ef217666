//! The HTTP server and command-line interface of tracestore.
//!
//! The library crate `tracestore` holds every rule of the traces contract; this crate adapts it
//! to HTTP (axum on tokio) and to a CLI (clap). It is a separate crate so that the library
//! never depends on an async runtime.
//!
//! - [`api`]: routes, authentication, rate-limit headers, timeouts, request logs.
//! - `handlers`: the route handlers; `export`: the streamed export route; `input`:
//!   query-string, content-type and body decoding.
//! - [`error`]: the error envelope, mapped from `tracestore::ErrorCode`.
//! - [`otlp`]: the OTLP/HTTP trace receiver, `POST /v1/traces` (transport; the library decodes).
//! - [`ratelimit`]: the per-key fixed-window limiter.
//! - [`demo`]: the `serve --demo` dataset and its curl examples.
//! - [`cli`]: the `tracestore` binary's subcommands.

#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod demo;
pub mod error;
mod export;
mod handlers;
mod input;
pub mod otlp;
pub mod ratelimit;

pub use api::{app, otlp_app, serve, AppState, ServerConfig};
