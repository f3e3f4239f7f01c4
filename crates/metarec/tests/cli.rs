//! End-to-end tests of the `metarec` binary: the commands a newcomer runs, their output on the
//! real data sets, and their errors on bad input.

mod common;

use common::{assert_says, fetched_data_dir, metarec, stderr, stdout, train_tiny_model};

#[test]
fn stats_on_online_retail_unpack_the_shipped_copy_and_report_the_standard_cleaning() {
    let tmp = tempfile::tempdir().unwrap();
    let out = metarec(tmp.path(), &["data", "stats", "online-retail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "customers                             4,334",
        "items                                 3,656",
        "purchase lines                        396,241",
        "skipped: cancellation                 8,701",
        "skipped: non-product: postage         1,966",
        "skipped: non-product: manual entry    572",
        "skipped: non-product: fee             50",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(tmp.path().join("online-retail/.complete").is_file());

    // The JSON form carries the same numbers.
    let out = metarec(
        tmp.path(),
        &["--quiet", "data", "stats", "online-retail", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let value = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .map(|r| r["value"].clone())
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    assert_eq!(value("customers"), 4334);
    assert_eq!(value("items"), 3656);
    assert_eq!(value("purchase lines"), 396_241);
    // Each non-product reason is its own row, as the standard reasons are.
    assert_eq!(value("skipped: non-product: postage"), 1_966);
    assert_eq!(value("skipped: non-product: carriage"), 225);
    assert_eq!(value("skipped: non-product: bank charges"), 37);
}

#[test]
fn stats_on_obd_random_all_report_rounds_items_positions_and_ctr() {
    let dir = fetched_data_dir("obd");
    let out = metarec(
        &dir,
        &[
            "data",
            "stats",
            "obd",
            "--policy",
            "random",
            "--campaign",
            "all",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let value = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap()["value"].clone();
    assert_eq!(value("rounds"), 10_000);
    assert_eq!(value("items"), 80);
    assert_eq!(value("positions"), 3);
    let clicks = value("clicks").as_u64().unwrap();
    let ctr = value("CTR (95% Wilson interval)");
    let expected = format!("{:.3}%", 100.0 * clicks as f64 / 10_000.0);
    assert!(
        ctr.as_str().unwrap().starts_with(&expected),
        "{ctr} vs {expected}"
    );
}

#[test]
fn obd_export_writes_a_log_that_log_check_reads_back() {
    let dir = fetched_data_dir("obd");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("obd-bts-men.jsonl");
    let out = metarec(
        &dir,
        &[
            "data",
            "export",
            "obd",
            "--policy",
            "bts",
            "--campaign",
            "men",
            "--out",
        ],
    );
    // `--out` without a value is a usage error, not a crash.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let mut args = vec![
        "data",
        "export",
        "obd",
        "--policy",
        "bts",
        "--campaign",
        "men",
        "--out",
    ];
    args.push(log.to_str().unwrap());
    let out = metarec(&dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = metarec(&dir, &["log", "check", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("10000 records read, 10000 kept"), "{text}");
    assert!(text.contains("policies: obd-bts"), "{text}");
    // The log names items by Open Bandit's item ids and records its catalog's fingerprint; the
    // check without a catalog says that keys were not resolved.
    let first = std::fs::read_to_string(&log).unwrap();
    let header: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(header["metarec_log"], 2);
    assert_eq!(
        header["catalog"]["items"], 34,
        "campaign `men` has 34 items"
    );
    let fingerprint = header["catalog"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("fingerprint {fingerprint}, 34 items")),
        "{text}"
    );
    assert!(text.contains("item keys were not resolved"), "{text}");
    let record: serde_json::Value = serde_json::from_str(first.lines().nth(1).unwrap()).unwrap();
    assert!(record["decision"]["slate"][0].is_string(), "{record}");
}

#[test]
fn log_check_names_the_line_and_field_of_a_bad_record() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.jsonl");
    let good = r#"{"context":{"user":"u1"},"decision":{"event_id":"e1","slate":["c","e"],"propensities":[0.5,0.25],"policy_id":"p"},"feedback":{"clicks":[true,false]}}"#;
    let bad = good.replace("0.25", "1.5");
    let header = common::log_header(&common::catalog_of(&["a", "b", "c", "d", "e"]));
    std::fs::write(&path, format!("{header}\n{good}\n\n{bad}\n")).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("decision"), "{err}");
    let out = metarec(
        tmp.path(),
        &["log", "check", "--skip-malformed", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 records read, 1 kept, 1 skipped"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unknown_names_and_missing_data_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = metarec(tmp.path(), &["data", "stats", "movielens"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "unknown data set `movielens`; expected one of: online-retail, obd, ml-100k, minilm"
        ),
        "{}",
        stderr(&out)
    );

    let out = metarec(tmp.path(), &["data", "stats", "obd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("run `metarec data fetch obd` first"),
        "{}",
        stderr(&out)
    );

    let out = metarec(tmp.path(), &["data", "stats", "obd", "--policy", "greedy"]);
    assert!(
        stderr(&out).contains("unknown Open Bandit policy `greedy`"),
        "{}",
        stderr(&out)
    );

    let out = metarec(
        tmp.path(),
        &["data", "fetch", "obd", "ml-100k", "--from", "x.whl"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("name exactly one data set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sim_scenarios_and_show_print_every_preset_and_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let out = metarec(tmp.path(), &["sim", "scenarios"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["default", "no-fatigue", "small", "full-catalog"] {
        assert!(stdout(&out).contains(name), "{}", stdout(&out));
    }
    let out = metarec(tmp.path(), &["sim", "show", "--scenario", "small"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for key in [
        "slate_size = 5",
        "items = 100",
        "boredom_decay",
        "max_sessions",
        "gamma",
    ] {
        assert!(text.contains(key), "missing {key} in:\n{text}");
    }
    // What `show` prints is a valid scenario file.
    let path = tmp.path().join("mine.toml");
    std::fs::write(&path, text.replace("items = 100", "items = 50")).unwrap();
    let out = metarec(
        tmp.path(),
        &["sim", "show", "--scenario", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("items = 50"));

    let out = metarec(tmp.path(), &["sim", "show", "--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a preset"), "{}", stderr(&out));
}

#[test]
fn calibrate_prints_fitted_biases_and_the_real_against_simulated_table() {
    let tmp = tempfile::tempdir().unwrap();
    let out = metarec(
        tmp.path(),
        &[
            "-q",
            "sim",
            "calibrate",
            "--scenario",
            "small",
            "--users",
            "200",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "fitted click_bias",
        "share of purchases in the top 10% of items",
        "purchase price p50 (GBP)",
        "repeat-purchase rate",
        "planner",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn arena_prints_the_table_and_writes_json_and_the_interaction_log() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("arena.json");
    let log = tmp.path().join("arena.jsonl");
    let out = metarec(
        tmp.path(),
        &[
            "arena",
            "--scenario",
            "small",
            "--users",
            "20",
            "--seeds",
            "2",
            "--policies",
            "random,popularity,oracle",
            "--json",
            json.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("reward/user") && text.contains("cold-start curve"),
        "{text}"
    );
    assert!(text.contains("oracle     - popularity"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["contestants"].as_array().unwrap().len(), 3);
    assert_eq!(report["contestants"][0]["users"], 40);
    let out = metarec(tmp.path(), &["log", "check", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("policies: oracle, popularity, random"),
        "{}",
        stdout(&out)
    );
    // The arena's log names the scenario's Online Retail stock codes, never dense indices.
    let text = std::fs::read_to_string(&log).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert!(record["decision"]["slate"][0].is_string(), "{record}");

    let out = metarec(tmp.path(), &["arena", "--policies", "random,nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown policy `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn train_writes_a_checkpoint_the_arena_plays_and_resume_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let m = model.to_str().unwrap();
    let base = [
        "-q",
        "train",
        "--scenario",
        "small",
        "--iterations",
        "4",
        "--batch",
        "8",
    ];
    let read_manifest = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap()
    };
    let out = metarec(tmp.path(), &[&base[..], &["--out", m]].concat());
    assert_says(&out, "for 4 iterations in total");
    let manifest = read_manifest();
    assert_eq!(manifest["format"], "metarec-neural/2");
    assert_eq!(manifest["source"]["name"], "small");
    assert_eq!(manifest["iterations"], 4);
    assert_eq!(manifest["features"]["items"], 100);

    // A second run without --resume refuses to overwrite; with it, training continues.
    let out = metarec(tmp.path(), &[&base[..], &["--out", m]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    let out = metarec(tmp.path(), &[&base[..], &["--out", m, "--resume"]].concat());
    assert_says(&out, "for 8 iterations in total");

    // Distillation continues the model by imitating the informed yardstick; a teacher that is
    // not a known one is refused before anything is written.
    let resume = |algo: &str, teacher: &str, more: &[&str]| {
        let args = [
            &base[..],
            &["--out", m, "--resume", "--algo", algo, "--teacher", teacher],
            more,
        ]
        .concat();
        metarec(tmp.path(), &args)
    };
    let distill = |teacher: &str| resume("distill", teacher, &[]);
    let out = distill("lints");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--teacher lints"), "{}", stderr(&out));
    let out = distill("informed:0");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("particle count"), "{}", stderr(&out));
    let out = distill("informed:50");
    assert_says(&out, "(distill) for 12 iterations in total");
    let manifest = read_manifest();
    assert_eq!(
        manifest["algos"],
        serde_json::json!(["reinforce", "reinforce", "distill"])
    );
    // Imitating a deeper ranking than the slate is distillation's alone; the manifest records
    // the depth.
    let deeper = |algo: &str| resume(algo, "informed:50", &["--imitate-depth", "8"]);
    let out = deeper("reinforce");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--algo distill"), "{}", stderr(&out));
    let out = deeper("distill");
    assert_says(&out, "(distill) for 16 iterations in total");
    assert_eq!(read_manifest()["train"]["imitate_depth"], 8);
    // The yardstick over a model's item vectors teaches too (here the model's own, read before
    // training moves them); over a directory without a model it is refused.
    let out = distill("informed-network:no-such-model");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-model"), "{}", stderr(&out));
    let out = distill(&format!("informed-network:{m}"));
    assert_says(&out, "(distill) for 20 iterations in total");
    // Posterior distillation needs no teacher: the scenario's simulator reveals its users.
    let out = metarec(
        tmp.path(),
        &[&base[..], &["--out", m, "--resume", "--algo", "posterior"]].concat(),
    );
    assert_says(&out, "(posterior) for 24 iterations in total");
    assert_eq!(read_manifest()["algos"][5], "posterior");

    let neural = format!("neural:{m}");
    let out = metarec(
        tmp.path(),
        &[
            "-q",
            "arena",
            "--scenario",
            "small",
            "--users",
            "10",
            "--seeds",
            "1",
            "--policies",
            &format!("random,{neural},neural-static:{m},informed-network:{m}"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&neural), "{}", stdout(&out));
    // The network without adaptation and the yardstick over the network's item knowledge play
    // too; the arena says how much of the hidden item vectors that knowledge explains.
    assert!(
        stdout(&out).contains(&format!("neural-static:{m}"))
            && stdout(&out).contains(&format!(
                "informed-network:{m}: the catalog's 6 observable feature columns and the network's 16 item-vector columns"
            )),
        "{}",
        stdout(&out)
    );

    // Without --scenario the arena plays the scenario the model was trained on; the model does
    // not fit another scenario's catalog: a clear error, not a crash.
    let arena = |scenario: &[&str]| {
        let args = [
            &[
                "-q",
                "arena",
                "--users",
                "5",
                "--seeds",
                "1",
                "--policies",
                &neural,
            ][..],
            scenario,
        ]
        .concat();
        metarec(tmp.path(), &args)
    };
    let out = arena(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("scenario `small`"),
        "{}",
        stdout(&out)
    );
    let out = arena(&["--scenario", "default"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ranks another catalog") && stderr(&out).contains("`small`"),
        "{}",
        stderr(&out)
    );

    // A damaged weights file is named in the error.
    std::fs::write(model.join("model.safetensors"), b"garbage").unwrap();
    let out = arena(&["--scenario", "small"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("model.safetensors"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn meta_train_writes_the_adjuster_that_the_arena_plays() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let m = model.to_str().unwrap();
    train_tiny_model(tmp.path(), &model);
    // Without meta-training, the arena says what to run.
    let adjusted = format!("adjusted:{m}");
    let arena = [
        "-q",
        "arena",
        "--scenario",
        "small",
        "--users",
        "10",
        "--seeds",
        "1",
        "--policies",
    ];
    let out = metarec(tmp.path(), &[&arena[..], &[adjusted.as_str()]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("metarec meta-train"),
        "{}",
        stderr(&out)
    );

    let meta_train = || {
        metarec(
            tmp.path(),
            &[
                "-q",
                "meta-train",
                "--scenario",
                "small",
                "--model",
                m,
                "--users",
                "20",
                "--grid",
                "0.1,0.5",
                "--learn-shape",
            ],
        )
    };
    let out = meta_train();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("<- chosen"), "{}", stdout(&out));
    let adjuster: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("adjuster.json")).unwrap())
            .unwrap();
    assert_eq!(adjuster["grid"].as_array().unwrap().len(), 2);
    // The chosen setting is compared with the network alone on users of its own, paired.
    let held_out = &adjuster["held_out"];
    assert_eq!(held_out["users"], 20, "{adjuster}");
    let (alone, with_adjuster, gain) = (
        held_out["network"].as_f64().unwrap(),
        held_out["adjusted"].as_f64().unwrap(),
        held_out["gain"].as_f64().unwrap(),
    );
    assert!((gain - (with_adjuster - alone)).abs() < 1e-9, "{held_out}");
    assert!(
        held_out["low"].as_f64().unwrap() <= gain && gain <= held_out["high"].as_f64().unwrap(),
        "{held_out}"
    );
    assert!(
        stdout(&out).contains("held-out training users"),
        "{}",
        stdout(&out)
    );
    // Each prior scale was tried both ways, with the identity and with the learned prior
    // shape, and the chosen setting is the best of all of them.
    let mean_grid = adjuster["mean_grid"].as_array().unwrap();
    assert_eq!(mean_grid.len(), 2);
    let tried = |grid: &serde_json::Value, thompson: bool| -> Vec<(f64, bool, bool, f64)> {
        grid.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap(),
                    thompson,
                    false,
                    p[1].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let shaped: Vec<(f64, bool, bool, f64)> = adjuster["shaped_grid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_f64().unwrap(),
                p[1].as_bool().unwrap(),
                true,
                p[2].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shaped.len(), 4, "{adjuster}");
    let all = [
        tried(&adjuster["grid"], true),
        tried(&adjuster["mean_grid"], false),
        shaped,
    ]
    .concat();
    let best = all.iter().map(|t| t.3).fold(f64::NEG_INFINITY, f64::max);
    let config = &adjuster["config"];
    let chosen = (
        config["prior_scale"].as_f64().unwrap(),
        config["thompson"].as_bool().unwrap(),
        adjuster.get("prior_shape").is_some(),
    );
    assert!(
        all.iter()
            .any(|&(tau, t, s, r)| (tau, t, s) == chosen && r == best),
        "{adjuster}"
    );
    // The same seed gives the same file, learned shape included.
    let first = std::fs::read(model.join("adjuster.json")).unwrap();
    let out = meta_train();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(model.join("adjuster.json")).unwrap(), first);

    let out = metarec(tmp.path(), &[&arena[..], &[adjusted.as_str()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&adjusted));

    let out = metarec(
        tmp.path(),
        &[
            "-q",
            "meta-train",
            "--scenario",
            "small",
            "--model",
            m,
            "--grid",
            "0.1,x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--grid"), "{}", stderr(&out));
}

/// A JSON file, parsed.
fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs a small demo into `report` under `dir` with `extra` arguments.
fn small_demo(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let report = dir.join("report");
    let mut args = vec![
        "-q",
        "demo",
        "--out",
        report.to_str().unwrap(),
        "--iterations",
        "1",
        "--users",
        "8",
        "--seeds",
        "1",
        "--meta-users",
        "8",
        "--calibration-users",
        "20",
        "--ablation-iterations",
        "1",
    ];
    args.extend_from_slice(extra);
    metarec(dir, &args)
}

#[test]
fn demo_runs_end_to_end_and_writes_its_report_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let out = small_demo(tmp.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("adjusted:") && text.contains("cold-start curve"),
        "{text}"
    );
    for file in [
        "README.txt",
        "calibration.txt",
        "calibration.json",
        "training.tsv",
        "arena.txt",
        "arena.json",
        "model/manifest.json",
        "model/model.safetensors",
        "model/adjuster.json",
        "model-unfitted/adjuster.json",
        "model-alone/adjuster.json",
    ] {
        assert!(report.join(file).is_file(), "missing {file}");
    }
    // The ablation of the network's own inference: the same network with an adjuster that
    // corrects a new user's head, meta-trained and played.
    let alone = json(&report.join("model-alone/adjuster.json"));
    assert_eq!(alone["config"]["head"], "new-user", "{alone}");
    assert!(
        json(&report.join("model/adjuster.json"))["config"]
            .get("head")
            .is_none()
    );
    assert!(
        text.contains(&format!(
            "adjusted:{}",
            report.join("model-alone").display()
        )),
        "{text}"
    );
    // The ablation of meta-training plays beside the meta-trained adjuster, and the network
    // without per-user adaptation beside the network.
    assert!(text.contains("model-unfitted"), "{text}");
    assert!(
        text.contains(&format!("neural-static:{}", report.join("model").display())),
        "{text}"
    );
    // The adjusted model as `metarec serve` serves it, played over HTTP.
    assert!(
        text.contains(&format!("served:{}", report.join("model").display())),
        "{text}"
    );
    // The encoder and gamma ablations: trained, saved and played.
    // The demo's network reads the user through the set encoder; the ablation is the
    // averaging user tower, trained the same way.
    let mean = json(&report.join("model-mean/manifest.json"));
    assert!(mean["model"].get("encoder").is_none(), "{mean}");
    assert_eq!(mean["iterations"], 1651);
    for arm in ["model-gamma0", "model-gamma0.9"] {
        let m = json(&report.join(arm).join("manifest.json"));
        assert_eq!(
            m["algos"],
            serde_json::json!([
                "distill",
                "distill",
                "distill",
                "distill",
                "distill",
                "actor-critic"
            ]),
            "{arm}"
        );
        assert_eq!(m["iterations"], 1652, "{arm}");
        assert!(
            text.contains(&format!("neural-greedy:{}", report.join(arm).display())),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "neural-greedy:{}",
            report.join("model-mean").display()
        )),
        "{text}"
    );
    // The shipped network (1,000 iterations of distillation, then 100, 400 and 150 resumed),
    // widened to the set encoder and fine-tuned by one more that imitates the teacher's best 20;
    // the training curve holds all of them.
    let manifest = json(&report.join("model/manifest.json"));
    assert_eq!(manifest["model"]["encoder"], "set");
    assert_eq!(manifest["iterations"], 1651);
    assert_eq!(manifest["train"]["imitate_depth"], 20);
    assert_eq!(manifest["algos"], serde_json::json!(vec!["distill"; 5]));
    let curve = std::fs::read_to_string(report.join("training.tsv")).unwrap();
    assert_eq!(curve.lines().count(), 1 + 1651);
}

#[test]
fn demo_from_scratch_trains_a_new_network() {
    let tmp = tempfile::tempdir().unwrap();
    let out = small_demo(tmp.path(), &["--from-scratch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = json(&tmp.path().join("report/model/manifest.json"));
    assert_eq!(manifest["iterations"], 1);
    assert_eq!(manifest["model"]["encoder"], "set");
    // From scratch the network learns by posterior distillation, sampling its visits at the
    // demo's rollout temperature; so does the encoder ablation.
    assert_eq!(manifest["algos"], serde_json::json!(["posterior"]));
    assert_eq!(manifest["train"]["rollout_temperature"], 0.2);
    let mean = json(&tmp.path().join("report/model-mean/manifest.json"));
    assert_eq!(mean["algos"], serde_json::json!(["posterior"]));
    // The demo owns its report directory: a second run replaces the model with the shipped one.
    let again = small_demo(tmp.path(), &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let manifest = json(&tmp.path().join("report/model/manifest.json"));
    assert_eq!(manifest["iterations"], 1651);
}

#[test]
fn embed_writes_one_unit_vector_per_item_and_a_second_run_uses_the_cache() {
    let dir = fetched_data_dir("minilm");
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("emb.json");
    let out = metarec(&dir, &["-q", "embed", "--out", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(json["dim"], 384);
    assert_eq!(json["keys"].as_array().unwrap().len(), 3656);
    let values = json["vectors"].as_array().unwrap();
    assert_eq!(values.len(), 3656 * 384);
    let first: f64 = values[..384]
        .iter()
        .map(|v| v.as_f64().unwrap().powi(2))
        .sum();
    assert!((first - 1.0).abs() < 1e-3, "{first}");
    let again = metarec(&dir, &["-q", "embed", "--out", out_path.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("embedded 0 new titles"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn new_items_text_features_beat_id_only_on_products_never_seen_sold() {
    let dir = fetched_data_dir("minilm");
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("new-items.json");
    let out = metarec(
        &dir,
        &["-q", "new-items", "--out", out_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("id+text"), "{}", stdout(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(json["kind"], "new-items");
    assert_eq!(json["results_kind"], "new-items");
    let rows = json["results"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["features"] == name)
            .unwrap_or_else(|| panic!("no row {name}"))
            .clone()
    };
    let (id, text) = (row("id"), row("id+text"));
    // Id-only features cannot tell new products apart: its hit rate is chance up to noise.
    let chance = json["chance_hit_rate"].as_f64().unwrap();
    let hr = &id["hit_rate"];
    assert!(
        hr["low"].as_f64().unwrap() <= chance && chance <= hr["high"].as_f64().unwrap(),
        "{hr} vs chance {chance}"
    );
    // Titles carry real signal: the paired difference's interval lies above zero.
    assert!(
        text["hit_rate_vs_id"]["low"].as_f64().unwrap() > 0.0,
        "{text}"
    );
    assert!(text["ndcg_vs_id"]["low"].as_f64().unwrap() > 0.0, "{text}");
    assert!(json["new_items"].as_u64().unwrap() > 50);
}

/// Plays `policy` on 10 users of the small scenario and checks that the arena ran it.
fn plays_in_a_small_arena(dir: &std::path::Path, policy: &str) {
    let out = metarec(
        dir,
        &[
            "-q",
            "arena",
            "--scenario",
            "small",
            "--users",
            "10",
            "--seeds",
            "1",
            "--policies",
            policy,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(policy), "{}", stdout(&out));
}

#[test]
fn gradient_meta_training_is_reproducible_and_plays_in_the_arena() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let m = model.to_str().unwrap();
    train_tiny_model(tmp.path(), &model);
    let meta = [
        "-q",
        "meta-train",
        "--scenario",
        "small",
        "--adjuster",
        "gradient",
        "--model",
        m,
        "--users",
        "16",
        "--grid",
        "0.05,0.2",
    ];
    let read = || std::fs::read_to_string(model.join("adjuster.json")).unwrap();
    let out = metarec(tmp.path(), &meta);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = read();
    let out = metarec(tmp.path(), &meta);
    assert!(out.status.success(), "{}", stderr(&out));
    // The same seed gives the same calibration, initial correction and grid, bit for bit.
    assert_eq!(first, read());
    let adjuster: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(adjuster["kind"], "gradient");
    assert_eq!(adjuster["grid"].as_array().unwrap().len(), 2);
    assert!(
        adjuster["gradient"]["calibration"]["scale"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    plays_in_a_small_arena(tmp.path(), &format!("adjusted:{m}"));
    // An unknown adjuster is a clear error.
    let out = metarec(
        tmp.path(),
        &[
            "-q",
            "meta-train",
            "--scenario",
            "small",
            "--adjuster",
            "maml2",
            "--model",
            m,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected: bayes, gradient"),
        "{}",
        stderr(&out)
    );
    // The new user's head is a setting of the Bayesian adjuster only.
    let mut alone = meta.to_vec();
    alone.extend(["--head", "new-user"]);
    let out = metarec(tmp.path(), &alone);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--head new-user") && stderr(&out).contains("--adjuster bayes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(first, read(), "a refused run leaves the adjuster as it was");
}

/// `meta-train --head new-user`: the Bayesian adjuster of the ablation in which it alone
/// learns each user (the tower reads them as new) is written with its setting, plays in the
/// arena, and reports its gain against the network as trained.
#[test]
fn the_adjuster_alone_is_meta_trained_on_a_new_users_head_and_plays() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let m = model.to_str().unwrap();
    train_tiny_model(tmp.path(), &model);
    let meta = |head: &str| {
        metarec(
            tmp.path(),
            &[
                "-q",
                "meta-train",
                "--scenario",
                "small",
                "--model",
                m,
                "--users",
                "16",
                "--grid",
                "0.3,1",
                "--head",
                head,
            ],
        )
    };
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(model.join("adjuster.json")).unwrap())
            .unwrap()
    };
    let out = meta("history");
    assert!(out.status.success(), "{}", stderr(&out));
    let history = read();
    assert!(history["config"].get("head").is_none(), "{history}");
    let out = meta("new-user");
    assert!(out.status.success(), "{}", stderr(&out));
    let alone = read();
    assert_eq!(alone["config"]["head"], "new-user", "{alone}");
    // Its calibration is fitted to the new user's head, whose scores differ from the ones
    // that read the history.
    assert_ne!(
        alone["config"]["calibration"],
        history["config"]["calibration"]
    );
    // The held-out comparison is against the network as trained, the same users either way.
    assert_eq!(
        alone["held_out"]["network"], history["held_out"]["network"],
        "{alone}"
    );
    plays_in_a_small_arena(tmp.path(), &format!("adjusted:{m}"));
    let out = meta("newuser");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("new-user"), "{}", stderr(&out));
}
