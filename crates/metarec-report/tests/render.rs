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
fn the_arena_plots_the_share_of_the_oracle_when_the_results_have_it() {
    let policies = ["random", "oracle"];
    let mut a = arena(&policies, 5);
    for (i, c) in a["contestants"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        c["oracle_share"] = json!(
            (1..=5)
                .map(|_| estimate(0.5 * (i + 1) as f64, 0.05))
                .collect::<Vec<_>>()
        );
    }
    let html = render_report("t", &files(&[("arena.json", a)]))
        .unwrap()
        .to_html();
    // Apostrophes are escaped in SVG text.
    assert!(
        html.contains("share of the oracle&#39;s expected reward"),
        "{html}"
    );
    // Two banded plots now: the cold-start curves and the shares.
    assert_eq!(html.matches(r#"class="band""#).count(), 2 * policies.len());
}

#[test]
fn meta_training_shows_both_ways_of_deciding_and_marks_the_chosen_one() {
    let mut a = adjuster();
    a["config"]["thompson"] = json!(false);
    a["config"]["prior_scale"] = json!(0.3);
    a["mean_grid"] = json!([[0.03, 1.4], [0.1, 1.65], [0.3, 1.8]]);
    let page = render_report("t", &files(&[("adjuster.json", a)])).unwrap();
    let html = page.to_html();
    assert!(html.contains("tau = 0.3 with posterior mean"), "{html}");
    // Three scales, each both ways, and exactly one chosen row.
    assert_eq!(
        html.matches("<td>Thompson sampling</td>").count(),
        3,
        "{html}"
    );
    assert_eq!(html.matches("<td>posterior mean</td>").count(), 3, "{html}");
    assert_eq!(html.matches(">chosen<").count(), 1, "{html}");
    // An older file without `mean_grid` still renders, as Thompson sampling only.
    let page = render_report("t", &files(&[("adjuster.json", adjuster())])).unwrap();
    let html = page.to_html();
    assert!(html.contains("tau = 0.1 with Thompson sampling"), "{html}");
    assert!(!html.contains("<td>posterior mean</td>"));
}

#[test]
fn the_kind_field_overrides_the_shape_and_tagging_adds_it() {
    let v = tagged("arena", &arena(&["random"], 5)).unwrap();
    assert_eq!(v[KIND_FIELD], "arena");
    assert!(render_report("t", &files(&[("a.json", v)])).is_ok());
    // A tag naming an unknown kind is an error even when the shape would match.
    let mut v = arena(&["random"], 5);
    v[KIND_FIELD] = json!("serving");
    let e = render_report("t", &files(&[("b.json", v)])).unwrap_err();
    assert!(matches!(e, ReportError::UnknownTag { .. }), "{e}");
    assert!(e.to_string().contains("b.json") && e.to_string().contains("\"serving\""));
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

/// `metarec ope --data obd --json`: three estimators (DM has no weights, so no ESS).
fn ope(on_policy: Option<f64>) -> Value {
    let row = |name: &str, value: f64, half: f64, ess: Option<f64>| {
        json!({"estimator": name, "value": value, "low": value - half, "high": value + half,
               "std_error": half / 2.0, "ess": ess})
    };
    json!({
        "policy": "bts", "rounds": 10000, "train_rounds": 0,
        "logging_value": 0.004, "random_value": 0.004, "bts_value": 0.005,
        "on_policy_value": on_policy,
        "estimates": [row("DM", 0.0041, 0.0001, None), row("IPW", 0.0055, 0.002, Some(1642.4)),
                      row("SNIPW", 0.0045, 0.002, Some(1642.4))],
        "clipping": {"clip": null, "clipped": 0, "max_weight": 17.5},
        "lambda": 10.0, "lambda_errors": [[1.0, 0.01], [10.0, 0.009]],
        "weighted_rewards": 37
    })
}

#[test]
fn ope_results_show_every_estimator_against_the_on_policy_values() {
    let html = render_report("t", &files(&[("ope.json", ope(Some(0.005)))]))
        .unwrap()
        .to_html();
    assert!(html.contains("Off-policy evaluation: `bts`"), "{html}");
    // Relative errors |v - 0.005| / 0.005: DM 18%, IPW 10%, SNIPW 10%.
    assert!(html.contains("relative error (%)"));
    assert!(html.contains("<td class=\"num\">18.0</td>"), "{html}");
    assert_eq!(html.matches("<td class=\"num\">10.0</td>").count(), 2);
    // DM's ESS is absent, the others' are rounded entries.
    assert!(html.contains("<td class=\"num\">n/a</td>"));
    assert_eq!(html.matches("<td class=\"num\">1642</td>").count(), 2);
    assert!(html.contains("0.005500 <span class=\"ci\">[0.003500, 0.007500]</span>"));
    // One error bar per estimator, and both on-policy values as labelled lines.
    assert_eq!(html.matches(r#"class="errorbar""#).count(), 3);
    assert_eq!(html.matches(r#"class="mark""#).count(), 2);
    assert!(html.contains(">logging policy on-policy CTR = 0.004"));
    assert!(html.contains(">bts on-policy CTR = 0.005"));

    // A learned policy has no logs of its own: no relative error, only the logging line.
    let html = render_report("t", &files(&[("ope.json", ope(None))]))
        .unwrap()
        .to_html();
    assert!(!html.contains("relative error (%)"));
    assert_eq!(html.matches(r#"class="mark""#).count(), 1);
}

/// `metarec coldstart --out`: two methods at budgets 1, 5 and all.
fn coldstart() -> Value {
    let stat = |mean: f64, sd: f64| json!({"mean": mean, "sd": sd});
    let mut table = Vec::new();
    for (m, method) in ["mf-foldin", "melu"].iter().enumerate() {
        for (b, budget) in ["1", "5", "all"].iter().enumerate() {
            let mae = 0.95 - 0.05 * b as f64 - 0.01 * m as f64;
            table.push(json!({"method": method, "budget": budget, "metrics": [
                ["mae", stat(mae, 0.01)], ["mae_rounded", stat(mae - 0.03, 0.01)],
                ["rmse", stat(mae + 0.2, 0.02)],
                ["p5", stat(0.6 + 0.02 * b as f64, 0.005)], ["support", stat(3.0, 0.0)]]}));
        }
    }
    json!({
        "config": {"seeds": [0, 1], "budgets": [1, 5, null]},
        "users": 940, "train_only_users": 0, "items": 1682, "table": table,
        "paired": [], "chosen": [],
        "per_seed": [{"seed": 0, "users": [650, 90, 200], "results": []},
                     {"seed": 1, "users": [650, 90, 200], "results": []}],
        "seconds": 12.5
    })
}

#[test]
fn coldstart_results_show_the_headline_table_and_the_budget_sweep() {
    let html = render_report("t", &files(&[("cs.json", coldstart())]))
        .unwrap()
        .to_html();
    assert!(html.contains("Cold-start rating prediction"));
    assert!(html.contains("940 users (+0 training-only), 1682 items, 2 seeds"));
    // The table is at the last budget (all): melu's MAE there is 0.95 - 0.10 - 0.01.
    assert!(html.contains("K = all"));
    assert!(html.contains("0.8400 ± 0.0100"), "{html}");
    assert!(html.contains("0.6400 ± 0.0050"));
    // Metrics the file lacks get no column; `support` is not a metric column.
    assert!(html.contains("<th>MAE</th>") && html.contains("<th>P@5</th>"));
    // The rounded MAE has its column, melu's at K = all 0.03 below its MAE.
    assert!(html.contains("<th>MAE rounded</th>") && html.contains("0.8100 ± 0.0100"));
    assert!(!html.contains("<th>nDCG@3</th>") && !html.contains("support</th>"));
    // Two sweep plots (MAE, P@5), each a banded line per method.
    assert!(html.contains("MAE against the support budget K (lower is better)"));
    assert!(html.contains("P@5 against the support budget K (higher is better)"));
    assert_eq!(html.matches(r#"class="band""#).count(), 4);

    let mut v = coldstart();
    v["table"][4]["metrics"][0][1]
        .as_object_mut()
        .unwrap()
        .remove("sd");
    let e = render_report("t", &files(&[("cs.json", v)])).unwrap_err();
    assert!(
        e.to_string()
            .contains("cs.json (coldstart results): field `table[4].metrics[0]"),
        "{e}"
    );
}

/// `metarec new-items --out`: id-only and two feature sets (with the writer's own `kind` field).
fn new_items() -> Value {
    let summary = |mean: f64, half: f64| json!({"mean": mean, "low": mean - half, "high": mean + half, "n": 981});
    let set = |name: &str, hr: f64, ndcg: f64, base: (f64, f64)| {
        json!({"features": name, "ridge": 1.0, "ridge_validation": [[1.0, 0.4]],
               "hit_rate": summary(hr, 0.01), "ndcg": summary(ndcg, 0.01),
               "hit_rate_vs_id": summary(hr - base.0, 0.005),
               "ndcg_vs_id": summary(ndcg - base.1, 0.005)})
    };
    json!({
        "kind": "new-items",
        "config": {"holdout_days": 61, "top_k": 10, "mf": {"dim": 32}, "ridge_grid": [1.0],
                   "seed": 7},
        "cutoff_ms": 1318164600000i64, "new_items": 123, "old_items": 3542,
        "test_users": 981, "targets": 3414, "chance_hit_rate": 0.08,
        "results": [set("id", 0.078, 0.05, (0.078, 0.05)),
                    set("id+price", 0.09, 0.06, (0.078, 0.05)),
                    set("id+text", 0.15, 0.1, (0.078, 0.05))]
    })
}

#[test]
fn new_item_results_show_hit_rates_against_chance_and_paired_differences() {
    let html = render_report("t", &files(&[("new.json", new_items())]))
        .unwrap()
        .to_html();
    assert!(html.contains("New-item cold start"));
    assert!(html.contains("<th>HR@10 minus id-only</th>"));
    // id+text minus id-only: 0.15 - 0.078.
    assert!(
        html.contains("0.0720 <span class=\"ci\">[0.0670, 0.0770]</span>"),
        "{html}"
    );
    // Three hit rates plus two paired differences (id-only against itself is left out).
    assert_eq!(html.matches(r#"class="errorbar""#).count(), 5);
    assert_eq!(html.matches(r#"class="mark""#).count(), 1);
    assert!(html.contains(">chance HR@10 = 0.08"), "{html}");
}

#[test]
fn the_new_kinds_are_recognised_by_shape_and_by_tag() {
    for (name, v, title) in [
        ("ope", ope(Some(0.005)), "Off-policy evaluation"),
        ("coldstart", coldstart(), "Cold-start rating prediction"),
        ("new-items", new_items(), "New-item cold start"),
    ] {
        let untagged = render_report("t", &files(&[("u.json", v.clone())])).unwrap();
        assert!(untagged.sections[0].title.starts_with(title), "{name}");
        let tagged = render_report("t", &files(&[("t.json", tagged(name, &v).unwrap())]));
        assert_eq!(
            tagged.unwrap().sections[0].title,
            untagged.sections[0].title
        );
    }
    // A file tagged as one of them but shaped as another names the missing field.
    let e = render_report(
        "t",
        &files(&[("x.json", tagged("ope", &coldstart()).unwrap())]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("x.json (ope results): field"), "{e}");
}

#[test]
fn a_shop_calibration_plots_its_ctr_by_position_and_prices_without_a_currency() {
    let mut shop = calibration();
    shop["shop"] = json!("shop `made-up`");
    shop["signal"] = json!("clicks");
    shop["comparisons"] = json!([
        {"what": "share of purchases in the top 1% of items", "real": 0.12, "simulated": 0.1},
        {"what": "purchase price p10", "real": 0.85, "simulated": 0.9},
        {"what": "purchase price p50", "real": 2.1, "simulated": 2.0}]);
    shop["impressions"] = json!([
        {"what": "CTR at position 1", "real": 0.19, "simulated": 0.18},
        {"what": "CTR at position 2", "real": 0.16, "simulated": 0.16},
        {"what": "purchases per click", "real": 0.55, "simulated": 0.56}]);
    let page = render_report("shop", &files(&[("calibration.json", shop)])).unwrap();
    let html = page.to_html();
    for expected in [
        "Click-through rate by position",
        "real clicks (shop `made-up`)",
        "Prices of purchased items",
        "purchases per click",
    ] {
        assert!(
            html.contains(&expected.replace('`', "&#96;")) || html.contains(expected),
            "{expected}"
        );
    }
    // Online Retail's report keeps its own wording.
    let page = render_report("retail", &files(&[("calibration.json", calibration())])).unwrap();
    let html = page.to_html();
    assert!(html.contains("real purchases (Online Retail)"));
    assert!(!html.contains("Click-through rate by position"));
}
