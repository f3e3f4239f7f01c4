//! [`Metrics`]: counters and latency histograms, rendered as Prometheus text at `/metrics`.
//!
//! Written by hand (a few atomics and one mutex-guarded map) rather than through a metrics
//! library: the server exports a dozen series, and the text format is simple.
//!
//! Every label comes from a closed set, so no client can add series: methods outside
//! [`METHODS`] count as `other`, and paths that match no route as the route `unmatched`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    decisions: AtomicU64,
    impressions: AtomicU64,
    clicks: AtomicU64,
    purchases: AtomicU64,
    duplicates: AtomicU64,
    rewards: AtomicU64,
    activations: AtomicU64,
    apprentice_ranks: AtomicU64,
    apprentice_agreements: AtomicU64,
    expired: AtomicU64,
    /// The store's gauges.
    pub store: StoreGauges,
}

impl Metrics {
    /// Records one request: its method, route pattern, status and duration. `route` must be a
    /// route pattern or `unmatched`, never a raw path; the method is reduced to
    /// [`method_label`].
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        drop(requests);
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = latency.entry(route.to_owned()).or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Records a decision of `slate` items.
    pub fn decision(&self, slate: usize) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        self.impressions.fetch_add(slate as u64, Ordering::Relaxed);
    }

    /// Records a slate ranked with deferred activation: a decision whose items count as shown
    /// only at its activation.
    pub fn deferred(&self) {
        self.decisions.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the activation of a deferred slate of `slate` items.
    pub fn activated(&self, slate: usize) {
        self.activations.fetch_add(1, Ordering::Relaxed);
        self.impressions.fetch_add(slate as u64, Ordering::Relaxed);
    }

    /// Records a rank in apprentice mode: whether the network's first item was the shop's.
    pub fn apprentice(&self, agrees: bool) {
        self.apprentice_ranks.fetch_add(1, Ordering::Relaxed);
        if agrees {
            self.apprentice_agreements.fetch_add(1, Ordering::Relaxed);
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
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records events whose reward window closed.
    pub fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, model_version: &str, users: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP metarec_requests_total HTTP requests by method, route and status.\n# TYPE metarec_requests_total counter"
        );
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "metarec_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP metarec_request_seconds Request latency by route.\n# TYPE metarec_request_seconds histogram"
        );
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "metarec_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "metarec_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nmetarec_request_seconds_sum{{route=\"{route}\"}} {}\nmetarec_request_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (impressions, clicks) = (load(&self.impressions), load(&self.clicks));
        let ctr = if impressions == 0 {
            0.0
        } else {
            clicks as f64 / impressions as f64
        };
        for (name, help, kind, value) in [
            (
                "metarec_decisions_total",
                "Slates ranked.",
                "counter",
                load(&self.decisions) as f64,
            ),
            (
                "metarec_impressions_total",
                "Items shown in ranked slates.",
                "counter",
                impressions as f64,
            ),
            (
                "metarec_feedback_clicks_total",
                "Click feedback acknowledged (first time).",
                "counter",
                clicks as f64,
            ),
            (
                "metarec_feedback_purchases_total",
                "Purchase feedback acknowledged (first time).",
                "counter",
                load(&self.purchases) as f64,
            ),
            (
                "metarec_feedback_rewards_total",
                "Numeric rewards acknowledged (first time).",
                "counter",
                load(&self.rewards) as f64,
            ),
            (
                "metarec_activations_total",
                "Deferred slates activated (shown).",
                "counter",
                load(&self.activations) as f64,
            ),
            (
                "metarec_apprentice_ranks_total",
                "Ranks served in apprentice mode (the shop's own ranking).",
                "counter",
                load(&self.apprentice_ranks) as f64,
            ),
            (
                "metarec_apprentice_agreements_total",
                "Apprentice ranks whose first item the network would have chosen too.",
                "counter",
                load(&self.apprentice_agreements) as f64,
            ),
            (
                "metarec_feedback_duplicates_total",
                "Repeated feedback acknowledged without effect.",
                "counter",
                load(&self.duplicates) as f64,
            ),
            (
                "metarec_events_expired_total",
                "Events whose reward window closed.",
                "counter",
                load(&self.expired) as f64,
            ),
            (
                "metarec_ctr",
                "Clicks per impression since start.",
                "gauge",
                ctr,
            ),
            (
                "metarec_users",
                "Users with an adjuster state in memory.",
                "gauge",
                users as f64,
            ),
            (
                "metarec_wal_bytes",
                "Bytes of write-ahead log on disk after the last commit.",
                "gauge",
                load(&self.store.wal_bytes) as f64,
            ),
            (
                "metarec_db_bytes",
                "Bytes of the database file at the last log truncation.",
                "gauge",
                load(&self.store.db_bytes) as f64,
            ),
            (
                "metarec_wal_truncations_total",
                "Completed checkpoints that restarted or emptied the write-ahead log.",
                "counter",
                load(&self.store.log_truncations) as f64,
            ),
            (
                "metarec_wal_checkpoint_lag_frames",
                "Log frames the last background checkpoint could not copy yet.",
                "gauge",
                self.store.checkpoint_lag.load(Ordering::Relaxed) as f64,
            ),
            (
                "metarec_events_overdue",
                "Events past their reward window not yet closed, at the last sweep.",
                "gauge",
                load(&self.store.overdue_events) as f64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP metarec_model_info The model being served.\n# TYPE metarec_model_info gauge\nmetarec_model_info{{version=\"{model_version}\"}} 1"
        );
        out
    }
}
