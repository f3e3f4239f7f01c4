//! `metarec shop import` and `metarec shop stats` on a small shop written by the test.

mod common;

use common::{metarec, stderr, stdout};

const CATALOG: &str = "\
sku,name,category,price
A1,Red mug,kitchen,4.5
B2,Blue mug,kitchen,5.0
C3,Lamp,home,30
";

const EVENTS: &str = "\
customer,sku,when,what,ranking,pos,p
u1,A1,12/1/2010 8:26,impression,r1,1,0.5
u1,B2,12/1/2010 8:26,impression,r1,2,0.5
u1,A1,12/1/2010 8:27,click,r1,1,
u1,A1,12/1/2010 8:30,purchase,,,
u2,C3,12/1/2010 9:00,impression,r2,1,1
u2,Z9,12/1/2010 9:00,impression,r2,2,1
";

const MAP: &str = "item_id=sku,catalog.title=name,user_id=customer,timestamp=when,type=what,type.view=impression,ranking_id=ranking,position=pos,position.base=1,propensity=p";

#[test]
fn import_then_stats_on_a_small_shop() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.csv");
    let events = dir.path().join("events.csv");
    std::fs::write(&catalog, CATALOG).unwrap();
    std::fs::write(&events, EVENTS).unwrap();
    let shop = dir.path().join("my-shop");
    let data = dir.path().join("data");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "-q",
            "shop",
            "import",
            "--catalog",
            catalog.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--map",
            MAP,
            "--time-format",
            "%m/%d/%Y %H:%M",
            "--out",
            shop.to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        metarec(&data, &refs)
    };

    // Z9 is not in the catalog: an error naming file, line and field, and nothing written.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("events.csv: line 7: field `sku`"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!shop.exists());

    let out = run(&["--skip-malformed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("unknown item: 1"), "{text}");
    assert!(text.contains("catalog: "), "{text}");
    assert!(
        text.contains("shop `my-shop` written to") && text.contains("2 users, 3 items, 5 events"),
        "{text}"
    );
    assert!(shop.join("shop.json").is_file());

    // Again without --force: refused; with it: replaced.
    let out = run(&["--skip-malformed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = run(&["--skip-malformed", "--force", "--name", "mugs"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = metarec(&data, &["shop", "stats", shop.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for row in [
        "shop mugs",
        "users ",
        "events: view ",
        "rankings ",
        "impressions ",
        "CTR at position 1",
        "2010-12-01 08:26:00 .. 2010-12-01 09:00:00",
        "events: skipped: unknown item",
    ] {
        assert!(text.contains(row), "no `{row}` in\n{text}");
    }
    // CTR at position 1: two impressions, one click.
    assert!(text.contains("(1 clicks / 2 impressions)"), "{text}");

    let out = metarec(&data, &["shop", "stats", "--json", shop.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let items = rows.iter().find(|r| r["name"] == "items").unwrap();
    assert_eq!(items["value"], 3);

    // Not a shop directory.
    let out = metarec(&data, &["shop", "stats", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("shop import"), "{}", stderr(&out));
}

#[test]
fn bad_maps_and_missing_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["shop", "import", "--events", "e.csv"][..],
        &[
            "shop", "import", "--events", "e.csv", "--out", "s", "--map", "colour=x",
        ][..],
        &[
            "shop",
            "import",
            "--events",
            "e.csv",
            "--out",
            "s",
            "--time-format",
            "%H:%M",
        ][..],
        &["shop", "stats"][..],
    ] {
        let out = metarec(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = metarec(
        dir.path(),
        &[
            "shop", "import", "--events", "e.csv", "--out", "s", "--map", "colour=x",
        ],
    );
    assert!(
        stderr(&out).contains("`colour` is not a field"),
        "{}",
        stderr(&out)
    );
}
