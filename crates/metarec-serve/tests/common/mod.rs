//! What the server's integration tests share: a small seeded model bundle, a server on a
//! loopback port and the requests they send.
#![allow(dead_code)]

use metarec_core::{Catalog, Item, RewardFn};
use metarec_neural::adjust::{ADJUSTER_FILE, AdjusterManifest, BayesConfig, GradientConfig};
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::train::{TrainConfig, Trainer};
use metarec_serve::auth::{ApiKeys, Pseudonymizer};
use metarec_serve::client::{Client, Response};
use metarec_serve::{Server, ServerConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ADMIN: &str = "admin-token-0123456789";
pub const RANKER: &str = "rank-token-0123456789";
pub const SECRET: &str = "a-secret-of-enough-length";

pub fn catalog() -> Catalog {
    let mut c = Catalog::new(vec!["price_z".into(), "popularity_z".into()]);
    for i in 0..40 {
        c.push(Item {
            key: format!("item{i}"),
            features: vec![(i as f32 * 0.7).sin(), (i as f32 * 0.3).cos()],
            ..Item::default()
        })
        .unwrap();
    }
    c
}

/// Writes a model bundle over a seeded network, with the adjuster file that `adjuster` builds
/// from the head width.
pub fn write_bundle(dir: &Path, seed: u64, adjuster: impl FnOnce(usize) -> AdjusterManifest) {
    let catalog = catalog();
    let reward = RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap();
    let trainer = Trainer::new(
        &catalog,
        reward,
        TrainConfig {
            seed,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let source = metarec_neural::checkpoint::DataSource::Scenario {
        name: "test".into(),
        toml: String::new(),
    };
    let manifest = Manifest::for_trainer(&trainer, &catalog, source, vec![], vec![]);
    checkpoint::save(dir, &trainer.varmap, &manifest, &catalog).unwrap();
    let weights = checkpoint::read_manifest(dir).unwrap().weights_sha256;
    let adjuster = AdjusterManifest {
        weights_sha256: weights,
        ..adjuster(trainer.frozen().embed)
    };
    std::fs::write(
        dir.join(ADJUSTER_FILE),
        serde_json::to_string(&adjuster).unwrap(),
    )
    .unwrap();
}

/// A model with the Bayesian adjuster (greedy by the posterior mean unless `thompson`).
pub fn write_model(dir: &Path, seed: u64, thompson: bool) {
    write_bundle(dir, seed, |_| AdjusterManifest {
        kind: "bayes".into(),
        config: BayesConfig {
            prior_scale: 1.0,
            thompson,
            draws: 16,
            calibration: Default::default(),
            head: Default::default(),
        },
        gradient: None,
        grid: vec![],
        mean_grid: vec![],
        prior_shape: vec![],
        shaped_grid: vec![],
        users: 0,
        held_out: None,
        offline: None,
        weights_sha256: None,
    });
}

/// A model with the gradient-based adjuster, starting every user from a zero correction.
pub fn write_gradient_model(dir: &Path, seed: u64) {
    write_bundle(dir, seed, |embed| AdjusterManifest {
        kind: "gradient".into(),
        config: BayesConfig::default(),
        gradient: Some(GradientConfig {
            step_size: 0.3,
            steps: 1,
            init: vec![0.0; embed],
            calibration: Default::default(),
        }),
        grid: vec![],
        mean_grid: vec![],
        prior_shape: vec![],
        shaped_grid: vec![],
        users: 0,
        held_out: None,
        offline: None,
        weights_sha256: None,
    });
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(self.addr, token)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn config(model: &Path, db: &Path) -> ServerConfig {
    ServerConfig::new(
        model.to_owned(),
        db.to_owned(),
        ApiKeys::parse(&format!("admin:{ADMIN},rank:{RANKER}")).unwrap(),
        Pseudonymizer::new(SECRET.as_bytes()).unwrap(),
    )
}

pub fn start(config: ServerConfig) -> Running {
    let server = Server::open(config).unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            server
                .run(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    Running {
        addr: addr_rx.recv().unwrap(),
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub model: PathBuf,
    pub db: PathBuf,
}

pub fn fixture(thompson: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_model(&model, 1, thompson);
    let db = tmp.path().join("metarec.db");
    Fixture {
        _tmp: tmp,
        model,
        db,
    }
}

pub fn gradient_fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_gradient_model(&model, 1);
    let db = tmp.path().join("metarec.db");
    Fixture {
        _tmp: tmp,
        model,
        db,
    }
}

pub fn post(c: &mut Client, path: &str, body: &Value) -> Response {
    c.request("POST", path, Some(body.to_string().as_bytes()))
        .unwrap()
}

pub fn candidates() -> Vec<String> {
    (0..20).map(|i| format!("item{i}")).collect()
}

pub fn rank(c: &mut Client, user: &str) -> Value {
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// A rank that is never shown (deferred and not activated): it reads the user's state as a
/// rank does and changes nothing, where a shown slate's items enter the user's history.
pub fn probe(c: &mut Client, user: &str) -> Value {
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5, "defer_activation": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Item key -> (score, adaptation part) over a ranked slate.
pub fn scores(v: &Value) -> Vec<(String, f64, f64)> {
    v["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["item"].as_str().unwrap().to_owned(),
                e["score"].as_f64().unwrap(),
                e["explanation"]["parts"]["adaptation"].as_f64().unwrap(),
            )
        })
        .collect()
}

pub fn assert_error(r: &Response, status: u16, code: &str, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.text());
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "`{needle}` not in `{message}`");
}

/// The sum over a ranked slate of one explanation part's magnitude (`adaptation`,
/// `past_ignores`, ...): zero exactly when no item's score has that part.
pub fn part_magnitude(v: &Value, part: &str) -> f64 {
    v["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["explanation"]["parts"][part].as_f64().unwrap().abs())
        .sum()
}

/// Posts `body` to `path` from every client at once (one thread each); the answers' bodies in
/// client order, each checked to be a 200.
pub fn post_all(clients: Vec<Client>, path: &str, body: &Value) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    let r = post(&mut c, path, body);
                    assert_eq!(r.status, 200, "{}", r.text());
                    r.text()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// One sample of a Prometheus text exposition: its name, its labels in order and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses a Prometheus text exposition strictly: every line is a `# HELP` or `# TYPE` comment
/// or `name{label="value",...} value` with a float value, and every sample belongs to a family
/// whose `# TYPE` came before it (a histogram's `_bucket`, `_sum` and `_count` to the
/// histogram's). Panics with the offending line otherwise, so that a scrape a Prometheus server
/// would reject fails the test.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad `{line}`"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in `{line}`"
            );
            assert!(
                types.iter().all(|(n, _)| n != name),
                "a second TYPE for `{name}`"
            );
            types.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "an unexpected comment `{line}`");
        samples.push(parse_sample(line));
        let name = &samples.last().unwrap().name;
        let family = types.iter().find(|(n, kind)| {
            n == name
                || kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n.as_str()))
        });
        assert!(family.is_some(), "`{line}` comes before its TYPE");
    }
    samples
}

fn parse_sample(line: &str) -> Sample {
    let bad = || -> ! { panic!("not `name{{labels}} value`: `{line}`") };
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or_else(|| bad());
    let name = &line[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        bad();
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find("=\"").unwrap_or_else(|| bad());
            let label = &rest[..eq];
            if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bad();
            }
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => bad(),
                    },
                    Some((_, c)) => value.push(c),
                    None => bad(),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &rest[eq + 2 + close + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').unwrap_or_else(|| bad());
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| bad()),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// The value of the one sample named `name` whose labels include every pair of `labels`.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples.iter().filter(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(l, w)| l == k && w == v))
    });
    let first = found.next()?;
    assert!(found.next().is_none(), "several `{name}` {labels:?}");
    Some(first.value)
}

/// Checks every histogram of an exposition: cumulative buckets that never decrease, ending in
/// `+Inf` equal to the count, and a sum that is not negative.
pub fn check_histograms(samples: &[Sample]) {
    for count in samples.iter().filter(|s| s.name.ends_with("_count")) {
        let base = count.name.strip_suffix("_count").unwrap();
        let bucket_name = format!("{base}_bucket");
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.name == bucket_name
                    && s.labels
                        .iter()
                        .filter(|(k, _)| k != "le")
                        .collect::<Vec<_>>()
                        == count.labels.iter().collect::<Vec<_>>()
            })
            .collect();
        if buckets.is_empty() {
            continue;
        }
        let mut last = 0.0;
        for b in &buckets {
            assert!(b.value >= last, "{bucket_name} decreases: {buckets:?}");
            last = b.value;
        }
        let inf = buckets.last().unwrap();
        assert!(
            inf.labels.iter().any(|(k, v)| k == "le" && v == "+Inf"),
            "{bucket_name} does not end in +Inf"
        );
        assert_eq!(
            inf.value, count.value,
            "{bucket_name}'s +Inf is not its count"
        );
        let sum = format!("{base}_sum");
        let total = samples
            .iter()
            .find(|s| s.name == sum && s.labels == count.labels)
            .unwrap_or_else(|| panic!("no {sum}"));
        assert!(total.value >= 0.0, "{sum} is negative");
    }
}
