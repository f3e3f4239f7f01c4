//! `metarec log check` on logs whose records repeat event ids: the duplicates are counted, the
//! first few named with their lines, and the check fails unless `--skip-malformed` is given.

mod common;

use common::{metarec, stderr, stdout};

fn record(id: &str) -> String {
    format!(
        r#"{{"context":{{"user":"u"}},"decision":{{"event_id":"{id}","slate":[3,5],"propensities":[0.5,0.25],"policy_id":"p"}},"feedback":{{"clicks":[true,false]}}}}"#
    )
}

#[test]
fn log_check_reports_duplicated_event_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dups.jsonl");
    // Lines 1-9: a, b, a, c, b, a, d, e, f; the blank line 10 is not a record.
    let ids = ["a", "b", "a", "c", "b", "a", "d", "e", "f"];
    let text: String = ids.iter().map(|id| record(id) + "\n").collect::<String>() + "\n";
    std::fs::write(&path, text).unwrap();

    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let named = "3 records repeat an earlier event id: line 3 repeats `a` of line 1, \
                 line 5 repeats `b` of line 2, line 6 repeats `a` of line 1";
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
    let text: String = (0..10).map(|_| record("same") + "\n").collect();
    std::fs::write(&path, text).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("9 records repeat an earlier event id: line 2 repeats `same` of line 1"),
        "{err}"
    );
    assert!(
        err.contains("line 6 repeats `same` of line 1 and 4 more"),
        "{err}"
    );
    assert!(!err.contains("line 7 repeats"), "{err}");
}

#[test]
fn log_check_of_a_log_with_unique_ids_says_nothing_about_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.jsonl");
    std::fs::write(&path, format!("{}\n{}\n", record("a"), record("b"))).unwrap();
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
    std::fs::write(&path, format!("{}\n{}\n{bad}\n", record("a"), record("a"))).unwrap();
    let out = metarec(tmp.path(), &["log", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 3"), "{err}");
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
