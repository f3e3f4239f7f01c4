//! `shop import` on small hand-written files: malformed catalogs and events give errors naming
//! file, line and field and write nothing; `--skip-malformed` counts by reason; events are sorted
//! stably; an imported shop loads back with the same counts; random and mutated files never
//! panic and never leave a staging folder behind.

use metarec_data::shop::import::{
    FieldMap, ImportSpec, SKIP_BAD_TIME, SKIP_DUPLICATED_ITEM, SKIP_EXCLUDED, SKIP_MISSING_USER,
    SKIP_PROPENSITY, SKIP_QUANTITY, SKIP_REVENUE, SKIP_UNKNOWN_ITEM, SKIP_UNKNOWN_TYPE,
    import_shop, prepare_shop,
};
use metarec_data::shop::{EventKind, Shop, ShopLog};
use metarec_data::time::TimeFormat;
use metarec_data::{DataError, OnMalformed};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const CATALOG: &str = "\
item_id,title,category,price,brand,available,weight,colour
A1,Red mug,kitchen|gifts,4.5,acme,true,0.3,red
B2,Blue mug,kitchen,5.0,acme,yes,0.3,blue
C3,\"Lamp, tall\",home,30,,false,2.5,
";

const EVENTS: &str = "\
user_id,item_id,timestamp,type,session_id,quantity,revenue,ranking_id,position,propensity,device
u1,A1,2024-01-01T10:00:00Z,view,s1,,,r1,0,0.5,mobile
u1,B2,2024-01-01T10:00:00Z,view,s1,,,r1,1,0.25,mobile
u1,A1,2024-01-01T10:00:05Z,click,s1,,,r1,,,mobile
u1,A1,2024-01-01T10:01:00Z,purchase,s1,2,9.0,,,,mobile
u2,C3,1704103200,add_to_cart,s2,,,,,,desktop
";

/// A temporary folder with the files of one import.
struct Case {
    dir: TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out").join("shop")
    }

    /// Files and folders whose names start with a dot beside the output: staging leftovers.
    fn leftovers(&self) -> Vec<String> {
        let parent = self.out().parent().unwrap().to_owned();
        match std::fs::read_dir(&parent) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn spec(&self, catalog: Option<&str>, events: &str) -> ImportSpec {
        ImportSpec {
            catalog: catalog.map(|c| self.write("catalog.csv", c)),
            events: self.write("events.csv", events),
            ..ImportSpec::default()
        }
    }
}

/// Asserts an import failed with a Malformed error at `path`, `line`, `field`, that the message
/// names all three, and that nothing was written.
#[track_caller]
fn assert_fails_at(
    case: &Case,
    result: Result<impl std::fmt::Debug, DataError>,
    path: &Path,
    line: u64,
    field: &str,
) -> String {
    let err = result.expect_err("the import should fail");
    match &err {
        DataError::Malformed {
            path: p,
            line: l,
            field: f,
            ..
        } => assert_eq!(
            (p.as_path(), *l, f.as_str()),
            (path, line, field),
            "wrong place in {err}"
        ),
        other => panic!("expected a Malformed error; got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("line {line}:")), "{msg}");
    assert!(msg.contains(&format!("field `{field}`")), "{msg}");
    assert!(!case.out().exists(), "the output was written");
    assert!(case.leftovers().is_empty(), "{:?}", case.leftovers());
    msg
}

fn import(case: &Case, spec: &ImportSpec) -> Result<metarec_data::shop::ImportOutcome, DataError> {
    import_shop(spec, &case.out(), false)
}

fn skipping(mut spec: ImportSpec) -> ImportSpec {
    spec.on_malformed = OnMalformed::Skip;
    spec
}

#[track_caller]
fn skipped(report: &metarec_data::LoadReport) -> BTreeMap<&str, u64> {
    assert_eq!(
        report.kept + report.skipped_total(),
        report.records,
        "{report}"
    );
    report
        .skipped
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// A valid shop
// ------------------------------------------------------------------------------------------------

#[test]
fn a_valid_shop_imports_and_loads_back_with_the_same_counts() {
    let case = Case::new();
    let users = case.write("users.csv", "user_id,country,age\nu1,FR,30\nu3,DE,\n");
    let spec = ImportSpec {
        users: Some(users),
        ..case.spec(Some(CATALOG), EVENTS)
    };
    let outcome = import(&case, &spec).unwrap();
    let m = &outcome.manifest;
    assert_eq!(m.name, "shop");
    assert_eq!((m.items, m.users, m.events), (3, 3, 5));
    assert_eq!(
        m.events_by_type,
        BTreeMap::from([
            ("add_to_cart".to_owned(), 1),
            ("click".to_owned(), 1),
            ("purchase".to_owned(), 1),
            ("view".to_owned(), 2),
        ])
    );
    assert_eq!(m.unavailable, ["C3"]);
    assert_eq!(m.user_features, ["age"]);
    let roles: Vec<&str> = m.sources.iter().map(|s| s.role.as_str()).collect();
    assert_eq!(roles, ["catalog", "events", "users"]);
    assert_eq!(m.reports.len(), 3);
    assert!(
        m.reports
            .iter()
            .all(|r| r.skipped.is_empty() && r.kept == r.records)
    );
    // User u3 has no age.
    assert_eq!(
        m.reports[2].missing.get("age"),
        Some(&1),
        "{}",
        m.reports[2]
    );

    let shop = Shop::load(&case.out()).unwrap();
    assert_eq!(shop.manifest, outcome.manifest);
    assert_eq!(shop.catalog.len(), 3);
    assert_eq!(shop.users.len(), 3);
    assert_eq!(shop.events.len(), 5);
    assert_eq!(
        shop.sessions,
        ["s1", "s2"],
        "sessions in order of first appearance"
    );
    assert_eq!(shop.rankings, ["r1"]);
    // Users of the users file first, then the others in order of their first event.
    let keys: Vec<&str> = shop.users.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, ["u1", "u3", "u2"]);
    assert_eq!(shop.users[0].tokens, ["country=FR"]);
    assert_eq!(
        shop.users[0].features,
        [0.0],
        "a single age standardises to 0"
    );

    let c = &shop.catalog;
    let names = c.features().names();
    assert_eq!(
        names,
        [
            "log_price",
            "num:weight",
            "category=kitchen",
            "category=gifts",
            "category=home",
            "brand=acme",
            "colour=blue",
            "colour=red"
        ]
    );
    let a1 = c.id_of("A1").unwrap();
    assert_eq!(c.title(c.id_of("C3").unwrap()), Some("Lamp, tall"));
    assert_eq!(c.category_name(c.category(a1).unwrap()), Some("kitchen"));
    assert_eq!(c.price(a1), Some(4.5));
    let row = c.features().row(a1.index());
    assert_eq!(&row[2..], &[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);

    // The add to cart at epoch seconds 1704103200 (2024-01-01 10:00:00 UTC) is last in the file
    // and at the time of the two views: the stable sort keeps it after them, before the click.
    let e = &shop.events;
    assert_eq!(e[0].timestamp_ms, 1_704_103_200_000);
    assert_eq!(shop.user_key(&e[2]), "u2");
    assert_eq!(e[2].kind, EventKind::AddToCart);
    assert_eq!(e[0].context, ["device=mobile"]);
    assert_eq!(e[0].propensity, Some(0.5));
    let purchase = e.iter().find(|e| e.kind == EventKind::Purchase).unwrap();
    assert_eq!((purchase.quantity, purchase.revenue), (Some(2), Some(9.0)));

    // The replay: one ranking of two items, the click and the purchase on A1.
    let log: ShopLog = metarec_data::shop::interactions::shop_log(&shop, &Default::default());
    assert_eq!(log.interactions.len(), 1);
    let i = &log.interactions[0];
    assert_eq!(i.feedback.clicks, [true, false]);
    assert_eq!(i.feedback.purchases, [true, false]);
    assert_eq!(i.decision.propensities, [0.5, 0.25]);
    assert_eq!(
        log.organic.len(),
        1,
        "the add to cart matched no impression"
    );
}

#[test]
fn unsorted_events_are_sorted_stably_by_time() {
    let case = Case::new();
    let events = "\
user_id,item_id,timestamp,type
u1,A1,3000,view
u1,B2,1000,view
u2,A1,2000,view
u3,C3,1000,view
u1,C3,2000,click
";
    let outcome = import(&case, &case.spec(Some(CATALOG), events)).unwrap();
    let shop = Shop::load(&outcome.dir).unwrap();
    let order: Vec<(String, &str, i64)> = shop
        .events
        .iter()
        .map(|e| {
            (
                shop.user_key(e).to_owned(),
                shop.catalog.key(e.item).unwrap(),
                e.timestamp_ms / 1000,
            )
        })
        .collect();
    let expected = [
        ("u1", "B2", 1000),
        ("u3", "C3", 1000),
        ("u2", "A1", 2000),
        ("u1", "C3", 2000),
        ("u1", "A1", 3000),
    ];
    let expected: Vec<(String, &str, i64)> = expected
        .iter()
        .map(|(u, i, t)| ((*u).to_owned(), *i, *t))
        .collect();
    assert_eq!(order, expected);
}

#[test]
fn without_a_catalog_the_events_build_it_from_their_columns() {
    let case = Case::new();
    // Denormalised lines as Online Retail has them: title and price on every line, a customer
    // id written as a float, a guest line, a return and a giveaway.
    let events = "\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1,X,MUG,2,12/1/2010 8:26,1.0,17850.0,UK
1,Y,LAMP,1,12/1/2010 8:26,10.0,17850.0,UK
2,X,MUG RED,1,12/2/2010 9:00,2.0,13047.0,FR
3,X,MUG,1,12/3/2010 9:00,4.0,13047.0,FR
4,X,MUG,1,12/3/2010 9:00,4.0,,UK
C5,Y,LAMP,-1,12/4/2010 9:00,10.0,17850.0,UK
6,Z,FREE,1,12/4/2010 9:00,0,17850.0,UK
7,POST,POSTAGE,1,12/4/2010 9:00,18,17850.0,UK
";
    let exclude = case.write("exclude.txt", "# not products\nPOST\n\n");
    let spec = ImportSpec {
        events: case.write("retail.csv", events),
        map: "user_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,type=const:purchase,session_id=InvoiceNo,quantity=Quantity,price=UnitPrice,title=Description"
            .parse()
            .unwrap(),
        time_format: Some("%m/%d/%Y %H:%M".parse::<TimeFormat>().unwrap()),
        exclude_items: Some(exclude),
        ..ImportSpec::default()
    };
    let outcome = import(&case, &spec).unwrap();
    let r = &outcome.reports[0];
    assert_eq!((r.records, r.kept), (8, 4), "{r}");
    assert_eq!(
        skipped(r),
        BTreeMap::from([
            (SKIP_EXCLUDED, 1),
            (SKIP_MISSING_USER, 1),
            (SKIP_QUANTITY, 1),
            (metarec_data::shop::import::SKIP_PRICE, 1),
        ])
    );
    let shop = Shop::load(&outcome.dir).unwrap();
    let c = &shop.catalog;
    assert_eq!(c.len(), 2, "only items with a kept event");
    let x = c.id_of("X").unwrap();
    // Most common title; median of 1, 2 and 4.
    assert_eq!(c.title(x), Some("MUG"));
    assert_eq!(c.price(x), Some(2.0));
    assert_eq!(c.features().names(), ["log_price"]);
    let keys: Vec<&str> = shop.users.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, ["17850", "13047"]);
    // Revenue is price times quantity; the country is context.
    let first = &shop.events[0];
    assert_eq!((first.quantity, first.revenue), (Some(2), Some(2.0)));
    assert_eq!(first.context, ["Country=UK"]);
    assert_eq!(shop.sessions, ["1", "2", "3"]);
    // 2010-12-01 08:26 UTC.
    assert_eq!(first.timestamp_ms, 1_291_191_960_000);
    assert_eq!(
        shop.manifest.map.get("time_format").map(String::as_str),
        Some("%m/%d/%Y %H:%M")
    );
}

#[test]
fn json_lines_with_lists_numbers_and_a_flag_column() {
    let case = Case::new();
    let catalog = r#"{"sku": "A1", "name": "Mug", "category": ["kitchen", "gifts"], "price": 4.5, "stars": 4}
{"sku": "B2", "name": "Lamp", "category": "home", "price": null, "stars": 5}

{"sku": 7, "name": "Chair", "stars": 3}
"#;
    let events = r#"{"user": 17850.0, "sku": "A1", "ts": 1704103200000, "what": "impression", "shown_in": "r1", "pos": 1, "p": 0.5, "clicked": 1}
{"user": "u2", "sku": 7, "ts": "2024-01-01T11:00:00+01:00", "what": "impression", "shown_in": "r2", "pos": 1, "p": 1, "clicked": false}
"#;
    let spec = ImportSpec {
        catalog: Some(case.write("catalog.jsonl", catalog)),
        events: case.write("events.jsonl", events),
        map: "item_id=sku,title=name,user_id=user,timestamp=ts,type=what,type.view=impression,ranking_id=shown_in,position=pos,position.base=1,propensity=p,flag.click=clicked"
            .parse::<FieldMap>()
            .unwrap(),
        ..ImportSpec::default()
    };
    let outcome = import(&case, &spec).unwrap();
    let shop = Shop::load(&outcome.dir).unwrap();
    let c = &shop.catalog;
    assert_eq!(c.len(), 3);
    assert_eq!(c.key(metarec_core::ItemId(2)), Some("7"));
    assert_eq!(
        c.features().names(),
        [
            "log_price",
            "num:stars",
            "category=gifts",
            "category=home",
            "category=kitchen"
        ]
    );
    assert_eq!(outcome.reports[0].missing.get("log_price"), Some(&2));
    // Both impressions at the same time: the second is at 10:00 UTC too; the click follows its
    // view.
    let kinds: Vec<EventKind> = shop.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::View, EventKind::Click, EventKind::View]);
    assert_eq!(shop.user_key(&shop.events[0]), "17850");
    assert_eq!(shop.events[0].position, Some(0));
    assert_eq!(shop.events[1].propensity, None);
    let log = metarec_data::shop::interactions::shop_log(&shop, &Default::default());
    assert_eq!(log.interactions.len(), 2);
    assert_eq!(log.interactions[0].feedback.clicks, [true]);
    assert!(log.logged_propensities.iter().all(|l| *l));
}

#[test]
fn gzip_and_tab_separated_files_are_recognised() {
    use std::io::Write;
    let case = Case::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(EVENTS.as_bytes()).unwrap();
    let tsv = CATALOG
        .replace("\"Lamp, tall\"", "Lamp tall")
        .replace(',', "\t");
    let spec = ImportSpec {
        // No extension: sniffed as TSV from its header.
        catalog: Some(case.write("catalog", tsv)),
        events: case.write("events.csv.gz", gz.finish().unwrap()),
        ..ImportSpec::default()
    };
    let outcome = import(&case, &spec).unwrap();
    assert_eq!((outcome.manifest.items, outcome.manifest.events), (3, 5));
    // The source's checksum is of the bytes as stored.
    let stored = std::fs::read(&spec.events).unwrap();
    assert_eq!(
        outcome.manifest.sources[1].sha256,
        metarec_data::shop::sha256_hex(&stored)
    );
    let shop = Shop::load(&outcome.dir).unwrap();
    assert_eq!(
        shop.catalog.title(shop.catalog.id_of("C3").unwrap()),
        Some("Lamp tall")
    );
}

#[test]
fn prepare_lets_the_caller_add_item_features_before_saving() {
    let case = Case::new();
    let mut prepared = prepare_shop(&case.spec(Some(CATALOG), EVENTS)).unwrap();
    assert!(!case.out().exists(), "prepare writes nothing");
    let rows = vec![vec![0.1, 0.2]; 3];
    prepared
        .add_item_features(vec!["text_0".into(), "text_1".into()], &rows)
        .unwrap();
    assert!(
        prepared
            .add_item_features(vec!["text_0".into()], &[vec![0.0], vec![0.0], vec![0.0]])
            .is_err()
    );
    assert!(prepared.add_item_features(vec!["x".into()], &[]).is_err());
    let outcome = prepared.save(&case.out(), false).unwrap();
    let shop = Shop::load(&outcome.dir).unwrap();
    let names = shop.catalog.features().names();
    assert_eq!(&names[names.len() - 2..], ["text_0", "text_1"]);
    assert_eq!(shop.catalog.features().row(1)[names.len() - 1], 0.2);
    // A second import into the same place needs overwrite.
    let again = import_shop(&case.spec(Some(CATALOG), EVENTS), &case.out(), false).unwrap_err();
    assert!(again.to_string().contains("--force"), "{again}");
    import_shop(&case.spec(Some(CATALOG), EVENTS), &case.out(), true).unwrap();
    assert!(case.leftovers().is_empty(), "{:?}", case.leftovers());
}

// ------------------------------------------------------------------------------------------------
// Malformed catalogs and events, by name
// ------------------------------------------------------------------------------------------------

#[test]
fn a_catalog_without_an_item_id_column_names_the_header() {
    let case = Case::new();
    let spec = case.spec(Some("sku,title\nA1,Mug\n"), EVENTS);
    let msg = assert_fails_at(
        &case,
        import(&case, &spec),
        spec.catalog.as_ref().unwrap(),
        1,
        "item_id",
    );
    assert!(msg.contains("--map item_id=COLUMN"), "{msg}");
    assert!(msg.contains("found: sku, title"), "{msg}");
}

#[test]
fn a_duplicated_item_id_is_an_error_or_a_counted_skip() {
    let case = Case::new();
    let catalog = format!("{CATALOG}A1,Another mug,kitchen,1,,,,\n");
    let spec = case.spec(Some(&catalog), EVENTS);
    let msg = assert_fails_at(
        &case,
        import(&case, &spec),
        spec.catalog.as_ref().unwrap(),
        5,
        "item_id",
    );
    assert!(msg.contains("appears twice (first on line 2)"), "{msg}");
    let outcome = import(&case, &skipping(spec)).unwrap();
    assert_eq!(
        skipped(&outcome.reports[0]),
        BTreeMap::from([(SKIP_DUPLICATED_ITEM, 1)])
    );
    let shop = Shop::load(&outcome.dir).unwrap();
    assert_eq!(
        shop.catalog.title(shop.catalog.id_of("A1").unwrap()),
        Some("Red mug")
    );
}

/// The events file with one more line appended (line 7).
fn events_with(line: &str) -> String {
    format!("{EVENTS}{line}\n")
}

#[track_caller]
fn event_case(line: &str, field: &str, reason: &str, says: &str) {
    let case = Case::new();
    let spec = case.spec(Some(CATALOG), &events_with(line));
    let msg = assert_fails_at(&case, import(&case, &spec), &spec.events, 7, field);
    assert!(msg.contains(says), "{msg}");
    let outcome = import(&case, &skipping(spec)).unwrap();
    let events = &outcome.reports[1];
    assert_eq!(skipped(events), BTreeMap::from([(reason, 1)]), "{line}");
    assert_eq!(outcome.manifest.events, 5);
}

#[test]
fn an_event_for_an_unknown_item() {
    event_case(
        "u1,Z9,2024-01-01T10:00:00Z,view,s1,,,,,,mobile",
        "item_id",
        SKIP_UNKNOWN_ITEM,
        "item `Z9` is not in the catalog",
    );
}

#[test]
fn an_event_with_an_unparsable_time() {
    event_case(
        "u1,A1,12/1/2010 8:26,view,s1,,,,,,mobile",
        "timestamp",
        SKIP_BAD_TIME,
        "--time-format",
    );
}

#[test]
fn an_event_of_an_unknown_type_says_how_to_map_it() {
    event_case(
        "u1,A1,2024-01-01T10:00:00Z,impression,s1,,,,,,mobile",
        "type",
        SKIP_UNKNOWN_TYPE,
        "--map type.KIND=NAME",
    );
}

#[test]
fn a_propensity_above_one() {
    event_case(
        "u1,A1,2024-01-01T10:00:00Z,view,s1,,,r9,0,1.5,mobile",
        "propensity",
        SKIP_PROPENSITY,
        "1.5 is outside (0, 1]",
    );
}

#[test]
fn a_negative_revenue() {
    event_case(
        "u1,A1,2024-01-01T10:00:00Z,purchase,s1,1,-3,,,,mobile",
        "revenue",
        SKIP_REVENUE,
        "-3 is negative",
    );
}

#[test]
fn a_malformed_number_is_named_by_its_column() {
    event_case(
        "u1,A1,2024-01-01T10:00:00Z,purchase,s1,two,,,,,mobile",
        "quantity",
        "malformed quantity",
        "`two` is not a finite number",
    );
}

#[test]
fn invalid_utf8_names_its_field() {
    let case = Case::new();
    let mut catalog = CATALOG.as_bytes().to_vec();
    catalog.extend_from_slice(b"D4,Bad \xff title,home,1,,,,\n");
    let spec = ImportSpec {
        catalog: Some(case.write("catalog.csv", &catalog)),
        events: case.write("events.csv", EVENTS),
        ..ImportSpec::default()
    };
    let msg = assert_fails_at(
        &case,
        import(&case, &spec),
        spec.catalog.as_ref().unwrap(),
        5,
        "title",
    );
    assert!(msg.contains("invalid UTF-8"), "{msg}");
    let outcome = import(&case, &skipping(spec)).unwrap();
    assert_eq!(
        skipped(&outcome.reports[0]),
        BTreeMap::from([("malformed title", 1)])
    );
}

#[test]
fn a_truncated_json_line_names_its_line() {
    let case = Case::new();
    let events = "{\"user_id\": \"u1\", \"item_id\": \"A1\", \"timestamp\": 1704103200, \"type\": \"view\"}\n\n{\"user_id\": \"u1\", \"item_id\": \"B2\", \"timest";
    let spec = ImportSpec {
        catalog: Some(case.write("catalog.csv", CATALOG)),
        events: case.write("events.jsonl", events),
        ..ImportSpec::default()
    };
    let msg = assert_fails_at(&case, import(&case, &spec), &spec.events, 3, "<record>");
    assert!(msg.contains("EOF"), "{msg}");
    let outcome = import(&case, &skipping(spec)).unwrap();
    assert_eq!(
        skipped(&outcome.reports[1]),
        BTreeMap::from([("malformed <record>", 1)])
    );
    assert_eq!(outcome.manifest.events, 1);
}

#[test]
fn a_short_csv_row_and_a_missing_required_json_key() {
    let case = Case::new();
    let spec = case.spec(Some(CATALOG), &events_with("u1,A1"));
    assert_fails_at(&case, import(&case, &spec), &spec.events, 7, "<record>");

    let case = Case::new();
    let spec = ImportSpec {
        catalog: Some(case.write("catalog.csv", CATALOG)),
        events: case.write(
            "events.jsonl",
            "{\"user_id\": \"u1\", \"timestamp\": 1, \"type\": \"view\"}\n",
        ),
        ..ImportSpec::default()
    };
    let msg = assert_fails_at(&case, import(&case, &spec), &spec.events, 1, "item_id");
    assert!(msg.contains("required"), "{msg}");
}

#[test]
fn an_events_file_without_a_type_column_asks_for_a_map() {
    let case = Case::new();
    let spec = case.spec(Some(CATALOG), "user_id,item_id,timestamp\nu1,A1,1\n");
    let msg = assert_fails_at(&case, import(&case, &spec), &spec.events, 1, "type");
    assert!(msg.contains("--map type=const:purchase"), "{msg}");
}

#[test]
fn a_map_to_a_column_that_is_not_there_is_an_error() {
    let case = Case::new();
    let mut spec = case.spec(Some(CATALOG), EVENTS);
    spec.map = "events.session_id=visit".parse().unwrap();
    let msg = assert_fails_at(&case, import(&case, &spec), &spec.events, 1, "session_id");
    assert!(msg.contains("no column `visit`"), "{msg}");
    // A field both files have, mapped for both, must be in one of them.
    let case = Case::new();
    let mut spec = case.spec(Some(CATALOG), EVENTS);
    spec.map = "title=name".parse().unwrap();
    let err = import(&case, &spec).unwrap_err();
    assert!(err.to_string().contains("--map title=name"), "{err}");
    assert!(!case.out().exists());
}

#[test]
fn empty_users_and_cleaning_rules_always_skip_and_count() {
    let case = Case::new();
    let events = events_with("u1,A1,2024-01-01T10:00:00Z,purchase,s1,0,,,,,mobile")
        + ",A1,2024-01-01T10:00:00Z,view,s1,,,,,,mobile\n";
    let outcome = import(&case, &case.spec(Some(CATALOG), &events)).unwrap();
    assert_eq!(
        skipped(&outcome.reports[1]),
        BTreeMap::from([(SKIP_QUANTITY, 1), (SKIP_MISSING_USER, 1)])
    );
}

// ------------------------------------------------------------------------------------------------
// Random and mutated files
// ------------------------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn config(cases: u32) -> Config {
        Config {
            cases,
            rng_seed: RngSeed::Fixed(0x7368_6f70_696d_7074),
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// One edit of a byte string; positions are taken modulo the length.
    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Truncate(usize),
        Delete(usize, usize),
        Duplicate(usize, usize),
        Insert(usize, u8),
    }

    /// Bytes that mean something to the parsers.
    const INTERESTING: &[u8] = b"\"\",,\t\n\n\r-+.e09 {}[]:\\\x00\xff\xc3\xa9\x80|=T";

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), proptest::sample::select(INTERESTING.to_vec())]
    }

    fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
        let one = prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(p, x)| Mutation::Flip(p, x)),
            (any::<usize>(), byte()).prop_map(|(p, b)| Mutation::Set(p, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), 1usize..8).prop_map(|(p, n)| Mutation::Delete(p, n)),
            (any::<usize>(), 1usize..40).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
            (any::<usize>(), byte()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        ];
        proptest::collection::vec(one, 0..6)
    }

    fn apply(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
        let mut b = original.to_vec();
        for m in mutations {
            let len = b.len();
            if len == 0 {
                if let Mutation::Insert(_, x) = m {
                    b.push(*x);
                }
                continue;
            }
            match *m {
                Mutation::Flip(p, x) => b[p % len] ^= x,
                Mutation::Set(p, x) => b[p % len] = x,
                Mutation::Truncate(p) => b.truncate(p % len),
                Mutation::Delete(p, n) => {
                    let p = p % len;
                    b.drain(p..(p + n).min(len));
                }
                Mutation::Duplicate(p, n) => {
                    let p = p % len;
                    let piece = b[p..(p + n).min(len)].to_vec();
                    b.splice(p..p, piece);
                }
                Mutation::Insert(p, x) => b.insert(p % (len + 1), x),
            }
        }
        b
    }

    fn lines_in(bytes: &[u8]) -> u64 {
        bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1
    }

    const JSON_CATALOG: &str = r#"{"item_id": "A1", "title": "Mug", "category": ["kitchen", "gifts"], "price": 4.5, "stars": 4}
{"item_id": "B2", "title": "Lamp", "category": "home", "price": 30, "colour": "red"}
{"item_id": "C3", "available": false}
"#;
    const JSON_EVENTS: &str = r#"{"user_id": "u1", "item_id": "A1", "timestamp": 1704103200, "type": "view", "ranking_id": "r1", "position": 0, "propensity": 0.5}
{"user_id": "u1", "item_id": "A1", "timestamp": "2024-01-01T10:00:05Z", "type": "click", "ranking_id": "r1"}
{"user_id": "u2", "item_id": "C3", "timestamp": 1704103300000, "type": "purchase", "quantity": 2, "revenue": 60, "device": "mobile"}
"#;

    /// Imports the files in both modes and checks the properties every import keeps:
    /// - no panic (the test would fail);
    /// - an error is a Malformed error naming a line inside its file (or line 0 for a whole
    ///   file), an Invalid one naming a line, a missing column, or an empty file;
    /// - after an error nothing exists at the output and no staging folder is left;
    /// - in Skip mode a successful import accounts for every record of every file.
    fn check(catalog: (&str, Vec<u8>), events: (&str, Vec<u8>)) -> Result<(), TestCaseError> {
        let case = Case::new();
        let spec = ImportSpec {
            catalog: Some(case.write(catalog.0, &catalog.1)),
            events: case.write(events.0, &events.1),
            ..ImportSpec::default()
        };
        for on_malformed in [OnMalformed::Fail, OnMalformed::Skip] {
            let spec = ImportSpec {
                on_malformed,
                ..spec.clone()
            };
            match import_shop(&spec, &case.out(), true) {
                Ok(outcome) => {
                    for r in &outcome.reports {
                        prop_assert_eq!(r.kept + r.skipped_total(), r.records, "{}", r);
                    }
                    let shop = Shop::load(&case.out());
                    prop_assert!(shop.is_ok(), "{:?}", shop.err());
                    std::fs::remove_dir_all(case.out()).unwrap();
                }
                Err(e) => {
                    match &e {
                        DataError::Malformed { path, line, .. } => {
                            let bytes = if *path == spec.events {
                                &events.1
                            } else {
                                &catalog.1
                            };
                            prop_assert!(
                                *line <= lines_in(bytes),
                                "line {} beyond the file: {}",
                                line,
                                e
                            );
                            prop_assert!(e.to_string().contains(&format!("line {line}")), "{}", e);
                        }
                        DataError::Invalid { line, .. } => prop_assert!(*line >= 1, "{}", e),
                        DataError::MissingColumn { .. } | DataError::Empty { .. } => {}
                        other => prop_assert!(false, "unexpected error {:?}", other),
                    }
                    prop_assert!(!case.out().exists());
                }
            }
            prop_assert!(case.leftovers().is_empty(), "{:?}", case.leftovers());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(96))]

        #[test]
        fn mutated_csv_files_never_panic_nor_half_write(
            which in 0..2usize,
            m in mutations(),
        ) {
            let (mut catalog, mut events) = (CATALOG.as_bytes().to_vec(), EVENTS.as_bytes().to_vec());
            if which == 0 { catalog = apply(&catalog, &m) } else { events = apply(&events, &m) }
            check(("catalog.csv", catalog), ("events.csv", events))?;
        }

        #[test]
        fn mutated_json_lines_never_panic_nor_half_write(
            which in 0..2usize,
            m in mutations(),
        ) {
            let (mut catalog, mut events) =
                (JSON_CATALOG.as_bytes().to_vec(), JSON_EVENTS.as_bytes().to_vec());
            if which == 0 { catalog = apply(&catalog, &m) } else { events = apply(&events, &m) }
            check(("catalog.jsonl", catalog), ("events.jsonl", events))?;
        }

        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(byte(), 0..300),
            json in any::<bool>(),
            which in 0..2usize,
        ) {
            let ext = if json { "jsonl" } else { "csv" };
            let (catalog, events) = if which == 0 {
                (bytes, EVENTS.as_bytes().to_vec())
            } else {
                (CATALOG.as_bytes().to_vec(), bytes)
            };
            let events_name = if which == 1 { format!("events.{ext}") } else { "events.csv".into() };
            let catalog_name = if which == 0 { format!("catalog.{ext}") } else { "catalog.csv".into() };
            check((&catalog_name, catalog), (&events_name, events))?;
        }
    }
}
