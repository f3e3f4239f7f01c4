//! End-to-end test of `metarec coldstart` on the fetched MovieLens-100k, in a reduced
//! configuration: the printed tables and the JSON report's structure.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn fetched_data_dir() -> PathBuf {
    common::fetched_data_dir("ml-100k")
}

#[test]
fn coldstart_prints_the_tables_and_writes_the_json_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .arg("--data-dir")
        .arg(fetched_data_dir())
        .args([
            "coldstart",
            "--seeds",
            "1",
            "--ks",
            "1,all",
            "--methods",
            "item-mean,mf-foldin,bayes",
            "--dim",
            "4",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .expect("the metarec binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "582 users",
        "K-sweep, MAE",
        "K=1",
        "K=all",
        "bayes",
        "item-mean",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(stderr.contains("seed 0: done"), "{stderr}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    // Tagged so that `metarec report` renders it as the cold-start kind.
    assert_eq!(json["results_kind"], "coldstart");
    assert_eq!(json["users"], 582);
    assert_eq!(json["items"], 1682);
    let table = json["table"].as_array().unwrap();
    // Three methods x two budgets.
    assert_eq!(table.len(), 6);
    for row in table {
        let metrics = row["metrics"].as_array().unwrap();
        let names: Vec<&str> = metrics.iter().map(|m| m[0].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "mae",
                "mae_rounded",
                "rmse",
                "ndcg3",
                "ndcg5",
                "p5",
                "hr10",
                "ndcg10",
                "support"
            ]
        );
        for m in metrics {
            assert!(m[1]["mean"].as_f64().unwrap().is_finite());
        }
    }
    let paired = json["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 2 * 2 * 8);
    assert!(paired.iter().all(|p| p["seeds"] == 1));
    assert_eq!(json["per_seed"].as_array().unwrap().len(), 1);
    assert_eq!(json["chosen"][0]["seed"], 0);

    // The file renders as a report page with the table at the last budget.
    let page_dir = tmp.path().join("page");
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .arg("report")
        .arg(&out_path)
        .arg("--out")
        .arg(&page_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(page_dir.join("index.html")).unwrap();
    assert!(html.contains("Cold-start rating prediction"));
    assert!(html.contains("support budget K = all"));
    // One numeric budget (1) is no sweep, so no K plot is drawn.
    assert!(!html.contains("MAE against the support budget K"));
}

#[test]
fn coldstart_rejects_a_bad_budget_and_an_unknown_data_set() {
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["coldstart", "--ks", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("support budget `0`"));
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["coldstart", "--data", "ml-1m"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown data set `ml-1m`"));
}
