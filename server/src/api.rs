//! The HTTP adapter: routes, authentication, rate limits, timeouts and request logs.
//!
//! Architecture invariant: the HTTP layer never parses query parameters itself. The decoded
//! query-string pairs go to `Store::query_params` exactly as they arrived, repeated keys
//! included, and every rule of the contract is the library's.

use crate::error::ApiError;
use crate::handlers::*;
use crate::otlp::{self, OTLP_TRACES_PATH};
use crate::ratelimit::{Decision, RateLimiter};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracestore::{Principal, Store};

/// Default requests per window per key.
pub const DEFAULT_RATE_LIMIT: u32 = 600;
/// Default rate-limit window, in seconds.
pub const DEFAULT_RATE_WINDOW_SECS: u64 = 60;
/// Default time a request may take before it is answered with a 500, in seconds (a 408 when
/// its body is still arriving). Retention (`DELETE /api/v1/traces`) runs to the end instead:
/// its work cannot be abandoned halfway, so a timeout would only misreport it.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Default time a client has to send a whole request body, in seconds; a body still arriving
/// then is answered with a 408 REQUEST_TIMEOUT.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;
/// Largest body `POST /api/v1/admin/keys` reads.
pub const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;

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
    pub(crate) store: Arc<Store>,
    limiter: Arc<RateLimiter>,
    request_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
}

impl AppState {
    pub fn new(store: Arc<Store>, config: &ServerConfig) -> Self {
        AppState {
            store,
            limiter: Arc::new(RateLimiter::new(config.rate_limit, config.rate_window)),
            request_timeout: config.request_timeout,
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS),
        }
    }

    /// How long a client has to send a whole request body (default
    /// [`DEFAULT_BODY_READ_TIMEOUT_SECS`]).
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }
}

/// The project a request was authenticated for; set by the auth layer, read by handlers.
#[derive(Clone, Debug)]
pub(crate) struct Project(pub(crate) Arc<str>);

/// Who made a request, for the request log: a project's name, or `(admin)`.
#[derive(Clone, Debug)]
struct LogPrincipal(Arc<str>);

/// Shared between the timeout layer and the inner layers of one request, so that a request
/// that times out is still logged with its principal, and a request whose body was still
/// arriving gets a 408 rather than a 500.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) reading_body: AtomicBool,
    principal: OnceLock<Arc<str>>,
}

/// Which keys a route takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    Project,
    Admin,
}

/// The router with every route and layer: the `/api/` routes, health, the OpenAPI document and
/// the OTLP/HTTP receiver `POST /v1/traces`.
pub fn app(state: AppState) -> Router {
    // Each method router's own route_layer wraps its methods only, not its 405 fallback: a
    // known path with another method is answered before authentication (Router::route_layer
    // would wrap the fallback too), so it consumes no quota.
    let project = middleware::from_fn_with_state(state.clone(), project_auth);
    let admin = middleware::from_fn_with_state(state.clone(), admin_auth);
    let routes = Router::new()
        .route(
            OTLP_TRACES_PATH,
            post(otlp::export_traces).route_layer(project.clone()),
        )
        .route(
            "/api/v1/traces",
            get(list_traces)
                .post(ingest_traces)
                .delete(delete_before)
                .route_layer(project.clone()),
        )
        .route(
            "/api/v1/export/traces",
            get(crate::export::export_traces).route_layer(project.clone()),
        )
        .route(
            "/api/v1/traces/{id}",
            get(get_trace).delete(delete_trace).route_layer(project),
        )
        .route(
            "/api/v1/admin/keys",
            get(list_keys).post(create_key).route_layer(admin.clone()),
        )
        .route(
            "/api/v1/admin/keys/{prefix}",
            delete(revoke_key).route_layer(admin),
        )
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi));
    layered(routes, state)
}

/// The router of the OTLP listener (`serve --otlp-addr`): `POST /v1/traces` only, with the
/// same authentication, rate limits (the same counters, when given the same state), timeouts
/// and logs as [`app`]; any other path is a 404.
pub fn otlp_app(state: AppState) -> Router {
    let project = middleware::from_fn_with_state(state.clone(), project_auth);
    let routes = Router::new().route(
        OTLP_TRACES_PATH,
        post(otlp::export_traces).route_layer(project),
    );
    layered(routes, state)
}

/// The layers every router shares, around its routes.
fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            default_rate_headers,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state);
    // A Router's layers wrap each route, inside the code that adds `Allow` to a 405; this one
    // wraps the whole router, so it sees the finished 405. Outermost, the OTLP route's failures
    // (405 included) become a google.rpc.Status rather than the envelope.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(method_not_allowed_envelope))
        .layer(middleware::from_fn(otlp::status_errors))
}

/// Serves `store` on `listener` until `shutdown` resolves, then waits for in-flight requests to
/// finish. The store is dropped (and so closed) when the last request holding it is done.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, AppState::new(store, &config), shutdown).await
}

/// [`serve`] with a prepared [`AppState`] (to set the body read timeout, say).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the OTLP router ([`otlp_app`]) on `listener` until `shutdown` resolves. Give it the
/// [`AppState`] the main listener has, so that both share the store and the rate limits.
pub async fn serve_otlp_state(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, otlp_app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs a store call on the blocking pool: redb does file I/O and must stay off the reactor.
pub(crate) async fn blocking<T: Send + 'static>(
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

/// Project routes take a project key; an admin key there is a 403.
async fn project_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    authenticate(state, Role::Project, req, next).await
}

/// Admin routes take an admin key; a project key there is a 403.
async fn admin_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    authenticate(state, Role::Admin, req, next).await
}

/// Authenticates the key (the library reads the store each time, so a revoked key fails on its
/// very next request), checks that it is the kind of key the route takes, then counts the
/// request against that key's quota. A request refused with 401 or 403 consumes no quota.
async fn authenticate(state: AppState, role: Role, mut req: Request, next: Next) -> Response {
    let key = match bearer(req.headers()) {
        Ok(k) => k.to_string(),
        Err(e) => return e.into_response(),
    };
    let principal = {
        let key = key.clone();
        match blocking(&state.store, move |s| s.authenticate_principal(&key)).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    };
    let (project, shown) = match (role, principal) {
        (Role::Project, Principal::Project(p)) => {
            let p: Arc<str> = Arc::from(p);
            (Some(p.clone()), p)
        }
        (Role::Admin, Principal::Admin) => (None, Arc::from("(admin)")),
        (Role::Project, _) => {
            return ApiError::from(tracestore::Error::forbidden(
                "an admin key manages keys and reaches no project's data; use a project key",
            ))
            .into_response()
        }
        (Role::Admin, _) => {
            return ApiError::from(tracestore::Error::forbidden(
                "this route takes an admin key; a project key reaches only its own project",
            ))
            .into_response()
        }
    };
    if let Some(progress) = req.extensions().get::<Arc<Progress>>() {
        let _ = progress.principal.set(shown.clone());
    }
    let decision = state.limiter.check(&key);
    let mut res = if decision.allowed {
        if let Some(p) = project {
            req.extensions_mut().insert(Project(p));
        }
        next.run(req).await
    } else {
        let mut res = ApiError::from(tracestore::Error::rate_limited()).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(decision.reset_secs));
        res
    };
    set_rate_headers(res.headers_mut(), decision);
    res.extensions_mut().insert(LogPrincipal(shown));
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

/// axum answers a known path with another method by an empty 405 with `Allow`; this puts the
/// error envelope in its body, its headers (`Allow`, `RateLimit-*`) kept.
async fn method_not_allowed_envelope(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let listed = parts
        .headers
        .get(header::ALLOW)
        .and_then(|a| a.to_str().ok())
        .map(|a| a.split(',').map(str::trim).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let envelope =
        ApiError::from(tracestore::Error::method_not_allowed(&listed)).envelope_json(false);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(envelope))
}

/// Retention deletes in batches until it is done; cutting its answer off would only misreport
/// work that carries on.
fn runs_to_completion(req: &Request) -> bool {
    req.method() == Method::DELETE && req.uri().path() == "/api/v1/traces"
}

async fn timeout(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if runs_to_completion(&req) {
        return next.run(req).await;
    }
    let progress = Arc::new(Progress::default());
    req.extensions_mut().insert(progress.clone());
    let otlp_encoding =
        (req.uri().path() == OTLP_TRACES_PATH).then(|| otlp::answer_encoding(req.headers()));
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res = if progress.reading_body.load(Ordering::SeqCst) {
                ApiError::from(tracestore::Error::request_timeout()).into_response()
            } else if let Some(encoding) = otlp_encoding {
                // An export is idempotent: the exporter may retry it.
                otlp::timed_out(encoding)
            } else {
                ApiError::internal("request timed out").into_response()
            };
            if let Some(p) = progress.principal.get() {
                res.extensions_mut().insert(LogPrincipal(p.clone()));
            }
            res
        }
    }
}

/// One log line per request: method, path, status, latency and project (`(admin)` for an
/// admin key). Never the key, never the query string (it can hold cursors, which are opaque
/// but long).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let project = res.extensions().get::<LogPrincipal>().map(|p| p.0.clone());
    let status = res.status().as_u16();
    if status == StatusCode::REQUEST_TIMEOUT.as_u16() {
        tracing::warn!(
            %method,
            %path,
            project = %project.as_deref().unwrap_or("-"),
            "the client stalled while sending its request body"
        );
    }
    tracing::info!(
        %method,
        %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        project = %project.as_deref().unwrap_or("-"),
        "request"
    );
    res
}
