//! [`Metrics`]: counters, gauges and latency histograms, rendered as Prometheus text at
//! `/metrics`.
//!
//! The series are kept by the `prometheus` crate (tikv's rust-prometheus) in a [`Registry`] of
//! each server's own, not the crate's global one, because tests start several servers in one
//! process and each must count only its own requests. That crate was chosen over
//! `prometheus-client` because it ships a process collector: on Linux, `/metrics` also exports
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_threads` and
//! `process_start_time_seconds`, read from `/proc` at each scrape, which `prometheus-client` would
//! leave to us to write. It is used without its default `protobuf` feature, since only the text
//! format is served, which keeps its dependencies to a handful of small crates. Its
//! process collector counts CPU time in whole seconds, which is coarse but enough for a rate
//! over a scrape interval of a busy server.
//!
//! Every label comes from a closed set, so no client can add series: methods outside
//! [`METHODS`] count as `other`, and paths that match no route as the route `unmatched`; store
//! latencies are labelled by a [`StoreOp`].
//!
//! The request path takes no lock and allocates nothing once a series exists. Looking a series
//! up by its label values hashes the labels and takes the vector's read lock, so the handles of
//! the known routes ([`ROUTES`]) are cached: one latency histogram per route and, per route and
//! method, a few status slots filled on first use. Only a route outside [`ROUTES`] or a route
//! and method that answered more distinct statuses than there are slots falls back to the
//! lookup by labels.
//!
//! Values owned elsewhere (the store's gauges, which the writer and the checkpoint thread
//! update as plain atomics, the click-through rate, the number of users in memory and the
//! served model's version) are copied into their series when the text is rendered, under a
//! mutex that only scrapes take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The HTTP methods counted under their own name.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];

/// The method label of a request: its name when it is one of [`METHODS`], else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The index of a method label: its place in [`METHODS`], or `METHODS.len()` for `other`.
fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len())
}

/// The route patterns of the server's router, and `unmatched` for paths no route matches,
/// whose metric handles are cached. The busiest routes come first, because a request's route
/// is found by comparing its pattern with each in turn.
pub const ROUTES: [&str; 11] = [
    "/v1/rank",
    "/v1/feedback",
    "/v1/reward",
    "/v1/events/{event_id}/activate",
    "/v1/items/{key}",
    "/metrics",
    "/healthz",
    "/v1/users/{key}",
    "/v1/admin/reload",
    "/openapi.json",
    "unmatched",
];

/// The state of the store, updated by the writer and the checkpoint thread.
#[derive(Default)]
pub struct StoreGauges {
    /// Bytes of write-ahead log on disk after the last commit.
    pub wal_bytes: AtomicU64,
    /// Bytes of the database file at the last truncation of the log.
    pub db_bytes: AtomicU64,
    /// Completed checkpoints that restarted or truncated the log.
    pub log_truncations: AtomicU64,
    /// Log frames the last background checkpoint could not copy yet.
    pub checkpoint_lag: Arc<AtomicU64>,
    /// Events past their reward window and not yet closed, at the last sweep.
    pub overdue_events: AtomicU64,
}

/// Upper bounds of the request latency buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Upper bounds of the store latency buckets, in seconds: they start lower than the request
/// buckets because a commit without `fsync` or a read from a local database takes tens of
/// microseconds.
pub const STORE_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A timed store operation, the `op` label of `metarec_store_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// The commit of one group of the writer thread (both stores).
    Commit,
    /// A read of one user's state from a database that several servers share (PostgreSQL), by
    /// a rank or by the writer.
    ReadUser,
}

impl StoreOp {
    /// Every operation, in the order of their histograms.
    pub const ALL: [StoreOp; 2] = [StoreOp::Commit, StoreOp::ReadUser];

    /// The `op` label.
    pub fn label(self) -> &'static str {
        match self {
            StoreOp::Commit => "commit",
            StoreOp::ReadUser => "read_user",
        }
    }
}

/// Distinct statuses cached per route and method; a route rarely answers more than a few.
const STATUS_SLOTS: usize = 8;

/// The cached handles of one route.
struct RouteHandles {
    latency: OnceLock<Histogram>,
    /// Per method index, status slots: each is filled once, by the first request with a status
    /// no earlier slot holds, and then read without a lock.
    requests: [[OnceLock<(u16, IntCounter)>; STATUS_SLOTS]; METHODS.len() + 1],
}

impl Default for RouteHandles {
    fn default() -> Self {
        RouteHandles {
            latency: OnceLock::new(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }
}

/// What only a scrape changes: the last model version exported, so that a reload replaces
/// its `metarec_model_info` series rather than adding one.
#[derive(Default)]
struct Scrape {
    model_version: Option<String>,
}

/// The server's metrics, in a registry of its own.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Indexed like [`ROUTES`].
    routes: Box<[RouteHandles]>,
    decisions: IntCounter,
    impressions: IntCounter,
    clicks: IntCounter,
    purchases: IntCounter,
    duplicates: IntCounter,
    rewards: IntCounter,
    activations: IntCounter,
    apprentice_ranks: IntCounter,
    apprentice_agreements: IntCounter,
    expired: IntCounter,
    /// Indexed like [`StoreOp::ALL`].
    store_latency: [Histogram; StoreOp::ALL.len()],
    ctr: Gauge,
    users: IntGauge,
    wal_bytes: IntGauge,
    db_bytes: IntGauge,
    wal_truncations: IntCounter,
    checkpoint_lag: IntGauge,
    overdue: IntGauge,
    model_info: IntGaugeVec,
    scrape: Mutex<Scrape>,
    /// The store's gauges.
    pub store: StoreGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `metric` in `registry` and returns it. The names and labels are fixed and
/// distinct, so registration cannot fail short of a bug in this module.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("fixed, distinct metric names register");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(
        registry,
        IntCounter::new(name, help).expect("a valid metric name"),
    )
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(
        registry,
        IntGauge::new(name, help).expect("a valid metric name"),
    )
}

impl Metrics {
    /// Empty metrics in a new registry, with the process collector on Linux.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector registers once per registry");
        let requests = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "metarec_requests_total",
                    "HTTP requests by method, route and status.",
                ),
                &["method", "route", "status"],
            )
            .expect("valid labels"),
        );
        let latency = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new("metarec_request_seconds", "Request latency by route.")
                    .buckets(BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid buckets"),
        );
        let store = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "metarec_store_seconds",
                    "Store latency by operation: a group commit, a shared user read.",
                )
                .buckets(STORE_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("valid buckets"),
        );
        // Both operations are exported from the start, at zero, so that a dashboard finds the
        // series before the first commit (and a SQLite server shows that it reads no user).
        let store_latency = StoreOp::ALL.map(|op| store.with_label_values(&[op.label()]));
        let model_info = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new("metarec_model_info", "The model being served."),
                &["version"],
            )
            .expect("valid labels"),
        );
        let ctr = registered(
            &registry,
            Gauge::new("metarec_ctr", "Clicks per impression since start.").expect("valid"),
        );
        Metrics {
            requests,
            latency,
            routes: ROUTES.iter().map(|_| RouteHandles::default()).collect(),
            decisions: counter(&registry, "metarec_decisions_total", "Slates ranked."),
            impressions: counter(
                &registry,
                "metarec_impressions_total",
                "Items shown in ranked slates.",
            ),
            clicks: counter(
                &registry,
                "metarec_feedback_clicks_total",
                "Click feedback acknowledged (first time).",
            ),
            purchases: counter(
                &registry,
                "metarec_feedback_purchases_total",
                "Purchase feedback acknowledged (first time).",
            ),
            duplicates: counter(
                &registry,
                "metarec_feedback_duplicates_total",
                "Repeated feedback acknowledged without effect.",
            ),
            rewards: counter(
                &registry,
                "metarec_feedback_rewards_total",
                "Numeric rewards acknowledged (first time).",
            ),
            activations: counter(
                &registry,
                "metarec_activations_total",
                "Deferred slates activated (shown).",
            ),
            apprentice_ranks: counter(
                &registry,
                "metarec_apprentice_ranks_total",
                "Ranks served in apprentice mode (the shop's own ranking).",
            ),
            apprentice_agreements: counter(
                &registry,
                "metarec_apprentice_agreements_total",
                "Apprentice ranks whose first item the network would have chosen too.",
            ),
            expired: counter(
                &registry,
                "metarec_events_expired_total",
                "Events whose reward window closed.",
            ),
            store_latency,
            ctr,
            users: int_gauge(
                &registry,
                "metarec_users",
                "Users with an adjuster state in memory.",
            ),
            wal_bytes: int_gauge(
                &registry,
                "metarec_wal_bytes",
                "Bytes of write-ahead log on disk after the last commit.",
            ),
            db_bytes: int_gauge(
                &registry,
                "metarec_db_bytes",
                "Bytes of the database file at the last log truncation.",
            ),
            wal_truncations: counter(
                &registry,
                "metarec_wal_truncations_total",
                "Completed checkpoints that restarted or emptied the write-ahead log.",
            ),
            checkpoint_lag: int_gauge(
                &registry,
                "metarec_wal_checkpoint_lag_frames",
                "Log frames the last background checkpoint could not copy yet.",
            ),
            overdue: int_gauge(
                &registry,
                "metarec_events_overdue",
                "Events past their reward window not yet closed, at the last sweep.",
            ),
            model_info,
            scrape: Mutex::new(Scrape::default()),
            store: StoreGauges::default(),
            registry,
        }
    }

    /// Records one request: its method, route pattern, status and duration. `route` must be a
    /// route pattern or `unmatched`, never a raw path; the method is reduced to
    /// [`method_label`].
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_index(method);
        let Some(r) = ROUTES.iter().position(|known| *known == route) else {
            // A route added to the router but not to ROUTES is still counted, by the slower
            // lookup by labels.
            let label = METHODS.get(method).copied().unwrap_or("other");
            self.requests
                .with_label_values(&[label, route, &status.to_string()])
                .inc();
            self.latency.with_label_values(&[route]).observe(seconds);
            return;
        };
        let handles = &self.routes[r];
        handles
            .latency
            .get_or_init(|| self.latency.with_label_values(&[route]))
            .observe(seconds);
        for slot in &handles.requests[method] {
            let (held, counter) = slot.get_or_init(|| {
                let label = METHODS.get(method).copied().unwrap_or("other");
                (
                    status,
                    self.requests
                        .with_label_values(&[label, route, &status.to_string()]),
                )
            });
            if *held == status {
                counter.inc();
                return;
            }
        }
        let label = METHODS.get(method).copied().unwrap_or("other");
        self.requests
            .with_label_values(&[label, route, &status.to_string()])
            .inc();
    }

    /// Records a decision of `slate` items.
    pub fn decision(&self, slate: usize) {
        self.decisions.inc();
        self.impressions.inc_by(slate as u64);
    }

    /// Records a slate ranked with deferred activation: a decision whose items count as shown
    /// only at its activation.
    pub fn deferred(&self) {
        self.decisions.inc();
    }

    /// Records the activation of a deferred slate of `slate` items.
    pub fn activated(&self, slate: usize) {
        self.activations.inc();
        self.impressions.inc_by(slate as u64);
    }

    /// Records a rank in apprentice mode: whether the network's first item was the shop's.
    pub fn apprentice(&self, agrees: bool) {
        self.apprentice_ranks.inc();
        if agrees {
            self.apprentice_agreements.inc();
        }
    }

    /// Records an acknowledged feedback of `kind` (`click`, `purchase` or `reward`).
    pub fn feedback(&self, kind: &str, duplicate: bool) {
        let counter = if duplicate {
            &self.duplicates
        } else {
            match kind {
                "click" => &self.clicks,
                "purchase" => &self.purchases,
                _ => &self.rewards,
            }
        };
        counter.inc();
    }

    /// Records events whose reward window closed.
    pub fn expired(&self, n: u64) {
        self.expired.inc_by(n);
    }

    /// Records that a store operation took `seconds`.
    pub fn store_op(&self, op: StoreOp, seconds: f64) {
        let index = match op {
            StoreOp::Commit => 0,
            StoreOp::ReadUser => 1,
        };
        self.store_latency[index].observe(seconds);
    }

    /// Runs `f`, a store operation, and records how long it took, whether it failed or not.
    pub fn time_store<T>(&self, op: StoreOp, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        self.store_op(op, start.elapsed().as_secs_f64());
        out
    }

    /// Awaits `f`, a store operation, and records how long it took, whether it failed or not.
    pub async fn time_store_async<T>(
        &self,
        op: StoreOp,
        f: impl std::future::Future<Output = T>,
    ) -> T {
        let start = std::time::Instant::now();
        let out = f.await;
        self.store_op(op, start.elapsed().as_secs_f64());
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self, model_version: &str, users: usize) -> String {
        let mut scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let load = |a: &AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let (impressions, clicks) = (self.impressions.get(), self.clicks.get());
        self.ctr.set(if impressions == 0 {
            0.0
        } else {
            clicks as f64 / impressions as f64
        });
        self.users.set(i64::try_from(users).unwrap_or(i64::MAX));
        self.wal_bytes.set(load(&self.store.wal_bytes));
        self.db_bytes.set(load(&self.store.db_bytes));
        self.checkpoint_lag.set(load(&self.store.checkpoint_lag));
        self.overdue.set(load(&self.store.overdue_events));
        // The writer counts truncations in an atomic it owns; the counter catches up with it.
        // Only scrapes touch the counter, under the scrape lock, so it never runs ahead.
        let truncations = self.store.log_truncations.load(Ordering::Relaxed);
        self.wal_truncations
            .inc_by(truncations.saturating_sub(self.wal_truncations.get()));
        if scrape.model_version.as_deref() != Some(model_version) {
            self.model_info.reset();
            self.model_info.with_label_values(&[model_version]).set(1);
            scrape.model_version = Some(model_version.to_owned());
        }
        let families = self.registry.gather();
        drop(scrape);
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
            // Cannot happen with the metrics above; a comment keeps the answer parseable.
            out.push_str(&format!("# metrics could not be encoded: {e}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` that start with `prefix`.
    fn lines<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn the_cached_routes_are_the_documented_ones() {
        // A route missing from ROUTES would still be counted, but by the slow path; the API
        // document lists every route the router serves.
        let doc: serde_json::Value = serde_json::from_str(crate::api::openapi_document()).unwrap();
        let mut documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.push("unmatched");
        documented.sort_unstable();
        let mut cached = ROUTES.to_vec();
        cached.sort_unstable();
        assert_eq!(cached, documented);
    }

    #[test]
    fn more_statuses_than_slots_and_unknown_routes_are_all_counted() {
        let m = Metrics::new();
        for status in 200..200 + 2 * STATUS_SLOTS as u16 {
            for _ in 0..2 {
                m.request("POST", "/v1/rank", status, 0.001);
            }
        }
        m.request("BREW", "/v1/rank", 418, 0.001);
        m.request("GET", "/v9/new", 200, 0.3);
        let text = m.render("v1", 0);
        let rank = lines(
            &text,
            "metarec_requests_total{method=\"POST\",route=\"/v1/rank\"",
        );
        assert_eq!(rank.len(), 2 * STATUS_SLOTS, "{text}");
        assert!(rank.iter().all(|l| l.ends_with("} 2")), "{text}");
        assert!(text.contains(
            "metarec_requests_total{method=\"other\",route=\"/v1/rank\",status=\"418\"} 1"
        ));
        assert!(
            text.contains(
                "metarec_requests_total{method=\"GET\",route=\"/v9/new\",status=\"200\"} 1"
            )
        );
        assert!(text.contains(&format!(
            "metarec_request_seconds_count{{route=\"/v1/rank\"}} {}",
            4 * STATUS_SLOTS + 1
        )));
        assert!(text.contains("metarec_request_seconds_bucket{route=\"/v9/new\",le=\"0.25\"} 0"));
        assert!(text.contains("metarec_request_seconds_bucket{route=\"/v9/new\",le=\"0.5\"} 1"));
    }

    #[test]
    fn scrape_time_values_follow_their_sources() {
        let m = Metrics::new();
        m.decision(4);
        m.feedback("click", false);
        m.feedback("click", true);
        m.store.log_truncations.store(3, Ordering::Relaxed);
        m.store.wal_bytes.store(4096, Ordering::Relaxed);
        m.store_op(StoreOp::Commit, 0.003);
        let text = m.render("v1", 7);
        for needle in [
            "metarec_ctr 0.25",
            "metarec_users 7",
            "metarec_wal_truncations_total 3",
            "metarec_wal_bytes 4096",
            "metarec_feedback_duplicates_total 1",
            "metarec_store_seconds_count{op=\"commit\"} 1",
            "metarec_store_seconds_bucket{op=\"commit\",le=\"0.002\"} 0",
            "metarec_store_seconds_bucket{op=\"commit\",le=\"0.005\"} 1",
            "metarec_store_seconds_count{op=\"read_user\"} 0",
            "metarec_model_info{version=\"v1\"} 1",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in\n{text}");
        }
        // Later scrapes catch up with the atomics and replace the model's series; a label
        // value is escaped.
        m.store.log_truncations.store(5, Ordering::Relaxed);
        let text = m.render("v\"2", 7);
        assert!(text.contains("metarec_wal_truncations_total 5"), "{text}");
        assert_eq!(
            lines(&text, "metarec_model_info{"),
            ["metarec_model_info{version=\"v\\\"2\"} 1"]
        );
    }
}
