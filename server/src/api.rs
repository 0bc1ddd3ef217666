//! The HTTP adapter: routes, authentication, rate limits, timeouts and request logs.
//!
//! Architecture invariant: the HTTP layer never parses query parameters itself. The decoded
//! query-string pairs go to `Store::query_params` exactly as they arrived, repeated keys
//! included, and every rule of the contract is the library's.

use crate::error::{ok, ApiError};
use crate::ratelimit::{Decision, RateLimiter};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracestore::{ErrorCode, Store};

/// Default requests per window per key.
pub const DEFAULT_RATE_LIMIT: u32 = 600;
/// Default rate-limit window, in seconds.
pub const DEFAULT_RATE_WINDOW_SECS: u64 = 60;
/// Default time a request may take before it is answered with a 500, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// The body limit handed to axum: a little over the library's own limit, so that the library
/// decides (and reports) every body of up to `MAX_BATCH_BYTES + BODY_SLACK_BYTES` bytes, and axum
/// refuses anything larger without buffering it.
pub const BODY_SLACK_BYTES: usize = 64 * 1024;

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The hand-written OpenAPI 3.1 document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Requests per window per API key.
    pub rate_limit: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
    /// How long a request may take.
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_window: Duration::from_secs(DEFAULT_RATE_WINDOW_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
        }
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    store: Arc<Store>,
    limiter: Arc<RateLimiter>,
    request_timeout: Duration,
}

impl AppState {
    pub fn new(store: Arc<Store>, config: &ServerConfig) -> Self {
        AppState {
            store,
            limiter: Arc::new(RateLimiter::new(config.rate_limit, config.rate_window)),
            request_timeout: config.request_timeout,
        }
    }
}

/// The project a request was authenticated for; set by the auth layer, read by handlers and by
/// the request log.
#[derive(Clone, Debug)]
struct Project(Arc<str>);

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/traces", get(list_traces).post(ingest_traces))
        .route("/api/v1/traces/{id}", get(get_trace).delete(delete_trace))
        .layer(DefaultBodyLimit::max(
            tracestore::limits::MAX_BATCH_BYTES + BODY_SLACK_BYTES,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            default_rate_headers,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves `store` on `listener` until `shutdown` resolves, then waits for in-flight requests to
/// finish. The store is dropped (and so closed) when the last request holding it is done.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(AppState::new(store, &config));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs a store call on the blocking pool: redb does file I/O and must stay off the reactor.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> tracestore::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(ApiError::internal("internal error"))
        }
    }
}

fn set_rate_headers(headers: &mut HeaderMap, d: Decision) {
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING.clone(), HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(d.reset_secs));
}

/// `Authorization: Bearer <key>` → the key, or why not. The scheme is case-insensitive
/// (RFC 7235); the key itself is checked by the library.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::from(tracestore::Error::unauthorized(m));
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing Authorization header; expected Authorization: Bearer <key>",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header; expected Bearer <key>"))?;
    let (scheme, key) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(unauthorized(
            "malformed Authorization header; expected Bearer <key>",
        ));
    }
    Ok(key)
}

/// Authenticates the key, then counts the request against that key's quota. A request that
/// fails authentication consumes no quota.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = match bearer(req.headers()) {
        Ok(k) => k.to_string(),
        Err(e) => return e.into_response(),
    };
    let project = {
        let key = key.clone();
        match blocking(&state.store, move |s| s.authenticate(&key)).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    };
    let decision = state.limiter.check(&key);
    let project = Project(Arc::from(project));
    let mut res = if decision.allowed {
        req.extensions_mut().insert(project.clone());
        next.run(req).await
    } else {
        let mut res = ApiError::from(tracestore::Error::rate_limited()).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(decision.reset_secs));
        res
    };
    set_rate_headers(res.headers_mut(), decision);
    res.extensions_mut().insert(project);
    res
}

/// Every response carries `RateLimit-*`: requests that were not counted against a key report
/// the configured limit with all of it remaining.
async fn default_rate_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if !res.headers().contains_key(&RATELIMIT_LIMIT) {
        set_rate_headers(res.headers_mut(), state.limiter.untouched());
    }
    res
}

async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::internal("request timed out").into_response(),
    }
}

/// One log line per request: method, path, status, latency and project. Never the key, never
/// the query string (it can hold cursors, which are opaque but long).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let project = res.extensions().get::<Project>().map(|p| p.0.clone());
    tracing::info!(
        %method,
        %path,
        status = res.status().as_u16(),
        latency_ms = format_args!("{latency_ms:.2}"),
        project = %project.as_deref().unwrap_or("-"),
        "request"
    );
    res
}

fn project_of(req_project: Option<axum::Extension<Project>>) -> Result<Arc<str>, ApiError> {
    // The auth layer wraps every route that takes this; its absence is a wiring bug.
    req_project
        .map(|p| p.0 .0.clone())
        .ok_or_else(|| ApiError::internal("internal error"))
}

/// `GET /api/v1/traces`: the decoded pairs, repeated keys kept, straight to the library.
async fn list_traces(
    State(state): State<AppState>,
    project: Option<axum::Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let page = blocking(&state.store, move |s| s.query_params(&project, pairs)).await?;
    Ok(ok(&page))
}

/// An id that is not valid UTF-8 after percent-decoding names no trace.
fn trace_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    // The library's own answer to an unknown id, so that both are indistinguishable.
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "trace not found"))
}

async fn get_trace(
    State(state): State<AppState>,
    project: Option<axum::Extension<Project>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let id = trace_id(path)?;
    let detail = blocking(&state.store, move |s| s.get_trace(&project, &id)).await?;
    Ok(ok(&detail))
}

async fn delete_trace(
    State(state): State<AppState>,
    project: Option<axum::Extension<Project>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let id = trace_id(path)?;
    let deleted_id = id.clone();
    blocking(&state.store, move |s| s.delete_trace(&project, &id)).await?;
    Ok(ok(
        &serde_json::json!({ "id": deleted_id, "deleted": true }),
    ))
}

/// `POST /api/v1/traces`: the body goes to the library, which validates and sizes it.
async fn ingest_traces(
    State(state): State<AppState>,
    project: Option<axum::Extension<Project>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::payload_too_large())
        }
        Err(r) => {
            return Err(ApiError::field(
                "body",
                format!("could not be read: {}", r.body_text()),
            ))
        }
    };
    let summary = blocking(&state.store, move |s| s.ingest_json(&project, &body)).await?;
    Ok(ok(&summary))
}

async fn healthz() -> Response {
    ok(&serde_json::json!({ "status": "ok" }))
}

async fn openapi() -> Response {
    let mut res = (StatusCode::OK, OPENAPI_JSON).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

async fn no_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}
