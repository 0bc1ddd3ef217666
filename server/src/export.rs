//! `GET /api/v1/export/traces`: every trace matching a list query, streamed as JSON Lines or
//! CSV.
//!
//! The decoded pairs go to `tracestore::ExportRequest::from_params` (the list query's parser
//! plus `format`); this module never parses a parameter. The export itself is the library's
//! (`Store::export`, one snapshot, paged internally), run on the blocking pool; it writes rows
//! into chunks of `EXPORT_CHUNK_BYTES` sent over a channel of `EXPORT_CHANNEL_CHUNKS`, and the
//! response body reads that channel. A client that reads slowly fills the channel and the
//! export waits, so memory stays flat whatever the client's speed; a client that goes away
//! closes the channel and the export stops.
//!
//! The status is decided by the first message: the response starts with the first chunk (sent
//! as soon as the first row is written), and an error before it is an ordinary error answer.
//! An error after it cannot become a status any more: the export is logged and the body ends
//! with an error, so the connection is cut without the end of the chunked body and the client
//! sees a broken transfer, never a short file that looks whole.

use crate::api::{AppState, Project};
use crate::error::{ApiError, Detail};
use crate::handlers::{project_of, query_pairs};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracestore::limits::{EXPORT_CHANNEL_CHUNKS, EXPORT_CHUNK_BYTES};
use tracestore::{ExportRequest, ExportWriter, Store};

/// One message of the export task: a chunk of the body, or the error that ended the export.
type Chunk = Result<Bytes, tracestore::Error>;

/// The library's verdict on export pairs, as details (empty when it accepts them).
pub(crate) fn export_problems(pairs: &[(String, String)]) -> Vec<Detail> {
    match ExportRequest::from_params(pairs.iter().map(|(k, v)| (k, v))) {
        Ok(_) => Vec::new(),
        Err(e) => ApiError::from(e).details().to_vec(),
    }
}

/// `GET /api/v1/export/traces`.
pub(crate) async fn export_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, export_problems)?;
    let req = ExportRequest::from_params(pairs.iter().map(|(k, v)| (k, v)))?;
    let format = req.format();
    let (tx, mut rx) = mpsc::channel::<Chunk>(EXPORT_CHANNEL_CHUNKS);
    let store = Arc::clone(&state.store);
    let task = tokio::task::spawn_blocking(move || produce(&store, &project, &req, tx));
    let first = match rx.recv().await {
        Some(Ok(chunk)) => Some(chunk),
        Some(Err(e)) => return Err(ApiError::from(e)),
        // The task ended without a chunk: an empty export, or a task that failed.
        None => match task.await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "export task failed");
                return Err(ApiError::internal("internal error"));
            }
        },
    };
    let body = Body::from_stream(ChunkStream { first, rx });
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Runs the export on the blocking pool, its rows into the channel.
fn produce(store: &Store, project: &str, req: &ExportRequest, tx: mpsc::Sender<Chunk>) {
    let mut sender = ChunkSender {
        tx: &tx,
        buf: Vec::with_capacity(EXPORT_CHUNK_BYTES),
        closed: false,
    };
    let result = (|| {
        let mut w = ExportWriter::new(req.format(), &mut sender);
        w.header()?;
        let mut started = false;
        let n = store.export(project, req, |t| {
            w.write(t)?;
            if !started {
                // The response starts with the first row; later rows go in full chunks.
                started = true;
                w.flush()?;
            }
            Ok(())
        })?;
        w.finish()?;
        Ok::<u64, tracestore::Error>(n)
    })();
    match result {
        Ok(n) => tracing::debug!(project, traces = n, "export done"),
        Err(_) if sender.closed => {
            tracing::info!(project, "export stopped: the client went away")
        }
        Err(e) => {
            tracing::error!(project, error = %e, "export failed; the body is cut off");
            let _ = tx.blocking_send(Err(e));
        }
    }
}

/// Gathers written bytes into chunks and sends each, waiting while the channel is full.
struct ChunkSender<'a> {
    tx: &'a mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    /// Set when the body was dropped (the client went away).
    closed: bool,
}

impl ChunkSender<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK_BYTES),
        ));
        if self.tx.blocking_send(Ok(chunk)).is_err() {
            self.closed = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away",
            ));
        }
        Ok(())
    }
}

impl Write for ChunkSender<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= EXPORT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The response body: the first chunk, then whatever the channel brings. An error message
/// ends the body with an error, which cuts the connection.
struct ChunkStream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Chunk>,
}

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(chunk) = this.first.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        this.rx.poll_recv(cx).map(|m| {
            m.map(|m| {
                m.map_err(|_| std::io::Error::other("the export failed; the body is incomplete"))
            })
        })
    }
}
