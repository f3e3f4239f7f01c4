//! Integration tests: the real server on a loopback port (port 0), driven over HTTP.
//!
//! The model is a small two-tower network built from a seeded initialisation on a synthetic
//! catalog (no training: what is tested here is serving, not model quality), with a greedy
//! adjuster so that scores are deterministic and a changed rank can only come from feedback.

use metarec_core::Catalog;
use metarec_neural::checkpoint;
use metarec_serve::auth::{ApiKeys, Pseudonymizer};
use metarec_serve::client::{Client, Response};
use metarec_serve::store::{SqliteStore, Store};
use metarec_serve::{Server, ServerConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::*;

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
    }
    assert_parts_sum_to_scores(&first);
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
fn metrics_parse_and_export_the_process_and_the_store_latency() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let ranked = rank(&mut c, "judy");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": ranked["event_id"], "position": 1, "kind": "purchase", "revenue": 9.5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.request("GET", "/metrics", None).unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    let samples = parse_exposition(&text);
    check_histograms(&samples);
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    // Every series that dashboards and `metarec bench soak` read keeps its name.
    for name in [
        "metarec_requests_total",
        "metarec_request_seconds_bucket",
        "metarec_request_seconds_sum",
        "metarec_request_seconds_count",
        "metarec_decisions_total",
        "metarec_impressions_total",
        "metarec_feedback_clicks_total",
        "metarec_feedback_purchases_total",
        "metarec_feedback_duplicates_total",
        "metarec_events_expired_total",
        "metarec_events_overdue",
        "metarec_ctr",
        "metarec_users",
        "metarec_wal_bytes",
        "metarec_db_bytes",
        "metarec_wal_truncations_total",
        "metarec_wal_checkpoint_lag_frames",
        "metarec_model_info",
        "metarec_store_seconds_bucket",
    ] {
        assert!(
            samples.iter().any(|s| s.name == name),
            "no {name} in\n{text}"
        );
    }
    let rank_route = [("method", "POST"), ("route", "/v1/rank"), ("status", "200")];
    assert_eq!(get("metarec_requests_total", &rank_route), 1.0);
    assert_eq!(get("metarec_decisions_total", &[]), 1.0);
    assert_eq!(get("metarec_impressions_total", &[]), 5.0);
    assert_eq!(get("metarec_feedback_purchases_total", &[]), 1.0);
    assert_eq!(get("metarec_users", &[]), 1.0);
    // The request histogram keeps its buckets.
    let bounds: Vec<String> = samples
        .iter()
        .filter(|s| {
            s.name == "metarec_request_seconds_bucket"
                && s.labels
                    .contains(&("route".to_owned(), "/v1/rank".to_owned()))
        })
        .map(|s| s.labels.iter().find(|(k, _)| k == "le").unwrap().1.clone())
        .collect();
    let mut expected: Vec<String> = metarec_serve::metrics::BUCKETS
        .iter()
        .map(|b| b.to_string())
        .collect();
    expected.push("+Inf".to_owned());
    assert_eq!(bounds, expected);
    // The rank's decision and the feedback were each committed by the writer before their
    // answers, in a group of their own at least once; SQLite reads no user from the store.
    let commits = get("metarec_store_seconds_count", &[("op", "commit")]);
    assert!(commits >= 2.0, "{commits} commits in\n{text}");
    let seconds = get("metarec_store_seconds_sum", &[("op", "commit")]);
    assert!(
        seconds > 0.0 && seconds < commits * 5.0,
        "{seconds} s for {commits} commits"
    );
    assert_eq!(
        get("metarec_store_seconds_count", &[("op", "read_user")]),
        0.0
    );
    // The process: resident memory of a server holding a model is megabytes, it has files open
    // (the listener, the database and its log), several threads, and it started before now.
    #[cfg(target_os = "linux")]
    {
        let resident = get("process_resident_memory_bytes", &[]);
        assert!(resident > 1e6, "{resident} bytes resident");
        assert!(get("process_virtual_memory_bytes", &[]) >= resident);
        assert!(get("process_open_fds", &[]) >= 3.0);
        assert!(get("process_max_fds", &[]) >= get("process_open_fds", &[]));
        assert!(get("process_threads", &[]) >= 2.0);
        assert!(get("process_cpu_seconds_total", &[]) >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = get("process_start_time_seconds", &[]);
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "started at {started}, now {now}"
        );
    }
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
    let theirs = rank(&mut c, "dave");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": theirs["event_id"], "position": 0, "kind": "click"}),
    );
    assert_eq!(r.status, 200);
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
    // dave's decision, feedback and state, and carol's new decision and the state it began
    // (its slate in her history): nothing else of hers.
    assert_eq!((counts.decisions, counts.feedback, counts.users), (2, 1, 2));
}

/// Clicks twice for one user, restarts the server and checks that the user's state came back
/// bit for bit (states are stored with their floats' exact bit patterns, whatever the
/// adjuster's kind) and that feedback on an event from before the restart still counts.
fn a_restart_keeps_the_user_state(f: Fixture) {
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
    // Probes, not shown: a shown slate would change the history the next rank reads.
    let before = scores(&probe(&mut c, "erin"));
    server.stop();
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let after = scores(&probe(&mut c, "erin"));
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
fn a_restarted_server_keeps_every_user_state() {
    a_restart_keeps_the_user_state(fixture(false));
}

/// Asserts that every slate entry's explanation parts add up to its score.
fn assert_parts_sum_to_scores(ranked: &Value) {
    for e in ranked["slate"].as_array().unwrap() {
        let sum: f64 = e["explanation"]["parts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - e["score"].as_f64().unwrap()).abs() < 1e-4, "{e}");
    }
}

#[test]
fn a_gradient_model_serves_and_adapts_to_feedback() {
    let f = gradient_fixture();
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let first = rank(&mut c, "ivan");
    let slate = scores(&first);
    assert_eq!(slate.len(), 5);
    // The gradient adjuster decides greedily: propensity 1, scores sorted, and a new user's
    // correction is the zero initial one.
    for e in first["slate"].as_array().unwrap() {
        assert_eq!(e["propensity"], 1.0, "{e}");
    }
    assert_parts_sum_to_scores(&first);
    assert!(slate.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!(slate.iter().all(|s| s.2 == 0.0), "{slate:?}");
    let clicked = slate[1].0.clone();
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": first["event_id"], "position": 1, "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], false);
    // The next rank is made with the adapted correction.
    let second = rank(&mut c, "ivan");
    assert_parts_sum_to_scores(&second);
    let after = scores(&second);
    assert!(after.iter().any(|s| s.2 != 0.0), "{after:?}");
    assert_ne!(slate, after, "the rank did not change");
    if let Some(s) = after.iter().find(|s| s.0 == clicked) {
        assert!(s.2 > 0.0, "the clicked item's adaptation is {}", s.2);
    }
    for e in second["slate"].as_array().unwrap() {
        assert_eq!(e["propensity"], 1.0, "{e}");
    }
    // Another user still starts from the initial correction.
    assert_eq!(scores(&rank(&mut c, "judy")), slate);
}

#[test]
fn a_restarted_gradient_server_keeps_every_user_state() {
    a_restart_keeps_the_user_state(gradient_fixture());
}

#[test]
fn another_adjuster_kind_is_refused_at_reload_and_its_states_dropped_at_open() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(ADMIN));
    let first = rank(&mut c, "kim");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": first["event_id"], "position": 0, "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let version = c.request("GET", "/healthz", None).unwrap().json()["model_version"].clone();
    let gradient = f.model.with_file_name("gradient");
    write_gradient_model(&gradient, 1);
    let r = post(&mut c, "/v1/admin/reload", &json!({"model": gradient}));
    assert_error(&r, 422, "model_rejected", "adjuster kind `gradient`");
    assert!(r.text().contains("`bayes`"), "{}", r.text());
    assert_eq!(
        c.request("GET", "/healthz", None).unwrap().json()["model_version"],
        version
    );
    server.stop();
    // Started on the gradient model, the server drops the stored Bayesian state: the user ranks
    // like a new one.
    let server = start(config(&gradient, &f.db));
    let mut c = server.client(Some(RANKER));
    let kim = rank(&mut c, "kim");
    assert!(scores(&kim).iter().all(|s| s.2 == 0.0), "{kim}");
    assert_eq!(scores(&kim), scores(&rank(&mut c, "lee")));
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
    assert!(part_magnitude(&next, "past_ignores") > 0.0, "{next}");
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
    for file in [
        "model.safetensors",
        "manifest.json",
        "catalog.json",
        "adjuster.json",
    ] {
        std::fs::copy(f.model.join(file), bad.join(file)).unwrap();
    }
    let mut bytes = std::fs::read(bad.join("model.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(bad.join("model.safetensors"), bytes).unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": bad}));
    assert_error(&r, 422, "model_rejected", "checksum mismatch");
    assert_eq!(version(&mut admin), old);
    // A broken adjuster file (beside the intact weights).
    std::fs::copy(
        f.model.join("model.safetensors"),
        bad.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(bad.join("adjuster.json"), "{}").unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": bad}));
    assert_error(&r, 422, "model_rejected", "adjuster");
    // A model whose adjuster was fitted to other weights (another model's adjuster file).
    let stale = f.model.with_file_name("stale");
    write_model(&stale, 3, true);
    std::fs::copy(f.model.join("adjuster.json"), stale.join("adjuster.json")).unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": stale}));
    assert_error(&r, 422, "model_rejected", "meta-train");
    assert!(r.text().contains("adjuster.json"), "{}", r.text());
    // A damaged catalog.
    let mut catalog = std::fs::read(bad.join("catalog.json")).unwrap();
    catalog[2] ^= 1;
    std::fs::write(bad.join("catalog.json"), catalog).unwrap();
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": bad}));
    assert_error(&r, 422, "model_rejected", "catalog.json");
    assert_eq!(version(&mut admin), old);
    let model_info = |admin: &mut Client| {
        let text = admin.request("GET", "/metrics", None).unwrap().text();
        parse_exposition(&text)
            .into_iter()
            .filter(|s| s.name == "metarec_model_info")
            .map(|s| (s.labels, s.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        model_info(&mut admin),
        [(
            vec![("version".to_owned(), old.as_str().unwrap().to_owned())],
            1.0
        )]
    );
    // A good new model.
    let good = f.model.with_file_name("good");
    write_model(&good, 2, true);
    let r = post(&mut admin, "/v1/admin/reload", &json!({"model": good}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["previous_version"], old);
    let new = version(&mut admin);
    assert_ne!(new, old);
    // The model's info series is replaced, not joined by a second one.
    assert_eq!(
        model_info(&mut admin),
        [(
            vec![("version".to_owned(), new.as_str().unwrap().to_owned())],
            1.0
        )]
    );
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
    check_histograms(&parse_exposition(&text));
    let doc = c.request("GET", "/openapi.json", None).unwrap().json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/rank", "post"),
        ("/v1/feedback", "post"),
        ("/v1/reward", "post"),
        ("/v1/events/{event_id}/activate", "post"),
        ("/v1/users/{key}", "delete"),
        ("/v1/items/{key}", "put"),
        ("/v1/items/{key}", "delete"),
        ("/v1/items/{key}", "get"),
        ("/v1/admin/reload", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{path} {method} missing");
    }
    assert_eq!(
        paths.len(),
        10,
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
    let catalog: Catalog =
        serde_json::from_slice(&std::fs::read(f.model.join(checkpoint::CATALOG)).unwrap()).unwrap();
    assert_eq!(metarec_serve::export_log(&f.db, &out, &catalog).unwrap(), 2);
    // The log names the served catalog and its items by their keys, as the answer did.
    let text = std::fs::read_to_string(&out).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        header["catalog"]["fingerprint"],
        json!(catalog.fingerprint())
    );
    let first: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let shown: Vec<Value> = scores(&a).into_iter().map(|(k, _, _)| json!(k)).collect();
    assert_eq!(first["decision"]["slate"], json!(shown));
    let (log, report) =
        metarec_data::log::read_log(&out, &catalog, &metarec_data::LoadOptions::default()).unwrap();
    assert_eq!(report.kept, 2);
    assert!(report.notes.is_empty(), "{report}");
    assert_eq!(log[0].decision.event_id.0, a["event_id"].as_str().unwrap());
    assert_eq!(
        log[0].feedback.clicks,
        vec![false, true, false, false, false]
    );
    assert!(log[0].feedback.purchases[1]);
    assert_eq!(log[0].feedback.revenue[1], 3.5);
    assert!(log[0].context.user.0.starts_with("u_"));
    assert!(metarec_serve::export_log(&f.db.with_file_name("none.db"), &out, &catalog).is_err());
    // Exported against a catalog that lacks the served items, the export fails naming an event
    // rather than writing other items' keys.
    let mut small = Catalog::new(catalog.features().names().to_vec());
    let mut first_item = catalog.item(metarec_core::ItemId(0)).unwrap();
    first_item.embedding = None;
    small.push(first_item).unwrap();
    let err = metarec_serve::export_log(&f.db, &out, &small).unwrap_err();
    assert!(err.to_string().contains("is not in the catalog"), "{err}");
}

// --- Hardening: one regression test per defect found by a hostile client (issue 16). ---

const OTHER_RANKER: &str = "another-rank-token-0123456789";

fn hostile_config(model: &Path, db: &Path) -> ServerConfig {
    let mut c = config(model, db);
    c.keys = ApiKeys::parse(&format!("admin:{ADMIN},rank:{RANKER},rank:{OTHER_RANKER}")).unwrap();
    c
}

/// Sends raw bytes on a fresh connection and reads the answer: (status, body as JSON).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    // The server closes the connection after answering a request that says `Connection: close`.
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn request_bytes(
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: &str,
) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn wal_path(db: &Path) -> PathBuf {
    db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()))
}

#[test]
fn the_wal_stays_within_its_limit_under_constant_writes() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.log_limit_bytes = 1 << 20;
    let server = start(config);
    let addr = server.addr;
    let wal = wal_path(&f.db);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut largest = 0u64;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let stop = &stop;
            scope.spawn(move || {
                let mut c = Client::new(addr, Some(RANKER));
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v = rank(&mut c, &format!("writer{t}-{}", n % 50));
                    if n % 3 == 0 {
                        post(
                            &mut c,
                            "/v1/feedback",
                            &json!({"event_id": v["event_id"], "position": 1, "kind": "click"}),
                        );
                    }
                    n += 1;
                }
            });
        }
        let until = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < until {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let text = server
        .client(Some(RANKER))
        .request("GET", "/metrics", None)
        .unwrap()
        .text();
    let truncations = text
        .lines()
        .find_map(|l| l.strip_prefix("metarec_wal_truncations_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(truncations >= 1.0, "the log was never truncated:\n{text}");
    assert!(
        largest <= 1 << 20,
        "the WAL reached {largest} bytes against a limit of 1 MiB"
    );
    assert!(text.contains("metarec_wal_bytes "), "{text}");
    assert!(
        text.contains("metarec_wal_checkpoint_lag_frames "),
        "{text}"
    );
}

#[test]
fn a_client_that_stalls_its_request_head_is_disconnected_and_others_are_served() {
    use std::io::{Read, Write};
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.header_timeout = Duration::from_millis(600);
    config.max_connections = 16;
    let server = start(config);
    // Five times the connection limit of half-sent request heads.
    let mut stalled: Vec<std::net::TcpStream> = (0..80)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST /v1/rank HTTP/1.1\r\nHost: x\r\nContent-Le")
                .unwrap();
            s
        })
        .collect();
    let asked = std::time::Instant::now();
    let mut anonymous = server.client(None);
    let r = anonymous.request("GET", "/healthz", None).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "health answered after {:?}",
        asked.elapsed()
    );
    // Every stalled connection has been closed by the server by now.
    std::thread::sleep(Duration::from_millis(1500));
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        // End of stream, or a reset: the server closed it; a timeout means it is still open.
        match s.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0, "the server answered a stalled head"),
            Err(e) => assert!(
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut,
                "a stalled connection is still open: {e}"
            ),
        }
    }
    // An idle kept-alive connection is closed after the header timeout too.
    let mut idle = std::net::TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let opened = std::time::Instant::now();
    let _ = idle.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        opened.elapsed() < Duration::from_secs(4),
        "an idle keep-alive connection stayed open {:?}",
        opened.elapsed()
    );
}

#[test]
fn a_body_shorter_than_its_content_length_gets_a_json_408() {
    use std::io::{Read, Write};
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.body_timeout = Duration::from_millis(300);
    let server = start(config);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST /v1/rank HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RANKER}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user\":"
        )
        .as_bytes(),
    )
    .unwrap();
    let sent = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"body_timeout\""), "{text}");
    assert!(sent.elapsed() < Duration::from_secs(5));
}

#[test]
fn one_sweep_closes_every_expired_event_however_many() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    // A 20-second window sweeps every 5 s; the old sweep closed 1,000 events per pass.
    config.reward_window = Duration::from_secs(20);
    let server = start(config);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let addr = server.addr;
            scope.spawn(move || {
                let mut c = Client::new(addr, Some(RANKER));
                for n in 0..400 {
                    rank(&mut c, &format!("sweep{t}-{}", n % 40));
                }
            });
        }
    });
    // Past the last event's window plus one sweep interval and a margin, nothing may be left
    // open. (Ranking takes a second or two, so all 1,600 expire before the same sweep, which the
    // old sweep could not close in one pass; on a slower machine the wait only grows.)
    std::thread::sleep(Duration::from_secs(27));
    let text = server
        .client(Some(RANKER))
        .request("GET", "/metrics", None)
        .unwrap()
        .text();
    server.stop();
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let open: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM decisions WHERE resolved = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0, "events still open past their window\n{text}");
    assert!(text.contains("metarec_events_expired_total 1600"), "{text}");
}

/// Whether `needle` occurs in the raw bytes of `path` (a missing file holds nothing).
fn file_holds(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

#[test]
fn a_forgotten_user_leaves_no_bytes_in_the_database_or_the_wal() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let secret_value = "zq-unique-context-value-7731";
    for n in 0..30 {
        let r = post(
            &mut c,
            "/v1/rank",
            &json!({"user": "mallory", "context": {"coupon": secret_value}, "candidates": candidates(), "slate_size": 5}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        post(
            &mut c,
            "/v1/feedback",
            &json!({"event_id": r.json()["event_id"], "position": n % 5, "kind": "click"}),
        );
        rank(&mut c, &format!("bystander{n}"));
    }
    let pseudonym = Pseudonymizer::new(SECRET.as_bytes())
        .unwrap()
        .pseudonym("mallory");
    let wal = wal_path(&f.db);
    assert!(
        file_holds(&f.db, pseudonym.as_bytes()) || file_holds(&wal, pseudonym.as_bytes()),
        "the user was never stored"
    );
    let mut admin = server.client(Some(ADMIN));
    let r = admin.request("DELETE", "/v1/users/mallory", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["events_deleted"], 30);
    assert_eq!(r.json()["purged_from_log"], true, "{}", r.text());
    // While the server still runs, right after the answer.
    for path in [&f.db, &wal] {
        for needle in [pseudonym.as_bytes(), secret_value.as_bytes()] {
            assert!(
                !file_holds(path, needle),
                "{} still holds `{}`",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    // The bystanders are still there.
    rank(&mut c, "bystander0");
    server.stop();
    for path in [&f.db, &wal] {
        assert!(!file_holds(path, pseudonym.as_bytes()));
        assert!(!file_holds(path, secret_value.as_bytes()));
    }
}

#[test]
fn event_ids_are_random_and_only_the_ranking_key_may_answer_them() {
    let f = fixture(false);
    let server = start(hostile_config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let ids: Vec<String> = (0..20)
        .map(|_| {
            rank(&mut c, "oscar")["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // Nothing shared: consecutive ids differ in about half their 128 bits, never in a few.
    for w in ids.windows(2) {
        let a = u128::from_str_radix(&w[0], 16).unwrap();
        let b = u128::from_str_radix(&w[1], 16).unwrap();
        let bits = (a ^ b).count_ones();
        assert!(
            (30..=98).contains(&bits),
            "{} and {} differ in {bits} bits",
            w[0],
            w[1]
        );
        assert_ne!(&w[0][..8], &w[1][..8]);
    }
    // Another client's key cannot answer the event, and is told nothing about it.
    let mut other = server.client(Some(OTHER_RANKER));
    let forged = json!({"event_id": ids[0], "position": 0, "kind": "purchase", "revenue": 9999.0});
    let r = post(&mut other, "/v1/feedback", &forged);
    assert_error(&r, 404, "unknown_event", &ids[0]);
    let r = post(&mut c, "/v1/feedback", &forged);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], false);
}

#[test]
fn invented_methods_and_paths_add_no_metric_series() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    for n in 0..60 {
        let (status, body) = raw(
            server.addr,
            &request_bytes(
                &format!("FOO{n}"),
                "/v1/rank",
                Some(RANKER),
                "application/json",
                "{}",
            ),
        );
        assert_eq!(status, 405, "{body}");
        let (status, _) = raw(
            server.addr,
            &request_bytes(
                "GET",
                &format!("/nowhere/{n}"),
                Some(RANKER),
                "application/json",
                "",
            ),
        );
        assert_eq!(status, 404);
    }
    let text = server
        .client(Some(RANKER))
        .request("GET", "/metrics", None)
        .unwrap()
        .text();
    let series = text
        .lines()
        .filter(|l| l.starts_with("metarec_requests_total{"))
        .count();
    assert!(series <= 4, "{series} request series:\n{text}");
    assert!(!text.contains("FOO"), "{text}");
    assert!(!text.contains("nowhere"), "{text}");
    assert!(
        text.contains(
            "metarec_requests_total{method=\"other\",route=\"/v1/rank\",status=\"405\"} 60"
        ),
        "{text}"
    );
}

#[test]
fn a_reward_window_too_long_to_represent_is_refused_at_start() {
    let f = fixture(false);
    for seconds in [1e20, 1e16, 31.0 * 24.0 * 3600.0] {
        let mut config = config(&f.model, &f.db);
        config.reward_window = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
        let err = Server::open(config).err().expect("refused");
        assert!(err.to_string().contains("reward window"), "{err}");
    }
}

#[test]
fn every_error_is_json_405_and_undecodable_paths_included_and_keys_come_first() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let (status, body) = raw(
        server.addr,
        &request_bytes("GET", "/v1/rank", Some(RANKER), "application/json", ""),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    // An undecodable path is judged only after the key: without one it is a 401.
    let (status, body) = raw(
        server.addr,
        &request_bytes("DELETE", "/v1/users/%FF", None, "application/json", ""),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, body) = raw(
        server.addr,
        &request_bytes(
            "DELETE",
            "/v1/users/%FF",
            Some(ADMIN),
            "application/json",
            "",
        ),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_path")),
        "{body}"
    );
    // A bad body from an unknown key is a 401, not a parse error.
    let (status, body) = raw(
        server.addr,
        &request_bytes(
            "POST",
            "/v1/rank",
            Some("not-a-key-of-ours-at-all"),
            "application/json",
            "{{{",
        ),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
}

#[test]
fn a_null_kind_is_a_field_error_not_a_json_error() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "x", "position": 0, "kind": null}),
    );
    assert_error(&r, 422, "invalid_field", "kind");
}

#[test]
fn bodies_are_json_objects_sent_as_json_and_keys_follow_one_rule() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let version = server
        .client(None)
        .request("GET", "/healthz", None)
        .unwrap()
        .json()["model_version"]
        .clone();
    // An array where an object belongs is refused, and triggers no reload.
    let (status, body) = raw(
        server.addr,
        &request_bytes(
            "POST",
            "/v1/admin/reload",
            Some(ADMIN),
            "application/json",
            "[]",
        ),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body")),
        "{body}"
    );
    let rank_body = json!({"user": "a", "slate_size": 3}).to_string();
    for ctype in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, body) = raw(
            server.addr,
            &request_bytes("POST", "/v1/rank", Some(RANKER), ctype, &rank_body),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{ctype}: {body}"
        );
    }
    let (status, _) = raw(
        server.addr,
        &request_bytes(
            "POST",
            "/v1/rank",
            Some(RANKER),
            "application/json; charset=utf-8",
            &rank_body,
        ),
    );
    assert_eq!(status, 200);
    let mut c = server.client(Some(RANKER));
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "a", "slate_size": 3, "exclude": ["item1", "ghost"]}),
    );
    assert_error(&r, 422, "unknown_item", "exclude[1]");
    let long = "k".repeat(8 * 1024);
    let mut admin = server.client(Some(ADMIN));
    let r = admin
        .request("DELETE", &format!("/v1/users/{long}"), None)
        .unwrap();
    assert_error(&r, 422, "invalid_field", "256");
    let r = post(&mut c, "/v1/rank", &json!({"user": long, "slate_size": 3}));
    assert_error(&r, 422, "invalid_field", "256");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": long, "position": 0, "kind": "click"}),
    );
    assert_error(&r, 422, "invalid_field", "256");
    assert_eq!(
        server
            .client(None)
            .request("GET", "/healthz", None)
            .unwrap()
            .json()["model_version"],
        version
    );
}

#[cfg(unix)]
#[test]
fn database_and_wal_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    rank(&mut server.client(Some(RANKER)), "peggy");
    for suffix in ["", "-wal", "-shm"] {
        let path = f.db.with_file_name(format!("metarec.db{suffix}"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    }
    server.stop();
    // An existing file readable by others is narrowed when opened.
    std::fs::set_permissions(&f.db, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(SqliteStore::open(&f.db).unwrap());
    let mode = std::fs::metadata(&f.db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn an_old_database_without_owners_is_migrated_in_place() {
    let f = fixture(false);
    {
        let conn = rusqlite::Connection::open(&f.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE decisions (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, user TEXT NOT NULL, created_ms INTEGER NOT NULL, resolved INTEGER NOT NULL DEFAULT 0, reward REAL, interaction TEXT NOT NULL);",
        )
        .unwrap();
    }
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().decisions, 0);
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, metarec_serve::store::SCHEMA_VERSION);
}

/// Random and mutated requests sent to the router in-process: whatever arrives, the answer is
/// never a 5xx, every error is a JSON `{"error": {"code", "message"}}`, and the server still
/// answers `/healthz` afterwards.
#[test]
fn random_and_mutated_requests_never_get_a_5xx_and_every_error_is_json() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use tower::ServiceExt;
    let f = fixture(true);
    let server = Server::open(hostile_config(&f.model, &f.db)).unwrap();
    let router = server.router();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let methods = prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("DELETE".to_owned()),
        Just("PUT".to_owned()),
        Just("HEAD".to_owned()),
        "[A-Z]{1,12}",
    ];
    let paths = prop_oneof![
        Just("/v1/rank".to_owned()),
        Just("/v1/feedback".to_owned()),
        Just("/v1/reward".to_owned()),
        "/v1/events/[a-zA-Z0-9%]{0,40}/activate",
        Just("/v1/admin/reload".to_owned()),
        Just("/healthz".to_owned()),
        Just("/metrics".to_owned()),
        Just("/openapi.json".to_owned()),
        "/v1/users/[a-zA-Z0-9%]{0,40}",
        "/v1/items/[a-zA-Z0-9%]{0,40}",
        "/v1/users/(%[0-9A-F]{2}){1,6}",
        "/[a-z0-9/._%-]{0,30}",
    ];
    // Mostly a route with its own method, so that most requests reach the handlers' checks.
    let endpoints = prop_oneof![
        3 => Just(("POST".to_owned(), "/v1/rank".to_owned())),
        3 => Just(("POST".to_owned(), "/v1/feedback".to_owned())),
        2 => Just(("POST".to_owned(), "/v1/reward".to_owned())),
        1 => "/v1/events/[a-zA-Z0-9%]{0,40}/activate".prop_map(|p| ("POST".to_owned(), p)),
        1 => Just(("POST".to_owned(), "/v1/admin/reload".to_owned())),
        1 => "/v1/users/[a-zA-Z0-9%]{0,40}".prop_map(|p| ("DELETE".to_owned(), p)),
        2 => "/v1/items/[a-zA-Z0-9%]{0,40}".prop_map(|p| ("PUT".to_owned(), p)),
        1 => "/v1/items/[a-zA-Z0-9%]{0,40}".prop_map(|p| ("DELETE".to_owned(), p)),
        1 => Just(("GET".to_owned(), "/metrics".to_owned())),
        2 => (methods, paths),
    ];
    let tokens = prop_oneof![
        1 => Just(None),
        4 => Just(Some(format!("Bearer {RANKER}"))),
        2 => Just(Some(format!("Bearer {ADMIN}"))),
        1 => Just(Some(format!("Bearer {OTHER_RANKER}"))),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    let ctypes = prop_oneof![
        5 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,30}".prop_map(Some),
    ];
    let valid = prop_oneof![
        Just(json!({"user": "u1", "slate_size": 3, "candidates": candidates()}).to_string()),
        Just(json!({"user": "u2", "context": {"country": "France"}, "slate_size": 5, "exclude": ["item3"]}).to_string()),
        Just(json!({"event_id": "deadbeef", "position": 1, "kind": "click"}).to_string()),
        Just(json!({"event_id": "deadbeef", "item": "item2", "kind": "purchase", "revenue": 3.5}).to_string()),
        Just(json!({"event_id": "deadbeef", "value": -2.5}).to_string()),
        Just(json!({"user": "u5", "slate_size": 2, "candidates": ["item1", {"key": "new-1", "features": {"price_z": 0.1}, "price": 2.0}, {"key": "new-2", "features": [0.3, 1e39]}]}).to_string()),
        Just(json!({"user": "u4", "event_id": "retry-1", "defer_activation": true, "slate_size": 2, "context": {"n": 1e308, "deep": {"a": [true, null, {"b": -3}]}}}).to_string()),
        Just(json!({"model": "/nonexistent/model"}).to_string()),
        Just(json!({"features": {"price_z": 0.5}, "title": "t", "price": 2.0}).to_string()),
        Just(json!({"features": [0.1, -0.2], "available": false}).to_string()),
        Just(json!({"features": {"price_z": "NaN", "colour": 1}, "price": -1}).to_string()),
        Just(json!({"user": "u3", "slate_size": 1e300, "candidates": [null, 1, {}]}).to_string()),
        Just("[]".to_owned()),
        Just(String::new()),
    ];
    // A valid body, then cut, spliced with random text, or replaced by random bytes.
    let bodies = (
        valid,
        any::<prop::sample::Index>(),
        "[ -~\\u{80}-\\u{10FFFF}]{0,12}",
        0..4u8,
    )
        .prop_map(|(body, cut, noise, how)| match how {
            0 => body,
            1 => body[..cut.index(body.len() + 1).min(body.len())]
                .trim_end_matches(|c: char| !c.is_ascii())
                .to_owned(),
            2 => {
                let at = cut.index(body.len() + 1);
                let at = (0..=at)
                    .rev()
                    .find(|&i| body.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}{noise}{}", &body[..at], &body[at..])
            }
            _ => noise,
        });
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(
            &(endpoints, tokens, ctypes, bodies),
            |((method, path), token, ctype, body)| {
                let Ok(method) = axum::http::Method::from_bytes(method.as_bytes()) else {
                    return Ok(());
                };
                // An answer to HEAD has no body by HTTP's rules, errors included.
                let head = method == axum::http::Method::HEAD;
                let mut request = axum::http::Request::builder()
                    .method(method)
                    .uri(path.as_str());
                if let Some(t) = token {
                    request = request.header("authorization", t);
                }
                if let Some(c) = ctype {
                    request = request.header("content-type", c);
                }
                let Ok(request) = request.body(axum::body::Body::from(body.clone())) else {
                    // Not a request http can even represent (a bad URI or header value).
                    return Ok(());
                };
                let response = rt.block_on(router.clone().oneshot(request)).unwrap();
                let status = response.status().as_u16();
                *statuses.borrow_mut().entry(status).or_default() += 1;
                let bytes = rt
                    .block_on(axum::body::to_bytes(response.into_body(), 1 << 24))
                    .unwrap();
                prop_assert!(
                    status < 500,
                    "{status} for {path} {body:?}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                if status >= 400 && !head {
                    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    prop_assert!(
                        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                        "{status} for {path} {body:?} is not a JSON error: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    let statuses = statuses.into_inner();
    let sent: u32 = statuses.values().sum();
    assert!(sent >= 2500, "only {sent} requests were sent: {statuses:?}");
    eprintln!("statuses of {sent} random requests: {statuses:?}");
    // The mix reached the handlers, not only the router's refusals.
    for status in [200, 401, 404, 415, 422] {
        assert!(
            statuses.contains_key(&status),
            "no {status} in {statuses:?}"
        );
    }
    let health = rt
        .block_on(
            router.oneshot(
                axum::http::Request::get("/healthz")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            ),
        )
        .unwrap();
    assert_eq!(health.status(), 200);
}

fn put(c: &mut Client, path: &str, body: &Value) -> Response {
    c.request("PUT", path, Some(body.to_string().as_bytes()))
        .unwrap()
}

/// Ranks `candidates` (every one of them) for `user`; panics unless the rank succeeds.
/// A rank among `candidates` that is never shown: it reads the user's state and leaves their
/// history as it was, so repeated probes of one user compare the items alone.
fn probe_among(c: &mut Client, user: &str, candidates: &[&str]) -> Value {
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "candidates": candidates, "slate_size": candidates.len(), "defer_activation": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn rank_among(c: &mut Client, user: &str, candidates: &[&str]) -> Value {
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "candidates": candidates, "slate_size": candidates.len()}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The slate entry of `item` in a rank answer.
fn entry<'a>(ranked: &'a Value, item: &str) -> Option<&'a Value> {
    ranked["slate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["item"] == item)
}

/// The items of a whole-catalog rank that lists every rankable item.
fn whole_catalog(c: &mut Client, user: &str) -> Vec<String> {
    // Never shown, so that it leaves the user's history as it was.
    let r = post(
        c,
        "/v1/rank",
        &json!({"user": user, "slate_size": 100, "defer_activation": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_item_added_over_the_api_is_ranked_updated_retired_and_kept_across_restarts() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut admin = server.client(Some(ADMIN));
    let mut c = server.client(Some(RANKER));
    let among = ["item0", "item1", "item2", "item3", "fresh"];
    // Not known yet.
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "a", "candidates": among, "slate_size": 2}),
    );
    assert_error(&r, 422, "unknown_item", "fresh");
    // Added from its features (one named, the other taking the column mean).
    let r = put(
        &mut admin,
        "/v1/items/fresh",
        &json!({"features": {"price_z": 0.9}, "title": "A new thing", "price": 9.5}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let item = r.json();
    assert_eq!(item["key"], "fresh");
    assert_eq!(item["added"], true);
    assert_eq!(item["available"], true);
    assert_eq!(item["title"], "A new thing");
    assert_eq!(
        item["features"]["price_z"].as_f64(),
        Some(f64::from(0.9f32))
    );
    let mean = (0..40)
        .map(|i| f64::from((i as f32 * 0.3).cos()))
        .sum::<f64>()
        / 40.0;
    let popularity = item["features"]["popularity_z"].as_f64().unwrap();
    assert!((popularity - mean).abs() < 1e-5, "{popularity} vs {mean}");
    // Ranked as a candidate with a finite score whose parts add up.
    let first = probe_among(&mut c, "ann", &among);
    assert_parts_sum_to_scores(&first);
    let score = |ranked: &Value| entry(ranked, "fresh").unwrap()["score"].as_f64().unwrap();
    let before = score(&first);
    assert!(before.is_finite(), "{first}");
    // And in whole-catalog ranks.
    assert!(whole_catalog(&mut c, "ann").contains(&"fresh".to_owned()));
    // An update changes its score, and keeps what it leaves out.
    let r = put(
        &mut admin,
        "/v1/items/fresh",
        &json!({"features": [-2.0, 3.0]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["title"], "A new thing");
    assert_eq!(r.json()["features"]["popularity_z"].as_f64(), Some(3.0));
    let updated = probe_among(&mut c, "ann", &among);
    assert_parts_sum_to_scores(&updated);
    let after_update = score(&updated);
    assert!(after_update.is_finite());
    assert_ne!(after_update, before);
    // Shown and clicked, the new item moves the user's state like any other.
    let shown = rank_among(&mut c, "bea", &among);
    let fb = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": shown["event_id"], "item": "fresh", "kind": "click"}),
    );
    assert_eq!(fb.status, 200, "{}", fb.text());
    let adapted = rank_among(&mut c, "bea", &among);
    assert!(
        entry(&adapted, "fresh").unwrap()["explanation"]["parts"]["adaptation"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{adapted}"
    );
    // A bundle item can be updated too.
    let r = put(&mut admin, "/v1/items/item2", &json!({"price": 4.0}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["added"], false);
    // Retired: gone from whole-catalog ranks, refused as a candidate, still known to feedback.
    let r = admin.request("DELETE", "/v1/items/fresh", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["available"], false);
    let r = admin.request("DELETE", "/v1/items/item5", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let all = whole_catalog(&mut c, "ann");
    assert_eq!(all.len(), 39, "{all:?}");
    assert!(!all.iter().any(|k| k == "fresh" || k == "item5"), "{all:?}");
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "ann", "candidates": among, "slate_size": 2}),
    );
    assert_error(&r, 422, "retired_item", "item `fresh` is retired");
    // Excluding a retired item is no error.
    let r = post(
        &mut c,
        "/v1/rank",
        // Not shown, so that `ann`'s history stays empty for the comparison below.
        &json!({"user": "ann", "slate_size": 3, "exclude": ["fresh"], "defer_activation": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fb = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": shown["event_id"], "item": "fresh", "kind": "purchase", "revenue": 9.5}),
    );
    assert_eq!(fb.status, 200, "{}", fb.text());
    assert_eq!(fb.json()["duplicate"], false);
    let r = admin.request("DELETE", "/v1/items/ghost", None).unwrap();
    assert_error(&r, 404, "unknown_item", "ghost");
    let r = c.request("GET", "/v1/items/fresh", None).unwrap();
    assert_eq!(r.json()["available"], false, "{}", r.text());
    // Another item added after the first takes the next id, before and after a restart.
    let r = put(
        &mut admin,
        "/v1/items/later",
        &json!({"features": [0.1, 0.2]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let later_score = |ranked: &Value| entry(ranked, "later").unwrap()["score"].as_f64().unwrap();
    let shown_later = rank_among(&mut c, "cat", &["item0", "later"]);
    let later = later_score(&shown_later);
    // A reload re-applies every item change to the model it swaps in.
    let r = post(&mut admin, "/v1/admin/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    // Another new user: `cat`'s history now holds the slate shown before.
    let reloaded = rank_among(&mut c, "cat-2", &["item0", "later"]);
    assert_eq!(later_score(&reloaded), later);
    let metrics = c.request("GET", "/metrics", None).unwrap().text();
    for needle in [
        "metarec_requests_total{method=\"PUT\",route=\"/v1/items/{key}\",status=\"201\"} 2",
        "metarec_requests_total{method=\"DELETE\",route=\"/v1/items/{key}\",status=\"404\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing `{needle}` in\n{metrics}");
    }
    server.stop();

    // Restarted: every item change is back, bit for bit.
    let server = start(config(&f.model, &f.db));
    let mut admin = server.client(Some(ADMIN));
    let mut c = server.client(Some(RANKER));
    let r = c.request("GET", "/v1/items/fresh", None).unwrap();
    assert_eq!(r.json()["available"], false, "{}", r.text());
    assert_eq!(r.json()["features"]["price_z"].as_f64(), Some(-2.0));
    let all = whole_catalog(&mut c, "ann");
    assert_eq!(all.len(), 40, "{all:?}");
    assert!(all.contains(&"later".to_owned()));
    assert_eq!(
        later_score(&rank_among(&mut c, "dan", &["item0", "later"])),
        later
    );
    // The added items kept their ids: feedback naming one on an event from before the restart
    // finds it in that event's stored slate.
    let fb = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": shown_later["event_id"], "item": "later", "kind": "click"}),
    );
    assert_eq!(fb.status, 200, "{}", fb.text());
    assert_eq!(fb.json()["duplicate"], false);
    // Brought back, it scores exactly as before it was retired.
    let r = put(&mut admin, "/v1/items/fresh", &json!({"available": true}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(score(&probe_among(&mut c, "ann", &among)), after_update);
    server.stop();
    // Greedy decisions log propensity 1 at every position.
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().items, 4);
    store
        .for_each_interaction(&mut |i| {
            assert!(i.decision.propensities.iter().all(|&p| p == 1.0), "{i:?}");
            assert_eq!(i.decision.policy_id, "adjusted");
            Ok(())
        })
        .unwrap();
}

#[test]
fn hostile_item_requests_get_a_json_4xx_and_change_nothing() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.max_added_items = 2;
    let server = start(config);
    let mut admin = server.client(Some(ADMIN));
    let before = rank_among(&mut admin, "ann", &["item0", "item1", "item2"]);
    let send =
        |c: &mut Client, path: &str, body: &[u8]| c.request("PUT", path, Some(body)).unwrap();
    for (path, body, status, code, needle) in [
        (
            "/v1/items/x",
            &b"[1, 2]"[..],
            422,
            "invalid_body",
            "JSON object",
        ),
        (
            "/v1/items/x",
            b"\"NaN\"",
            422,
            "invalid_body",
            "JSON object",
        ),
        (
            "/v1/items/x",
            b"{\"features\": {\"price_z\": \"NaN\"}}",
            422,
            "invalid_field",
            "features.price_z",
        ),
        (
            "/v1/items/x",
            b"{\"features\": {\"price_z\": NaN}}",
            400,
            "bad_json",
            "not valid JSON",
        ),
        (
            "/v1/items/x",
            b"{\"features\": {\"colour\": 1}}",
            422,
            "invalid_field",
            "no feature `colour`",
        ),
        (
            "/v1/items/x",
            b"{\"features\": {\"price_z\": 1, \"price_z\": 2}}",
            422,
            "invalid_field",
            "given twice",
        ),
        (
            "/v1/items/x",
            b"{\"features\": [1]}",
            422,
            "invalid_field",
            "1 values, but the catalog has 2",
        ),
        (
            "/v1/items/x",
            b"{\"features\": [1e39, 0]}",
            422,
            "invalid_field",
            "features[0]",
        ),
        (
            "/v1/items/x",
            b"{\"features\": 3}",
            422,
            "invalid_field",
            "features",
        ),
        (
            "/v1/items/x",
            b"{\"price\": -1}",
            422,
            "invalid_field",
            "price",
        ),
        (
            "/v1/items/x",
            b"{\"price\": 1e300}",
            422,
            "invalid_field",
            "price",
        ),
        (
            "/v1/items/x",
            b"{\"available\": \"yes\"}",
            422,
            "invalid_field",
            "available",
        ),
        (
            "/v1/items/x",
            b"{\"colour\": \"red\"}",
            422,
            "invalid_field",
            "colour",
        ),
        ("/v1/items/x", b"", 400, "bad_json", "empty"),
    ] {
        let r = send(&mut admin, path, body);
        assert_error(&r, status, code, needle);
    }
    let long_title = json!({"title": "t".repeat(2000)});
    assert_error(
        &put(&mut admin, "/v1/items/x", &long_title),
        422,
        "invalid_field",
        "title",
    );
    let huge = format!("/v1/items/{}", "k".repeat(300));
    assert_error(
        &put(&mut admin, &huge, &json!({})),
        422,
        "invalid_field",
        "key",
    );
    assert_error(
        &admin.request("DELETE", &huge, None).unwrap(),
        422,
        "invalid_field",
        "key",
    );
    assert_error(
        &put(&mut admin, "/v1/items/%FF", &json!({})),
        400,
        "bad_path",
        "UTF-8",
    );
    // Scope rank may read items but not change them.
    let mut ranker = server.client(Some(RANKER));
    assert_error(
        &put(&mut ranker, "/v1/items/x", &json!({})),
        403,
        "forbidden",
        "admin",
    );
    assert_error(
        &ranker.request("DELETE", "/v1/items/item0", None).unwrap(),
        403,
        "forbidden",
        "admin",
    );
    assert_error(
        &ranker.request("GET", "/v1/items/x", None).unwrap(),
        404,
        "unknown_item",
        "x",
    );
    // Nothing changed: the same rank for another new user, no item stored.
    let after = rank_among(&mut admin, "ann-2", &["item0", "item1", "item2"]);
    assert_eq!(scores(&before), scores(&after));
    // The limit on added items: updates still go through, new items are a 409.
    for key in ["a", "b"] {
        let r = put(&mut admin, &format!("/v1/items/{key}"), &json!({}));
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_error(
        &put(&mut admin, "/v1/items/c", &json!({})),
        409,
        "item_limit",
        "2 items",
    );
    let r = put(&mut admin, "/v1/items/a", &json!({"price": 1.0}));
    assert_eq!(r.status, 200, "{}", r.text());
    // Retired items keep their ids, so they still count.
    assert_eq!(
        admin.request("DELETE", "/v1/items/b", None).unwrap().status,
        200
    );
    assert_eq!(put(&mut admin, "/v1/items/c", &json!({})).status, 409);
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().items, 2);
}

/// Ranks `rounds` times in one fixed context (each for a new user), checks that each (item, position)
/// always logs the same propensity and that the empirical frequency of each matches it (a
/// chi-square statistic per position and a bound per cell).
fn check_empirical_propensities(c: &mut Client, candidates: &[&str], k: usize, rounds: usize) {
    use std::collections::HashMap;
    let mut logged: HashMap<(usize, String), f64> = HashMap::new();
    let mut counts: HashMap<(usize, String), usize> = HashMap::new();
    for round in 0..rounds {
        // A new user each round, so every round reads the same context (a shown slate enters
        // its user's history).
        let r = post(
            c,
            "/v1/rank",
            &json!({"user": format!("explorer-{round}"), "candidates": candidates, "slate_size": k}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let slate_p = v["slate_propensity"].as_f64().unwrap();
        assert!(slate_p > 0.0 && slate_p <= 1.0, "{v}");
        for e in v["slate"].as_array().unwrap() {
            let j = e["position"].as_u64().unwrap() as usize;
            let item = e["item"].as_str().unwrap().to_owned();
            let p = e["propensity"].as_f64().unwrap();
            assert!(p > 0.0 && p <= 1.0, "{e}");
            let first = *logged.entry((j, item.clone())).or_insert(p);
            assert!((first - p).abs() < 1e-12, "{j} {item}: {first} then {p}");
            *counts.entry((j, item)).or_default() += 1;
        }
    }
    // A greedy server would pass the frequency checks trivially (one item per position,
    // propensity 1), so the draws must have varied.
    assert!(logged.len() > 2 * k, "no exploration: {logged:?}");
    let n = rounds as f64;
    for j in 0..k {
        let mut chi2 = 0.0;
        let mut total = 0.0;
        for ((pos, item), p) in &logged {
            if *pos != j {
                continue;
            }
            total += p;
            let observed = counts[&(j, item.clone())] as f64;
            let expected = n * p;
            // Cells expected fewer than five times are left to the bound below: one rare hit
            // would dominate the statistic.
            if expected >= 5.0 {
                chi2 += (observed - expected).powi(2) / expected;
            }
            let sd = (n * p * (1.0 - p)).sqrt().max(1.0);
            assert!(
                (observed - expected).abs() < 5.0 * sd,
                "position {j}, {item}: {observed} shown, {expected} expected"
            );
        }
        // The marginals of a position add up to 1 over all candidates; those never drawn at
        // it in so many rounds can only hold a sliver of that.
        assert!(
            total <= 1.0 + 1e-9 && total > 0.99,
            "position {j}: marginals add to {total}"
        );
        // At most 4 degrees of freedom (5 candidates): 30 is far in the tail (p < 1e-5).
        assert!(chi2 < 30.0, "position {j}: chi-square {chi2}");
    }
}

#[test]
fn exploration_logs_the_exact_probability_of_each_item_at_each_position() {
    use metarec_neural::adjust::Exploration;
    let candidates = ["item0", "item1", "item2", "item3", "item4"];
    for (explore, policy) in [
        (Exploration::Epsilon(0.5), "adjusted/epsilon:0.5"),
        (
            Exploration::Softmax {
                temperature: 1.0,
                draws: 50,
            },
            "adjusted/softmax:1",
        ),
    ] {
        let f = fixture(false);
        let mut config = config(&f.model, &f.db);
        config.explore = explore;
        config.durability = metarec_serve::Durability::Process;
        let server = start(config);
        let mut c = server.client(Some(RANKER));
        // Two positions under epsilon-greedy; three under softmax, all exact for five
        // candidates (position 2 has a closed form up to 256).
        let k = if policy.contains("epsilon") { 2 } else { 3 };
        check_empirical_propensities(&mut c, &candidates, k, 1500);
        server.stop();
        let mut store = SqliteStore::open(&f.db).unwrap();
        let mut seen = 0;
        store
            .for_each_interaction(&mut |i| {
                assert_eq!(i.decision.policy_id, policy);
                assert!(
                    i.decision.propensities.iter().all(|&p| p > 0.0 && p <= 1.0),
                    "{i:?}"
                );
                assert!(i.decision.slate_propensity.is_some());
                seen += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 1500);
    }
}

#[test]
fn a_gradient_model_explores_and_ranks_added_items() {
    use metarec_neural::adjust::Exploration;
    let f = gradient_fixture();
    let mut config = config(&f.model, &f.db);
    config.explore = Exploration::Softmax {
        temperature: 1.0,
        draws: 20,
    };
    let server = start(config);
    let mut admin = server.client(Some(ADMIN));
    let r = put(
        &mut admin,
        "/v1/items/fresh",
        &json!({"features": [0.3, -0.4]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let among = ["item0", "item1", "item2", "item3", "fresh"];
    let ranked = rank_among(&mut admin, "gil", &among);
    assert_parts_sum_to_scores(&ranked);
    assert!(
        entry(&ranked, "fresh").unwrap()["score"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    // Softmax over five items: every propensity is a probability below 1.
    for e in ranked["slate"].as_array().unwrap() {
        let p = e["propensity"].as_f64().unwrap();
        assert!(p > 0.0 && p < 1.0, "{e}");
    }
    let fb = post(
        &mut admin,
        "/v1/feedback",
        &json!({"event_id": ranked["event_id"], "item": "fresh", "kind": "click"}),
    );
    assert_eq!(fb.status, 200, "{}", fb.text());
}

#[test]
fn a_version_1_database_gains_the_items_table_in_place() {
    let f = fixture(false);
    {
        let conn = rusqlite::Connection::open(&f.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE decisions (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, user TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, resolved INTEGER NOT NULL DEFAULT 0, reward REAL, interaction TEXT NOT NULL);
             CREATE TABLE users (user TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ms INTEGER NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let server = start(config(&f.model, &f.db));
    let mut admin = server.client(Some(ADMIN));
    let r = put(&mut admin, "/v1/items/fresh", &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    server.stop();
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, metarec_serve::store::SCHEMA_VERSION);
    let items: i64 = conn
        .query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(items, 1);
}

#[test]
fn a_version_3_database_loses_the_index_of_feedback_by_user() {
    let f = fixture(false);
    drop(SqliteStore::open(&f.db).unwrap());
    let indexes = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'feedback_user'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    {
        let conn = rusqlite::Connection::open(&f.db).unwrap();
        assert_eq!(indexes(&conn), 0, "a new database has no such index");
        conn.execute_batch(
            "CREATE INDEX feedback_user ON feedback(user); PRAGMA user_version = 3;",
        )
        .unwrap();
        assert_eq!(indexes(&conn), 1);
    }
    drop(SqliteStore::open(&f.db).unwrap());
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    assert_eq!(indexes(&conn), 0);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, metarec_serve::store::SCHEMA_VERSION);
}

#[test]
fn the_exposition_parser_rejects_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\",y=\"\"} 1.5e3\n";
    assert_eq!(
        parse_exposition(good),
        [Sample {
            name: "a_total".to_owned(),
            labels: vec![
                ("x".to_owned(), "q\"".to_owned()),
                ("y".to_owned(), String::new())
            ],
            value: 1500.0,
        }]
    );
    for bad in [
        // A sample before its type, a value that is not a number, a label without quotes,
        // an unclosed label set, a stray comment and two types for one name.
        "a 1\n",
        "# TYPE a gauge\na one\n",
        "# TYPE a gauge\na{x=1} 1\n",
        "# TYPE a gauge\na{x=\"1\" 1\n",
        "# TYPE a gauge\n# what\na 1\n",
        "# TYPE a gauge\n# TYPE a counter\n",
    ] {
        let parsed = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(parsed.is_err(), "accepted {bad:?}");
    }
}
