//! `metarec log check` on logs whose records repeat event ids (the duplicates are counted, the
//! first few named with their lines, and the check fails unless `--skip-malformed` is given), with
//! and without a catalog to resolve item keys against, and `metarec log upgrade` of a log written
//! before logs carried keys.

mod common;

use common::{catalog_of, log_header, metarec, stderr, stdout, write_catalog};

/// The items `a` to `f`.
fn catalog() -> metarec_core::Catalog {
    catalog_of(&["a", "b", "c", "d", "e", "f"])
}

fn record(id: &str) -> String {
    format!(
        r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"{id}","slate":["d","f"],"propensities":[0.5,0.25],"policy_id":"p"}},"feedback":{{"clicks":[true,false]}}}}"#
    )
}

/// A log of `records` (each a line) after the header of [`catalog`].
fn log_of(records: &[String]) -> String {
    let mut text = log_header(&catalog()) + "\n";
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    text
}

#[test]
fn log_check_reports_duplicated_event_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dups.jsonl");
    // Line 1 the header, lines 2-10: a, b, a, c, b, a, d, e, f; the blank line 11 is not a
    // record.
    let ids = ["a", "b", "a", "c", "b", "a", "d", "e", "f"];
    let records: Vec<String> = ids.iter().map(|id| record(id)).collect();
    std::fs::write(&path, log_of(&records) + "\n").unwrap();

    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let named = "3 records repeat an earlier event id: line 4 repeats `a` of line 2, \
                 line 6 repeats `b` of line 3, line 7 repeats `a` of line 2";
    assert!(err.contains(named), "{err}");
    assert!(err.contains("--skip-malformed"), "{err}");
    // The summary is still printed, with the duplicates left out of what was kept.
    let text = stdout(&out);
    assert!(
        text.contains("9 records read, 6 kept, 3 skipped (duplicated event id: 3)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("duplicated event ids: {named}")),
        "{text}"
    );

    // Skipping keeps the first record of each id and succeeds, still naming the duplicates.
    let out = metarec(
        tmp.path(),
        &["log", "check", "--skip-malformed", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("9 records read, 6 kept, 3 skipped (duplicated event id: 3)"),
        "{text}"
    );
    assert!(text.contains("interactions 6,"), "{text}");
    assert!(text.contains(named), "{text}");
}

#[test]
fn log_check_names_only_the_first_five_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("many.jsonl");
    let records: Vec<String> = (0..10).map(|_| record("same")).collect();
    std::fs::write(&path, log_of(&records)).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("9 records repeat an earlier event id: line 3 repeats `same` of line 2"),
        "{err}"
    );
    assert!(
        err.contains("line 7 repeats `same` of line 2 and 4 more"),
        "{err}"
    );
    assert!(!err.contains("line 8 repeats"), "{err}");
}

#[test]
fn log_check_of_a_log_with_unique_ids_says_nothing_about_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.jsonl");
    std::fs::write(&path, log_of(&[record("a"), record("b")])).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 records read, 2 kept, 0 skipped"));
    assert!(!stdout(&out).contains("duplicated"), "{}", stdout(&out));
}

#[test]
fn a_malformed_line_still_stops_the_check_at_its_line() {
    // Duplicates never stop the check, but a malformed line does, before any duplicate count.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.jsonl");
    let bad = record("c").replace("0.25", "1.5");
    std::fs::write(&path, log_of(&[record("a"), record("a"), bad])).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 4"), "{err}");
    assert!(!err.contains("repeat"), "{err}");
    let out = metarec(
        tmp.path(),
        &["log", "check", "--skip-malformed", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "3 records read, 1 kept, 2 skipped (duplicated event id: 1, malformed decision: 1)"
        ),
        "{text}"
    );
}

#[test]
fn log_check_resolves_keys_with_a_catalog_and_reports_the_header_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.jsonl");
    std::fs::write(&path, log_of(&[record("a"), record("b")])).unwrap();
    let file = write_catalog(tmp.path(), &catalog());
    let fingerprint = catalog().fingerprint();
    // Without a catalog: the syntax is checked and the header's fingerprint printed.
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "header: log format 2, written against the catalog with fingerprint {fingerprint}, 6 items"
        )),
        "{text}"
    );
    assert!(text.contains("shown items 4 (2 distinct)"), "{text}");
    assert!(text.contains("item keys were not resolved"), "{text}");
    // With the catalog: every key resolved, the same catalog.
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "check",
            path.to_str().unwrap(),
            "--catalog",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("): the same; every item key resolved"),
        "{}",
        stdout(&out)
    );
    // A key the catalog lacks is an error naming the line and the field.
    let unknown = record("c").replace(r#""f"]"#, r#""zz"]"#);
    std::fs::write(&path, log_of(&[record("a"), unknown])).unwrap();
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "check",
            path.to_str().unwrap(),
            "--catalog",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("line 3: field `decision.slate[1]`: item `zz` is not in the catalog"),
        "{}",
        stderr(&out)
    );
    // Against another catalog: the error says so, with both fingerprints and sizes.
    let other = catalog_of(&["a", "b", "c", "d", "e"]);
    let other_file = tmp.path().join("other");
    std::fs::create_dir(&other_file).unwrap();
    let other_file = write_catalog(&other_file, &other);
    std::fs::write(&path, log_of(&[record("a")])).unwrap();
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "check",
            path.to_str().unwrap(),
            "--catalog",
            other_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "item `f` is not in the catalog: the log was written against another catalog (fingerprint {fingerprint}, 6 items) than this one (fingerprint {}, 5 items)",
            other.fingerprint()
        )),
        "{err}"
    );
    // Two catalog options at once are a usage error.
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "check",
            path.to_str().unwrap(),
            "--catalog",
            file.to_str().unwrap(),
            "--shop",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_log_without_keys_is_refused_and_log_upgrade_converts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old.jsonl");
    let legacy = record("a").replace(r#"["d","f"]"#, "[3,5]");
    std::fs::write(&old, format!("{legacy}\n")).unwrap();
    let file = write_catalog(tmp.path(), &catalog());
    let out = metarec(tmp.path(), &["log", "check", old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("line 1: field `<header>`"), "{err}");
    assert!(err.contains("metarec log upgrade"), "{err}");
    // Without a catalog the conversion cannot know the keys.
    let new = tmp.path().join("new.jsonl");
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "upgrade",
            old.to_str().unwrap(),
            "--out",
            new.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("--catalog FILE"), "{}", stderr(&out));
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "upgrade",
            old.to_str().unwrap(),
            "--out",
            new.to_str().unwrap(),
            "--catalog",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("wrote 1 interactions"),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(&new).unwrap();
    assert!(text.starts_with(&(log_header(&catalog()) + "\n")), "{text}");
    assert!(text.contains(r#""slate":["d","f"]"#), "{text}");
    let out = metarec(
        tmp.path(),
        &[
            "log",
            "check",
            new.to_str().unwrap(),
            "--catalog",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
