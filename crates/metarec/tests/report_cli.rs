//! End-to-end tests of the reports: TensorBoard runs written by `train`, `meta-train` and
//! `arena` read back with the record-format decoder (every scalar found, equal to the JSON
//! results), `metarec report` on every kind of results file, and the demo's `index.html`.

mod common;

use common::{data_dir, stderr, stdout};
use metarec_report::tfevents::{ReadOptions, event_files, read_event_file, scalars};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

fn metarec(cwd: &Path, args: &[&str]) -> Output {
    common::metarec_in(cwd, &data_dir(), args)
}

/// Every scalar of every event file of a run: tag -> [(step, value)].
fn run_scalars(run: &Path) -> BTreeMap<String, Vec<(i64, f32)>> {
    let files = event_files(run).unwrap();
    assert!(!files.is_empty(), "no event file in {}", run.display());
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for f in files {
        for (tag, step, v) in scalars(&read_event_file(&f, ReadOptions::default()).unwrap()) {
            out.entry(tag).or_default().push((step, v));
        }
    }
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn arena_runs_hold_every_cold_start_point_and_its_report_shows_the_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = metarec(
        t,
        &[
            "-q",
            "arena",
            "--scenario",
            "small",
            "--policies",
            "random,popularity,lints",
            "--users",
            "15",
            "--seeds",
            "2",
            "--horizon",
            "6",
            "--json",
            "arena.json",
            "--logdir",
            "tb",
            "--report",
            "rep",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "--quiet prints nothing on stderr");
    let results = json(&t.join("arena.json"));
    assert_eq!(results["results_kind"], "arena");
    for c in results["contestants"].as_array().unwrap() {
        let policy = c["policy"].as_str().unwrap();
        let s = run_scalars(&t.join("tb/arena-small").join(policy));
        let curve = c["curve"].as_array().unwrap();
        for (suffix, field) in [("", "mean"), ("_low95", "low"), ("_high95", "high")] {
            let got = &s[&format!("arena/reward_at_interaction{suffix}")];
            let want: Vec<(i64, f32)> = curve
                .iter()
                .enumerate()
                .map(|(i, e)| (i as i64 + 1, e[field].as_f64().unwrap() as f32))
                .collect();
            assert_eq!(got, &want, "{policy} {field}");
        }
        assert_eq!(
            s["arena/reward_per_user"],
            vec![(0, c["reward"]["mean"].as_f64().unwrap() as f32)]
        );
    }
    // The --report directory and `metarec report` give the same page.
    let page = std::fs::read_to_string(t.join("rep/index.html")).unwrap();
    // One band per policy on the cold-start plot and one on the oracle-share plot.
    assert_eq!(page.matches(r#"class="band""#).count(), 2 * 3);
    assert!(page.contains("Cold-start curves"));
    assert!(page.contains("share of the oracle&#39;s expected reward"));
    let out = metarec(
        t,
        &[
            "report",
            "arena.json",
            "--out",
            "rep2",
            "--title",
            "metarec arena report",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("index.html"));
    let page2 = std::fs::read_to_string(t.join("rep2/index.html")).unwrap();
    assert_eq!(page, page2, "same results, same page");
}

#[test]
fn train_and_meta_train_runs_match_their_manifests_and_report_renders_every_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = metarec(
        t,
        &[
            "-q",
            "train",
            "--scenario",
            "small",
            "--iterations",
            "4",
            "--batch",
            "8",
            "--seed",
            "3",
            "--out",
            "m",
            "--logdir",
            "tb",
            "--report",
            "trep",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = json(&t.join("m/manifest.json"));
    let s = run_scalars(&t.join("tb/train-m-reinforce-seed3"));
    for tag in [
        "reward_per_user",
        "return_per_user",
        "slates_per_user",
        "loss",
        "entropy",
    ] {
        let want: Vec<(i64, f32)> = manifest["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["iteration"].as_i64().unwrap(),
                    m[tag].as_f64().unwrap() as f32,
                )
            })
            .collect();
        assert_eq!(want.len(), 4);
        assert_eq!(s[&format!("train/{tag}")], want, "{tag}");
    }
    assert!(
        std::fs::read_to_string(t.join("trep/index.html"))
            .unwrap()
            .contains("Learning curve")
    );

    let out = metarec(
        t,
        &[
            "-q",
            "meta-train",
            "--scenario",
            "small",
            "--model",
            "m",
            "--users",
            "6",
            "--grid",
            "0.1,0.5",
            "--logdir",
            "tb",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let adjuster = json(&t.join("m/adjuster.json"));
    let s = run_scalars(&t.join("tb/meta-train-m-seed11"));
    let grid = adjuster["grid"].as_array().unwrap();
    let want: Vec<(i64, f32)> = grid
        .iter()
        .enumerate()
        .map(|(i, g)| (i as i64, g[1].as_f64().unwrap() as f32))
        .collect();
    assert_eq!(s["meta/reward_per_training_user"], want);

    let out = metarec(
        t,
        &[
            "-q",
            "sim",
            "calibrate",
            "--scenario",
            "small",
            "--users",
            "20",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(t.join("calibration.json"), &out.stdout).unwrap();
    let out = metarec(
        t,
        &[
            "report",
            "calibration.json",
            "m/manifest.json",
            "m/adjuster.json",
            "--out",
            "all",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(t.join("all/index.html")).unwrap();
    for section in [
        "Simulator calibration",
        "Training: scenario",
        "Meta-training",
    ] {
        assert!(page.contains(section), "missing {section}");
    }

    // A file of no known kind fails the whole report, naming the file; nothing is written.
    std::fs::write(t.join("other.json"), br#"{"hello": "world"}"#).unwrap();
    let out = metarec(
        t,
        &["report", "m/manifest.json", "other.json", "--out", "bad"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("other.json: not a results file"),
        "{}",
        stderr(&out)
    );
    assert!(!t.join("bad/index.html").exists());
    let out = metarec(t, &["report", "missing.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read missing.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_index_shows_the_cold_start_curves_with_bands_and_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = metarec(
        t,
        &[
            "-q",
            "demo",
            "--out",
            "report",
            "--iterations",
            "1",
            "--users",
            "8",
            "--seeds",
            "2",
            "--meta-users",
            "6",
            "--calibration-users",
            "20",
            "--logdir",
            "tb",
            "--no-ablations",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!t.join("report/model-mean").exists());
    let page = std::fs::read_to_string(t.join("report/index.html")).unwrap();
    let arena = json(&t.join("report/arena.json"));
    let policies = arena["contestants"].as_array().unwrap();
    assert!(page.contains("Cold-start curves"));
    // One band per policy on the cold-start plot and on the oracle-share plot, one table row
    // per policy.
    assert_eq!(page.matches(r#"class="band""#).count(), 2 * policies.len());
    for c in policies {
        let name = c["policy"].as_str().unwrap();
        assert!(
            page.contains(&format!("<td>{name}</td>")),
            "no row for {name}"
        );
    }
    for section in [
        "Arena",
        "Training",
        "Meta-training",
        "Simulator calibration",
    ] {
        assert!(page.contains(section), "missing {section}");
    }
    // Every run the demo wrote is readable.
    assert!(!run_scalars(&t.join("tb/train-model-distill-seed7")).is_empty());
    assert!(!run_scalars(&t.join("tb/arena-default/random")).is_empty());
}
