//! `metarec coldstart --shop` on a made-up shop (`shop generate`, then `shop import`): the table
//! per support size, the JSON report and its page in `metarec report`, and clear errors for a bad date and a cutoff with no new
//! users.

mod common;

use common::{arg, made_up_shop, metarec, stderr, stdout};

#[test]
fn coldstart_on_a_shop_prints_each_support_size_and_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    let json = tmp.path().join("coldstart.json");
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--support",
            "1,2",
            "--dim",
            "4",
            "--json",
            arg(&json),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "made-up: cold start after 2026-03-01 00:00:00",
        "K = 1:",
        "K = 2:",
        "item-knn",
        "bayes-knn",
        "NDCG@10 - item-knn (paired)",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // Progress goes to standard error.
    assert!(stderr(&out).contains("new users at the cutoff"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["results_kind"], "coldstart-shop");
    let budgets = report["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2);
    for b in budgets {
        assert!(b["users"].as_u64().unwrap() > 0);
        let methods = b["methods"].as_array().unwrap();
        assert_eq!(methods.len(), 8);
        for m in methods {
            let ndcg = &m["metrics"][0];
            assert_eq!(ndcg[0], "ndcg10");
            let (low, mean, high) = (
                ndcg[1]["low"].as_f64().unwrap(),
                ndcg[1]["mean"].as_f64().unwrap(),
                ndcg[1]["high"].as_f64().unwrap(),
            );
            assert!(low <= mean && mean <= high && (0.0..=1.0).contains(&mean));
        }
    }
    // `metarec report` renders it: a table per K and the K-sweep plot.
    let page = tmp.path().join("page");
    let out = metarec(&data, &["report", arg(&json), "--out", arg(&page)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("Cold start on a shop&#39;s history"),
        "{html}"
    );
    assert!(html.contains("K = 2: "));
    assert!(html.contains("NDCG@10 against the support size K"));
}

#[test]
fn coldstart_on_a_shop_rejects_a_bad_date_and_a_cutoff_without_new_users() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    let out = metarec(
        &data,
        &["coldstart", "--shop", arg(&shop), "--cutoff", "2026-13-45"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a date"), "{}", stderr(&out));
    let out = metarec(
        &data,
        &["coldstart", "--shop", arg(&shop), "--cutoff", "2027-01-01"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no new users"), "{}", stderr(&out));
    // --cutoff without --shop is a usage error.
    let out = metarec(&data, &["coldstart", "--cutoff", "2026-03-01"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
