//! The shipped data sets imported through `shop import`'s generic path, with the maps that
//! `docs/shop.md` documents, give the numbers their own loaders give (`metarec data stats`).
//!
//! Online Retail ships with the crate and is unpacked into the data directory on first use. The
//! Open Bandit Dataset and MovieLens-100k must have been fetched
//! (`cargo run -p metarec -- data fetch obd ml-100k`); without them these tests fail, saying so.

mod common;

use common::require;
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::movielens::load_movielens;
use metarec_data::obd::{ObdCampaign, ObdPolicy, load_obd, log_dir};
use metarec_data::online_retail::{
    FILE_NAME, NON_PRODUCT_CODES, load_online_retail, non_product_reason,
};
use metarec_data::shop::Shop;
use metarec_data::shop::import::{
    FieldMap, ImportSpec, SKIP_EXCLUDED, SKIP_MISSING_USER, SKIP_PRICE, SKIP_QUANTITY, import_shop,
};
use metarec_data::stats::{
    StatValue, Stats, movielens_stats, obd_stats, online_retail_stats, shop_stats,
};
use std::path::{Path, PathBuf};

/// The `--map` of the Online Retail example in `docs/shop.md`.
const ONLINE_RETAIL_MAP: &str = "user_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,type=const:purchase,session_id=InvoiceNo,quantity=Quantity,price=UnitPrice,title=Description";
/// The `--map` of the MovieLens example.
const MOVIELENS_MAP: &str =
    "type=const:click,title=movie_title,category=class,category.split=space";
/// The `--map` of the Open Bandit example.
const OBD_MAP: &str = "user_id=user_feature_0+user_feature_1+user_feature_2+user_feature_3,type=const:view,ranking_id=@row,propensity=propensity_score,position.base=1,flag.click=click,category=item_feature_1,context=user_feature_0|user_feature_1|user_feature_2|user_feature_3";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn non_products() -> PathBuf {
    workspace().join("examples/online-retail/non-products.txt")
}

#[test]
fn the_documented_maps_are_the_ones_tested() {
    let doc = std::fs::read_to_string(workspace().join("docs/shop.md")).unwrap();
    for map in [ONLINE_RETAIL_MAP, MOVIELENS_MAP, OBD_MAP] {
        assert!(doc.contains(map), "docs/shop.md does not show --map {map}");
        map.parse::<FieldMap>().unwrap();
    }
    assert!(doc.contains("examples/online-retail/non-products.txt"));
}

#[test]
fn the_shipped_exclusion_list_is_the_loaders_non_product_codes() {
    let text = std::fs::read_to_string(non_products()).unwrap();
    let keys: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for k in &keys {
        assert!(non_product_reason(k).is_some(), "`{k}` is a product");
    }
    for (code, _) in NON_PRODUCT_CODES {
        assert!(keys.contains(code), "{code} is missing");
    }
}

#[track_caller]
fn same(a: &Stats, a_row: &str, b: &Stats, b_row: &str) {
    let x = a
        .get(a_row)
        .unwrap_or_else(|| panic!("no row `{a_row}` in {a}"));
    let y = b
        .get(b_row)
        .unwrap_or_else(|| panic!("no row `{b_row}` in {b}"));
    assert_eq!(x, y, "`{a_row}` against `{b_row}`");
}

fn count(s: &Stats, row: &str) -> u64 {
    match s.get(row) {
        Some(StatValue::Count(n)) => *n,
        other => panic!("row `{row}`: {other:?} in {s}"),
    }
}

#[test]
fn online_retail_through_the_map_gives_data_stats_exactly() {
    let csv = require(Dataset::OnlineRetail).join(FILE_NAME);
    let reference =
        online_retail_stats(&load_online_retail(&csv, &LoadOptions::default()).unwrap());
    let out = tempfile::tempdir().unwrap();
    let spec = ImportSpec {
        events: csv.clone(),
        map: ONLINE_RETAIL_MAP.parse().unwrap(),
        exclude_items: Some(non_products()),
        ..ImportSpec::default()
    };
    let dir = out.path().join("online-retail");
    let outcome = import_shop(&spec, &dir, false).unwrap();
    let r = &outcome.reports[0];
    // The loader's cleaning, rule by rule (its reasons split the same lines differently: it
    // names cancellations, which here are guests or non-positive quantities).
    assert_eq!((r.records, r.kept), (541_909, 396_241), "{r}");
    assert_eq!(r.skipped.get(SKIP_EXCLUDED), Some(&3_052), "{r}");
    assert_eq!(r.skipped.get(SKIP_PRICE), Some(&33), "{r}");
    let guests_and_returns =
        r.skipped.get(SKIP_MISSING_USER).unwrap() + r.skipped.get(SKIP_QUANTITY).unwrap();
    assert_eq!(guests_and_returns, 133_882 + 8_701, "{r}");
    assert_eq!(r.skipped.len(), 4, "{r}");

    let shop = Shop::load(&dir).unwrap();
    let stats = shop_stats(&shop);
    for (theirs, ours) in [
        ("customers", "users"),
        ("items", "items"),
        ("purchase lines", "events: purchase"),
        ("invoices", "sessions"),
        ("date range", "date range"),
        ("customer-item pairs", "user-item pairs"),
        ("density", "density"),
        ("repeat-purchase rate", "repeat-purchase rate"),
        ("distinct items per customer", "distinct items per user"),
        (
            "popularity Gini (lines per item)",
            "popularity Gini (events per item)",
        ),
        ("revenue (GBP)", "revenue"),
    ] {
        same(&reference, theirs, &stats, ours);
    }
    assert_eq!(count(&stats, "events"), 396_241);
    // The catalog is the loader's: most common titles and median prices.
    let heart = shop.catalog.id_of("85123A").unwrap();
    assert_eq!(
        shop.catalog.title(heart),
        Some("WHITE HANGING HEART T-LIGHT HOLDER")
    );
    assert_eq!(shop.catalog.price(heart), Some(2.95));
    assert_eq!(shop.users[0].key, "17850");
}

#[test]
fn movielens_through_the_map_gives_data_stats_exactly() {
    let dir = require(Dataset::MovieLens100k);
    let reference = movielens_stats(&load_movielens(&dir, &LoadOptions::default()).unwrap());
    let out = tempfile::tempdir().unwrap();
    let spec = ImportSpec {
        catalog: Some(dir.join("ml-100k.item")),
        events: dir.join("ml-100k.inter"),
        users: Some(dir.join("ml-100k.user")),
        map: MOVIELENS_MAP.parse().unwrap(),
        ..ImportSpec::default()
    };
    let shop_dir = out.path().join("ml-100k");
    let outcome = import_shop(&spec, &shop_dir, false).unwrap();
    for r in &outcome.reports {
        assert!(r.skipped.is_empty(), "{r}");
    }
    let shop = Shop::load(&shop_dir).unwrap();
    let stats = shop_stats(&shop);
    for (theirs, ours) in [
        ("users", "users"),
        ("items", "items"),
        ("ratings", "events"),
        ("ratings", "events: click"),
        ("date range", "date range"),
        ("density", "density"),
    ] {
        same(&reference, theirs, &stats, ours);
    }
    let toy = shop.catalog.id_of("1").unwrap();
    assert_eq!(shop.catalog.title(toy), Some("Toy Story"));
    let genres = shop
        .catalog
        .features()
        .names()
        .iter()
        .filter(|n| n.starts_with("category="))
        .count();
    assert_eq!(genres, 19);
    assert!(
        shop.users[0]
            .tokens
            .contains(&"occupation=technician".to_owned())
    );
    assert!(shop.events[0].context[0].starts_with("rating="));
}

#[test]
fn open_bandit_through_the_map_gives_data_stats_exactly() {
    let obd = require(Dataset::Obd);
    for (policy, campaign) in [
        (ObdPolicy::Random, ObdCampaign::All),
        (ObdPolicy::Bts, ObdCampaign::Men),
    ] {
        let log = load_obd(&obd, policy, campaign, &LoadOptions::default()).unwrap();
        let reference = obd_stats(&log);
        let folder = log_dir(&obd, policy, campaign);
        let out = tempfile::tempdir().unwrap();
        let spec = ImportSpec {
            catalog: Some(folder.join("item_context.csv")),
            events: folder.join(format!("{campaign}.csv")),
            map: OBD_MAP.parse().unwrap(),
            ..ImportSpec::default()
        };
        let dir = out.path().join("obd");
        import_shop(&spec, &dir, false).unwrap();
        let shop = Shop::load(&dir).unwrap();
        let stats = shop_stats(&shop);
        let what = format!("{policy}/{campaign}");
        for (theirs, ours) in [
            ("rounds", "rankings"),
            ("rounds", "rankings with logged propensities"),
            ("items", "items"),
            ("impressions", "impressions"),
            ("clicks", "events: click"),
            ("clicks", "clicks on impressions"),
            ("date range", "date range"),
            ("distinct user feature vectors", "users"),
        ] {
            same(&reference, theirs, &stats, ours);
        }
        for pos in 0..3u8 {
            let shown = log.rounds.iter().filter(|r| r.position == pos).count();
            let clicked = log
                .rounds
                .iter()
                .filter(|r| r.position == pos && r.click)
                .count();
            let row = format!("CTR at position {}", pos + 1);
            let Some(StatValue::Text(text)) = stats.get(&row) else {
                panic!("{what}: no {row} in {stats}");
            };
            let tail = format!(
                "({} clicks / {} impressions)",
                clicked,
                metarec_data::stats::thousands(shown as u64)
            );
            assert!(
                text.ends_with(&tail),
                "{what}: {row}: {text}, expected {tail}"
            );
        }
        // The first round's user and context are its hashed features, as the loader keys them.
        let first = log.interaction(0).unwrap();
        let e = &shop.events[0];
        assert_eq!(shop.user_key(e), first.context.user.0, "{what}");
        assert_eq!(e.context, first.context.tokens, "{what}");
        assert_eq!(e.propensity, Some(log.rounds[0].propensity), "{what}");
        assert_eq!(
            shop.catalog.features().dim(),
            log.catalog.features().dim(),
            "{what}: the same one-hot columns"
        );
    }
}
