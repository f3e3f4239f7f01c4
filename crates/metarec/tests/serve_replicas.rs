//! Two `metarec serve` processes sharing one PostgreSQL database behind a client that fails
//! over, as a load balancer would: one replica is killed with SIGKILL under a rank and feedback
//! load, and every acknowledged decision and feedback must be in the database, each feedback
//! once.
//!
//! The database comes from `METAREC_TEST_PG` (README's test command, scripts/test, starts a
//! throwaway PostgreSQL and sets it); without it this test fails and says so.

mod common;
#[path = "../../metarec-serve/tests/pg/mod.rs"]
mod pg;

use common::{meta_train_tiny, serve_with, train_tiny_model};
use metarec_serve::client::Client;
use metarec_serve::store::{PgConfig, PostgresStore, Store};
use pg::database;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "replica-test-admin-token-0123";

#[test]
fn killing_one_of_two_replicas_loses_no_acknowledged_decision_or_feedback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let model = tmp.path().join("model");
    train_tiny_model(data, &model);
    meta_train_tiny(data, &model);
    let url = database("replica_kill");
    let db = std::path::PathBuf::from(&url);
    let (mut a, addr_a) = serve_with(data, &model, &db, TOKEN, &[]);
    let (mut b, addr_b) = serve_with(data, &model, &db, TOKEN, &[]);

    // Four clients rank and click on both replicas in turn; a request whose replica is gone is
    // sent again to the other one, as a load balancer retries. What each answer acknowledged
    // is recorded.
    let a_dead = Arc::new(AtomicBool::new(false));
    let decisions = Arc::new(Mutex::new(Vec::<String>::new()));
    let clicks = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (a_dead, decisions, clicks) = (a_dead.clone(), decisions.clone(), clicks.clone());
            std::thread::spawn(move || {
                let mut on_a = Client::new(addr_a, Some(TOKEN));
                let mut on_b = Client::new(addr_b, Some(TOKEN));
                let mut send = |n: usize, path: &str, body: serde_json::Value| {
                    let bytes = body.to_string();
                    if n % 2 == 0 && !a_dead.load(Ordering::SeqCst) {
                        match on_a.request("POST", path, Some(bytes.as_bytes())) {
                            Ok(r) => return r,
                            Err(_) => a_dead.store(true, Ordering::SeqCst),
                        }
                    }
                    on_b.request("POST", path, Some(bytes.as_bytes()))
                        .expect("replica B answers")
                };
                for n in 0..40 {
                    let user = format!("user{}", (t * 40 + n) % 7);
                    let r = send(n, "/v1/rank", json!({"user": user, "slate_size": 5}));
                    assert_eq!(r.status, 200, "{}", r.text());
                    let event = r.json()["event_id"].as_str().unwrap().to_owned();
                    decisions.lock().unwrap().push(event.clone());
                    let position = (n % 5) as u32;
                    let body = json!({"event_id": event, "position": position, "kind": "click"});
                    // The click goes to the other replica than the rank did.
                    let r = send(n + 1, "/v1/feedback", body);
                    assert_eq!(r.status, 200, "{}", r.text());
                    clicks.lock().unwrap().push((event, position));
                }
            })
        })
        .collect();
    let start = Instant::now();
    while clicks.lock().unwrap().len() < 30 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    a.kill().unwrap(); // SIGKILL on Unix
    a.wait().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        a_dead.load(Ordering::SeqCst),
        "no request reached the killed replica"
    );
    let decisions = decisions.lock().unwrap().clone();
    let clicks = clicks.lock().unwrap().clone();
    assert_eq!(clicks.len(), 160);

    let mut store = PostgresStore::connect(&PgConfig::parse(&url).unwrap()).unwrap();
    for event in &decisions {
        assert!(
            store.decision(event).unwrap().is_some(),
            "decision {event} lost"
        );
    }
    for (event, position) in &clicks {
        let row = store.decision(event).unwrap().unwrap();
        assert!(
            row.interaction.feedback.clicks[*position as usize],
            "click {event}/{position} lost"
        );
    }
    let counts = store.counts().unwrap();
    // Each acknowledged click is stored once, even one that the killed replica committed
    // without answering and the other replica then acknowledged as a duplicate.
    let distinct: HashSet<_> = clicks.iter().collect();
    assert_eq!(distinct.len(), clicks.len());
    assert_eq!(counts.feedback, clicks.len() as u64);
    // A rank in flight at the kill may have been committed unanswered and then ranked again on
    // the other replica: at most one per client.
    assert!(
        counts.decisions >= decisions.len() as u64
            && counts.decisions <= decisions.len() as u64 + 4,
        "{} stored, {} acknowledged",
        counts.decisions,
        decisions.len()
    );
    b.kill().unwrap();
    b.wait().unwrap();
}
