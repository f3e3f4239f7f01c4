//! The whole "your own shop" path through the command line, as a shop's engineer would run it
//! (the README's "Your own shop" commands): a made-up shop with known tastes (`shop generate`)
//! -> `shop import` -> `train --shop` -> `meta-train --shop` -> `ope --shop` -> `serve` ->
//! `/v1/rank` answers with the shop's SKUs -> feedback -> `log export` -> `ope --log` on the
//! served log.
//!
//! The generator logs uniformly random slates with their exact propensities and draws clicks
//! from hidden tastes, so a policy that learned the tastes must beat the logging policy
//! off-policy on the held-out impressions, with an interval that excludes the logging value:
//! the test checks it, for the trained network and for its adjusted form.

mod common;

use common::{metarec, serve_with, stderr, stdout};
use metarec_serve::client::Client;
use serde_json::{Value, json};
use std::path::Path;

const TOKEN: &str = "shop-e2e-admin-token-0123";

fn ok(data: &Path, args: &[&str]) -> String {
    let out = metarec(data, args);
    assert!(
        out.status.success(),
        "metarec {}: {}",
        args.join(" "),
        stderr(&out)
    );
    stdout(&out)
}

/// `(value, low, high)` of one estimator's row for one policy of an `ope --json` report.
fn estimate(report: &Value, policy: &str, estimator: &str) -> (f64, f64, f64) {
    let p = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == policy)
        .unwrap_or_else(|| panic!("no policy `{policy}` in {report}"));
    let row = p["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["estimator"] == estimator)
        .unwrap_or_else(|| panic!("no estimator `{estimator}` in {p}"));
    let f = |k: &str| row[k].as_f64().unwrap();
    (f("value"), f("low"), f("high"))
}

#[test]
fn a_made_up_shop_goes_from_files_to_a_served_and_evaluated_policy() {
    let tmp = tempfile::tempdir().unwrap();
    // An empty data directory: nothing of the bundled data sets, nor the text encoder, is used.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_owned();
    let (files, shop, model) = (p("files"), p("shop"), p("model"));

    let said = ok(
        &data,
        &[
            "-q", "shop", "generate", "--out", &files, "--items", "300", "--users", "4000",
            "--seed", "11",
        ],
    );
    assert!(said.contains("wrote"), "{said}");
    let said = ok(
        &data,
        &[
            "-q",
            "shop",
            "import",
            "--catalog",
            &format!("{files}/catalog.csv"),
            "--events",
            &format!("{files}/events.csv"),
            "--users",
            &format!("{files}/users.csv"),
            "--out",
            &shop,
        ],
    );
    assert!(said.contains("4,000 users, 300 items"), "{said}");
    let stats: Value =
        serde_json::from_str(&ok(&data, &["-q", "shop", "stats", &shop, "--json"])).unwrap();
    assert!(stats.to_string().contains("CTR at position"), "{stats}");

    ok(
        &data,
        &[
            "-q", "train", "--shop", &shop, "--out", &model, "--seed", "3",
        ],
    );
    // The ablation of the network's own inference needs simulated users; offline it is a
    // clear refusal that writes nothing.
    let out = metarec(
        &data,
        &[
            "-q",
            "meta-train",
            "--model",
            &model,
            "--shop",
            &shop,
            "--head",
            "new-user",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("simulated users"), "{}", stderr(&out));
    assert!(!std::path::Path::new(&model).join("adjuster.json").exists());
    ok(
        &data,
        &["-q", "meta-train", "--model", &model, "--shop", &shop],
    );

    // Off-policy on the held-out fifth of the rankings (the part training never saw): the
    // trained network, greedy, and its adjusted form against the uniform logging policy.
    let sampling = format!("neural:{model}");
    let greedy = format!("neural-greedy:{model}");
    let adjusted = format!("adjusted:{model}");
    let report: Value = serde_json::from_str(&ok(
        &data,
        &[
            "-q",
            "ope",
            "--shop",
            &shop,
            "--policy",
            &format!("{sampling},{greedy},{adjusted},random"),
            "--resamples",
            "200",
            "--json",
        ],
    ))
    .unwrap();
    let logging = report["logging_value"].as_f64().unwrap();
    assert!(logging > 0.0, "{report}");
    // The network's own (sampling) policy spreads its slates, so the estimates rest on many
    // logged entries: each estimator's 95% interval lies above the logging value.
    for estimator in ["IPW", "SNIPW", "DR"] {
        let (value, low, high) = estimate(&report, &sampling, estimator);
        eprintln!("{sampling} {estimator}: {value} [{low}, {high}] (logging {logging})");
        assert!(
            low > logging,
            "{sampling} {estimator}: {value} [{low}, {high}] against the logging value {logging}"
        );
    }
    // The greedy and adjusted policies show one slate per context, so few logged slates match
    // theirs and the intervals are wide: their doubly robust point estimates beat the logging
    // value.
    for policy in [&greedy, &adjusted] {
        for estimator in ["IPW", "SNIPW", "DR"] {
            let (value, low, high) = estimate(&report, policy, estimator);
            eprintln!("{policy} {estimator}: {value} [{low}, {high}]");
        }
        let (value, low, high) = estimate(&report, policy, "DR");
        assert!(
            value > logging,
            "{policy} DR: {value} [{low}, {high}] against the logging value {logging}"
        );
    }
    // The random policy is the logging policy: its estimate covers the logging value.
    let (value, low, high) = estimate(&report, "random", "IPW");
    assert!(
        low <= logging && logging <= high,
        "random: {value} [{low}, {high}] against {logging}"
    );

    // Serve the shop's SKUs, exploring with exact propensities.
    let db = tmp.path().join("serve.db");
    let (mut child, addr) = serve_with(
        &data,
        Path::new(&model),
        &db,
        TOKEN,
        &["--explore", "epsilon:0.2"],
    );
    let mut c = Client::new(addr, Some(TOKEN));
    let mut shown = 0usize;
    for u in 0..40 {
        let r = c
            .request(
                "POST",
                "/v1/rank",
                Some(
                    json!({"user": format!("U{u:07}"), "slate_size": 4})
                        .to_string()
                        .as_bytes(),
                ),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        let slate = answer["slate"].as_array().unwrap();
        assert_eq!(slate.len(), 4, "{answer}");
        for e in slate {
            let key = e["item"].as_str().unwrap();
            assert!(key.starts_with("SKU-"), "{answer}");
            let p = e["propensity"].as_f64().unwrap();
            assert!(p > 0.0 && p <= 1.0, "{answer}");
        }
        // The user clicks the first item and buys it.
        let event = answer["event_id"].as_str().unwrap();
        for body in [
            json!({"event_id": event, "item": slate[0]["item"], "kind": "click"}),
            json!({"event_id": event, "item": slate[0]["item"], "kind": "purchase", "revenue": 9.5}),
        ] {
            let r = c
                .request("POST", "/v1/feedback", Some(body.to_string().as_bytes()))
                .unwrap();
            assert!(r.status == 200 || r.status == 202, "{}", r.text());
        }
        shown += slate.len();
    }
    assert_eq!(shown, 160);
    child.kill().unwrap();
    child.wait().unwrap();

    // The served log names the shop's SKUs and is judged off-policy with the model's catalog.
    let log = tmp.path().join("served.jsonl");
    let said = ok(
        &data,
        &[
            "-q",
            "log",
            "export",
            "--db",
            db.to_str().unwrap(),
            "--model",
            &model,
            "--out",
            log.to_str().unwrap(),
        ],
    );
    assert!(said.contains("wrote 40 interactions"), "{said}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().nth(1).unwrap().contains("\"SKU-"), "{text}");
    let report: Value = serde_json::from_str(&ok(
        &data,
        &[
            "-q",
            "ope",
            "--log",
            log.to_str().unwrap(),
            "--model",
            &model,
            "--policy",
            &format!("{greedy},random"),
            "--resamples",
            "50",
            "--json",
        ],
    ))
    .unwrap();
    // Every served slate's first item was clicked: the server's own value is one click per
    // slate, and its greedy policy, which the server explored around, is estimated near it.
    let served = report["logging_value"].as_f64().unwrap();
    assert!(served > 0.99, "{report}");
    let (value, _, _) = estimate(&report, &greedy, "SNIPW");
    assert!(value.is_finite() && value > 0.0, "{report}");
}
