//! The HTTP API: [`Server`] (routes, wire types, authentication, JSON errors).
//!
//! Routes (bodies are JSON; every route but `/healthz` needs `Authorization: Bearer <key>`):
//! - `POST /v1/rank` (scope rank): a user key, context tokens, candidate item keys (or the whole
//!   catalog), a slate size and exclusions -> an event id, the slate with scores, propensities
//!   and a per-item explanation, and the model version;
//! - `POST /v1/feedback` (rank): event id, position or item, kind (`click`, or `purchase` with
//!   revenue); idempotent per (event, position, kind); unknown or expired events are 404;
//! - `DELETE /v1/users/{key}` (admin): forget a user's state, decisions and feedback;
//! - `POST /v1/admin/reload` (admin): verify a model directory and swap it in;
//! - `GET /healthz` (open), `GET /metrics` and `GET /openapi.json` (rank).
//!
//! Every error is `{"error": {"code": ..., "message": ...}}` with a 4xx or 5xx status (404, 405,
//! 408, 413 and 415 included); the message names the field or header at fault. The API key is
//! checked before anything else about a request is read. Bodies must be JSON objects sent as
//! `Content-Type: application/json`; they are read as bytes (within the body limit and the body
//! timeout) and parsed here rather than by axum's `Json`, so type errors name the field path
//! (`field `slate_size`: invalid type ...`). Every key (user, event, item) is 1 to
//! [`MAX_KEY_BYTES`] bytes, on every route.
//!
//! Connections: a client that has not sent a complete request head within the header timeout of
//! connecting (or of its previous answer, for a kept-alive connection) is disconnected, a body
//! that does not arrive within the body timeout gets a 408, and at most `max_connections` are
//! served at once (more wait in the listen queue), so a stalled client holds one socket for a
//! few seconds at most. Event ids are 128 random bits, and feedback is accepted only from the
//! API key that ranked the event.

use crate::auth::{ApiKeys, Pseudonymizer, Scope};
use crate::engine::{self, EngineConfig, FeedbackJob, Job, Shared, Target, UserRecord};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{ServedCatalog, ServedModel};
use crate::store::{DecisionRow, Durability, FeedbackKind, SqliteStore, Store};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metarec_core::{
    Context, EventId, Feedback, Interaction, ItemId, SessionState, UserKey, decision_from_choice,
    rng_for,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The OpenAPI 3 document of every route.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// A JSON error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `invalid_field`, `unknown_event`, ...).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well-formed JSON whose content breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 400: the request itself is malformed (not JSON, a bad path).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// Longest key (user, event id, item) any route accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Checks one key field against the one key rule: 1 to [`MAX_KEY_BYTES`] bytes.
fn check_key(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_KEY_BYTES {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "field `{field}`: must be 1 to {MAX_KEY_BYTES} bytes, not {}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Longest reward window accepted: 30 days. Events stay open that long, and the window is added
/// to millisecond timestamps, which must not overflow.
pub const MAX_REWARD_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model directory served (and reloaded by default).
    pub model_dir: PathBuf,
    /// The SQLite database file.
    pub db: PathBuf,
    /// Accepted API keys.
    pub keys: ApiKeys,
    /// The keyed hash of user keys.
    pub pseudonyms: Pseudonymizer,
    /// How long feedback is accepted after a rank; then the event's reward is fixed.
    pub reward_window: Duration,
    /// The reward of an event that got no feedback in its window.
    pub default_reward: f64,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Seed of the exploration (each request draws from its own stream).
    pub seed: u64,
    /// Most recent interactions kept per user.
    pub history_limit: usize,
    /// Largest slate a request may ask for.
    pub max_slate: usize,
    /// Most candidates a request may list.
    pub max_candidates: usize,
    /// What an acknowledged event survives (default: a crash of the machine).
    pub durability: Durability,
    /// Largest write-ahead log, in bytes: the writer truncates it at half of this.
    pub log_limit_bytes: u64,
    /// How long a connection may take to send a complete request head, counted from its
    /// opening or from its previous answer (so it also bounds idle keep-alive connections).
    pub header_timeout: Duration,
    /// How long a request body may take to arrive once its head is read.
    pub body_timeout: Duration,
    /// Most connections served at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl ServerConfig {
    /// Settings with the defaults: a 10-minute reward window, default reward 0, 64 KiB bodies,
    /// 50 history entries, slates of at most 100 from at most 10,000 candidates, a 64 MiB log,
    /// 5-second header and 10-second body timeouts and 512 connections.
    pub fn new(model_dir: PathBuf, db: PathBuf, keys: ApiKeys, pseudonyms: Pseudonymizer) -> Self {
        ServerConfig {
            model_dir,
            db,
            keys,
            pseudonyms,
            reward_window: Duration::from_secs(600),
            default_reward: 0.0,
            body_limit: 64 * 1024,
            seed: 0,
            history_limit: 50,
            max_slate: 100,
            max_candidates: 10_000,
            durability: Durability::Machine,
            log_limit_bytes: 64 << 20,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

struct AppState {
    shared: Arc<Shared>,
    jobs: std::sync::mpsc::Sender<Job>,
    config: ServerConfig,
    counter: AtomicU64,
    /// Start time in nanoseconds: random streams differ across restarts. It never leaves the
    /// process (event ids are random).
    boot: u64,
    reload: tokio::sync::Mutex<()>,
}

/// A server: the loaded model, the user states and the writer thread, ready to route.
pub struct Server {
    state: Arc<AppState>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Checkpoints the WAL off the writer thread; dropped (stopped) after the writer's last
    /// group, and SQLite checkpoints once more when the writer's connection closes.
    checkpointer: Option<crate::store::Checkpointer>,
}

impl Server {
    /// Loads and verifies the model bundle (which carries the catalog to rank), opens the
    /// database and reloads every stored user state (states of another head width are dropped:
    /// they belong to another model).
    pub fn open(config: ServerConfig) -> Result<Server, ServeError> {
        if !(config.default_reward.is_finite()) {
            return Err(ServeError::Config(
                "the default reward must be finite".into(),
            ));
        }
        if config.reward_window.is_zero()
            || config.body_limit == 0
            || config.max_slate == 0
            || config.max_connections == 0
            || config.header_timeout.is_zero()
            || config.body_timeout.is_zero()
        {
            return Err(ServeError::Config(
                "the reward window, body limit, slate limit, connection limit and timeouts must be positive".into(),
            ));
        }
        if config.reward_window > MAX_REWARD_WINDOW {
            return Err(ServeError::Config(format!(
                "the reward window must be at most {} s (30 days)",
                MAX_REWARD_WINDOW.as_secs()
            )));
        }
        if config.log_limit_bytes < 1 << 20 {
            return Err(ServeError::Config(
                "the log limit must be at least 1 MiB".into(),
            ));
        }
        let (model, catalog) = ServedModel::load(&config.model_dir)?;
        let catalog = Arc::new(ServedCatalog::new(catalog));
        let mut store = SqliteStore::open_with(&config.db, config.durability)?;
        let mut users = HashMap::new();
        for (user, text) in store.users()? {
            let record = UserRecord::from_json(&text).map_err(|e| {
                ServeError::Config(format!(
                    "{}: stored state of user {user} is invalid: {e}",
                    config.db.display()
                ))
            })?;
            if record.posterior.dim == model.embed() {
                users.insert(user, Arc::new(record));
            }
        }
        let shared = Arc::new(Shared {
            model: std::sync::RwLock::new(Arc::new(model)),
            catalog,
            users: std::sync::RwLock::new(users),
            metrics: Metrics::default(),
            config: EngineConfig {
                reward_window_ms: config.reward_window.as_millis() as i64,
                default_reward: config.default_reward,
                history_limit: config.history_limit,
                log_limit_bytes: config.log_limit_bytes,
            },
        });
        let checkpointer = store.checkpoint_in_background(
            Duration::from_millis(100),
            shared.metrics.store.checkpoint_lag.clone(),
        )?;
        let (jobs, writer) = engine::spawn(Box::new(store), shared.clone())?;
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Server {
            state: Arc::new(AppState {
                shared,
                jobs,
                config,
                counter: AtomicU64::new(0),
                boot,
                reload: tokio::sync::Mutex::new(()),
            }),
            writer: Some(writer),
            checkpointer: Some(checkpointer),
        })
    }

    /// The version of the model being served.
    pub fn model_version(&self) -> String {
        self.state.shared.model().version.clone()
    }

    /// The routes.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .route("/v1/rank", post(rank))
            .route("/v1/feedback", post(feedback))
            .route("/v1/users/{key}", delete(forget))
            .route("/v1/admin/reload", post(reload))
            .route("/healthz", get(health))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi))
            .method_not_allowed_fallback(method_not_allowed)
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
            .fallback(not_found)
            .with_state(state)
    }

    /// Serves on `listener` until `shutdown` completes, closing reward windows in the
    /// background; waits for the writer to finish its last group before returning.
    pub async fn run(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tick = sweep_interval(self.state.config.reward_window);
        let sweeper_state = self.state.clone();
        let sweeper = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                // Close expired events batch after batch until a batch comes back short, so the
                // sweep keeps up with any rate of ranks the writer can take.
                loop {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if sweeper_state.jobs.send(Job::Expire(tx)).is_err() {
                        return;
                    }
                    match rx.await {
                        Ok(Ok(n)) if n == engine::EXPIRE_BATCH => continue,
                        _ => break,
                    }
                }
            }
        });
        let result = serve_connections(listener, self.router(), &self.state.config, shutdown).await;
        sweeper.abort();
        let _ = sweeper.await;
        let writer = self.writer.take();
        let checkpointer = self.checkpointer.take();
        // The writer stops when the last sender (held by the state) is dropped.
        drop(self);
        if let Some(w) = writer {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        drop(checkpointer);
        result
    }
}

/// How often expired reward windows are swept: a quarter of the window, between 50 ms and 5 s.
pub fn sweep_interval(window: Duration) -> Duration {
    (window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// The accept loop: HTTP/1.1 with keep-alive, the header timeout (which also ends idle
/// keep-alive connections) and at most `max_connections` at once. Written here rather than
/// through `axum::serve`, which offers neither a header timeout nor a connection limit. On
/// `shutdown` it stops accepting and waits for the requests in flight.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limit = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let service = hyper_util::service::TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors or a connection reset before it was accepted: wait a
                // moment rather than spin, and keep serving the connections we have.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.shared.metrics.request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// The caller a valid API key identifies.
struct Caller<'a> {
    token: &'a str,
}

impl Caller<'_> {
    /// The pseudonym of the caller's key, stored with the events it ranks.
    fn owner(&self, state: &AppState) -> String {
        state.config.pseudonyms.key_owner(self.token)
    }
}

fn authorize<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    need: Scope,
) -> Result<Caller<'h>, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))?;
    let scope = state
        .config
        .keys
        .scope_of(token)
        .ok_or_else(|| unauthorized("unknown API key"))?;
    if scope < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this API key has scope `{}`; this route needs scope `{}`",
                scope.name(),
                need.name()
            ),
        ));
    }
    Ok(Caller { token })
}

/// Whether a `Content-Type` is JSON (`application/json`, any parameters, any case).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads a request body within the body limit and the body timeout. A declared length over the
/// limit is refused before anything is read.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config.body_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.config.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(ApiError::bad_request(
                "bad_body",
                format!("the request body could not be read: {e}"),
            ))
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Reads and parses a JSON object body: `Content-Type: application/json` (else 415), within
/// the limit and timeout, an object at the top (never an array or a scalar, which serde would
/// otherwise accept for a struct), nothing after it. `Ok(None)` for an empty body where
/// `allow_empty`.
async fn read_json<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    allow_empty: bool,
) -> Result<Option<T>, ApiError> {
    let json = is_json(headers);
    let not_json = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with the header `Content-Type: application/json`",
        )
    };
    let declared_empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    // Refused before the body is read, unless an empty body is allowed and declared.
    if !(json || allow_empty && declared_empty) {
        return Err(not_json());
    }
    let bytes = read_body(state, headers, body).await?;
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        if allow_empty {
            return Ok(None);
        }
        return Err(ApiError::bad_request(
            "bad_json",
            "the body is empty; send a JSON object",
        ));
    };
    if !json {
        return Err(not_json());
    }
    if bytes[start] != b'{' {
        return Err(
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                ApiError::unprocessable("invalid_body", "the body must be a JSON object `{...}`")
            } else {
                ApiError::bad_request("bad_json", "the body is not valid JSON")
            },
        );
    }
    parse_json(&bytes).map(Some)
}

/// Parses a JSON body into `T`, naming the field path of a type error.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = |message: String| {
            ApiError::unprocessable(
                "invalid_field",
                if path == "." {
                    message
                } else {
                    format!("field `{path}`: {message}")
                },
            )
        };
        match inner.classify() {
            serde_json::error::Category::Data => field(inner.to_string()),
            // serde_json reports some type errors (a `null` where an enum belongs) as syntax
            // errors; when the body is valid JSON it is a type error all the same.
            _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
                field(format!("invalid value ({inner})"))
            }
            _ => ApiError::bad_request("bad_json", format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("trailing characters after the JSON body: {e}"),
        )
    })?;
    Ok(value)
}

async fn submit<T>(
    state: &AppState,
    job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, ApiError>>) -> Job,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .jobs
        .send(job(tx))
        .map_err(|_| ApiError::internal("the storage writer has stopped"))?;
    rx.await
        .map_err(|_| ApiError::internal("the storage writer has stopped"))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RankRequest {
    user: String,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    candidates: Option<Vec<String>>,
    slate_size: usize,
    #[serde(default)]
    exclude: Vec<String>,
}

/// Names of the score parts in explanations, in the order of [`ScoreParts`]' fields.
const PART_LABELS: [&str; 6] = [
    "context",
    "past_clicks",
    "past_ignores",
    "adaptation",
    "item",
    "session_flags",
];

/// The additive parts of one item's score, as sent.
#[derive(Serialize)]
struct PartsOut {
    context: f64,
    past_clicks: f64,
    past_ignores: f64,
    adaptation: f64,
    item: f64,
    session_flags: f64,
}

/// The past click that moved an item's score most, as sent.
#[derive(Serialize)]
struct TopClickOut<'a> {
    item: &'a str,
    share: f64,
}

/// One item's explanation, as sent.
#[derive(Serialize)]
struct ExplanationOut<'a> {
    summary: String,
    parts: PartsOut,
    top_past_click: Option<TopClickOut<'a>>,
}

/// One slate position of a rank answer. Typed rather than built as a `serde_json::Value`:
/// the answer is written on every rank, and a tree of maps cost about a tenth of the server's
/// time per request.
#[derive(Serialize)]
struct SlateEntryOut<'a> {
    position: usize,
    item: &'a str,
    score: f64,
    propensity: f64,
    explanation: ExplanationOut<'a>,
}

/// A rank answer.
#[derive(Serialize)]
struct RankOut<'a> {
    event_id: &'a str,
    model_version: &'a str,
    slate: Vec<SlateEntryOut<'a>>,
}

fn explanation<'a>(
    parts: &metarec_neural::adjust::ScoreParts,
    catalog: &'a ServedCatalog,
) -> ExplanationOut<'a> {
    let values = [
        parts.context,
        parts.past_clicks,
        parts.past_ignores,
        parts.adaptation,
        parts.item,
        parts.session_flags,
    ];
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
    let describe = |k: usize| -> String {
        let what = match PART_LABELS[k] {
            "context" => "your context and session".to_owned(),
            "past_clicks" => match parts.top_click {
                Some((item, _)) => format!("your clicks (most: {})", catalog.key(item)),
                None => "your clicks".to_owned(),
            },
            "past_ignores" => "items you passed over".to_owned(),
            "adaptation" => "your feedback so far (and exploration)".to_owned(),
            "item" => "the item's own appeal (popularity, price, id)".to_owned(),
            _ => "already shown or clicked in this session".to_owned(),
        };
        format!("{what} {:+.3}", values[k])
    };
    let summary: Vec<String> = order
        .iter()
        .take(2)
        .filter(|&&k| values[k] != 0.0)
        .map(|&k| describe(k))
        .collect();
    ExplanationOut {
        summary: summary.join("; "),
        parts: PartsOut {
            context: parts.context,
            past_clicks: parts.past_clicks,
            past_ignores: parts.past_ignores,
            adaptation: parts.adaptation,
            item: parts.item,
            session_flags: parts.session_flags,
        },
        top_past_click: parts.top_click.map(|(item, share)| TopClickOut {
            item: catalog.key(item),
            share,
        }),
    }
}

/// Looks up item keys: each must be in the catalog (one rule for `candidates` and `exclude`).
fn item_ids<'k>(
    catalog: &ServedCatalog,
    field: &str,
    keys: impl Iterator<Item = &'k String>,
) -> Result<Vec<ItemId>, ApiError> {
    keys.enumerate()
        .map(|(i, key)| {
            catalog.id(key).ok_or_else(|| {
                ApiError::unprocessable(
                    "unknown_item",
                    format!("field `{field}[{i}]`: no item `{key}` in the catalog"),
                )
            })
        })
        .collect()
}

async fn rank(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let request: RankRequest = read_json(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    let config = &state.config;
    check_key("user", &request.user)?;
    if request.slate_size == 0 || request.slate_size > config.max_slate {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!(
                "field `slate_size`: {} is outside 1..={}",
                request.slate_size, config.max_slate
            ),
        ));
    }
    if request.context.len() > 64 {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "field `context`: at most 64 entries",
        ));
    }
    let catalog = &state.shared.catalog;
    for (field, list) in [
        (
            "candidates",
            request.candidates.as_deref().unwrap_or_default(),
        ),
        ("exclude", &request.exclude),
    ] {
        if list.len() > config.max_candidates {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!(
                    "field `{field}`: {} items, at most {} allowed",
                    list.len(),
                    config.max_candidates
                ),
            ));
        }
    }
    let excluded: HashSet<ItemId> = item_ids(catalog, "exclude", request.exclude.iter())?
        .into_iter()
        .collect();
    let candidates: Vec<ItemId> = match &request.candidates {
        Some(keys) => {
            let mut seen = HashSet::new();
            item_ids(catalog, "candidates", keys.iter())?
                .into_iter()
                .filter(|id| !excluded.contains(id) && seen.insert(*id))
                .collect()
        }
        // An empty list stands for the whole catalog, so it only needs spelling out when
        // something is excluded.
        None if excluded.is_empty() => Vec::new(),
        None => catalog
            .catalog
            .ids()
            .filter(|id| !excluded.contains(id))
            .collect(),
    };
    if candidates.is_empty() && (request.candidates.is_some() || !excluded.is_empty()) {
        return Err(ApiError::unprocessable(
            "no_candidates",
            "no candidate is left after the exclusions",
        ));
    }
    let model = state.shared.model();
    let user = config.pseudonyms.pseudonym(&request.user);
    let stored = state.shared.user(&user);
    let record = match &stored {
        Some(r) => r.as_ref().clone(),
        None => UserRecord::prior(&model),
    };
    let now = engine::now_ms();
    let context = Context {
        user: UserKey(user.clone()),
        timestamp_ms: Some(now),
        features: Vec::new(),
        tokens: request
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        session: SessionState {
            session: 0,
            step: record.slates,
            history: record.history.clone(),
        },
        candidates,
    };
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let mut rng = rng_for(config.seed ^ state.boot, n);
    let decided = model
        .adjuster
        .decide(&record.posterior, &context, request.slate_size, &mut rng);
    if decided.choice.items.is_empty() {
        return Err(ApiError::unprocessable(
            "no_candidates",
            "nothing to rank: the catalog is empty",
        ));
    }
    let event_id = new_event_id()?;
    let decision = decision_from_choice(
        decided.choice,
        EventId(event_id.clone()),
        "adjusted",
        model.version.clone(),
    )
    .map_err(|e| ApiError::internal(format!("invalid decision: {e}")))?;
    let explained = model
        .adjuster
        .explain_slate(&context, &decided.delta, decision.slate.items());
    let slate: Vec<SlateEntryOut<'_>> = decision
        .slate
        .items()
        .iter()
        .zip(&explained)
        .enumerate()
        .map(|(k, (&item, parts))| SlateEntryOut {
            position: k,
            item: catalog.key(item),
            score: decided.scores[k],
            propensity: decision.propensities[k],
            explanation: explanation(parts, catalog),
        })
        .collect();
    // The answer is serialised here, while the slate still borrows the decision that the
    // writer thread is about to take.
    let body = serde_json::to_vec(&RankOut {
        event_id: &event_id,
        model_version: &model.version,
        slate,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
    let len = decision.slate.len();
    let row = DecisionRow {
        event_id: event_id.clone(),
        user,
        owner: caller.owner(&state),
        created_ms: now,
        interaction: Interaction {
            context,
            decision,
            feedback: Feedback::none(len),
        },
        resolved: false,
        reward: None,
    };
    submit(&state, |tx| Job::Decision(Box::new(row), tx)).await?;
    state.shared.metrics.decision(len);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A new event id: 128 random bits from the operating system, in hex. Nothing in it tells the
/// boot time, the request count or any other event's id.
fn new_event_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no randomness for an event id: {e}")))?;
    let mut id = String::with_capacity(32);
    for b in bytes {
        use std::fmt::Write as _;
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Click,
    Purchase,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    event_id: String,
    #[serde(default)]
    position: Option<u32>,
    #[serde(default)]
    item: Option<String>,
    kind: Kind,
    #[serde(default)]
    revenue: Option<f64>,
}

async fn feedback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Scope::Rank)?;
    let request: FeedbackRequest = read_json(&state, &headers, body, false)
        .await?
        .ok_or_else(|| ApiError::bad_request("bad_json", "the body is empty"))?;
    check_key("event_id", &request.event_id)?;
    let target = match (request.position, request.item) {
        (Some(p), None) => Target::Position(p),
        (None, Some(item)) => {
            check_key("item", &item)?;
            Target::Item(item)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "give exactly one of the fields `position` and `item`",
            ));
        }
    };
    let (kind, revenue) = match (request.kind, request.revenue) {
        (Kind::Click, None) => (FeedbackKind::Click, 0.0),
        (Kind::Click, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "field `revenue`: only a purchase carries revenue",
            ));
        }
        (Kind::Purchase, Some(r)) if r.is_finite() && r >= 0.0 => (FeedbackKind::Purchase, r),
        (Kind::Purchase, Some(r)) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("field `revenue`: {r} must be finite and non-negative"),
            ));
        }
        (Kind::Purchase, None) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "field `revenue`: a purchase needs its revenue",
            ));
        }
    };
    let job = FeedbackJob {
        event_id: request.event_id,
        owner: caller.owner(&state),
        target,
        kind,
        revenue,
    };
    let ack = submit(&state, |tx| Job::Feedback(job, tx)).await?;
    Ok(axum::Json(json!({
        "event_id": ack.event_id,
        "position": ack.position,
        "kind": ack.kind,
        "duplicate": ack.duplicate,
    }))
    .into_response())
}

async fn forget(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let UrlPath(key) = key.map_err(|e| {
        ApiError::bad_request(
            "bad_path",
            format!("the user key in the path is not valid percent-encoded UTF-8: {e}"),
        )
    })?;
    check_key("key", &key)?;
    let user = state.config.pseudonyms.pseudonym(&key);
    let ack = submit(&state, |tx| Job::Forget(user, tx)).await?;
    Ok(axum::Json(json!({
        "forgotten": true,
        "events_deleted": ack.events_deleted,
        "purged_from_log": ack.purged,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    #[serde(default)]
    model: Option<PathBuf>,
}

async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let request: ReloadRequest = read_json(&state, &headers, body, true)
        .await?
        .unwrap_or_default();
    let dir = request
        .model
        .unwrap_or_else(|| state.config.model_dir.clone());
    // One reload at a time, so two swaps cannot interleave their checks.
    let _guard = state.reload.lock().await;
    let loaded = tokio::task::spawn_blocking(move || ServedModel::load(&dir))
        .await
        .map_err(|e| ApiError::internal(format!("model loading panicked: {e}")))?;
    let rejected = |message: String| {
        ApiError::unprocessable(
            "model_rejected",
            format!("{message}; the previous model keeps serving"),
        )
    };
    let (model, _) = loaded.map_err(|e| rejected(e.to_string()))?;
    let previous = state.shared.model();
    if model.catalog_fingerprint != previous.catalog_fingerprint {
        return Err(rejected(format!(
            "the model ranks another catalog (fingerprint {}, the served one {}); restart the server to serve another catalog",
            model.catalog_fingerprint, previous.catalog_fingerprint
        )));
    }
    if model.embed() != previous.embed() {
        return Err(rejected(format!(
            "head width {} differs from the served model's {}, so stored user states would not fit",
            model.embed(),
            previous.embed()
        )));
    }
    let version = model.version.clone();
    *state
        .shared
        .model
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Arc::new(model);
    Ok(
        axum::Json(json!({"model_version": version, "previous_version": previous.version}))
            .into_response(),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({"status": "ok", "model_version": state.shared.model().version}))
        .into_response()
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    let users = state
        .shared
        .users
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let text = state
        .shared
        .metrics
        .render(&state.shared.model().version, users);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response())
}

async fn openapi(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response())
}

async fn not_found(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: axum::http::Uri,
) -> ApiError {
    state
        .shared
        .metrics
        .request(method.as_str(), "unmatched", 404, 0.0);
    ApiError::not_found(
        "no_route",
        format!("no route {method} {}; see /openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {}; see /openapi.json",
            uri.path(),
            crate::metrics::method_label(method.as_str())
        ),
    )
}
