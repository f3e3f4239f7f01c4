//! The shared store against a real PostgreSQL: two server replicas on one database.
//!
//! `scripts/test` (README's test command) starts a throwaway PostgreSQL (`scripts/pg`) and
//! passes its URL in `METAREC_TEST_PG`; every test here creates a database of its own on it, so
//! tests run in parallel without seeing each other's rows. Run alone, without that variable,
//! these tests fail and say how to get one: they are never skipped.

mod common;
mod pg;

use common::*;
use metarec_serve::client::Client;
use metarec_serve::store::{PG_SCHEMA_VERSION, PgConfig, PostgresStore, Store};
use pg::database;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A replica: a server on the shared database.
fn replica(f: &Fixture, url: &str, window_ms: u64) -> Running {
    let mut c = config(&f.model, &f.db);
    c.postgres = Some(url.to_owned());
    c.reward_window = std::time::Duration::from_millis(window_ms);
    c.history_limit = 10_000;
    start(c)
}

fn store(url: &str) -> PostgresStore {
    PostgresStore::connect(&PgConfig::parse(url).unwrap()).unwrap()
}

fn feedback(c: &mut Client, event: &str, position: u64) -> Value {
    let r = post(
        c,
        "/v1/feedback",
        &json!({"event_id": event, "position": position, "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn replicas_migrate_once_and_a_newer_schema_is_refused() {
    let url = database("migrate_once");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || store(&url).schema_version().unwrap())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), PG_SCHEMA_VERSION);
    }
    let mut s = store(&url);
    assert_eq!(s.counts().unwrap().decisions, 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let applied: i64 = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let n: i64 = client
            .query_one("SELECT COUNT(*) FROM metarec_schema", &[])
            .await
            .unwrap()
            .get(0);
        client
            .batch_execute("INSERT INTO metarec_schema VALUES (999, 0)")
            .await
            .unwrap();
        n
    });
    assert_eq!(applied, PG_SCHEMA_VERSION);
    let err = PostgresStore::connect(&PgConfig::parse(&url).unwrap())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_bad_url_or_an_unreachable_database_is_a_clear_error_without_the_password() {
    let err = PgConfig::parse("postgres://u:hunter2@127.0.0.1:1")
        .err()
        .unwrap();
    assert!(err.to_string().contains("names no database"), "{err}");
    let config = PgConfig::parse("postgres://u:hunter2@127.0.0.1:1/db").unwrap();
    let err = PostgresStore::connect(&config).err().expect("unreachable");
    let text = err.to_string();
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_rank_on_one_replica_sees_feedback_acknowledged_by_another() {
    let url = database("cross_replica");
    let f = fixture(false);
    let a = replica(&f, &url, 600_000);
    let b = replica(&f, &url, 600_000);
    let mut ca = a.client(Some(RANKER));
    let mut cb = b.client(Some(RANKER));
    // B holds the user's prior in memory before anything happens on A.
    let ranked_before = rank(&mut cb, "carol");
    let before = scores(&ranked_before);
    assert!(before.iter().all(|s| s.2 == 0.0));
    let first = rank(&mut ca, "carol");
    let event = first["event_id"].as_str().unwrap().to_owned();
    assert_eq!(feedback(&mut ca, &event, 2)["duplicate"], false);
    // The same feedback sent to the other replica is a duplicate, not a second click.
    assert_eq!(feedback(&mut cb, &event, 2)["duplicate"], true);
    // A's rank is deferred (never shown), so that both ranks read the same history: a shown
    // slate's items enter it as passes.
    let deferred = post(
        &mut ca,
        "/v1/rank",
        &json!({"user": "carol", "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5, "defer_activation": true}),
    );
    assert_eq!(deferred.status, 200, "{}", deferred.text());
    let on_a = scores(&deferred.json());
    let ranked_b = rank(&mut cb, "carol");
    let on_b = scores(&ranked_b);
    assert!(
        on_b.iter().any(|s| s.2 != 0.0),
        "B's rank shows no adaptation: {on_b:?}"
    );
    assert_eq!(on_a, on_b, "the replicas rank the same user differently");
    assert_ne!(before, on_b);
    // B read the user's state from the shared database for each of its ranks and for the
    // duplicate feedback, and committed a group for each request.
    let text = cb.request("GET", "/metrics", None).unwrap().text();
    let samples = parse_exposition(&text);
    check_histograms(&samples);
    let count = |op: &str| sample(&samples, "metarec_store_seconds_count", &[("op", op)]);
    assert!(count("read_user").is_some_and(|n| n >= 2.0), "{text}");
    assert!(count("commit").is_some_and(|n| n >= 3.0), "{text}");
    let mut shared = store(&url);
    let counts = shared.counts().unwrap();
    assert_eq!(counts.feedback, 1);
    assert_eq!(counts.decisions, 4);
    // B's rank read the history and visit that B's first slate, A's slate and its click left
    // in the shared record: both slates as passed over, the clicked item marked, two slates
    // into the visit.
    let row = |id: &Value| {
        store(&url)
            .decision(id.as_str().unwrap())
            .unwrap()
            .unwrap()
            .interaction
    };
    let session = row(&ranked_b["event_id"]).context.session;
    let mut expected: Vec<metarec_core::PastEvent> = [&ranked_before, &first]
        .iter()
        .flat_map(|v| row(&v["event_id"]).decision.slate.items().to_vec())
        .map(|item| metarec_core::PastEvent {
            item,
            click: false,
            purchase: false,
        })
        .collect();
    expected[5 + 2].click = true;
    assert_eq!(
        (session.session, session.step, session.visit_events),
        (0, 2, Some(10))
    );
    assert_eq!(session.history, expected);
    drop(shared);
    // Item changes are refused while the database is shared, with a reason.
    let mut admin = a.client(Some(ADMIN));
    let r = admin
        .request(
            "PUT",
            "/v1/items/newthing",
            Some(json!({"features": [0.1, 0.2]}).to_string().as_bytes()),
        )
        .unwrap();
    assert_error(&r, 409, "items_shared", "share the database");
}

#[test]
fn forgetting_a_user_on_one_replica_removes_the_feedback_taken_by_another() {
    let url = database("forget_across");
    let f = fixture(false);
    let a = replica(&f, &url, 600_000);
    let b = replica(&f, &url, 600_000);
    let mut ca = a.client(Some(RANKER));
    let mut cb = b.client(Some(RANKER));
    for user in ["carol", "dave"] {
        let event = rank(&mut ca, user)["event_id"].as_str().unwrap().to_owned();
        assert_eq!(feedback(&mut cb, &event, 1)["duplicate"], false);
    }
    let mut admin = a.client(Some(ADMIN));
    let r = admin.request("DELETE", "/v1/users/carol", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["events_deleted"], 1);
    let counts = store(&url).counts().unwrap();
    // dave's decision, click and state are all that is left.
    assert_eq!((counts.decisions, counts.feedback, counts.users), (1, 1, 1));
}

#[test]
fn concurrent_feedback_on_two_replicas_loses_no_update_and_closes_each_event_once() {
    let url = database("concurrent");
    let f = fixture(false);
    // A short reward window, so both replicas' sweepers close events while the load runs.
    let a = replica(&f, &url, 300);
    let b = replica(&f, &url, 300);
    let addrs = [a.addr, b.addr];
    let users = ["u0", "u1", "u2"];
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut clients: Vec<Client> = addrs
                    .iter()
                    .map(|&addr| Client::new(addr, Some(RANKER)))
                    .collect();
                let mut clicks: HashMap<&str, u64> = HashMap::new();
                let mut ranks: HashMap<&str, u64> = HashMap::new();
                for k in 0..20 {
                    let user = users[(t + k) % users.len()];
                    // Rank on one replica, answer on the other.
                    let ranked = rank(&mut clients[k % 2], user);
                    *ranks.entry(user).or_default() += 1;
                    let event = ranked["event_id"].as_str().unwrap().to_owned();
                    let r = post(
                        &mut clients[(k + 1) % 2],
                        "/v1/feedback",
                        &json!({"event_id": event, "position": k % 5, "kind": "click"}),
                    );
                    // An event whose short window closed before its feedback arrived is
                    // refused; every acknowledged click must be in the state.
                    if r.status == 200 {
                        *clicks.entry(user).or_default() += 1;
                    } else {
                        assert_eq!(r.json()["error"]["code"], "event_expired", "{}", r.text());
                    }
                }
                (clicks, ranks)
            })
        })
        .collect();
    let mut clicks: HashMap<&str, u64> = HashMap::new();
    let mut ranks: HashMap<&str, u64> = HashMap::new();
    for t in threads {
        let (c, r) = t.join().unwrap();
        for (u, n) in c {
            *clicks.entry(u).or_default() += n;
        }
        for (u, n) in r {
            *ranks.entry(u).or_default() += n;
        }
    }
    // Every event's window closes and one of the two sweepers folds it in.
    let mut s = store(&url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.unresolved_count(i64::MAX).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "events stay open");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop((a, b));
    let states: HashMap<String, String> = s.users().unwrap().into_iter().collect();
    assert_eq!(states.len(), users.len());
    let pseudonyms = metarec_serve::auth::Pseudonymizer::new(SECRET.as_bytes()).unwrap();
    let mut total = 0;
    for user in users {
        let text = &states[&pseudonyms.pseudonym(user)];
        let v: Value = serde_json::from_str(text).unwrap();
        // The stored history is packed, one code per event; it reads back as events.
        let history: Vec<metarec_core::PastEvent> =
            serde_json::from_value(v["history"].clone()).unwrap();
        let clicked = history.iter().filter(|e| e.click).count() as u64;
        total += clicked;
        // Every acknowledged click is in the state once (none lost to a concurrent update on
        // the other replica), and every slate was closed once: its unclicked items were added
        // as negatives by exactly one of the two sweepers.
        assert_eq!(clicked, clicks[user], "user {user}: clicks in the state");
        assert_eq!(
            v["slates"].as_u64().unwrap(),
            ranks[user],
            "user {user}: closed slates"
        );
        assert_eq!(
            history.len() as u64,
            5 * ranks[user],
            "user {user}: history"
        );
    }
    let counts = s.counts().unwrap();
    assert_eq!(counts.decisions, ranks.values().sum::<u64>());
    assert_eq!(counts.feedback, total);
}

#[test]
fn client_event_ids_rewards_and_activation_hold_across_replicas() {
    let url = database("events_across_replicas");
    let f = fixture(true);
    let (a, b) = (replica(&f, &url, 60_000), replica(&f, &url, 60_000));
    let (mut ca, mut cb) = (a.client(Some(RANKER)), b.client(Some(RANKER)));
    let body = json!({"user": "pat", "event_id": "cart-9", "candidates": candidates(), "slate_size": 5, "defer_activation": true});
    // A retry that lands on the other replica gets the first answer, not a second event.
    let first = post(&mut ca, "/v1/rank", &body);
    assert_eq!(first.status, 200, "{}", first.text());
    let again = post(&mut cb, "/v1/rank", &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.text(), first.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let mut other = body.clone();
    other["user"] = json!("quin");
    assert_error(
        &post(&mut cb, "/v1/rank", &other),
        409,
        "event_id_taken",
        "cart-9",
    );
    // Activated on B, rewarded on A, clicked on B.
    let r = cb
        .request("POST", "/v1/events/cart-9/activate", None)
        .unwrap();
    assert_eq!(r.json()["already_active"], false, "{}", r.text());
    let r = post(
        &mut ca,
        "/v1/reward",
        &json!({"event_id": "cart-9", "value": 2.5}),
    );
    assert_eq!(r.json()["duplicate"], false, "{}", r.text());
    let r = post(
        &mut cb,
        "/v1/reward",
        &json!({"event_id": "cart-9", "value": 9.0}),
    );
    assert_eq!(r.json()["duplicate"], true, "{}", r.text());
    feedback(&mut cb, "cart-9", 0);
    drop((a, b));
    let mut s = store(&url);
    assert_eq!(s.counts().unwrap().decisions, 1);
    let row = s.decision("cart-9").unwrap().unwrap();
    assert!(row.active);
    assert_eq!(row.reward, Some(2.5));
    assert!(row.interaction.feedback.clicks[0]);
}

#[test]
fn concurrent_retries_of_one_event_id_on_two_replicas_store_one_decision() {
    let url = database("retry_storm");
    let f = fixture(true);
    let replicas = [replica(&f, &url, 60_000), replica(&f, &url, 60_000)];
    for round in 0..5 {
        let body = json!({"user": "rory", "event_id": format!("storm-{round}"), "candidates": candidates(), "slate_size": 5});
        let clients = (0..12)
            .map(|k| replicas[k % 2].client(Some(RANKER)))
            .collect();
        let answers = post_all(clients, "/v1/rank", &body);
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    }
    drop(replicas);
    assert_eq!(store(&url).counts().unwrap().decisions, 5);
}
