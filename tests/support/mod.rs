//! Shared helpers for the integration tests (and the fuzz targets, which include this file by
//! path): storage backends that fail or lose power on demand, a naive model of the contract with
//! spans and scores, and a byte-driven generator of operation sequences so that the proptest twin
//! and the fuzz target run the very same code.
//!
//! - [`query`]: the query half of the model (matching and ordering), shared by both models.
//! - [`backends`]: `SharedMem`, `MemBackend`, `FaultyBackend`, `PowerLoss`.
//! - [`model`]: the model with spans and scores, and what each write must return.
//! - [`ops`]: `Op`s and the `ByteGen` that decodes them from bytes.
//! - [`checks`]: comparisons of store answers with the model, and `apply`.
//! - [`runners`]: `run_clean` and `run_faulty`.
//! - [`simple`]: the traces-only model and page walker of the query tests.
//! - [`targets`]: the bodies of the fuzz targets.
//!
//! Only std, `tracestore`, `rust_decimal` and `serde_json` are used here: the fuzz crate includes
//! this folder and has exactly those dependencies. Keep proptest and tempfile in the test files.
//!
//! Each test binary uses only part of this, hence the allows (the re-exports below count as
//! unused imports in a binary that does not reach them).
#![allow(dead_code, unused_imports)]

// First: it defines `model_trace_fields!`, which the modules below use.
#[macro_use]
pub mod query;

pub mod backends;
pub mod checks;
pub mod model;
pub mod ops;
pub mod runners;
pub mod simple;
pub mod targets;

pub use backends::*;
pub use checks::*;
pub use model::*;
pub use ops::*;
pub use query::{ts, MQuery, ModelTrace, BASE_MS};
pub use runners::*;
