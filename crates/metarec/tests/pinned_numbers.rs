//! Numbers pinned across refactors: the same commands with the same seeds must give the same
//! numbers, bit for bit, after any change that is not meant to change behaviour.
//!
//! The pinned values were printed by the code before the model bundle, policy registry and
//! rollout refactor (issue 17) and are compared here with every digit (Rust prints the shortest
//! decimal that reads back as the same `f64`). They cover every loop that plays users: training
//! by reinforcement learning, supervised training on a simulated random log, distillation from
//! the informed yardstick, both meta-trainers, the calibration yardsticks and the arena with
//! every kind of contestant. A change that alters them on purpose updates them in the same
//! commit and says why.

mod common;

use common::{metarec_in, stderr, stdout};
use serde_json::Value;
use std::path::Path;

/// Runs a metarec command quietly in `cwd` and returns its standard output, failing on an error.
fn run(cwd: &Path, data_dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    let out = metarec_in(cwd, data_dir, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// One line per number: `label value`, with the value printed exactly.
fn lines(values: &[(String, f64)]) -> String {
    values.iter().map(|(k, v)| format!("{k} {v:?}\n")).collect()
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// The per-iteration training numbers of a model directory.
fn training_numbers(model: &Path, label: &str) -> Vec<(String, f64)> {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for (i, m) in manifest["metrics"].as_array().unwrap().iter().enumerate() {
        for field in ["reward_per_user", "return_per_user", "loss", "entropy"] {
            out.push((format!("{label}.{i}.{field}"), number(m, &[field])));
        }
    }
    out
}

/// The meta-training grid of a model directory's adjuster.
fn adjuster_numbers(model: &Path, label: &str) -> Vec<(String, f64)> {
    let adjuster: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("adjuster.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for key in ["grid", "mean_grid"] {
        for (i, pair) in adjuster[key].as_array().unwrap().iter().enumerate() {
            out.push((
                format!("{label}.{key}.{i}.setting"),
                pair[0].as_f64().unwrap(),
            ));
            out.push((
                format!("{label}.{key}.{i}.reward"),
                pair[1].as_f64().unwrap(),
            ));
        }
    }
    out
}

/// Every number the pinned commands produce, as `label value` lines. The commands run in `dir`
/// with relative paths, because a model's directory is part of its contestant name, and the name
/// seeds the contestant's random stream.
fn produce(data_dir: &Path, dir: &Path) -> String {
    let run = |args: &[&str]| run(dir, data_dir, args);
    let (a, b, s, d) = ("a", "b", "s", "d");
    let logdir = "runs";
    let tiny = |out: &str, algo: &str, batch: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--scenario",
            "small",
            "--algo",
            algo,
            "--iterations",
            "3",
            "--batch",
            batch,
            "--out",
            out,
            "--logdir",
            &logdir,
        ];
        args.extend_from_slice(extra);
        run(&args);
    };
    tiny(a, "reinforce", "8", &[]);
    tiny(b, "actor-critic", "8", &["--seed", "3"]);
    tiny(s, "supervised", "64", &[]);
    tiny(d, "distill", "4", &["--teacher", "informed:8"]);
    let mut numbers = Vec::new();
    for (model, label) in [
        (a, "reinforce"),
        (b, "actor-critic"),
        (s, "supervised"),
        (d, "distill"),
    ] {
        numbers.extend(training_numbers(&dir.join(model), label));
    }
    run(&[
        "meta-train",
        "--scenario",
        "small",
        "--model",
        a,
        "--users",
        "12",
        "--grid",
        "0.1,0.5",
        "--logdir",
        logdir,
    ]);
    run(&[
        "meta-train",
        "--scenario",
        "small",
        "--model",
        b,
        "--adjuster",
        "gradient",
        "--users",
        "12",
        "--grid",
        "0.05,0.2",
        "--logdir",
        logdir,
    ]);
    numbers.extend(adjuster_numbers(&dir.join(a), "bayes"));
    numbers.extend(adjuster_numbers(&dir.join(b), "gradient"));

    let calibration: Value = serde_json::from_str(&run(&[
        "sim",
        "calibrate",
        "--scenario",
        "small",
        "--users",
        "40",
        "--json",
    ]))
    .unwrap();
    numbers.extend(json_numbers(&calibration, "calibration"));

    let json = "arena.json";
    let policies = format!(
        "random,popularity,egreedy,linucb,linucb-user,lints,lints-user,itemknn,oracle,planner,\
         informed:8,informed-ts:8,neural:{a},neural-greedy:{a},adjusted:{a},adjusted:{b}"
    );
    run(&[
        "arena",
        "--scenario",
        "small",
        "--policies",
        &policies,
        "--users",
        "15",
        "--seeds",
        "2",
        "--json",
        json,
        "--logdir",
        logdir,
    ]);
    let arena: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(json)).unwrap()).unwrap();
    for c in arena["contestants"].as_array().unwrap() {
        let name = c["policy"].as_str().unwrap();
        for field in [
            "reward",
            "early_reward",
            "discounted_return",
            "ctr",
            "cvr",
            "revenue",
            "regret",
            "visits",
        ] {
            numbers.push((format!("arena.{name}.{field}"), number(c, &[field, "mean"])));
        }
        for (t, share) in c["oracle_share"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .take(3)
        {
            numbers.push((
                format!("arena.{name}.oracle_share.{t}"),
                number(share, &["mean"]),
            ));
        }
    }
    lines(&numbers)
}

/// Every number in a JSON value, labelled by its path, in document order.
fn json_numbers(v: &Value, label: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    match v {
        Value::Number(n) => out.push((label.to_owned(), n.as_f64().unwrap())),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                out.extend(json_numbers(x, &format!("{label}.{i}")));
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                out.extend(json_numbers(x, &format!("{label}.{k}")));
            }
        }
        _ => {}
    }
    out
}

#[test]
fn training_meta_training_calibration_and_the_arena_give_the_pinned_numbers() {
    let data_dir = common::data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let got = produce(&data_dir, tmp.path());
    if let Some(path) = std::env::var_os("METAREC_PIN_OUT") {
        std::fs::write(path, &got).unwrap();
    }
    let pinned = include_str!("pinned_numbers.txt");
    let (mut differ, mut first) = (0, Vec::new());
    for (g, p) in got.lines().zip(pinned.lines()) {
        if g != p {
            differ += 1;
            if first.len() < 10 {
                first.push(format!("  got    {g}\n  pinned {p}"));
            }
        }
    }
    assert_eq!(
        got.lines().count(),
        pinned.lines().count(),
        "a different set of numbers:\n{got}"
    );
    assert!(
        differ == 0,
        "{differ} numbers differ from the pinned ones; the first:\n{}",
        first.join("\n")
    );
}
