//! The interaction log: write/read round trip with item keys and the catalog's header, atomic
//! writes, and line-numbered errors.

use metarec_core::{
    Catalog, Context, Decision, EventId, Feedback, Interaction, Item, ItemId, Slate, UserKey,
};
use metarec_data::log::{
    ItemKeys, LogHeader, LogReader, atomic_write, read_log, write_log, write_record,
};
use metarec_data::{DataError, LoadOptions};
use std::io::Write;
use std::path::Path;

/// Ten items keyed `sku-0` to `sku-9`, with one numeric feature.
fn catalog() -> &'static Catalog {
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog::new(vec!["f".into()]);
        for i in 0..10 {
            c.push(Item {
                key: format!("sku-{i}"),
                title: None,
                category: None,
                price: Some(1.0),
                features: vec![i as f32],
                embedding: None,
            })
            .unwrap();
        }
        c
    })
}

/// The header line of a log of [`catalog`].
fn header() -> String {
    serde_json::to_string(&LogHeader::of(catalog())).unwrap()
}

/// Three interactions that exercise every optional part of the record.
fn interactions() -> Vec<Interaction> {
    let plain = Interaction::new(
        Context::for_user(UserKey::from("u1")),
        Decision {
            event_id: EventId::from("e1"),
            slate: Slate::new(vec![ItemId(4), ItemId(7), ItemId(9)]).unwrap(),
            propensities: vec![0.2, 0.3, 0.4],
            slate_propensity: None,
            positions: None,
            policy_id: "uniform".into(),
            model_version: "1".into(),
        },
        Feedback {
            clicks: vec![false, true, true],
            purchases: vec![false, true, false],
            revenue: vec![0.0, 12.5, 0.0],
        },
    )
    .unwrap();
    let full = Interaction::new(
        Context {
            user: UserKey::from("17850"),
            timestamp_ms: Some(1_291_191_960_000),
            features: vec![0.5, -1.25, 3.0],
            tokens: vec!["country=United Kingdom".into(), "ünïcødé=✓".into()],
            session: metarec_core::SessionState {
                session: 2,
                step: 5,
                history: vec![metarec_core::PastEvent {
                    item: ItemId(4),
                    click: true,
                    purchase: false,
                }],
                visit_events: Some(1),
            },
            candidates: vec![ItemId(1), ItemId(2), ItemId(3)],
        },
        Decision {
            event_id: EventId::from("e2 \"quoted\"\n"),
            slate: Slate::new(vec![ItemId(2), ItemId(1)]).unwrap(),
            propensities: vec![1.0, 1e-6],
            slate_propensity: Some(0.125),
            positions: Some(vec![2, 0]),
            policy_id: "bts".into(),
            model_version: "2024-01-01".into(),
        },
        Feedback::none(2),
    )
    .unwrap();
    let single = Interaction::new(
        Context::default(),
        Decision {
            event_id: EventId::from("e3"),
            slate: Slate::new(vec![ItemId(0)]).unwrap(),
            propensities: vec![0.0125],
            slate_propensity: None,
            positions: Some(vec![1]),
            policy_id: "obd-random".into(),
            model_version: String::new(),
        },
        Feedback {
            clicks: vec![true],
            purchases: vec![false],
            revenue: vec![0.0],
        },
    )
    .unwrap();
    vec![plain, full, single]
}

/// One record as the writer writes it (items as keys), without its newline.
fn line_of(i: &Interaction) -> String {
    let mut out = Vec::new();
    write_record(&mut out, i, catalog()).unwrap();
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

fn reader(bytes: &[u8]) -> LogReader<'static, &[u8]> {
    LogReader::new(
        bytes,
        Path::new("mem/log.jsonl"),
        ItemKeys::Catalog(catalog()),
    )
    .unwrap()
}

/// Every entry in a temporary folder, by name.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn written_log_reads_back_equal() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log.jsonl");
    let records = interactions();
    assert_eq!(write_log(&path, &records, catalog()).unwrap(), 3);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().count(),
        4,
        "a header, then one record per line: {text}"
    );
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            r#"{{"metarec_log":2,"catalog":{{"fingerprint":"{}","items":10}}}}"#,
            catalog().fingerprint()
        )
    );
    // Items are keys on disk: in slates, candidates and histories.
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
    assert_eq!(
        second["decision"]["slate"],
        serde_json::json!(["sku-2", "sku-1"])
    );
    assert_eq!(
        second["context"]["candidates"],
        serde_json::json!(["sku-1", "sku-2", "sku-3"])
    );
    assert_eq!(
        second["context"]["session"]["history"][0]["item"],
        serde_json::json!("sku-4")
    );
    let (back, report) = read_log(&path, catalog(), &LoadOptions::default()).unwrap();
    assert_eq!(back, records);
    assert_eq!((report.records, report.kept), (3, 3));
    assert!(report.skipped.is_empty());
    assert_eq!(report.source, path.display().to_string());
}

#[test]
fn write_log_leaves_no_temporary_file_and_replaces_the_old_log() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log.jsonl");
    std::fs::write(&path, "old content\n").unwrap();
    let records = interactions();
    write_log(&path, &records[..1], catalog()).unwrap();
    assert_eq!(entries(tmp.path()), vec!["log.jsonl"]);
    let (back, _) = read_log(&path, catalog(), &LoadOptions::default()).unwrap();
    assert_eq!(back, records[..1].to_vec());
    // An empty log is its header alone; a file with no line at all reads as empty too.
    assert_eq!(write_log(&path, &[], catalog()).unwrap(), 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), header() + "\n");
    assert_eq!(
        read_log(&path, catalog(), &LoadOptions::default())
            .unwrap()
            .0,
        vec![]
    );
    std::fs::write(&path, "").unwrap();
    assert_eq!(
        read_log(&path, catalog(), &LoadOptions::default())
            .unwrap()
            .0,
        vec![]
    );
}

#[test]
fn failed_atomic_write_keeps_the_old_file_and_removes_the_temporary_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log.jsonl");
    std::fs::write(&path, "the old log\n").unwrap();
    let err = atomic_write(&path, |out| -> std::io::Result<()> {
        // Write more than the buffer holds, so that part of it reaches the temporary file.
        out.write_all(&vec![b'x'; 64 * 1024])?;
        Err(std::io::Error::other("disk on fire"))
    })
    .unwrap_err();
    match &err {
        DataError::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.to_string(), "disk on fire");
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "the old log\n");
    assert_eq!(entries(tmp.path()), vec!["log.jsonl"]);
}

#[test]
fn failed_atomic_write_creates_nothing_when_there_was_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("new.jsonl");
    let res = atomic_write(&path, |out| -> std::io::Result<u8> {
        out.write_all(b"partial")?;
        Err(std::io::Error::other("interrupted"))
    });
    assert!(res.is_err());
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn atomic_write_returns_the_value_of_the_fill() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.txt");
    let n = atomic_write(&path, |out| {
        out.write_all(b"hello\n")?;
        Ok(42)
    })
    .unwrap();
    assert_eq!(n, 42);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    assert_eq!(entries(tmp.path()), vec!["out.txt"]);
}

#[test]
fn atomic_write_into_a_missing_folder_is_an_io_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("no-such-dir").join("log.jsonl");
    let err = write_log(&path, &interactions(), catalog()).unwrap_err();
    assert!(
        matches!(&err, DataError::Io { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn blank_lines_are_skipped_and_do_not_shift_line_numbers() {
    let records = interactions();
    let text = format!(
        "{}\n\n{}\n   \n\r\n{}\n\n{}\n\n",
        header(),
        line_of(&records[0]),
        line_of(&records[1]),
        line_of(&records[2])
    );
    let back: Vec<Interaction> = reader(text.as_bytes()).map(Result::unwrap).collect();
    assert_eq!(back, records);

    // The same file with the third record broken: it is on line 8.
    let broken = text.replace(&line_of(&records[2]), "{\"context\":");
    let results: Vec<_> = reader(broken.as_bytes()).collect();
    assert_eq!(results.len(), 3);
    let err = results[2].as_ref().unwrap_err();
    common_assert_line(err, 8);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let records = interactions();
    let text = format!(
        "{}\r\n{}\r\n{}\r\n",
        header(),
        line_of(&records[0]),
        line_of(&records[1])
    );
    let back: Vec<Interaction> = reader(text.as_bytes()).map(Result::unwrap).collect();
    assert_eq!(back, records[..2].to_vec());
}

#[test]
fn last_line_without_newline_is_read() {
    let records = interactions();
    let text = format!(
        "{}\n{}\n{}",
        header(),
        line_of(&records[0]),
        line_of(&records[1])
    );
    let back: Vec<Interaction> = reader(text.as_bytes()).map(Result::unwrap).collect();
    assert_eq!(back, records[..2].to_vec());
}

#[track_caller]
fn common_assert_line(err: &DataError, line: u64) {
    match err {
        DataError::Malformed { line: l, .. } => assert_eq!(*l, line, "{err}"),
        other => panic!("expected Malformed at line {line}, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("line {line}:")), "{err}");
}

/// Replaces one part of the JSON of the second record (as written, with keys) and returns the
/// log text: the header, then the three records on lines 2-4.
fn log_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let records = interactions();
    let mut bad: serde_json::Value = serde_json::from_str(&line_of(&records[1])).unwrap();
    edit(&mut bad);
    format!(
        "{}\n{}\n{}\n{}\n",
        header(),
        line_of(&records[0]),
        serde_json::to_string(&bad).unwrap(),
        line_of(&records[2])
    )
}

/// The error of line 3 (the edited record) as (field, reason).
fn error_of_line_3(text: &str) -> (String, String) {
    let results: Vec<_> = reader(text.as_bytes()).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("mem/log.jsonl: line 3: "), "{msg}");
    match err {
        DataError::Malformed {
            line,
            field,
            reason,
            ..
        } => {
            assert_eq!(*line, 3);
            assert!(msg.contains(field.as_str()), "{msg}");
            (field.clone(), reason.clone())
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn out_of_range_propensity_names_the_decision_and_the_propensities() {
    let text = log_with(|v| v["decision"]["propensities"][1] = serde_json::json!(1.5));
    let (field, reason) = error_of_line_3(&text);
    // serde_path_to_error reports a failed `try_from` validation at the path of the value being
    // validated (the decision); the validation error itself names `propensities`.
    assert_eq!(field, "decision");
    assert!(reason.contains("propensities"), "{reason}");
    assert!(reason.contains("1.5"), "{reason}");
    assert!(reason.contains("(0, 1]"), "{reason}");
}

#[test]
fn zero_and_negative_propensities_are_rejected() {
    for bad in [0.0, -0.5] {
        let text = log_with(|v| v["decision"]["propensities"][0] = serde_json::json!(bad));
        let (field, reason) = error_of_line_3(&text);
        assert_eq!(field, "decision");
        assert!(reason.contains("propensities"), "{reason}");
    }
}

#[test]
fn non_numeric_propensity_names_the_exact_path() {
    let text = log_with(|v| v["decision"]["propensities"][1] = serde_json::json!("high"));
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "decision.propensities[1]");
    assert!(reason.contains("invalid type"), "{reason}");
}

#[test]
fn too_few_propensities_name_the_decision() {
    let text = log_with(|v| v["decision"]["propensities"] = serde_json::json!([0.5]));
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "decision");
    assert!(reason.contains("propensities"), "{reason}");
    assert!(
        reason.contains("has 1 entries but 2 were expected"),
        "{reason}"
    );
}

#[test]
fn feedback_of_the_wrong_length_is_reported_on_its_line() {
    // Three clicks for a slate of two: each part is valid on its own, so the mismatch is found
    // when the record as a whole is checked, at the root.
    let text = log_with(|v| {
        v["feedback"] = serde_json::json!({"clicks": [true, false, false]});
    });
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "<record>");
    assert!(reason.contains("feedback.clicks"), "{reason}");
    assert!(
        reason.contains("has 3 entries but 2 were expected"),
        "{reason}"
    );

    // Purchases of the wrong length inside the feedback itself.
    let text = log_with(|v| {
        v["feedback"] = serde_json::json!({"clicks": [true, false], "purchases": [true]});
    });
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "feedback");
    assert!(reason.contains("purchases"), "{reason}");
}

#[test]
fn duplicate_slate_items_name_the_slate() {
    let text = log_with(|v| v["decision"]["slate"] = serde_json::json!(["sku-3", "sku-3"]));
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "decision.slate");
    assert!(reason.contains("appears more than once"), "{reason}");
}

#[test]
fn missing_decision_is_a_record_error() {
    let text = log_with(|v| {
        v.as_object_mut().unwrap().remove("decision");
    });
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "<record>");
    assert!(reason.contains("missing field `decision`"), "{reason}");
}

#[test]
fn trailing_characters_after_a_record_are_an_error() {
    let records = interactions();
    let text = format!(
        "{}\n{} {}\n",
        header(),
        line_of(&records[0]),
        line_of(&records[1])
    );
    let err = reader(text.as_bytes()).next().unwrap().unwrap_err();
    common_assert_line(&err, 2);
    assert!(err.to_string().contains("trailing characters"), "{err}");
}

#[test]
fn read_log_fails_on_the_first_bad_line_or_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log.jsonl");
    let text = log_with(|v| v["decision"]["propensities"][1] = serde_json::json!(1.5));
    std::fs::write(&path, &text).unwrap();

    let err = read_log(&path, catalog(), &LoadOptions::default()).unwrap_err();
    common_assert_line(&err, 3);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let (records, report) = read_log(&path, catalog(), &LoadOptions::skipping()).unwrap();
    let all = interactions();
    assert_eq!(records, vec![all[0].clone(), all[2].clone()]);
    assert_eq!((report.records, report.kept), (3, 2));
    assert_eq!(
        report.skipped.get("malformed decision"),
        Some(&1),
        "{report}"
    );
}

#[test]
fn read_log_of_a_missing_file_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("absent.jsonl");
    for options in [LoadOptions::default(), LoadOptions::skipping()] {
        let err = read_log(&path, catalog(), &options).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path: p, .. } if p == &path),
            "{err:?}"
        );
    }
}

#[test]
fn an_unknown_key_is_an_error_naming_the_line_and_the_field() {
    let text = log_with(|v| v["decision"]["slate"][1] = serde_json::json!("sku-99"));
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "decision.slate[1]");
    assert_eq!(reason, "item `sku-99` is not in the catalog");
    // A dense index where a key belongs is not read as an item.
    let text = log_with(|v| v["decision"]["slate"][0] = serde_json::json!(2));
    let (field, reason) = error_of_line_3(&text);
    assert_eq!(field, "decision.slate[0]");
    assert!(reason.starts_with("item 2 is not a key"), "{reason}");
}
