//! The event API a shop coming from a hosted Rank / Reward service expects, against the real
//! server on a loopback port: client-supplied event ids (an idempotent rank), numeric rewards,
//! context of any JSON shape, deferred activation and apprentice mode.

use metarec_serve::client::Client;
use metarec_serve::store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

fn rank_body(user: &str, extra: Value) -> Value {
    let mut body = json!({"user": user, "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn metric(c: &mut Client, name: &str) -> f64 {
    let text = c.request("GET", "/metrics", None).unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

#[test]
fn a_client_event_id_makes_rank_idempotent_and_cannot_be_taken_twice() {
    let f = fixture(true);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    // Thompson sampling: two decisions for one user differ, so an equal answer is a replay.
    let body = rank_body("alice", json!({"event_id": "order-1"}));
    let first = post(&mut c, "/v1/rank", &body);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["event_id"], "order-1");
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post(&mut c, "/v1/rank", &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.text(), first.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // Fresh ids give fresh decisions meanwhile.
    let other = post(
        &mut c,
        "/v1/rank",
        &rank_body("alice", json!({"event_id": "order-2"})),
    );
    assert_eq!(other.status, 200);
    // The id is taken for another user, and for another key.
    let r = post(
        &mut c,
        "/v1/rank",
        &rank_body("bob", json!({"event_id": "order-1"})),
    );
    assert_error(&r, 409, "event_id_taken", "order-1");
    let mut admin = server.client(Some(ADMIN));
    let r = post(&mut admin, "/v1/rank", &body);
    assert_error(&r, 409, "event_id_taken", "order-1");
    let r = post(
        &mut c,
        "/v1/rank",
        &rank_body("alice", json!({"event_id": ""})),
    );
    assert_error(&r, 422, "invalid_field", "event_id");
    // Feedback reaches the client's event id.
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": "order-1", "position": 1, "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(metric(&mut c, "metarec_decisions_total"), 2.0);
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().decisions, 2);
}

#[test]
fn concurrent_retries_of_one_event_id_store_one_decision_and_get_one_answer() {
    let f = fixture(true);
    let server = start(config(&f.model, &f.db));
    let body = rank_body("carol", json!({"event_id": "retry-storm"}));
    let clients = (0..8).map(|_| server.client(Some(RANKER))).collect();
    let answers = post_all(clients, "/v1/rank", &body);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().decisions, 1);
}

#[test]
fn a_numeric_reward_is_the_events_reward_and_the_first_one_counts() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.reward_window = Duration::from_millis(300);
    config.default_reward = 0.25;
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let rewarded = rank(&mut c, "dan");
    let clicked = rank(&mut c, "erin");
    let event = rewarded["event_id"].clone();
    let r = post(
        &mut c,
        "/v1/reward",
        &json!({"event_id": event, "value": 0.7}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], false);
    let r = post(
        &mut c,
        "/v1/reward",
        &json!({"event_id": event, "value": 0.2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], true);
    // A click and a reward on one event: the reward is the event's reward.
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": clicked["event_id"], "position": 0, "kind": "click"}),
    );
    assert_eq!(r.status, 200);
    let r = post(
        &mut c,
        "/v1/reward",
        &json!({"event_id": clicked["event_id"], "value": -1.5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (body, status, code, needle) in [
        (json!({"event_id": event}), 422, "invalid_field", "value"),
        (
            json!({"event_id": event, "value": "high"}),
            422,
            "invalid_field",
            "value",
        ),
        (
            json!({"event_id": event, "value": 1, "position": 0}),
            422,
            "invalid_field",
            "position",
        ),
        (
            json!({"event_id": "never-ranked", "value": 1}),
            404,
            "unknown_event",
            "never-ranked",
        ),
    ] {
        let r = post(&mut c, "/v1/reward", &body);
        assert_error(&r, status, code, needle);
    }
    // Another key's event is unknown to this one.
    let mut admin = server.client(Some(ADMIN));
    let r = post(
        &mut admin,
        "/v1/reward",
        &json!({"event_id": event, "value": 1}),
    );
    assert_error(&r, 404, "unknown_event", "");
    assert_eq!(metric(&mut c, "metarec_feedback_rewards_total"), 2.0);
    std::thread::sleep(Duration::from_millis(900));
    let r = post(
        &mut c,
        "/v1/reward",
        &json!({"event_id": event, "value": 1}),
    );
    assert_error(&r, 404, "event_expired", "reward window");
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
    assert_eq!(reward(&event), Some(0.7));
    assert_eq!(reward(&clicked["event_id"]), Some(-1.5));
}

#[test]
fn context_takes_numbers_booleans_arrays_and_nested_objects_by_the_documented_rule() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let context = json!({
        "country": "France",
        "age": 34,
        "basket": 1234.5,
        "member": true,
        "device": {"os": "ios", "screen": {"w": 390}},
        "tags": ["sale", "new"],
        "coupon": null,
    });
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "fay", "context": context, "candidates": candidates(), "slate_size": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let event = r.json()["event_id"].as_str().unwrap().to_owned();
    // The tokens reach the network: another context gives other scores.
    let plain = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "fay", "context": {"country": "France"}, "candidates": candidates(), "slate_size": 5}),
    );
    assert_ne!(scores(&r.json()), scores(&plain.json()));
    let mut deep = json!("x");
    for _ in 0..9 {
        deep = json!({ "k": deep });
    }
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "fay", "context": {"deep": deep}, "slate_size": 5}),
    );
    assert_error(&r, 422, "invalid_field", "context.deep.k");
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("f{i}"), json!(i))).collect();
    let r = post(
        &mut c,
        "/v1/rank",
        &json!({"user": "fay", "context": many, "slate_size": 5}),
    );
    assert_error(&r, 422, "invalid_field", "more than 64");
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let row = store.decision(&event).unwrap().unwrap();
    let mut tokens = row.interaction.context.tokens.clone();
    tokens.sort();
    assert_eq!(
        tokens,
        [
            "age=34",
            "basket=1.2e3",
            "country=France",
            "device.os=ios",
            "device.screen.w=390",
            "member=true",
            "tags=new",
            "tags=sale",
        ]
    );
}

#[test]
fn a_deferred_event_takes_feedback_and_counts_only_once_activated() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.reward_window = Duration::from_millis(400);
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let shown = post(
        &mut c,
        "/v1/rank",
        &rank_body("gus", json!({"defer_activation": true})),
    );
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["deferred"], true);
    let shown = shown.json()["event_id"].as_str().unwrap().to_owned();
    let unshown = post(
        &mut c,
        "/v1/rank",
        &rank_body("hal", json!({"defer_activation": true})),
    )
    .json()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let click = |c: &mut Client, event: &str| {
        post(
            c,
            "/v1/feedback",
            &json!({"event_id": event, "position": 0, "kind": "click"}),
        )
    };
    assert_error(
        &click(&mut c, &shown),
        409,
        "event_not_activated",
        "activate",
    );
    assert_error(
        &post(
            &mut c,
            "/v1/reward",
            &json!({"event_id": shown, "value": 1}),
        ),
        409,
        "event_not_activated",
        "",
    );
    assert_eq!(metric(&mut c, "metarec_impressions_total"), 0.0);
    let path = format!("/v1/events/{shown}/activate");
    let r = c.request("POST", &path, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["already_active"], false);
    let r = c.request("POST", &path, None).unwrap();
    assert_eq!(r.json()["already_active"], true);
    assert_eq!(metric(&mut c, "metarec_impressions_total"), 5.0);
    assert_eq!(metric(&mut c, "metarec_activations_total"), 1.0);
    let r = click(&mut c, &shown);
    assert_eq!(r.status, 200, "{}", r.text());
    // Unknown and foreign events are 404; a non-deferred event is already active.
    let r = c
        .request("POST", "/v1/events/nothing-here/activate", None)
        .unwrap();
    assert_error(&r, 404, "unknown_event", "nothing-here");
    let mut admin = server.client(Some(ADMIN));
    let r = admin.request("POST", &path, None).unwrap();
    assert_error(&r, 404, "unknown_event", "");
    let plain = rank(&mut c, "ivy")["event_id"].as_str().unwrap().to_owned();
    let r = c
        .request("POST", &format!("/v1/events/{plain}/activate"), None)
        .unwrap();
    assert_eq!(r.json()["already_active"], true);
    // Both windows close: the unshown slate leaves hal's state as it was.
    std::thread::sleep(Duration::from_millis(1200));
    let hal = rank(&mut c, "hal");
    assert_eq!(part_magnitude(&hal, "past_ignores"), 0.0, "{hal}");
    let r = c
        .request("POST", &format!("/v1/events/{unshown}/activate"), None)
        .unwrap();
    assert_error(&r, 404, "event_expired", "");
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let mut logged = Vec::new();
    store
        .for_each_interaction(&mut |i| {
            logged.push(i.decision.event_id.0);
            Ok(())
        })
        .unwrap();
    assert!(logged.contains(&shown), "{logged:?}");
    assert!(!logged.contains(&unshown), "{logged:?}");
}

#[test]
fn apprentice_mode_serves_the_shops_ranking_and_learns_from_its_feedback() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.apprentice = true;
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let shop: Vec<String> = [7, 3, 11, 0, 19, 5]
        .iter()
        .map(|i| format!("item{i}"))
        .collect();
    let body = json!({"user": "jo", "candidates": shop, "slate_size": 4, "exclude": ["item3"]});
    let r = post(&mut c, "/v1/rank", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let slate: Vec<&str> = first["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap())
        .collect();
    assert_eq!(slate, ["item7", "item11", "item0", "item19"]);
    for e in first["slate"].as_array().unwrap() {
        assert_eq!(e["propensity"], 1.0);
    }
    assert_eq!(first["slate_propensity"], 1.0);
    let learned = first["learned"].as_array().unwrap();
    assert_eq!(learned.len(), 4);
    assert!(learned.iter().all(|i| i != "item3"), "{learned:?}");
    // The scores are the network's for the shop's items: their parts add up to them.
    for e in first["slate"].as_array().unwrap() {
        let parts = e["explanation"]["parts"].as_object().unwrap();
        let sum: f64 = parts.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - e["score"].as_f64().unwrap()).abs() < 1e-9, "{e}");
    }
    let r = post(&mut c, "/v1/rank", &json!({"user": "jo", "slate_size": 4}));
    assert_error(&r, 422, "candidates_needed", "apprentice");
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": first["event_id"], "item": "item11", "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let next = post(&mut c, "/v1/rank", &body).json();
    assert!(part_magnitude(&next, "adaptation") > 0.0, "{next}");
    assert_eq!(metric(&mut c, "metarec_apprentice_ranks_total"), 2.0);
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let row = store
        .decision(first["event_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(row.interaction.decision.policy_id, "baseline");
}

#[test]
fn a_version_2_database_gains_activation_and_answers_in_place() {
    let f = fixture(false);
    {
        let server = start(config(&f.model, &f.db));
        let mut c = server.client(Some(RANKER));
        rank(&mut c, "kim");
        server.stop();
        // Back to the schema before this version: without the two columns.
        let conn = rusqlite::Connection::open(&f.db).unwrap();
        conn.execute_batch(
            "ALTER TABLE decisions DROP COLUMN active;
             ALTER TABLE decisions DROP COLUMN answer;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let r = post(
        &mut c,
        "/v1/rank",
        &rank_body(
            "kim",
            json!({"event_id": "after-migration", "defer_activation": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let mut n = 0;
    store
        .for_each_interaction(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    // The old decision counts as shown; the deferred one does not yet.
    assert_eq!(n, 1);
    assert_eq!(store.counts().unwrap().decisions, 2);
}

#[test]
fn actions_described_by_features_are_added_to_the_catalog_and_ranked() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let action = json!({"key": "inline-1", "features": {"price_z": 0.4, "popularity_z": -1.0}, "title": "Enamel mug", "price": 4.5});
    let body = json!({"user": "zed", "candidates": ["item1", action, "item2"], "slate_size": 3});
    let r = post(&mut c, "/v1/rank", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let ranked = r.json();
    let slate: Vec<&str> = ranked["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap())
        .collect();
    assert!(slate.contains(&"inline-1"), "{slate:?}");
    // Added as an item would be, and known by key from now on.
    let item = c.request("GET", "/v1/items/inline-1", None).unwrap().json();
    assert_eq!(item["added"], true, "{item}");
    assert_eq!(item["title"], "Enamel mug");
    assert!((item["features"]["price_z"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": ranked["event_id"], "item": "inline-1", "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The same action again adds nothing; its stored features stay.
    let again = json!({"user": "zed", "candidates": [{"key": "inline-1", "features": {"price_z": 9.0}}, "item3"], "slate_size": 2});
    assert_eq!(post(&mut c, "/v1/rank", &again).status, 200);
    let item = c.request("GET", "/v1/items/inline-1", None).unwrap().json();
    assert!((item["features"]["price_z"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    // Bad actions are refused with the candidate's field, and add nothing.
    for (candidate, needle) in [
        (
            json!({"key": "bad-1", "features": {"colour": 1.0}}),
            "candidates[0].features.colour",
        ),
        (
            json!({"key": "bad-2", "price": -3.0}),
            "candidates[0].price",
        ),
        (json!({"key": "", "price": 1.0}), "candidates[0].key"),
        (json!({"key": "bad-3", "stock": 4}), "stock"),
        (json!({"features": [0.1, 0.2]}), "key"),
        (json!(7), "candidates[0]"),
    ] {
        let r = post(
            &mut c,
            "/v1/rank",
            &json!({"user": "zed", "candidates": [candidate], "slate_size": 1}),
        );
        assert_error(&r, 422, "invalid_field", needle);
    }
    for key in ["bad-1", "bad-2", "bad-3"] {
        let r = c.request("GET", &format!("/v1/items/{key}"), None).unwrap();
        assert_eq!(r.status, 404, "{key}: {}", r.text());
    }
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    assert_eq!(store.counts().unwrap().items, 1);
}

#[test]
fn explanations_can_be_left_out_and_the_slate_stays_the_same() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let with = rank(&mut c, "ana");
    // Another new user in the same state: a second slate for `ana` would read the first one's
    // items as passed over.
    let r = post(
        &mut c,
        "/v1/rank",
        &rank_body("ben", json!({"explain": false})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let without = r.json();
    for (a, b) in with["slate"]
        .as_array()
        .unwrap()
        .iter()
        .zip(without["slate"].as_array().unwrap())
    {
        assert!(a["explanation"].is_object(), "{a}");
        assert!(b.get("explanation").is_none(), "{b}");
        assert_eq!(a["item"], b["item"]);
        assert_eq!(a["score"], b["score"]);
    }
}

#[test]
fn candidate_keys_with_json_escapes_name_the_same_items_as_plain_ones() {
    // Plain keys are borrowed from the body; a key with an escape is decoded into its own
    // string. Both must name the same catalog items, and an unknown one is named by position.
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let body = br#"{"user": "esc", "candidates": ["\u0069tem1", "item2", "it\u0065m3"], "slate_size": 3, "explain": false}"#;
    let r = c.request("POST", "/v1/rank", Some(body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut items: Vec<String> = r.json()["slate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap().to_owned())
        .collect();
    items.sort();
    assert_eq!(items, ["item1", "item2", "item3"]);
    let body = br#"{"user": "esc", "candidates": ["item1", "\u0069tem999"], "slate_size": 1}"#;
    let r = c.request("POST", "/v1/rank", Some(body)).unwrap();
    assert_error(&r, 422, "unknown_item", "candidates[1]");
}

#[test]
fn shown_slates_enter_the_history_at_once_and_a_gap_begins_a_new_visit() {
    let f = fixture(false);
    let mut config = config(&f.model, &f.db);
    config.visit_gap = Duration::from_secs(3);
    config.reward_window = Duration::from_secs(5);
    let server = start(config);
    let mut c = server.client(Some(RANKER));
    let id = |v: &Value| v["event_id"].as_str().unwrap().to_owned();
    let first = id(&rank(&mut c, "ivy"));
    let deferred = post(
        &mut c,
        "/v1/rank",
        &rank_body("ivy", json!({"defer_activation": true})),
    );
    assert_eq!(deferred.status, 200, "{}", deferred.text());
    let deferred = id(&deferred.json());
    let r = post(
        &mut c,
        "/v1/feedback",
        &json!({"event_id": first, "position": 1, "kind": "click"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let second = id(&rank(&mut c, "ivy"));
    let r = c
        .request("POST", &format!("/v1/events/{deferred}/activate"), None)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let third = id(&rank(&mut c, "ivy"));
    // More than the gap after the last slate shown: a new visit.
    std::thread::sleep(Duration::from_millis(3500));
    let fourth = id(&rank(&mut c, "ivy"));
    // The first three events' windows close; their passes are in the history already and must
    // not enter it twice.
    let start = std::time::Instant::now();
    while metric(&mut c, "metarec_events_expired_total") < 4.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no expiry");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fifth = id(&rank(&mut c, "ivy"));
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let mut row = |event: &str| store.decision(event).unwrap().unwrap().interaction;
    let slate = |i: &metarec_core::Interaction| i.decision.slate.items().to_vec();
    let passes = |items: &[metarec_core::ItemId]| {
        items
            .iter()
            .map(|&item| metarec_core::PastEvent {
                item,
                click: false,
                purchase: false,
            })
            .collect::<Vec<_>>()
    };
    let (first, deferred, second, third, fourth, fifth) = (
        row(&first),
        row(&deferred),
        row(&second),
        row(&third),
        row(&fourth),
        row(&fifth),
    );
    let at = |i: &metarec_core::Interaction| {
        let s = &i.context.session;
        (s.session, s.step, s.visit_events, s.history.clone())
    };
    assert_eq!(at(&first), (0, 0, Some(0), Vec::new()));
    // The first slate is in the history as passed over before its click comes.
    let shown = passes(&slate(&first));
    assert_eq!(at(&deferred), (0, 1, Some(5), shown.clone()));
    // The click marks its entry rather than adding one; the deferred rank added nothing.
    let mut clicked = shown;
    clicked[1].click = true;
    assert_eq!(at(&second), (0, 1, Some(5), clicked.clone()));
    // The second slate and the activated deferred one are shown, in that order.
    let mut visit = clicked;
    visit.extend(passes(&slate(&second)));
    visit.extend(passes(&slate(&deferred)));
    assert_eq!(at(&third), (0, 3, Some(15), visit.clone()));
    visit.extend(passes(&slate(&third)));
    assert_eq!(at(&fourth), (1, 0, Some(0), visit.clone()));
    visit.extend(passes(&slate(&fourth)));
    assert_eq!(at(&fifth), (1, 1, Some(5), visit));
}

#[test]
fn a_new_session_id_begins_a_new_visit_at_once() {
    let f = fixture(false);
    let server = start(config(&f.model, &f.db));
    let mut c = server.client(Some(RANKER));
    let mut ids = Vec::new();
    for session in ["visit-a", "visit-a", "visit-b", "visit-b"] {
        let r = post(
            &mut c,
            "/v1/rank",
            &rank_body("jay", json!({"session_id": session})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["event_id"].as_str().unwrap().to_owned());
    }
    for bad in [json!(""), json!("x".repeat(257)), json!(5)] {
        let r = post(
            &mut c,
            "/v1/rank",
            &rank_body("jay", json!({ "session_id": bad })),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert!(r.text().contains("session_id"), "{}", r.text());
    }
    server.stop();
    let mut store = SqliteStore::open(&f.db).unwrap();
    let seen: Vec<(u32, u32, Option<u32>)> = ids
        .iter()
        .map(|id| {
            let s = store
                .decision(id)
                .unwrap()
                .unwrap()
                .interaction
                .context
                .session;
            (s.session, s.step, s.visit_events)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, 0, Some(0)),
            (0, 1, Some(5)),
            (1, 0, Some(0)),
            (1, 1, Some(5))
        ]
    );
    // Only a keyed hash of the session id is stored.
    let bytes = std::fs::read(&f.db).unwrap();
    assert!(!bytes.windows(7).any(|w| w == b"visit-a"));
}

#[test]
fn the_same_requests_draw_the_same_slates_on_any_server_with_the_seed() {
    // Thompson sampling draws; two servers with their own databases, the same seed.
    let slates = |f: &Fixture| {
        let server = start(config(&f.model, &f.db));
        let mut c = server.client(Some(RANKER));
        let items =
            |v: &Value| -> Vec<String> { scores(v).into_iter().map(|(k, _, _)| k).collect() };
        // Another user's requests in between change nothing of this user's draws.
        let _ = rank(&mut c, "other");
        let probed = post(
            &mut c,
            "/v1/rank",
            &rank_body("ola", json!({"defer_activation": true})),
        )
        .json();
        let first = rank(&mut c, "ola");
        let second = rank(&mut c, "ola");
        server.stop();
        (items(&probed), items(&first), items(&second))
    };
    let (a, b) = (fixture(true), fixture(true));
    let (probed, first, second) = slates(&a);
    // A rank never shown leaves the next one's draw as it was.
    assert_eq!(probed, first);
    assert_eq!((probed, first, second), slates(&b));
}
