//! Integration tests: the real server on a loopback port (port 0), driven over HTTP.
//!
//! The model is a small two-tower network built from a seeded initialisation on a synthetic
//! catalog (no training: what is tested here is serving, not model quality), with a greedy
//! adjuster so that scores are deterministic and a changed rank can only come from feedback.

use metarec_core::{Catalog, Item, RewardFn};
use metarec_neural::adjust::{ADJUSTER_FILE, AdjusterManifest, BayesConfig};
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::train::{TrainConfig, Trainer};
use metarec_serve::auth::{ApiKeys, Pseudonymizer};
use metarec_serve::client::{Client, Response};
use metarec_serve::store::{SqliteStore, Store};
use metarec_serve::{Server, ServerConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ADMIN: &str = "admin-token-0123456789";
const RANKER: &str = "rank-token-0123456789";
const SECRET: &str = "a-secret-of-enough-length";

fn catalog() -> Catalog {
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

fn write_model(dir: &Path, seed: u64, thompson: bool) {
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
    let manifest = Manifest::for_trainer(&trainer, &catalog, "test", vec![], vec![]);
    checkpoint::save(dir, &trainer.varmap, &manifest).unwrap();
    let adjuster = AdjusterManifest {
        kind: "bayes".into(),
        config: BayesConfig {
            prior_scale: 1.0,
            thompson,
            draws: 16,
            calibration: Default::default(),
        },
        gradient: None,
        grid: vec![],
        mean_grid: vec![],
        prior_shape: vec![],
        shaped_grid: vec![],
        users: 0,
    };
    std::fs::write(
        dir.join(ADJUSTER_FILE),
        serde_json::to_string(&adjuster).unwrap(),
    )
    .unwrap();
}

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn client(&self, token: Option<&str>) -> Client {
        Client::new(self.addr, token)
    }

    fn stop(mut self) {
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

fn config(model: &Path, db: &Path) -> ServerConfig {
    ServerConfig::new(
        model.to_owned(),
        db.to_owned(),
        ApiKeys::parse(&format!("admin:{ADMIN},rank:{RANKER}")).unwrap(),
        Pseudonymizer::new(SECRET.as_bytes()).unwrap(),
    )
}

fn start(config: ServerConfig) -> Running {
    let server = Server::open(catalog(), config).unwrap();
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

struct Fixture {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    db: PathBuf,
}

fn fixture(thompson: bool) -> Fixture {
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

fn post(c: &mut Client, path: &str, body: &Value) -> Response {
    c.request("POST", path, Some(body.to_string().as_bytes()))
        .unwrap()
}

fn candidates() -> Vec<String> {
    (0..20).map(|i| format!("item{i}")).collect()
}

fn rank(c: &mut Client, user: &str) -> Value {
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Item key -> (score, adaptation part) over a ranked slate.
fn scores(v: &Value) -> Vec<(String, f64, f64)> {
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

fn assert_error(r: &Response, status: u16, code: &str, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.text());
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "`{needle}` not in `{message}`");
}

#[test]
fn rank_then_feedback_changes_the_next_rank_and_feedback_is_idempotent() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let first = rank(&mut c, "alice");
    let slate = scores(&first);
    assert_eq!(slate.len(), 5);
    // Greedy: propensity 1, scores sorted, and with no feedback there is no adaptation.
    for e in first["slate"].as_array().unwrap() {
        assert_eq!(e["propensity"], 1.0);
        let parts = &e["explanation"]["parts"];
        let sum: f64 = parts
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - e["score"].as_f64().unwrap()).abs() < 1e-4, "{e}");
    }
    assert!(slate.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!(slate.iter().all(|s| s.2 == 0.0));
    let event = first["event_id"].as_str().unwrap().to_owned();
    let clicked = slate[3].0.clone();

    let fb = json!({"event_id": event, "position": 3, "kind": "click"});
    let ack = post(&mut c, "/v1/feedback", &fb);
    assert_eq!(ack.status, 200, "{}", ack.text());
    assert_eq!(ack.json()["duplicate"], false);
    // The same feedback again is acknowledged but not counted twice.
    let again = post(&mut c, "/v1/feedback", &fb);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicate"], true);
    // The same click named by item is the same feedback.
    let by_item = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "item": clicked, "kind": "click"}),
    );
    assert_eq!(by_item.json()["duplicate"], true, "{}", by_item.text());
    // A purchase is another kind of feedback on the same position.
    let purchase = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "position": 3, "kind": "purchase", "revenue": 12.5}),
    );
    assert_eq!(purchase.json()["duplicate"], false, "{}", purchase.text());

    // The next rank reflects the click: the clicked item's adaptation part is positive and it is
    // the session's top past click.
    let second = rank(&mut c, "alice");
    let entry = second["slate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["item"] == clicked.as_str())
        .cloned();
    let adaptation = |v: &Value, item: &str| -> Option<f64> {
        v["slate"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["item"] == item)
            .map(|e| e["explanation"]["parts"]["adaptation"].as_f64().unwrap())
    };
    if let Some(e) = entry {
        assert!(adaptation(&second, &clicked).unwrap() > 0.0, "{e}");
    }
    assert_ne!(scores(&first), scores(&second), "the rank did not change");
    assert!(
        second["slate"][0]["explanation"]["top_past_click"]["item"] == clicked.as_str(),
        "{second}"
    );
    // Another user is unaffected.
    assert_eq!(scores(&rank(&mut c, "bob")), scores(&first));

    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let counts = store.counts().unwrap();
    assert_eq!(counts.feedback, 2, "one click and one purchase");
    assert_eq!(counts.decisions, 3);
    assert_eq!(store.durability().unwrap(), ("wal".to_owned(), 2));
    // No raw user id reaches storage.
    for file in ["metarec.db", "metarec.db-wal"] {
        let path = f.db.with_file_name(file);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(5).any(|w| w == b"alice"),
                "raw user id in {file}"
            );
        }
    }
}

#[test]
fn bad_requests_get_a_json_4xx_that_says_what_is_wrong() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.body_limit = 16 * 1024;
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "nope", "position": 0, "kind": "click"}),
    );
    assert_error(&r, 404, "unknown_event", "nope");
    let r = c
        .request("POST", "/v1/rank", Some(b"{\"user\": \"a\", "))
        .unwrap();
    assert_error(&r, 400, "bad_json", "not valid JSON");
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "a", "slate_size": "five"}),
    );
    assert_error(&r, 422, "invalid_field", "slate_size");
    let r = post(&mut c, "/v1/rank", &json!({"user": "a", "slate_size": 0}));
    assert_error(&r, 422, "invalid_field", "slate_size");
    let r = post(&mut c, "/v1/rank", &json!({"slate_size": 3}));
    assert_error(&r, 422, "invalid_field", "user");
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "a", "slate_size": 3, "candidates": ["item1", "ghost"]}),
    );
    assert_error(&r, 422, "unknown_item", "candidates[1]");
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "a", "slate_size": 3, "colour": "red"}),
    );
    assert_error(&r, 422, "invalid_field", "colour");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "x", "position": 0, "kind": "like"}),
    );
    assert_error(&r, 422, "invalid_field", "kind");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "x", "position": 0, "kind": "purchase"}),
    );
    assert_error(&r, 422, "invalid_field", "revenue");
    let event = rank(&mut c, "a")["event_id"].clone();
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "position": 9, "kind": "click"}),
    );
    assert_error(&r, 422, "invalid_field", "position");
    // A body over the limit.
    let huge = json!({"user": "a", "slate_size": 3, "candidates": vec!["item1"; 100_000]});
    let r = post(&mut c, "/v1/rank", &huge);
    assert_error(&r, 413, "body_too_large", "16384");
    // Authentication and scopes.
    let mut anonymous = server.client(None);
    let r = post(
        &mut anonymous,
        "/v1/rank",
        &json!({"user": "a", "slate_size": 3}),
    );
    assert_error(&r, 401, "unauthorized", "Authorization");
    let mut stranger = server.client(Some("not-a-key-of-ours-at-all"));
    let r = post(
        &mut stranger,
        "/v1/rank",
        &json!({"user": "a", "slate_size": 3}),
    );
    assert_error(&r, 401, "unauthorized", "unknown API key");
    let r = c.request("DELETE", "/v1/users/a", None).unwrap();
    assert_error(&r, 403, "forbidden", "admin");
    let r = post(&mut c, "/v1/admin/reload", &json!({}));
    assert_error(&r, 403, "forbidden", "admin");
    let r = c.request("GET", "/v2/nothing", None).unwrap();
    assert_error(&r, 404, "no_route", "/v2/nothing");
    // Health needs no key; metrics and the API document need one.
    let r = anonymous.request("GET", "/healthz", None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = anonymous.request("GET", "/metrics", None).unwrap();
    assert_error(&r, 401, "unauthorized", "Authorization");
}

#[test]
fn forgetting_a_user_removes_their_state_and_events() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let before = rank(&mut c, "carol");
    let event = before["event_id"].clone();
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "position": 0, "kind": "click"}),
    );
    assert_eq!(r.status, 200);
    rank(&mut c, "dave");
    let mut admin = server.client(Some(ADMIN));
    let r = admin.request("DELETE", "/v1/users/carol", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["events_deleted"], 1);
    // Her events are gone (feedback on them is unknown) and she ranks like a new user.
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "position": 1, "kind": "click"}),
    );
    assert_error(&r, 404, "unknown_event", "forgotten");
    assert_eq!(scores(&rank(&mut c, "carol")), scores(&before));
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let counts = store.counts().unwrap();
    // dave's decision and carol's new one; no feedback and no stored state are left.
    assert_eq!((counts.decisions, counts.feedback, counts.users), (2, 0, 0));
}

#[test]
fn a_restarted_server_keeps_every_user_state() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let first = rank(&mut c, "erin");
    for p in [0, 2] {
        let r = post(
            &mut c,
            "/v1/feedback",
            &json!({"event_id": first["event_id"], "position": p, "kind": "click"}),
        );
        assert_eq!(r.status, 200);
    }
    let before = scores(&rank(&mut c, "erin"));
    server.stop();
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let after = scores(&rank(&mut c, "erin"));
    // Bit for bit: states are stored with their floats' exact bit patterns.
    assert_eq!(before, after);
    assert!(after.iter().any(|s| s.2 != 0.0), "{after:?}");
    // Feedback on an event from before the restart still counts (the window is open).
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": first["event_id"], "position": 1, "kind": "click"}),
    );
    assert_eq!(r.json()["duplicate"], false, "{}", r.text());
}

#[test]
fn closed_reward_windows_refuse_feedback_and_record_the_default_reward() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.reward_window = Duration::from_millis(200);
    config.default_reward = 0.25;
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let quiet = rank(&mut c, "frank");
    let clicked = rank(&mut c, "grace");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": clicked["event_id"], "position": 0, "kind": "click"}),
    );
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(700));
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": quiet["event_id"], "position": 0, "kind": "click"}),
    );
    assert_error(&r, 404, "event_expired", "reward window");
    // frank's shown items are now known to be passed over.
    let next = rank(&mut c, "frank");
    let ignores: f64 = next["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["explanation"]["parts"]["past_ignores"]
                .as_f64()
                .unwrap()
                .abs()
        })
        .sum();
    assert!(ignores > 0.0, "{next}");
    server.stop();
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let reward = |event: &Value| -> Option<f64> {
        conn.query_row(
            "SELECT reward FROM decisions WHERE event_id = ?1 AND resolved = 1",
            [event.as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(reward(&quiet["event_id"]), Some(0.25));
    // The clicked event's reward is the model's objective (1 per click).
    assert_eq!(reward(&clicked["event_id"]), Some(1.0));
}

#[test]
fn reload_swaps_a_verified_model_and_a_bad_one_leaves_the_old_serving() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut admin = server.client(Some(ADMIN));
    let version = |c: &mut Client| {
        c.request("GET", "/healthz", None).unwrap().json()["model_version"].clone()
    };
    let old = version(&mut admin);
    // A damaged copy: one flipped byte in the weights.
    let bad = f.model.with_file_name("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for file in ["model.safetensors", "manifest.json", "adjuster.json"] {
        std::fs::copy(f.model.join(file), bad.join(file)).unwrap();
    }
    let mut bytes = std::fs::read(bad.join("model.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(bad.join("model.safetensors"), bytes).unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": bad}));
    assert_error(&r, 422, "model_rejected", "checksum mismatch");
    assert_eq!(version(&mut admin), old);
    // A broken adjuster file.
    std::fs::write(bad.join("adjuster.json"), "{}").unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": bad}));
    assert_error(&r, 422, "model_rejected", "adjuster");
    // A good new model.
    let good = f.model.with_file_name("good");
    write_model(&good, 2, true);
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": good}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["previous_version"], old);
    let new = version(&mut admin);
    assert_ne!(new, old);
    // The new model decides: Thompson sampling gives propensities in (0, 1].
    let ranked = rank(&mut admin, "heidi");
    assert_eq!(ranked["model_version"], new);
    for e in ranked["slate"].as_array().unwrap() {
        let p = e["propensity"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{e}");
    }
}

#[test]
fn metrics_and_the_api_document_describe_the_server() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let ranked = rank(&mut c, "ivan");
    post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": ranked["event_id"], "position": 0, "kind": "click"}),
    );
    let text = c.request("GET", "/metrics", None).unwrap().text();
    for needle in [
        "metarec_requests_total{method=\"POST\",route=\"/v1/rank\",status=\"200\"} 1",
        "metarec_requests_total{method=\"POST\",route=\"/v1/feedback\",status=\"200\"} 1",
        "metarec_request_seconds_count{route=\"/v1/rank\"} 1",
        "metarec_impressions_total 5",
        "metarec_feedback_clicks_total 1",
        "metarec_ctr 0.2",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    let doc = c.request("GET", "/openapi.json", None).unwrap().json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/rank", "post"),
        ("/v1/feedback", "post"),
        ("/v1/users/{key}", "delete"),
        ("/v1/admin/reload", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{path} {method} missing");
    }
    assert_eq!(
        paths.len(),
        7,
        "a route in the document that the server lacks"
    );
}

#[test]
fn the_log_export_writes_every_interaction_in_the_project_format() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let a = rank(&mut c, "judy");
    rank(&mut c, "ken");
    post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": a["event_id"], "position": 1, "kind": "purchase", "revenue": 3.5}),
    );
    server.stop();
    let out = f.db.with_file_name("log.jsonl");
    assert_eq!(metarec_serve::export_log(&f.db, &out).unwrap(), 2);
    let (log, report) =
        metarec_data::log::read_log(&out, &metarec_data::LoadOptions::default()).unwrap();
    assert_eq!(report.kept, 2);
    assert_eq!(log[0].decision.event_id.0, a["event_id"].as_str().unwrap());
    assert_eq!(
        log[0].feedback.clicks,
        vec![false, true, false, false, false]
    );
    assert!(log[0].feedback.purchases[1]);
    assert_eq!(log[0].feedback.revenue[1], 3.5);
    assert!(log[0].context.user.0.starts_with("u_"));
    assert!(metarec_serve::export_log(&f.db.with_file_name("none.db"), &out).is_err());
}
