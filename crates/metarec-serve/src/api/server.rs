//! The server's lifecycle: [`ServerConfig`], [`Server`] (open, router, run), the [`AppState`]
//! every handler reads, the accept loop (`serve_connections`), the reward-window sweeper's
//! [`sweep_interval`] and the `track` middleware that records every matched request.

use super::admin::{forget, health, method_not_allowed, metrics, not_found, openapi, reload};
use super::feedback::{activate, feedback, reward};
use super::items::{get_item, put_item, retire_item};
use super::rank::rank;
use crate::auth::{ApiKeys, Pseudonymizer};
use crate::engine::{self, EngineConfig, Job, Shared, UserRecord};
use crate::error::ServeError;
use crate::items::{ItemRecord, ServedCatalog};
use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::store::{Durability, PgConfig, PostgresStore, SqliteStore, Store, UserReader};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use metarec_neural::adjust::Exploration;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest reward window accepted: 30 days. Events stay open that long, and the window is added
/// to millisecond timestamps, which must not overflow.
pub const MAX_REWARD_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model directory served (and reloaded by default).
    pub model_dir: PathBuf,
    /// The SQLite database file (unused when `postgres` is set).
    pub db: PathBuf,
    /// A PostgreSQL connection string (`postgres://user@host:port/database`): the server then
    /// stores in that database, which any number of servers may share, instead of `db`.
    pub postgres: Option<String>,
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
    /// Seed of the exploration: a rank draws from the stream of the seed, the user and their
    /// visit and step.
    pub seed: u64,
    /// Most recent history events (shown items) kept per user: what the context of a rank
    /// carries. The default, 100, is what the default scenario's contexts carry, so a network
    /// with a long-run memory reads as much of a served user as it was trained on.
    pub history_limit: usize,
    /// A slate shown more than this after the user's last one begins a new visit (the
    /// default, 30 minutes, is the shop import's rule for events without a session id).
    pub visit_gap: Duration,
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
    /// How ranks explore (`--explore`): greedy (the adjuster's own decision), epsilon-greedy or
    /// softmax, each logging the propensities of what it does.
    pub explore: Exploration,
    /// Most items that may be added over `PUT /v1/items/{key}` (retired ones count: they keep
    /// their ids).
    pub max_added_items: usize,
    /// Apprentice mode (`--apprentice`): every rank serves the shop's own ranking (the
    /// request's `candidates`, in order) and logs it as a deterministic policy's, while the
    /// adjuster learns from its feedback and the answer shows the slate the network would
    /// have chosen; the agreement is counted in the metrics.
    pub apprentice: bool,
}

impl ServerConfig {
    /// Where the server stores, for messages: the SQLite file, or the PostgreSQL URL without
    /// its password.
    pub fn database(&self) -> String {
        match &self.postgres {
            Some(url) => {
                PgConfig::parse(url).map_or_else(|_| "PostgreSQL".into(), |c| c.to_string())
            }
            None => self.db.display().to_string(),
        }
    }

    /// Settings with the defaults: a 10-minute reward window, default reward 0, 64 KiB bodies,
    /// 100 history entries, a 30-minute visit gap, slates of at most 100 from at most 10,000 candidates, a 64 MiB log,
    /// 5-second header and 10-second body timeouts, 512 connections, greedy ranks and at most
    /// 100,000 items added over the API.
    pub fn new(model_dir: PathBuf, db: PathBuf, keys: ApiKeys, pseudonyms: Pseudonymizer) -> Self {
        ServerConfig {
            model_dir,
            db,
            postgres: None,
            keys,
            pseudonyms,
            reward_window: Duration::from_secs(600),
            default_reward: 0.0,
            body_limit: 64 * 1024,
            seed: 0,
            history_limit: 100,
            visit_gap: Duration::from_secs(30 * 60),
            max_slate: 100,
            max_candidates: 10_000,
            durability: Durability::Machine,
            log_limit_bytes: 64 << 20,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_connections: 512,
            explore: Exploration::Greedy,
            max_added_items: 100_000,
            apprentice: false,
        }
    }
}

/// What every handler reads: the engine's shared state, the writer's queue and the settings.
pub(super) struct AppState {
    /// The model, catalog, user states and metrics shared with the writer thread.
    pub(super) shared: Arc<Shared>,
    /// The writer thread's queue.
    pub(super) jobs: std::sync::mpsc::Sender<Job>,
    /// The settings the server was opened with.
    pub(super) config: ServerConfig,
    /// Held by a reload from its load to its swap.
    pub(super) reload: tokio::sync::Mutex<()>,
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
        config
            .explore
            .check()
            .map_err(|e| ServeError::Config(format!("exploration: {e}")))?;
        let model = ServedModel::load(&config.model_dir)?;
        let (mut store, reader): (Box<dyn Store>, _) = match &config.postgres {
            Some(url) => {
                let pg = PgConfig::parse(url)?;
                (
                    Box::new(PostgresStore::connect(&pg)?),
                    Some(UserReader::new(&pg)),
                )
            }
            None => (
                Box::new(SqliteStore::open_with(&config.db, config.durability)?),
                None,
            ),
        };
        let location = config.database();
        let model = with_stored_items(model, store.as_mut(), &location)?;
        let mut users = HashMap::new();
        for (user, text) in store.users()? {
            let record = UserRecord::from_json(&text).map_err(|e| {
                ServeError::Config(format!(
                    "{location}: stored state of user {user} is invalid: {e}"
                ))
            })?;
            // A state of another kind or width than the model's (written under an earlier
            // model) is dropped: that user starts again from the prior.
            if model.adjuster.fits(&record.state) {
                users.insert(user, Arc::new(record));
            }
        }
        let shared = Arc::new(Shared {
            model: std::sync::RwLock::new(Arc::new(model)),
            users: std::sync::RwLock::new(users),
            reader,
            metrics: Metrics::default(),
            config: EngineConfig {
                reward_window_ms: config.reward_window.as_millis() as i64,
                default_reward: config.default_reward,
                history_limit: config.history_limit,
                visit_gap_ms: i64::try_from(config.visit_gap.as_millis()).unwrap_or(i64::MAX),
                log_limit_bytes: config.log_limit_bytes,
                max_added_items: config.max_added_items,
            },
        });
        let checkpointer = match store.as_sqlite() {
            Some(sqlite) => Some(sqlite.checkpoint_in_background(
                Duration::from_millis(100),
                shared.metrics.store.checkpoint_lag.clone(),
            )?),
            None => None,
        };
        let (jobs, writer) = engine::spawn(store, shared.clone())?;
        Ok(Server {
            state: Arc::new(AppState {
                shared,
                jobs,
                config,
                reload: tokio::sync::Mutex::new(()),
            }),
            writer: Some(writer),
            checkpointer,
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
            .route("/v1/reward", post(reward))
            .route("/v1/events/{event_id}/activate", post(activate))
            .route("/v1/users/{key}", delete(forget))
            .route(
                "/v1/items/{key}",
                put(put_item).delete(retire_item).get(get_item),
            )
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

/// The bundle's model serving the item changes stored for its catalog, applied in the order
/// they were first stored so that every added item gets back the id it had (changes stored
/// under another catalog, by an earlier model, are not applied).
fn with_stored_items(
    model: ServedModel,
    store: &mut dyn Store,
    location: &str,
) -> Result<ServedModel, ServeError> {
    let stored = store.items(&model.catalog_fingerprint)?;
    if stored.is_empty() {
        return Ok(model);
    }
    let mut catalog: ServedCatalog = (*model.catalog).clone();
    for (key, text) in stored {
        let invalid = |e: String| {
            ServeError::Config(format!("{location}: stored item `{key}` is invalid: {e}"))
        };
        let record = ItemRecord::from_json(&text).map_err(invalid)?;
        if record.key != key {
            return Err(invalid(format!("its record names `{}`", record.key)));
        }
        catalog.apply(record).map_err(invalid)?;
    }
    let changed = catalog.changed();
    model.with_items(Arc::new(catalog), &changed)
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

/// Records each matched request's method, route pattern, status and duration in the metrics.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // The matched pattern is shared (a reference count), not copied: the hot path allocates no
    // label.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.shared.metrics.request(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
