//! `metarec serve` as a process: start on port 0, rank and feedback over HTTP, SIGKILL under a
//! feedback load, restart, and check that every acknowledged feedback is in the database exactly
//! once; `metarec log export` reads the database back as an interaction log.

mod common;

use common::{meta_train_tiny, metarec, serve_with, train_tiny_model};
use metarec_serve::client::Client;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-admin-token-0123";

/// Starts `metarec serve` on a free port and returns it with its address.
fn serve(data_dir: &Path, model: &Path, db: &Path, durability: &str) -> (Child, SocketAddr) {
    serve_with(data_dir, model, db, TOKEN, &["--durability", durability])
}

fn post(c: &mut Client, path: &str, body: &Value) -> metarec_serve::client::Response {
    c.request("POST", path, Some(body.to_string().as_bytes()))
        .unwrap()
}

#[test]
fn acknowledged_feedback_survives_sigkill_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let model = tmp.path().join("model");
    let m = model.to_str().unwrap();
    train_tiny_model(data, &model);
    meta_train_tiny(data, &model);
    // Both durability levels must keep every acknowledged event through a SIGKILL: `process`
    // skips the fsync, which only a power cut could punish.
    let quick = tmp.path().join("process.db");
    let (acked_quick, _) = kill_under_feedback_and_restart(data, &model, &quick, "process");
    assert!(!acked_quick.is_empty());
    let db = tmp.path().join("metarec.db");
    let (acked, stored) = kill_under_feedback_and_restart(data, &model, &db, "machine");

    // The exported log carries each acknowledged click in its decision's feedback.
    let log = tmp.path().join("log.jsonl");
    let out = metarec(
        data,
        &[
            "-q",
            "log",
            "export",
            "--db",
            db.to_str().unwrap(),
            "--out",
            log.to_str().unwrap(),
            "--model",
            m,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 60 interactions"));
    // The log names the served catalog's items by key, so it reads back with the model's
    // catalog and nothing else.
    let catalog = metarec_neural::checkpoint::read_catalog(&model).unwrap();
    let (records, report) =
        metarec_data::log::read_log(&log, &catalog, &metarec_data::LoadOptions::default()).unwrap();
    assert!(report.notes.is_empty(), "{report}");
    let clicks: usize = records.iter().map(|r| r.feedback.click_count()).sum();
    assert_eq!(clicks, stored as usize);
    for (event, position) in &acked {
        let r = records
            .iter()
            .find(|r| &r.decision.event_id.0 == event)
            .unwrap();
        assert!(r.feedback.clicks[*position as usize]);
    }

    // The served log is judged off-policy with the model's catalog: a baseline frozen, the
    // adjusted policy replayed over each user's rounds; the server's own value is the reference.
    let out = metarec(
        data,
        &[
            "-q",
            "ope",
            "--log",
            log.to_str().unwrap(),
            "--model",
            m,
            "--policy",
            &format!("random,adjusted:{m}"),
            "--resamples",
            "20",
            "--policy-draws",
            "5",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(60 rounds, 300 entries, 5 positions"),
        "{text}"
    );
    assert!(text.contains("policy random (frozen"), "{text}");
    assert!(
        text.contains(&format!(
            "policy adjusted:{m} (replayed over each user's rounds"
        )),
        "{text}"
    );
    assert_eq!(text.matches("logging (on-policy)").count(), 2, "{text}");
    explore_and_item_flags_reach_the_server(data, &model, &tmp.path().join("explore.db"));
}

/// `--explore epsilon:1` ranks uniformly at random, logging propensity `1 / n` at each
/// position, and `--max-added-items 1` lets one item be added over the API and no more.
fn explore_and_item_flags_reach_the_server(data: &Path, model: &Path, db: &Path) {
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(model.join("catalog.json")).unwrap()).unwrap();
    let keys: Vec<&str> = catalog["keys"]
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 4);
    let (mut child, addr) = serve_with(
        data,
        model,
        db,
        TOKEN,
        &["--explore", "epsilon:1", "--max-added-items", "1"],
    );
    let mut c = Client::new(addr, Some(TOKEN));
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "u", "candidates": keys, "slate_size": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ranked = r.json();
    for e in ranked["slate"].as_array().unwrap() {
        assert_eq!(e["propensity"].as_f64(), Some(0.25), "{ranked}");
    }
    let slate_p = ranked["slate_propensity"].as_f64().unwrap();
    assert!((slate_p - 1.0 / 12.0).abs() < 1e-12, "{ranked}");
    let put = |c: &mut Client, key: &str| {
        c.request("PUT", &format!("/v1/items/{key}"), Some(b"{}"))
            .unwrap()
    };
    assert_eq!(put(&mut c, "new-sku").status, 201);
    let r = put(&mut c, "another-sku");
    assert_eq!(r.status, 409, "{}", r.text());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts the server on `db`, ranks 60 slates, kills it with SIGKILL while four clients send
/// clicks, restarts it and checks that every acknowledged click is stored exactly once and is
/// recognised as a duplicate. Returns the acknowledged clicks and the stored count.
fn kill_under_feedback_and_restart(
    data: &Path,
    model: &Path,
    db: &Path,
    durability: &str,
) -> (Vec<(String, u32)>, i64) {
    let (mut child, addr) = serve(data, model, db, durability);
    let mut c = Client::new(addr, Some(TOKEN));
    // Events to give feedback on: 60 slates of 5 for 6 users.
    let mut events = Vec::new();
    for n in 0..60 {
        let r = post(
            &mut c,
            "/v1/rank",
            &json!({"user": format!("user{}", n % 6), "slate_size": 5}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        events.push(r.json()["event_id"].as_str().unwrap().to_owned());
    }
    // Four clients send clicks as fast as they can, recording what the server acknowledged;
    // the server is killed while they run.
    let acked = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let events = events.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut c = Client::new(addr, Some(TOKEN));
                for (n, event) in events.iter().enumerate().skip(t).step_by(4) {
                    for position in 0..5u32 {
                        let body =
                            json!({"event_id": event, "position": position, "kind": "click"});
                        match c.request("POST", "/v1/feedback", Some(body.to_string().as_bytes())) {
                            Ok(r) if r.status == 200 => {
                                acked.lock().unwrap().push((event.clone(), position))
                            }
                            Ok(r) => panic!("feedback {n}/{position}: {}", r.text()),
                            // The server is gone.
                            Err(_) => return,
                        }
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    while acked.lock().unwrap().len() < 40 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "only {} acknowledged", acked.len());
    assert!(acked.len() < 300, "the kill came after the whole load");

    // After a restart (SQLite recovers the WAL), every acknowledged feedback is there once.
    let (mut child, addr) = serve(data, model, db, durability);
    let mut c = Client::new(addr, Some(TOKEN));
    let conn = rusqlite::Connection::open(db).unwrap();
    for (event, position) in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM feedback WHERE event_id = ?1 AND position = ?2 AND kind = 'click'",
                rusqlite::params![event, position],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{event} position {position}");
    }
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM feedback", [], |r| r.get(0))
        .unwrap();
    // Feedback in flight at the kill may have been committed without its answer arriving, but
    // never more than one per client.
    assert!(stored as usize >= acked.len() && stored as usize <= acked.len() + 4);
    // Repeating an acknowledged feedback is recognised as a duplicate by the restarted server.
    let (event, position) = &acked[0];
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": event, "position": position, "kind": "click"}),
    );
    assert_eq!(r.json()["duplicate"], true, "{}", r.text());
    child.kill().unwrap();
    child.wait().unwrap();
    (acked, stored)
}

#[test]
fn serve_refuses_to_start_without_keys_or_with_a_missing_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["-q", "serve", "--model"])
        .arg(tmp.path().join("nothing"))
        .env_remove("METAREC_API_KEYS")
        .env("METAREC_PSEUDONYM_KEY", "crash-test-secret-0123456")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("METAREC_API_KEYS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["-q", "serve", "--model"])
        .arg(tmp.path().join("nothing"))
        .env("METAREC_API_KEYS", format!("admin:{TOKEN}"))
        .env("METAREC_PSEUDONYM_KEY", "crash-test-secret-0123456")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("manifest.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs metarec in `cwd` with `data_dir`, asserting success, and returns standard output.
fn ok(cwd: &Path, data_dir: &Path, args: &[&str]) -> String {
    let out = common::metarec_in(cwd, data_dir, args);
    assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
    common::stdout(&out)
}

#[test]
fn a_model_trained_on_a_scenario_file_needs_neither_the_file_nor_the_data_afterwards() {
    let data = common::data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A scenario of its own: the small preset with another seed and a name of its own, in a
    // file that is deleted right after training.
    let preset = ok(dir, &data, &["-q", "sim", "show", "--scenario", "small"]);
    let mine: String = preset
        .lines()
        .map(|l| {
            if l.starts_with("name = ") {
                "name = \"my-shop\"".to_owned()
            } else if l.starts_with("seed = ") {
                "seed = 4242".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(mine.contains("name = \"my-shop\"") && mine.contains("seed = 4242"));
    std::fs::write(dir.join("my.toml"), mine).unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "-q",
            "train",
            "--iterations",
            "2",
            "--batch",
            "8",
            "--out",
            "m",
        ];
        args.extend_from_slice(extra);
        ok(dir, &data, &args)
    };
    train(&["--scenario", "my.toml"]);
    std::fs::remove_file(dir.join("my.toml")).unwrap();
    train(&["--resume"]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["iterations"], 4);
    assert_eq!(manifest["scenario"], "my-shop");
    ok(
        dir,
        &data,
        &[
            "-q",
            "meta-train",
            "--model",
            "m",
            "--users",
            "10",
            "--grid",
            "0.3",
        ],
    );
    ok(
        dir,
        &data,
        &[
            "-q",
            "arena",
            "--policies",
            "random,adjusted:m,served:m",
            "--users",
            "5",
            "--seeds",
            "1",
            "--json",
            "arena.json",
        ],
    );
    let arena: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("arena.json")).unwrap()).unwrap();
    assert_eq!(arena["scenario"], "my-shop", "{arena}");
    // The model as a `metarec serve` child serves it, played over HTTP: every user was shown
    // slates (the server ranked them and took their feedback). A greedy adjuster shows each
    // new user the same first slate served as in process (Thompson sampling draws its own).
    let played = |name: &str| {
        arena["contestants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["policy"] == name)
            .unwrap_or_else(|| panic!("no {name} in {arena}"))
            .clone()
    };
    let (served, adjusted) = (played("served:m"), played("adjusted:m"));
    assert_eq!(served["users"], 5, "{served}");
    assert_eq!(served["oracle_share"][0]["n"], 5, "{served}");
    assert!(served["reward"]["mean"].as_f64().unwrap().is_finite());
    let adjuster: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/adjuster.json")).unwrap())
            .unwrap();
    if adjuster["config"]["thompson"] == false {
        assert_eq!(
            served["oracle_share"][0]["mean"], adjusted["oracle_share"][0]["mean"],
            "{served}\n{adjusted}"
        );
    }

    // Served with an empty data directory: no Online Retail, no text encoder.
    let empty = dir.join("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    let (mut child, addr) = serve(&empty, &dir.join("m"), &dir.join("m.db"), "process");
    let mut c = Client::new(addr, Some(TOKEN));
    let r = post(&mut c, "/v1/rank", &json!({"user": "u1", "slate_size": 3}));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let catalog = std::fs::read_to_string(dir.join("m/catalog.json")).unwrap();
    let slate = body["slate"].as_array().unwrap();
    assert_eq!(slate.len(), 3);
    for entry in slate {
        let key = entry["item"].as_str().unwrap();
        assert!(
            catalog.contains(&format!("\"{key}\"")),
            "{key} is not in the bundle's catalog"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        std::fs::read_dir(&empty).unwrap().next().is_none(),
        "serving wrote into the data directory"
    );

    // Trained further, the model no longer matches its adjuster: refused, naming the file.
    train(&["--resume"]);
    let arena = common::metarec_in(
        dir,
        &data,
        &[
            "-q",
            "arena",
            "--policies",
            "adjusted:m",
            "--users",
            "2",
            "--seeds",
            "1",
        ],
    );
    let served = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .current_dir(dir)
        .args([
            "-q",
            "--data-dir",
            "empty-data",
            "serve",
            "--model",
            "m",
            "--db",
            "n.db",
        ])
        .env("METAREC_API_KEYS", format!("admin:{TOKEN}"))
        .env("METAREC_PSEUDONYM_KEY", "crash-test-secret-0123456")
        .output()
        .unwrap();
    for out in [arena, served] {
        assert_eq!(out.status.code(), Some(1));
        let err = common::stderr(&out);
        assert!(
            err.contains("adjuster.json") && err.contains("meta-train"),
            "{err}"
        );
    }
}
