//! The HTTP adapter: routes, authentication, rate limits, timeouts and request logs.
//!
//! Architecture invariant: the HTTP layer never parses query parameters itself. The decoded
//! query-string pairs go to `Store::query_params` exactly as they arrived, repeated keys
//! included, and every rule of the contract is the library's.

use crate::error::{created, ok, ApiError, Detail};
use crate::input::{self, BodyError};
use crate::ratelimit::{Decision, RateLimiter};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Router};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracestore::{ErrorCode, Principal, Store, Timestamp};

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
    store: Arc<Store>,
    limiter: Arc<RateLimiter>,
    request_timeout: Duration,
    body_read_timeout: Duration,
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
struct Project(Arc<str>);

/// Who made a request, for the request log: a project's name, or `(admin)`.
#[derive(Clone, Debug)]
struct LogPrincipal(Arc<str>);

/// Shared between the timeout layer and the inner layers of one request, so that a request
/// that times out is still logged with its principal, and a request whose body was still
/// arriving gets a 408 rather than a 500.
#[derive(Debug, Default)]
struct Progress {
    reading_body: AtomicBool,
    principal: OnceLock<Arc<str>>,
}

/// Which keys a route takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    Project,
    Admin,
}

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    // Each method router's own route_layer wraps its methods only, not its 405 fallback: a
    // known path with another method is answered before authentication (Router::route_layer
    // would wrap the fallback too), so it consumes no quota.
    let project = middleware::from_fn_with_state(state.clone(), project_auth);
    let admin = middleware::from_fn_with_state(state.clone(), admin_auth);
    let routes = Router::new()
        .route(
            "/api/v1/traces",
            get(list_traces)
                .post(ingest_traces)
                .delete(delete_before)
                .route_layer(project.clone()),
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
        .route("/openapi.json", get(openapi))
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            default_rate_headers,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state);
    // A Router's layers wrap each route, inside the code that adds `Allow` to a 405; this one
    // wraps the whole router, so it sees the finished 405.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(method_not_allowed_envelope))
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
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res = if progress.reading_body.load(Ordering::SeqCst) {
                ApiError::from(tracestore::Error::request_timeout()).into_response()
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

fn project_of(req_project: Option<Extension<Project>>) -> Result<Arc<str>, ApiError> {
    // The auth layer wraps every route that takes this; its absence is a wiring bug.
    req_project
        .map(|p| p.0 .0.clone())
        .ok_or_else(|| ApiError::internal("internal error"))
}

/// The query string's pairs, or a 400 naming every pair that is not UTF-8 or has no name,
/// together with whatever else `also` finds wrong with the pairs that are.
fn query_pairs(
    raw: Option<String>,
    also: impl FnOnce(&[(String, String)]) -> Vec<Detail>,
) -> Result<Vec<(String, String)>, ApiError> {
    let (pairs, mut problems) = input::decode_query(raw.as_deref());
    if problems.is_empty() {
        return Ok(pairs);
    }
    for d in also(&pairs) {
        if !problems.iter().any(|p| p.field == d.field) {
            problems.push(d);
        }
    }
    Err(ApiError::fields(problems))
}

/// The library's own verdict on list-query pairs, as details (empty when it accepts them).
fn list_query_problems(pairs: &[(String, String)]) -> Vec<Detail> {
    match tracestore::QueryRequest::from_params(pairs.iter().map(|(k, v)| (k, v))) {
        Ok(_) => Vec::new(),
        Err(e) => ApiError::from(e).details().to_vec(),
    }
}

/// `GET /api/v1/traces`: the decoded pairs, repeated keys kept, straight to the library.
async fn list_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, list_query_problems)?;
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
    project: Option<Extension<Project>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let id = trace_id(path)?;
    let detail = blocking(&state.store, move |s| s.get_trace(&project, &id)).await?;
    Ok(ok(&detail))
}

async fn delete_trace(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
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

const BEFORE_FORMAT: &str =
    "must be an RFC 3339 instant or YYYY-MM-DD (midnight UTC) between 1970-01-01 and 9999-12-31";

/// The retention route's one parameter, `before`: required, once, in `startDate`'s formats.
/// Every other parameter is refused by name. These are the route's own rules: the list
/// query's parameters are not involved.
fn retention_problems(pairs: &[(String, String)]) -> (Option<Timestamp>, Vec<Detail>) {
    let mut problems = Vec::new();
    let mut cutoff = None;
    let mut seen = 0;
    let problem = |field: &str, message: &str| Detail {
        field: field.to_string(),
        message: message.to_string(),
    };
    for (k, v) in pairs {
        if k != "before" {
            let shown: String = k.chars().take(64).collect();
            problems.push(problem(
                &shown,
                "unknown parameter; the only parameter is before",
            ));
            continue;
        }
        seen += 1;
        if seen == 2 {
            problems.push(problem("before", "given more than once"));
        }
        if seen == 1 {
            match retention_cutoff(v) {
                Some(t) => cutoff = Some(t),
                None => problems.push(problem("before", BEFORE_FORMAT)),
            }
        }
    }
    if seen == 0 {
        problems.push(problem(
            "before",
            "required: traces that started before this instant are deleted",
        ));
    }
    (cutoff, problems)
}

/// `before` as `endDate` reads it: a trace started before `before` when its millisecond
/// startTime is below `before` rounded up to the next millisecond.
fn retention_cutoff(value: &str) -> Option<Timestamp> {
    let t = Timestamp::parse(value).ok()?;
    let sub_millisecond = value.split_once('.').is_some_and(|(_, frac)| {
        frac.bytes()
            .take_while(u8::is_ascii_digit)
            .skip(3)
            .any(|d| d != b'0')
    });
    if sub_millisecond {
        Timestamp::from_millis(t.as_millis() + 1).ok()
    } else {
        Some(t)
    }
}

/// `DELETE /api/v1/traces?before=INSTANT`: retention for the key's project.
async fn delete_before(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, |pairs| retention_problems(pairs).1)?;
    let (cutoff, problems) = retention_problems(&pairs);
    let cutoff = match cutoff {
        Some(c) if problems.is_empty() => c,
        _ => return Err(ApiError::fields(problems)),
    };
    let deleted = blocking(&state.store, move |s| {
        s.delete_before(&project, cutoff, |_| {})
    })
    .await?;
    Ok(ok(&serde_json::json!({ "deleted": deleted })))
}

/// The whole body of a JSON request: 415 unless it is declared JSON, 413 at once for a
/// declared length over `limit` (and as soon as more than `limit` arrives), 408 when it has
/// not all arrived within the body read timeout.
async fn json_body(
    state: &AppState,
    progress: Option<&Arc<Progress>>,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    input::require_json(headers)
        .map_err(|m| ApiError::from(tracestore::Error::unsupported_media_type(m)))?;
    let too_large = || ApiError::from(tracestore::Error::payload_too_large(limit));
    if input::declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    if let Some(p) = progress {
        p.reading_body.store(true, Ordering::SeqCst);
    }
    let read = input::read_body(body, limit, state.body_read_timeout).await;
    if let Some(p) = progress {
        p.reading_body.store(false, Ordering::SeqCst);
    }
    read.map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        BodyError::TimedOut => tracestore::Error::request_timeout().into(),
        BodyError::Read(m) => ApiError::field("body", format!("could not be read: {m}")),
    })
}

/// `POST /api/v1/traces`: the body goes to the library, which validates it.
async fn ingest_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    progress: Option<Extension<Arc<Progress>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let limit = tracestore::limits::MAX_BATCH_BYTES;
    let body = json_body(&state, progress.as_deref(), &headers, body, limit).await?;
    let summary = blocking(&state.store, move |s| s.ingest_json(&project, &body)).await?;
    Ok(ok(&summary))
}

/// What `POST /api/v1/admin/keys` asks for.
enum KeyRequest {
    Project(String),
    Admin,
}

/// `{"project": "NAME"}` or `{"admin": true}` (`"admin": false` may go with a project).
fn key_request(body: &[u8]) -> Result<KeyRequest, ApiError> {
    const SHAPE: &str = r#"must be a JSON object: {"project": "NAME"} or {"admin": true}"#;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::field("body", format!("is not valid JSON ({e}); {SHAPE}")))?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::field("body", SHAPE));
    };
    let mut problems = Vec::new();
    let mut project = None;
    let mut admin = None;
    for (k, v) in object {
        match (k.as_str(), v) {
            ("project", serde_json::Value::String(p)) => project = Some(p.clone()),
            ("project", _) => problems.push(("project", "must be a string".to_string())),
            ("admin", serde_json::Value::Bool(a)) => admin = Some(*a),
            ("admin", _) => problems.push(("admin", "must be true or false".to_string())),
            (other, _) => problems.push((
                other,
                "unknown field; the fields are project and admin".to_string(),
            )),
        }
    }
    if problems.is_empty() {
        match (project, admin.unwrap_or(false)) {
            (Some(p), false) => return Ok(KeyRequest::Project(p)),
            (None, true) => return Ok(KeyRequest::Admin),
            (Some(_), true) => problems.push((
                "admin",
                "an admin key belongs to no project; give either project or admin: true"
                    .to_string(),
            )),
            (None, false) => problems.push((
                "project",
                "required: the project the key is for (or admin: true for an admin key)"
                    .to_string(),
            )),
        }
    }
    Err(ApiError::fields(
        problems
            .into_iter()
            .map(|(field, message)| Detail {
                field: field.chars().take(64).collect(),
                message,
            })
            .collect(),
    ))
}

/// `POST /api/v1/admin/keys`: a new project or admin key, its plaintext shown once.
async fn create_key(
    State(state): State<AppState>,
    progress: Option<Extension<Arc<Progress>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = json_body(
        &state,
        progress.as_deref(),
        &headers,
        body,
        MAX_ADMIN_BODY_BYTES,
    )
    .await?;
    let request = key_request(&body)?;
    let new = blocking(&state.store, move |s| match request {
        KeyRequest::Project(p) => s.create_api_key(&p),
        KeyRequest::Admin => s.create_admin_key(),
    })
    .await?;
    tracing::info!(prefix = %new.prefix, project = %new.project, admin = new.admin, "key created");
    Ok(created(&serde_json::json!({
        "key": new.key,
        "prefix": new.prefix,
        "project": new.project,
        "admin": new.admin,
    })))
}

/// `GET /api/v1/admin/keys`: every key's prefix, project and dates, never a key.
async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = blocking(&state.store, |s| s.list_api_keys()).await?;
    Ok(ok(&serde_json::json!({ "keys": keys })))
}

/// `DELETE /api/v1/admin/keys/{prefix}`: revokes the keys with this prefix (`ts_` optional).
async fn revoke_key(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no unrevoked key has this prefix");
    let Ok(Path(prefix)) = path else {
        return Err(not_found());
    };
    let shown = prefix.clone();
    let revoked = blocking(&state.store, move |s| s.revoke_api_key(&prefix)).await?;
    if revoked == 0 {
        return Err(not_found());
    }
    tracing::info!(prefix = %shown.chars().take(64).collect::<String>(), revoked, "key revoked");
    Ok(ok(&serde_json::json!({ "revoked": revoked })))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(d: &[Detail]) -> Vec<&str> {
        d.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn retention_takes_before_only() {
        let (t, p) = retention_problems(&pairs(&[("before", "2026-03-01")]));
        assert!(p.is_empty());
        assert_eq!(t.unwrap().to_string(), "2026-03-01T00:00:00.000Z");
        let (_, p) = retention_problems(&[]);
        assert_eq!(fields(&p), vec!["before"]);
        assert!(p[0].message.contains("required"));
        let (_, p) = retention_problems(&pairs(&[("before", "yesterday"), ("limit", "5")]));
        assert_eq!(fields(&p), vec!["before", "limit"]);
        let (_, p) = retention_problems(&pairs(&[("before", "2026-03-01"), ("before", "x")]));
        assert_eq!(fields(&p), vec!["before"]);
        assert!(p[0].message.contains("more than once"));
        let (_, p) = retention_problems(&pairs(&[("before", "1969-12-31")]));
        assert_eq!(fields(&p), vec!["before"]);
    }

    #[test]
    fn retention_rounds_sub_milliseconds_up() {
        let at = |s: &str| retention_cutoff(s).unwrap().to_string();
        assert_eq!(at("2026-03-01T00:00:00Z"), "2026-03-01T00:00:00.000Z");
        assert_eq!(at("2026-03-01T00:00:00.0010Z"), "2026-03-01T00:00:00.001Z");
        assert_eq!(at("2026-03-01T00:00:00.0001Z"), "2026-03-01T00:00:00.001Z");
        assert_eq!(
            at("2026-03-01T01:00:00.5000001+01:00"),
            "2026-03-01T00:00:00.501Z"
        );
    }

    #[test]
    fn key_requests() {
        assert!(matches!(
            key_request(br#"{"project":"acme"}"#),
            Ok(KeyRequest::Project(p)) if p == "acme"
        ));
        assert!(matches!(
            key_request(br#"{"project":"acme","admin":false}"#),
            Ok(KeyRequest::Project(_))
        ));
        assert!(matches!(
            key_request(br#"{"admin":true}"#),
            Ok(KeyRequest::Admin)
        ));
        for (body, want) in [
            (&br#"{}"#[..], vec!["project"]),
            (br#"{"admin":false}"#, vec!["project"]),
            (br#"{"project":"a","admin":true}"#, vec!["admin"]),
            (br#"{"project":1}"#, vec!["project"]),
            (br#"{"admin":"yes"}"#, vec!["admin"]),
            (br#"{"name":"a"}"#, vec!["name"]),
            (br#"[]"#, vec!["body"]),
            (b"not json", vec!["body"]),
            (b"", vec!["body"]),
        ] {
            let e = key_request(body).err().expect("refused");
            assert_eq!(e.code(), ErrorCode::Validation);
            assert_eq!(
                fields(e.details()),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
