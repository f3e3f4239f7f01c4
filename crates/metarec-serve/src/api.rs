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
//! Every error is `{"error": {"code": ..., "message": ...}}` with a 4xx or 5xx status; the message
//! names the field or header at fault. Bodies are read as bytes and parsed here (rather than by
//! axum's `Json`), so type errors name the field path (`field `slate_size`: invalid type ...`).

use crate::auth::{ApiKeys, Pseudonymizer, Scope};
use crate::engine::{self, EngineConfig, FeedbackJob, Job, Shared, Target, UserRecord};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{ServedCatalog, ServedModel};
use crate::store::{DecisionRow, Durability, FeedbackKind, SqliteStore, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metarec_core::{
    Catalog, Context, EventId, Feedback, Interaction, ItemId, SessionState, UserKey,
    decision_from_choice, rng_for,
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
}

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
}

impl ServerConfig {
    /// Settings with the defaults: a 10-minute reward window, default reward 0, 64 KiB bodies,
    /// 50 history entries, slates of at most 100 from at most 10,000 candidates.
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
        }
    }
}

struct AppState {
    shared: Arc<Shared>,
    jobs: std::sync::mpsc::Sender<Job>,
    config: ServerConfig,
    counter: AtomicU64,
    /// Start time in nanoseconds: event ids and random streams differ across restarts.
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
    /// Loads and verifies the model for `catalog`, opens the database and reloads every stored
    /// user state (states of another head width are dropped: they belong to another model).
    pub fn open(catalog: Catalog, config: ServerConfig) -> Result<Server, ServeError> {
        if !(config.default_reward.is_finite()) {
            return Err(ServeError::Config(
                "the default reward must be finite".into(),
            ));
        }
        if config.reward_window.is_zero() || config.body_limit == 0 || config.max_slate == 0 {
            return Err(ServeError::Config(
                "the reward window, body limit and slate limit must be positive".into(),
            ));
        }
        let catalog = Arc::new(ServedCatalog::new(catalog));
        let model = ServedModel::load(&config.model_dir, &catalog)?;
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
            },
        });
        let checkpointer = store.checkpoint_in_background(Duration::from_millis(200))?;
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
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(self.state.config.body_limit))
            .with_state(state)
    }

    /// Serves on `listener` until `shutdown` completes, closing reward windows in the
    /// background; waits for the writer to finish its last group before returning.
    pub async fn run(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let window = self.state.config.reward_window;
        let tick = (window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let sweeper_state = self.state.clone();
        let sweeper = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                let (tx, rx) = tokio::sync::oneshot::channel();
                if sweeper_state.jobs.send(Job::Expire(tx)).is_err() {
                    break;
                }
                let _ = rx.await;
            }
        });
        let router = self.router();
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
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

async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.shared.metrics.request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

fn authorize(state: &AppState, headers: &HeaderMap, need: Scope) -> Result<(), ApiError> {
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
    Ok(())
}

fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        } else {
            ApiError::new(r.status(), "bad_body", r.body_text())
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::unprocessable(
                "invalid_field",
                if path == "." {
                    inner.to_string()
                } else {
                    format!("field `{path}`: {inner}")
                },
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
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

async fn rank(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    let request: RankRequest = parse_body(body, state.config.body_limit)?;
    let config = &state.config;
    if request.user.is_empty() || request.user.len() > 256 {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "field `user`: must be 1 to 256 bytes",
        ));
    }
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
    let excluded: HashSet<ItemId> = request
        .exclude
        .iter()
        .filter_map(|k| catalog.id(k))
        .collect();
    let candidates: Vec<ItemId> = match &request.candidates {
        Some(keys) => {
            if keys.len() > config.max_candidates {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    format!(
                        "field `candidates`: {} items, at most {} allowed",
                        keys.len(),
                        config.max_candidates
                    ),
                ));
            }
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let id = catalog.id(key).ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_item",
                        format!("field `candidates[{i}]`: no item `{key}` in the catalog"),
                    )
                })?;
                if !excluded.contains(&id) && seen.insert(id) {
                    out.push(id);
                }
            }
            out
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
    let event_id = format!("{:x}-{n:x}", state.boot);
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Rank)?;
    let request: FeedbackRequest = parse_body(body, state.config.body_limit)?;
    let target = match (request.position, request.item) {
        (Some(p), None) => Target::Position(p),
        (None, Some(item)) => Target::Item(item),
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
    UrlPath(key): UrlPath<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let user = state.config.pseudonyms.pseudonym(&key);
    let deleted = submit(&state, |tx| Job::Forget(user, tx)).await?;
    Ok(axum::Json(json!({"forgotten": true, "events_deleted": deleted})).into_response())
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let empty = matches!(&body, Ok(b) if b.iter().all(u8::is_ascii_whitespace));
    let request: ReloadRequest = if empty {
        ReloadRequest::default()
    } else {
        parse_body(body, state.config.body_limit)?
    };
    let dir = request
        .model
        .unwrap_or_else(|| state.config.model_dir.clone());
    // One reload at a time, so two swaps cannot interleave their checks.
    let _guard = state.reload.lock().await;
    let catalog = state.shared.catalog.clone();
    let loaded = tokio::task::spawn_blocking(move || ServedModel::load(&dir, &catalog))
        .await
        .map_err(|e| ApiError::internal(format!("model loading panicked: {e}")))?;
    let rejected = |message: String| {
        ApiError::unprocessable(
            "model_rejected",
            format!("{message}; the previous model keeps serving"),
        )
    };
    let model = loaded.map_err(|e| rejected(e.to_string()))?;
    let previous = state.shared.model();
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

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!("no route {method} {}; see /openapi.json", uri.path()),
    )
}
