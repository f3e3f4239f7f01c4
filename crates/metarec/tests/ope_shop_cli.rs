//! `metarec ope --shop`: any metarec policy judged on a shop's own impressions, with the same
//! estimator table as on Open Bandit and the logging policy's value as the reference row.

mod common;

use common::{metarec, stderr, stdout};
use metarec_core::{Catalog, Item};
use metarec_data::shop::{
    EventKind, EventRecord, SHOP_FORMAT, ShopFiles, ShopManifest, UserRecord,
};
use rand::Rng as _;
use std::path::Path;

const ITEMS: usize = 12;
const SLATE: usize = 3;

/// A shop of twelve items whose sixty users each like two of them (user `n` likes items `2g` and
/// `2g + 1` of group `g = n % 6`): 1,200 rankings of three items drawn uniformly without
/// replacement (so every item has propensity 1/12 at every position, logged on each impression),
/// a click on a liked item with probability 0.5 and on any other with 0.05. Seeded.
fn synthetic_shop(dir: &Path, with_propensities: bool) {
    let mut catalog = Catalog::new(vec!["log_popularity_z".into()]);
    for i in 0..ITEMS {
        catalog
            .push(Item {
                key: format!("sku-{i:02}"),
                title: Some(format!("item {i}")),
                price: Some(10.0),
                features: vec![(i as f32 - 5.5) / 4.0],
                ..Item::default()
            })
            .unwrap();
    }
    let users: Vec<UserRecord> = (0..60)
        .map(|n| UserRecord {
            user: format!("u{n:02}"),
            tokens: vec![format!("country=c{}", n % 3)],
            features: Vec::new(),
        })
        .collect();
    let mut rng = metarec_core::rng_for(7, 1);
    let mut events = Vec::new();
    for r in 0..1200i64 {
        let user = rng.random_range(0..60usize);
        let group = user % 6;
        let mut items: Vec<usize> = (0..ITEMS).collect();
        for k in 0..SLATE {
            let j = rng.random_range(k..ITEMS);
            items.swap(k, j);
        }
        let ms = 1_700_000_000_000 + r * 60_000;
        for (position, &item) in items.iter().take(SLATE).enumerate() {
            let event = |kind, ms| EventRecord {
                user: format!("u{user:02}"),
                item: format!("sku-{item:02}"),
                timestamp_ms: ms,
                kind,
                session: None,
                ranking: Some(format!("r{r}")),
                position: Some(position as u32),
                propensity: (with_propensities && kind == EventKind::View)
                    .then_some(1.0 / ITEMS as f64),
                quantity: None,
                revenue: None,
                context: Vec::new(),
            };
            events.push(event(EventKind::View, ms));
            let liked = item / 2 == group;
            if rng.random::<f64>() < if liked { 0.5 } else { 0.05 } {
                events.push(event(EventKind::Click, ms + 1000));
            }
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    let manifest = ShopManifest {
        format: SHOP_FORMAT.into(),
        name: "synthetic".into(),
        metarec_version: env!("CARGO_PKG_VERSION").into(),
        items: ITEMS,
        users: users.len(),
        events: events.len() as u64,
        events_by_type: Default::default(),
        first_ms: events.first().map(|e| e.timestamp_ms),
        last_ms: events.last().map(|e| e.timestamp_ms),
        user_features: Vec::new(),
        unavailable: Vec::new(),
        sources: Vec::new(),
        map: Default::default(),
        reports: Vec::new(),
        catalog_sha256: String::new(),
        users_sha256: String::new(),
        events_sha256: String::new(),
    };
    ShopFiles {
        manifest,
        catalog: &catalog,
        users: &users,
        events: &events,
    }
    .save(dir, false)
    .unwrap();
}

#[test]
fn ope_on_a_shop_prints_the_table_for_each_policy_with_the_logging_value_as_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = tmp.path().join("shop");
    synthetic_shop(&shop, true);
    let args = [
        "--quiet",
        "ope",
        "--shop",
        shop.to_str().unwrap(),
        "--policy",
        "random,popularity",
        "--resamples",
        "100",
        "--policy-draws",
        "20",
    ];
    let out = metarec(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The latest 20% of 1,200 rankings by time, every one with logged propensities.
    assert!(
        text.contains("the latest 20% of its 1200 rankings by time (240 held out after 960 training rankings, 240 of them with logged propensities)"),
        "{text}"
    );
    assert!(
        text.contains("(240 rounds, 720 entries, 3 positions"),
        "{text}"
    );
    for policy in ["policy random (frozen", "policy popularity (frozen"] {
        assert!(text.contains(policy), "{policy}: {text}");
    }
    // Each table starts with the logging policy's own value and has every estimator.
    assert_eq!(text.matches("logging (on-policy)").count(), 2, "{text}");
    for name in [
        "DM",
        "IPW",
        "SNIPW",
        "DR",
        "SNDR",
        "switch-DR(10)",
        "DR-OS(100)",
    ] {
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(&format!("{name} ")))
                .count(),
            2,
            "{name}: {text}"
        );
    }
    // The random policy shows what the logging policy showed: its IPW estimate is close to the
    // logged value (the same distribution, so every weight is one up to Monte Carlo noise).
    let out = metarec(tmp.path(), &[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["format"], "shop");
    assert_eq!(json["held_out"]["with_propensities"], 240);
    let logging = json["logging_value"].as_f64().unwrap();
    let random = &json["policies"][0];
    assert_eq!(random["policy"], "random");
    assert_eq!(random["replayed"], false);
    let ipw = random["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["estimator"] == "IPW")
        .unwrap();
    let (low, high) = (ipw["low"].as_f64().unwrap(), ipw["high"].as_f64().unwrap());
    assert!(low <= logging && logging <= high, "{ipw} vs {logging}");
    // A greedy policy counts one decision per round; popularity is greedy before any feedback.
    assert_eq!(json["policies"][1]["decisions_per_round"], 1.0);

    // The same seed gives the same numbers.
    let again = metarec(tmp.path(), &[&args[..], &["--json"]].concat());
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn ope_on_a_shop_refuses_what_cannot_be_judged() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = tmp.path().join("shop");
    synthetic_shop(&shop, false);
    let s = shop.to_str().unwrap();
    // Without logged propensities there is nothing to weigh.
    let out = metarec(tmp.path(), &["ope", "--shop", s, "--policy", "random"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("carries the logging policy's propensities"),
        "{}",
        stderr(&out)
    );
    let with = tmp.path().join("with");
    synthetic_shop(&with, true);
    let w = with.to_str().unwrap();
    // Yardsticks need the simulator; Open Bandit's policies need Open Bandit.
    for (policy, expected) in [
        ("oracle", "needs the simulator"),
        ("informed", "needs the simulator"),
        ("bts", "is for Open Bandit"),
        ("nope", "unknown policy `nope`"),
        ("adjusted:", "needs a model directory"),
    ] {
        let out = metarec(tmp.path(), &["ope", "--shop", w, "--policy", policy]);
        assert_eq!(out.status.code(), Some(1), "{policy}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(expected),
            "{policy}: {}",
            stderr(&out)
        );
    }
}

/// A float64 `.npy` file of `shape` holding `values`, as `np.save` writes it.
fn write_npy(path: &Path, shape: [usize; 3], values: &[f64]) {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}, {}), }}",
        shape[0], shape[1], shape[2]
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_action_distribution_from_a_file_is_judged_like_the_policy_it_describes() {
    let tmp = tempfile::tempdir().unwrap();
    let shop = tmp.path().join("shop");
    synthetic_shop(&shop, true);
    let s = shop.to_str().unwrap();
    let common = ["--quiet", "ope", "--shop", s, "--resamples", "50", "--json"];
    let uniform = metarec(
        tmp.path(),
        &[&common[..], &["--policy", "uniform"]].concat(),
    );
    assert!(uniform.status.success(), "{}", stderr(&uniform));
    // The uniform slate as an array: 240 held-out rounds, every item 1 / ITEMS at each of the
    // 3 positions.
    let npy = tmp.path().join("uniform.npy");
    let n = 240 * ITEMS * SLATE;
    write_npy(&npy, [240, ITEMS, SLATE], &vec![1.0 / ITEMS as f64; n]);
    let given = metarec(
        tmp.path(),
        &[&common[..], &["--action-dist", npy.to_str().unwrap()]].concat(),
    );
    assert!(given.status.success(), "{}", stderr(&given));
    let estimates = |o: &std::process::Output| {
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        json["policies"][0]["estimates"].clone()
    };
    assert_eq!(estimates(&given), estimates(&uniform));
    // A distribution for another number of rounds is refused, naming the file and the log.
    let short = tmp.path().join("short.npy");
    write_npy(
        &short,
        [239, ITEMS, SLATE],
        &vec![1.0 / ITEMS as f64; n - ITEMS * SLATE],
    );
    let out = metarec(
        tmp.path(),
        &["ope", "--shop", s, "--action-dist", short.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    for part in [
        "--action-dist",
        "short.npy",
        "shape (239, ",
        "it has 240 rounds",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
}
