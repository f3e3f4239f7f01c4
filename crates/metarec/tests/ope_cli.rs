//! End-to-end tests of `metarec ope`: the Open Bandit table, and the rejection of malformed logs.

mod common;

use common::{fetched_data_dir, metarec, stderr, stdout};
use std::process::Output;

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

fn record(item: u32, propensity: &str) -> String {
    format!(
        r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"e","slate":[{item}],"propensities":[{propensity}],"policy_id":"p"}},"feedback":{{"clicks":[true]}}}}"#
    )
}

#[test]
fn malformed_logs_are_rejected_naming_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let good = record(1, "0.5");
    let cases = [
        (
            r#"{"context":{"user":"u"},"decision":{"event_id":"e","slate":[1],"policy_id":"p"},"feedback":{"clicks":[true]}}"#.to_owned(),
            "line 2: field `decision`: missing field `propensities`",
        ),
        (record(1, "0"), "line 2"),
        (record(1, "1.5"), "line 2"),
        (record(9, "0.5"), "row 2: entry 0: item 9 is not in the catalog of 4 items"),
    ];
    for (bad, expected) in cases {
        let path = tmp.path().join("log.jsonl");
        std::fs::write(&path, format!("{good}\n{bad}\n{good}\n")).unwrap();
        let out = metarec(
            tmp.path(),
            &[
                "ope",
                "--data",
                "log",
                "--log",
                path.to_str().unwrap(),
                "--items",
                "4",
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
        if expected == "line 2" {
            assert!(err.contains("propensit") && err.contains("(0, 1]"), "{err}");
        }
    }
    // The good records alone evaluate: uniform on uniform logs gives back the logged value.
    let path = tmp.path().join("log.jsonl");
    std::fs::write(
        &path,
        format!("{}\n{}\n", record(1, "0.25"), record(2, "0.25")),
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
            "--items",
            "4",
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
    let jsonl = tmp.path().join("log.jsonl");
    let lines: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"context":{{"user":"u{i}","tokens":["k=v{}"]}},"decision":{{"event_id":"e{i}","slate":[{},{}],"propensities":[0.25,0.25],"policy_id":"p"}},"feedback":{{"clicks":[{},false]}}}}"#,
                i % 3,
                i % 4,
                (i + 1) % 4,
                i % 5 == 0
            )
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let dsjson = tmp.path().join("log.dsjson");
    let common = [
        "--items",
        "4",
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
