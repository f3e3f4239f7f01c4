//! End-to-end tests of `metarec ope`: the Open Bandit table, interaction logs with item keys, and
//! the rejection of malformed logs.

mod common;

use common::{catalog_of, fetched_data_dir, log_header, metarec, stderr, stdout, write_catalog};
use std::process::Output;

/// Writes the catalog of four items keyed `0` to `3` into `dir` and returns its path.
fn four_items(dir: &std::path::Path) -> String {
    write_catalog(dir, &catalog_of(&["0", "1", "2", "3"]))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The header line of a log of [`four_items`].
fn header() -> String {
    log_header(&catalog_of(&["0", "1", "2", "3"]))
}

#[test]
fn ope_on_obd_random_all_prints_every_estimator_with_its_error_against_bts() {
    let dir = fetched_data_dir("obd");
    let args = [
        "--quiet",
        "ope",
        "--data",
        "obd",
        "--logs",
        "random",
        "--campaign",
        "all",
        "--policy",
        "bts",
        "--resamples",
        "200",
    ];
    let out = metarec(&dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for name in [
        "DM",
        "IPW",
        "SNIPW",
        "DR",
        "SNDR",
        "switch-DR(10)",
        "DR-OS(100)",
    ] {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{text}"));
        // estimate, interval, ratio to logging, ESS, relative error against BTS's own CTR.
        assert!(
            row.contains('[') && row.contains("x ") && row.ends_with('%'),
            "{row}"
        );
    }
    let ipw: f64 = text
        .lines()
        .find(|l| l.starts_with("IPW "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Open Bandit Pipeline's quickstart: IPW about 0.00455 (Monte Carlo noise about 0.00004).
    assert!((ipw - 0.00455).abs() < 0.0001, "{ipw}");
    assert!(
        text.contains("bts on-policy CTR (bts logs): 0.004200"),
        "{text}"
    );
    assert!(
        text.contains("random on-policy CTR (random logs): 0.003800"),
        "{text}"
    );

    // Same seeds, same table; the JSON form carries the same estimate.
    let again = metarec(&dir, &args);
    assert_eq!(stdout(&again), text);
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = metarec(&dir, &json_args);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["results_kind"], "ope");
    let ipw_json = json["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["estimator"] == "IPW")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((ipw_json - ipw).abs() < 1e-6);

    // The printed JSON renders as a report page with both on-policy lines.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ope.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let page_dir = tmp.path().join("page");
    let out = metarec(
        &dir,
        &[
            "report",
            file.to_str().unwrap(),
            "--out",
            page_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(page_dir.join("index.html")).unwrap();
    assert!(html.contains("Off-policy evaluation: `bts`"));
    assert!(
        html.contains(">logging policy on-policy CTR = 0.0038"),
        "{html}"
    );
    assert!(html.contains(">bts on-policy CTR = 0.0042"), "{html}");
}

#[test]
fn ope_reports_clipping_when_asked() {
    let dir = fetched_data_dir("obd");
    let out = metarec(
        &dir,
        &[
            "--quiet",
            "ope",
            "--policy",
            "bts",
            "--resamples",
            "50",
            "--clip",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with("clipping:")).unwrap();
    assert!(
        line.starts_with("clipping: weights capped at 5: "),
        "{line}"
    );
    let clipped: usize = line
        .split(": ")
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(clipped > 0, "{line}");
}

/// One interaction-log line showing the item keyed `item`; event ids must differ between lines
/// (the reader rejects repeats).
fn record(id: &str, item: u32, propensity: &str) -> String {
    format!(
        r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"{id}","slate":["{item}"],"propensities":[{propensity}],"policy_id":"p"}},"feedback":{{"clicks":[true]}}}}"#
    )
}

#[test]
fn malformed_logs_are_rejected_naming_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = four_items(tmp.path());
    let cases = [
        (
            r#"{"context":{"user":"u"},"decision":{"event_id":"e2","slate":["1"],"policy_id":"p"},"feedback":{"clicks":[true]}}"#.to_owned(),
            "line 3: field `decision`: missing field `propensities`",
        ),
        (record("e2", 1, "0"), "line 3"),
        (record("e2", 1, "1.5"), "line 3"),
        (
            record("e2", 9, "0.5"),
            "line 3: field `decision.slate[0]`: item `9` is not in the catalog",
        ),
        (
            record("e1", 1, "0.5"),
            "line 3: field `decision.event_id`: event id `e1` is already used on line 2",
        ),
    ];
    for (bad, expected) in cases {
        let path = tmp.path().join("log.jsonl");
        let (first, last) = (record("e1", 1, "0.5"), record("e3", 1, "0.5"));
        std::fs::write(&path, format!("{}\n{first}\n{bad}\n{last}\n", header())).unwrap();
        let out = metarec(
            tmp.path(),
            &[
                "ope",
                "--data",
                "log",
                "--log",
                path.to_str().unwrap(),
                "--catalog",
                &catalog,
                "--positions",
                "1",
                "--policy",
                "uniform",
                "--resamples",
                "10",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{bad}: {err}");
        if expected == "line 3" {
            assert!(err.contains("propensit") && err.contains("(0, 1]"), "{err}");
        }
    }
    // The good records alone evaluate: uniform on uniform logs gives back the logged value.
    let path = tmp.path().join("log.jsonl");
    std::fs::write(
        &path,
        format!(
            "{}\n{}\n{}\n",
            header(),
            record("a", 1, "0.25"),
            record("b", 2, "0.25")
        ),
    )
    .unwrap();
    let out = metarec(
        tmp.path(),
        &[
            "--quiet",
            "ope",
            "--data",
            "log",
            "--log",
            path.to_str().unwrap(),
            "--catalog",
            &catalog,
            "--positions",
            "1",
            "--policy",
            "uniform",
            "--resamples",
            "10",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("logging policy value 1.000000"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_log_exported_as_dsjson_evaluates_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let catalog = four_items(tmp.path());
    let jsonl = tmp.path().join("log.jsonl");
    let lines: Vec<String> = std::iter::once(header())
        .chain((0..40).map(|i| {
            format!(
                r#"{{"context":{{"user":"u{i}","tokens":["k=v{}"]}},"decision":{{"event_id":"e{i}","slate":["{}","{}"],"propensities":[0.25,0.25],"policy_id":"p"}},"feedback":{{"clicks":[{},false]}}}}"#,
                i % 3,
                i % 4,
                (i + 1) % 4,
                i % 5 == 0
            )
        }))
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let dsjson = tmp.path().join("log.dsjson");
    let common = [
        "--catalog",
        &catalog,
        "--positions",
        "2",
        "--policy",
        "uniform",
        "--resamples",
        "20",
    ];
    let mut args = vec![
        "--quiet",
        "ope",
        "--data",
        "log",
        "--log",
        jsonl.to_str().unwrap(),
    ];
    args.extend(common);
    args.extend(["--export-dsjson", dsjson.to_str().unwrap()]);
    let first = metarec(tmp.path(), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    let mut args = vec![
        "--quiet",
        "ope",
        "--data",
        "dsjson",
        "--log",
        dsjson.to_str().unwrap(),
    ];
    args.extend(common);
    let second = metarec(tmp.path(), &args);
    assert!(second.status.success(), "{}", stderr(&second));
    // Same numbers; only the file name in the title differs.
    let strip = |o: &Output| stdout(o).lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&first), strip(&second));
    assert!(
        stdout(&second).contains("(40 rounds, 80 entries"),
        "{}",
        stdout(&second)
    );
}

#[test]
fn a_metarec_baseline_is_evaluated_through_its_seeded_decisions() {
    let dir = fetched_data_dir("obd");
    let args = [
        "--quiet",
        "ope",
        "--policy",
        "baseline",
        "--baseline",
        "random",
        "--resamples",
        "50",
    ];
    let out = metarec(&dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Off-policy evaluation of random on"),
        "{text}"
    );
    // The random baseline is the logging policy up to Monte Carlo noise in its distribution: the
    // logged CTR 0.0038 lies inside IPW's interval.
    let row = text.lines().find(|l| l.starts_with("IPW ")).unwrap();
    let bounds: Vec<f64> = row
        .split(['[', ']', ','])
        .skip(1)
        .take(2)
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert!(bounds[0] < 0.0038 && 0.0038 < bounds[1], "{row}");
    assert_eq!(stdout(&metarec(&dir, &args)), text);
    let out = metarec(&dir, &["ope", "--policy", "baseline", "--baseline", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown policy `nope`"),
        "{}",
        stderr(&out)
    );
}

/// `metarec ope --data log|dsjson` on `log` with uniform evaluation over 4 items at 1 position,
/// plus `extra` arguments.
fn ope_on(dir: &std::path::Path, data: &str, log: &std::path::Path, extra: &[&str]) -> Output {
    let catalog = four_items(dir);
    let mut args = vec![
        "--quiet",
        "ope",
        "--data",
        data,
        "--log",
        log.to_str().unwrap(),
        "--catalog",
        &catalog,
        "--positions",
        "1",
        "--policy",
        "uniform",
        "--resamples",
        "50",
    ];
    args.extend(extra);
    metarec(dir, &args)
}

/// An interaction log with a blank third line: after the header, lines 2, 4, 5, 6 hold uniformly
/// logged rounds, line 5 with propensity `tiny`, line 6 with `other`.
fn log_with_tiny(dir: &std::path::Path, tiny: &str, other: &str) -> std::path::PathBuf {
    let path = dir.join("tiny.jsonl");
    let lines = [
        header(),
        record("a", 0, "0.25"),
        String::new(),
        record("b", 1, "0.25"),
        record("c", 2, tiny),
        record("d", 3, other),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The same rounds as DSJSON (exported by `metarec ope --export-dsjson`, so lines 1 to 4).
fn dsjson_of(dir: &std::path::Path, log: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("tiny.dsjson");
    let export = ope_on(
        dir,
        "log",
        log,
        &["--clip", "1e9", "--export-dsjson", out.to_str().unwrap()],
    );
    assert!(export.status.success(), "{}", stderr(&export));
    out
}

#[test]
fn a_propensity_below_the_floor_is_an_error_naming_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let log = log_with_tiny(tmp.path(), "1e-300", "0.25");
    let out = ope_on(tmp.path(), "log", &log, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    // Line 5 of the file (the header and the blank line 3 count), not the third record.
    assert!(
        err.contains("row 5: entry 0: logging propensity 1e-300 is below the floor 1e-6"),
        "{err}"
    );
    assert!(err.contains("tiny.jsonl"), "{err}");
    // DSJSON goes through the same check, naming its own line.
    let dsjson = dsjson_of(tmp.path(), &log);
    let out = ope_on(tmp.path(), "dsjson", &dsjson, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("row 3: entry 0: logging propensity 1e-300 is below the floor"),
        "{}",
        stderr(&out)
    );
    // A lower floor accepts the row; a higher one rejects ordinary rows.
    let out = ope_on(tmp.path(), "log", &log, &["--propensity-floor", "1e-300"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ope_on(tmp.path(), "log", &log, &["--propensity-floor", "0.5"]);
    assert!(
        stderr(&out).contains("row 2: entry 0: logging propensity 2.5e-1 is below the floor 5e-1"),
        "{}",
        stderr(&out)
    );
    // Open Bandit data goes through it too, naming the round.
    let data = obd_fixture(tmp.path(), 7, "1e-300");
    let out = metarec(&data, &obd_args(&[]));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("row 7: entry 0: logging propensity 1e-300 is below the floor 1e-6"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn propensity_floor_out_of_range_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let log = log_with_tiny(tmp.path(), "0.25", "0.25");
    for bad in ["0", "-1e-6", "1.5", "NaN", "inf", "x"] {
        // `=` keeps clap from reading a negative value as an option of its own.
        let option = format!("--propensity-floor={bad}");
        let out = ope_on(tmp.path(), "log", &log, &[option.as_str()]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("must be a number greater than 0 and at most 1"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    // Both ends of (0, 1] are accepted: a floor of 1 parses, and then rejects these rows.
    let out = ope_on(tmp.path(), "log", &log, &["--propensity-floor", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("below the floor 1e0"),
        "{}",
        stderr(&out)
    );
    let out = ope_on(tmp.path(), "log", &log, &["--propensity-floor", "0.25"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn clipping_reports_how_many_rows_were_clipped() {
    let tmp = tempfile::tempdir().unwrap();
    let log = log_with_tiny(tmp.path(), "1e-300", "5e-324");
    let out = ope_on(tmp.path(), "log", &log, &["--clip", "1e9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("propensity floor 1e-6: 2 rows clipped to it (2 entries)"),
        "{text}"
    );
    assert!(
        text.contains("clipping: weights capped at 1000000000: 0 entries clipped"),
        "{text}"
    );
    let out = ope_on(tmp.path(), "log", &log, &["--clip", "1e9", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["propensity_floor"]["clipped_rows"], 2);
    assert_eq!(json["propensity_floor"]["clipped_entries"], 2);
    assert_eq!(json["propensity_floor"]["floor"], 1e-6);
    assert_eq!(json["rounds"], 4);
    assert_eq!(json["policies"][0]["policy"], "uniform");
    assert_eq!(
        json["policies"][0]["estimates"].as_array().unwrap().len(),
        7
    );
    assert_eq!(json["logging"]["estimator"], "logging (on-policy)");
    // Without tiny propensities nothing is clipped, and that is said too.
    let clean = log_with_tiny(tmp.path(), "0.25", "0.25");
    let out = ope_on(tmp.path(), "log", &clean, &["--clip", "1e9"]);
    assert!(
        stdout(&out).contains("propensity floor 1e-6: 0 rows clipped to it"),
        "{}",
        stdout(&out)
    );
    // Open Bandit: the table and the results JSON carry the count.
    let data = obd_fixture(tmp.path(), 7, "1e-300");
    let out = metarec(&data, &obd_args(&["--clip", "1e9"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("propensity floor 1e-6: 1 rows clipped to it (1 entries)"),
        "{}",
        stdout(&out)
    );
    let out = metarec(&data, &obd_args(&["--clip", "1e9", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["propensity_floor"]["clipped_rows"], 1);
    assert_eq!(json["propensity_floor"]["clip"], true);
}

#[test]
fn no_estimate_is_nan_for_tiny_propensities() {
    let tmp = tempfile::tempdir().unwrap();
    for tiny in ["5e-324", "1e-300"] {
        let log = log_with_tiny(tmp.path(), tiny, "0.25");
        let out = ope_on(tmp.path(), "log", &log, &["--clip", "1e9"]);
        assert!(out.status.success(), "{tiny}: {}", stderr(&out));
        // The title names the file, whose temporary folder could spell anything; the rest is
        // numbers and words of the command's own.
        let text: String = stdout(&out).lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(
            !text.contains("NaN") && !text.contains("inf"),
            "{tiny}: {text}"
        );
        let out = ope_on(tmp.path(), "log", &log, &["--clip", "1e9", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for e in json["policies"][0]["estimates"].as_array().unwrap() {
            for field in ["value", "low", "high", "std_error"] {
                // serde_json writes NaN and infinity as null, so a number here is finite.
                let v = e[field].as_f64();
                assert!(v.is_some_and(|v| v.abs() < 1e7), "{tiny}: {field} of {e}");
            }
        }
    }
    // A floor as low as the smallest double lets an infinite weight through: the run stops with
    // an error naming the estimator and saying why, instead of printing NaN.
    let log = log_with_tiny(tmp.path(), "5e-324", "0.25");
    let out = ope_on(tmp.path(), "log", &log, &["--propensity-floor", "5e-324"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not a finite number") && err.contains("raise the propensity floor"),
        "{err}"
    );
    assert!(!stdout(&out).contains("NaN"), "{}", stdout(&out));
}

#[test]
fn dsjson_without_a_catalog_names_dsjson() {
    let tmp = tempfile::tempdir().unwrap();
    let log = log_with_tiny(tmp.path(), "0.25", "0.25");
    let dsjson = dsjson_of(tmp.path(), &log);
    let catalog = four_items(tmp.path());
    let run = |args: &[&str]| {
        let mut all = vec!["ope", "--data", "dsjson"];
        all.extend(args);
        metarec(tmp.path(), &all)
    };
    let cases: [(&[&str], &str); 3] = [
        (
            &["--log", dsjson.to_str().unwrap()],
            "--data dsjson needs the catalog the log's item keys belong to",
        ),
        (&["--catalog", &catalog], "--data dsjson needs --log FILE"),
        (
            &[
                "--log",
                dsjson.to_str().unwrap(),
                "--catalog",
                &catalog,
                "--policy",
                "bts",
            ],
            "--policy bts is for Open Bandit",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("--data log"), "{args:?}: {err}");
    }
    // The interaction log's messages still name it.
    let out = metarec(
        tmp.path(),
        &["ope", "--data", "log", "--log", log.to_str().unwrap()],
    );
    assert!(
        stderr(&out).contains("--data log needs the catalog"),
        "{}",
        stderr(&out)
    );
}

/// A data directory holding a small Open Bandit sample (both policies, campaign `all`): 30
/// uniformly logged rounds over three items and three positions, round `tiny_round` (1-based)
/// logged at propensity `tiny`.
fn obd_fixture(dir: &std::path::Path, tiny_round: usize, tiny: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    let root = data.join("obd");
    let items = ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n\
                 0,0,-0.5,a,x,p\n1,1,-0.25,b,x,p\n2,2,0.75,b,y,q\n";
    let header = ",timestamp,item_id,position,click,propensity_score,\
                  user_feature_0,user_feature_1,user_feature_2,user_feature_3,\
                  user-item_affinity_0,user-item_affinity_1,user-item_affinity_2";
    for policy in ["random", "bts"] {
        let d = root.join(policy).join("all");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("item_context.csv"), items).unwrap();
        let mut rounds = format!("{header}\n");
        for i in 0..30 {
            let p = if i + 1 == tiny_round {
                tiny.to_owned()
            } else {
                (1.0f64 / 3.0).to_string()
            };
            rounds.push_str(&format!(
                "{i},2019-11-24 00:{:02}:00.000000+00:00,{},{},{},{p},u{},v,w,z,{}.0,0.0,1.0\n",
                i % 60,
                i % 3,
                i % 3 + 1,
                u8::from(i % 4 == 0),
                i % 2,
                i % 3,
            ));
        }
        std::fs::write(d.join("all.csv"), rounds).unwrap();
    }
    std::fs::write(root.join(".complete"), "").unwrap();
    data
}

/// `metarec ope` on the Open Bandit fixture, evaluating uniform, plus `extra`.
fn obd_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--quiet",
        "ope",
        "--data",
        "obd",
        "--policy",
        "uniform",
        "--lambda",
        "1",
        "--resamples",
        "20",
    ];
    args.extend(extra);
    args
}
