//! Results files of every kind render into one self-contained page; files of no known kind,
//! or missing a field, are errors naming the file and the field.

use metarec_report::results::{KIND_FIELD, ReportError, render_report, tagged};
use serde_json::{Value, json};

fn estimate(mean: f64, half: f64) -> Value {
    json!({"mean": mean, "low": mean - half, "high": mean + half, "n": 300})
}

fn arena(policies: &[&str], horizon: usize) -> Value {
    let contestants: Vec<Value> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let base = 1.0 + i as f64;
            json!({
                "policy": p, "users": 300,
                "reward": estimate(base, 0.2), "discounted_return": estimate(base * 0.8, 0.1),
                "reward_per_visit": estimate(base / 2.0, 0.1), "ctr": estimate(0.05, 0.01),
                "cvr": estimate(0.2, 0.05), "revenue": estimate(10.0, 2.0),
                "visit_length": estimate(3.0, 0.2), "visits": estimate(2.0, 0.1),
                "regret": estimate(5.0 - base, 0.3),
                "curve": (1..=horizon).map(|t| estimate(base / t as f64, 0.05)).collect::<Vec<_>>(),
                "seconds": 0.5
            })
        })
        .collect();
    json!({
        "scenario": "default", "users_per_seed": 100, "seeds": 3, "horizon": horizon,
        "reward": {"click": 1.0},
        "contestants": contestants,
        "paired": [{"policy": policies[0], "against": "popularity",
                    "reward_difference": estimate(-0.5, 0.2)}]
    })
}

fn manifest(iterations: usize) -> Value {
    let metrics: Vec<Value> = (1..=iterations)
        .map(|i| {
            json!({"iteration": i, "reward_per_user": i as f64 * 0.1,
                        "return_per_user": 0.0, "slates_per_user": 4.0,
                        "loss": 1.0 / i as f64, "entropy": 3.0})
        })
        .collect();
    json!({"format": "metarec-neural/1", "scenario": "default", "algos": ["reinforce"],
           "iterations": iterations, "metrics": metrics, "model": {}, "train": {}})
}

fn calibration() -> Value {
    json!({
        "scenario": "default", "items": 1000, "users": 500,
        "fitted": {"click_bias": -2.0, "purchase_bias": -1.0, "ctr": 0.05, "cvr": 0.2},
        "targets": [0.05, 0.2],
        "yardsticks": [
            {"policy": "random", "ctr": 0.05, "cvr": 0.2, "visit_length": 3.0,
             "visits_per_user": 1.5, "purchases_per_user": 0.3, "reward_per_user": 1.2},
            {"policy": "oracle", "ctr": 0.3, "cvr": 0.4, "visit_length": 6.0,
             "visits_per_user": 2.5, "purchases_per_user": 3.0, "reward_per_user": 9.1}],
        "comparisons": [
            {"what": "share of purchases in the top 1% of items", "real": 0.12, "simulated": 0.1},
            {"what": "share of purchases in the top 5% of items", "real": 0.35, "simulated": 0.3},
            {"what": "popularity Gini over items", "real": 0.6, "simulated": 0.55},
            {"what": "purchase price p10 (GBP)", "real": 0.85, "simulated": 0.9},
            {"what": "purchase price p50 (GBP)", "real": 2.1, "simulated": 2.0}]
    })
}

fn adjuster() -> Value {
    json!({"kind": "bayes", "config": {"prior_scale": 0.1, "thompson": true, "draws": 16},
           "grid": [[0.03, 1.5], [0.1, 1.7], [0.3, 1.6]], "users": 600})
}

fn files(values: &[(&str, Value)]) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::to_vec(v).unwrap()))
        .collect()
}

#[test]
fn every_kind_renders_into_one_self_contained_page() {
    let policies = ["random", "popularity", "neural:report/model", "oracle"];
    let inputs = files(&[
        ("calibration.json", calibration()),
        ("model/manifest.json", manifest(60)),
        ("model/adjuster.json", adjuster()),
        ("arena.json", arena(&policies, 20)),
    ]);
    let page = render_report("metarec report", &inputs).unwrap();
    assert_eq!(page.sections.len(), 4);
    let html = page.to_html();
    for expected in [
        "Simulator calibration",
        "Training: scenario",
        "Meta-training of the strategy adjuster",
        "Arena: scenario",
        "from arena.json",
        "neural:report/model",
        "Cold-start curves",
        "mean reward at interaction t (reward units)",
        "Concentration: share of purchases",
        "Learning curve: reward per simulated user",
    ] {
        assert!(html.contains(expected), "missing `{expected}`");
    }
    // The cold-start plot has one band per policy (the only banded plot on the page).
    assert_eq!(html.matches(r#"class="band""#).count(), policies.len());
    // Four contestants' error bars, one paired difference.
    assert_eq!(
        html.matches(r#"class="errorbar""#).count(),
        policies.len() + 1
    );
    // Every plot has axis labels.
    let plots = html.matches("<svg").count();
    assert!(plots >= 8, "{plots}");
    assert_eq!(html.matches(r#"class="xlabel""#).count(), plots);
    // Nothing to fetch: no scripts, no external resources.
    for needle in ["<script", "https://", "<link", "<img", "src="] {
        assert!(!html.contains(needle), "{needle}");
    }
}

#[test]
fn the_kind_field_overrides_the_shape_and_tagging_adds_it() {
    let v = tagged("arena", &arena(&["random"], 5)).unwrap();
    assert_eq!(v[KIND_FIELD], "arena");
    assert!(render_report("t", &files(&[("a.json", v)])).is_ok());
    // A tag naming an unknown kind is an error even when the shape would match.
    let mut v = arena(&["random"], 5);
    v[KIND_FIELD] = json!("ope");
    let e = render_report("t", &files(&[("b.json", v)])).unwrap_err();
    assert!(matches!(e, ReportError::UnknownTag { .. }), "{e}");
    assert!(e.to_string().contains("b.json") && e.to_string().contains("\"ope\""));
}

#[test]
fn unknown_files_and_missing_fields_are_errors_naming_file_and_field() {
    let e = render_report("t", &files(&[("mystery.json", json!({"hello": 1}))])).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ReportError::UnknownKind { .. }));
    assert!(
        text.starts_with("mystery.json: not a results file"),
        "{text}"
    );
    assert!(text.contains("arena (metarec arena --json"), "{text}");

    let mut v = arena(&["random", "lints"], 3);
    v["contestants"][1]["curve"][2]
        .as_object_mut()
        .unwrap()
        .remove("low");
    let e = render_report("t", &files(&[("arena.json", v)])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("arena.json (arena results): field `contestants[1].curve[2]`")
            && text.contains("low"),
        "{text}"
    );

    let e = render_report("t", &[("broken.json".into(), b"{\n  \"a\": ".to_vec())]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("broken.json: not valid JSON (line 2"),
        "{e}"
    );
    assert!(matches!(
        render_report("t", &[]),
        Err(ReportError::NoInputs)
    ));
}

#[test]
fn null_estimates_show_as_not_available_instead_of_failing() {
    // serde_json writes NaN as null; such a file must still render.
    let mut v = arena(&["random"], 3);
    v["contestants"][0]["cvr"]["mean"] = Value::Null;
    v["contestants"][0]["curve"][1]["high"] = Value::Null;
    let html = render_report("t", &files(&[("a.json", v)]))
        .unwrap()
        .to_html();
    assert!(html.contains("n/a"));
    assert!(!html.contains("NaN"));
}
