//! The item cold-start variant on small in-memory shops whose new items carry their group in
//! their titles and categories: the content methods find a user's group's new items where a
//! random order cannot, nothing on or after the cutoff reaches a fitted model or a choice, and
//! unfit data are clear errors.

use metarec_coldstart::ColdStartError;
use metarec_coldstart::mf::ImplicitConfig;
use metarec_coldstart::shop::{Interaction, ShopData};
use metarec_coldstart::shop_items::{
    ItemBenchConfig, ItemColdUser, ItemFeatures, ItemReport, fit_items, item_cold_users,
    run_item_benchmark,
};
use metarec_core::rng_for;
use rand::Rng as _;

const DAY: i64 = 86_400_000;
const GROUPS: usize = 8;
/// Per group: 6 items on sale from day 0, 3 from day 60, 3 from day 90 (the cutoff).
const PER_GROUP: usize = 12;
const CUTOFF: i64 = 90 * DAY;
const WORDS: [&str; GROUPS] = [
    "red", "blue", "green", "gold", "silver", "pink", "black", "white",
];
const FILLER: [&str; 4] = ["mug", "lantern", "bag", "tin"];

/// The day item `j` of a group goes on sale.
fn release_day(j: usize) -> i64 {
    match j {
        0..6 => 0,
        6..9 => 60,
        _ => 90,
    }
}

/// A shop of `GROUPS` groups. Each user belongs to a group, starts on a random day in the first
/// 130 and buys 4 to 8 items of their group, one every two days, each uniformly among the
/// group's items on sale by then (the first always an old one). Titles and categories name the
/// group; prices are random, so they carry nothing.
fn grouped_shop(users: usize, seed: u64) -> (ShopData, ItemFeatures) {
    let mut rng = rng_for(seed, 0);
    let mut first_ms = Vec::new();
    let mut events = Vec::new();
    for u in 0..users {
        let g = u % GROUPS;
        let start = rng.random_range(0..130 * DAY);
        first_ms.push(Some(start));
        let n = 4 + rng.random_range(0..5usize);
        for k in 0..n {
            let ms = start + k as i64 * 2 * DAY;
            let on_sale: Vec<usize> = (0..PER_GROUP)
                .filter(|&j| release_day(j) * DAY <= ms && (k > 0 || j < 6))
                .collect();
            let j = on_sale[rng.random_range(0..on_sale.len())];
            events.push(Interaction {
                user: u as u32,
                item: (g * PER_GROUP + j) as u32,
                ms,
                session: None,
            });
        }
    }
    events.sort_by_key(|e| e.ms);
    let items = GROUPS * PER_GROUP;
    let titles = (0..items)
        .map(|i| {
            let filler = FILLER[rng.random_range(0..FILLER.len())];
            format!("{} {filler} no{i}", WORDS[i / PER_GROUP])
        })
        .collect();
    let features = ItemFeatures {
        categories: (0..items)
            .map(|i| Some(format!("cat{}", i / PER_GROUP)))
            .collect(),
        prices: (0..items)
            .map(|_| Some(rng.random_range(1.0..10.0)))
            .collect(),
    };
    let data = ShopData {
        items,
        first_ms,
        tokens: vec![Vec::new(); users],
        features: vec![Vec::new(); users],
        interactions: events,
        titles,
    };
    (data, features)
}

/// A small, quick configuration (debug builds run the tests).
fn quick_config() -> ItemBenchConfig {
    ItemBenchConfig {
        cutoff_ms: CUTOFF,
        als_grid: vec![
            ImplicitConfig {
                dim: 8,
                lambda: 1.0,
                alpha: 10.0,
                sweeps: 6,
            },
            ImplicitConfig {
                dim: 8,
                lambda: 10.0,
                alpha: 10.0,
                sweeps: 6,
            },
        ],
        ..ItemBenchConfig::default()
    }
}

fn ndcg(report: &ItemReport, method: &str) -> f64 {
    report
        .methods
        .iter()
        .find(|m| m.method == method)
        .and_then(|m| m.metric("ndcg10"))
        .map(|i| i.mean)
        .unwrap()
}

#[test]
fn titles_and_categories_find_the_new_items_of_a_users_group() {
    let (data, features) = grouped_shop(600, 1);
    let report = run_item_benchmark(&data, &features, &quick_config(), &|_| {}).unwrap();
    // Every new item is one of the 3 per group released at the cutoff.
    assert_eq!(report.new_items, GROUPS * 3);
    assert!(report.users >= 50, "{} users", report.users);
    let random = ndcg(&report, "random");
    for method in [
        "attribute-match",
        "title-knn",
        "content-als",
        "content-blend",
    ] {
        let n = ndcg(&report, method);
        assert!(
            n > random + 0.3,
            "{method}: NDCG@10 {n:.3} against random {random:.3}"
        );
    }
    // The paired difference of the floor against the reference is clearly negative.
    let floor = report
        .methods
        .iter()
        .find(|m| m.method == "random")
        .unwrap();
    let d = floor.diff("ndcg10").unwrap();
    assert!(d.high < 0.0, "{d:?}");
    let reference = report
        .methods
        .iter()
        .find(|m| m.method == "title-knn")
        .unwrap();
    assert!(reference.vs_reference.is_empty());
    // The same settings give the same numbers.
    let again = run_item_benchmark(&data, &features, &quick_config(), &|_| {}).unwrap();
    assert_eq!(again.methods, report.methods);
    assert_eq!(again.chosen, report.chosen);
}

#[test]
fn nothing_on_or_after_the_cutoff_reaches_a_fitted_model() {
    let (data, features) = grouped_shop(400, 2);
    let mut rewritten = data.clone();
    for e in rewritten.interactions.iter_mut().filter(|e| e.ms >= CUTOFF) {
        e.item = (e.item + 7) % data.items as u32;
    }
    // The rewrite changes what happens after the cutoff...
    assert_ne!(
        item_cold_users(&data, CUTOFF, i64::MAX),
        item_cold_users(&rewritten, CUTOFF, i64::MAX)
    );
    let config = quick_config();
    let als = config.als_grid[0];
    let fit = |d: &ShopData, cutoff| fit_items(d, &features, cutoff, &als, config.max_words, 0);
    // ...and not one bit of any model fitted before it.
    assert_eq!(fit(&data, CUTOFF), fit(&rewritten, CUTOFF));
    // The comparison can fail: a later cutoff reads rewritten events.
    let later = CUTOFF + 10 * DAY;
    assert_ne!(fit(&data, later), fit(&rewritten, later));
    // Hyperparameters are chosen before the cutoff only: every choice is as it was.
    let ra = run_item_benchmark(&data, &features, &config, &|_| {}).unwrap();
    let rb = run_item_benchmark(&rewritten, &features, &config, &|_| {}).unwrap();
    assert_eq!(ra.als, rb.als);
    assert_eq!(ra.chosen, rb.chosen);
    assert_eq!(ra.validation_users, rb.validation_users);
}

#[test]
fn profiles_hold_old_items_before_the_first_new_one_in_time_order() {
    let at = |user: u32, item: u32, day: i64| Interaction {
        user,
        item,
        ms: day * DAY,
        session: None,
    };
    // Items 0 to 4 are first seen before day 10, items 5 to 7 on or after it.
    let interactions = vec![
        at(0, 3, 1),
        at(1, 1, 2),
        at(0, 0, 3),
        at(2, 4, 4),
        at(0, 3, 5),
        at(1, 5, 10),
        at(0, 4, 11),
        at(0, 6, 12),
        at(0, 1, 13),
        at(0, 7, 14),
        at(3, 5, 15),
        at(2, 7, 16),
    ];
    let data = ShopData {
        items: 8,
        first_ms: vec![Some(DAY), Some(2 * DAY), Some(4 * DAY), Some(15 * DAY)],
        tokens: vec![Vec::new(); 4],
        features: vec![Vec::new(); 4],
        interactions,
        titles: vec![String::new(); 8],
    };
    let episodes = item_cold_users(&data, 10 * DAY, i64::MAX);
    assert_eq!(episodes.new_items, vec![5, 6, 7]);
    // User 3 has no old item before their new one. User 0's first new item is 6, on day 12:
    // the old item 4 on day 11 is in the profile, the old item 1 on day 13 is not.
    assert_eq!(
        episodes.users,
        vec![
            ItemColdUser {
                user: 0,
                profile: vec![3, 0, 4],
                query: vec![6, 7],
            },
            ItemColdUser {
                user: 1,
                profile: vec![1],
                query: vec![5],
            },
            ItemColdUser {
                user: 2,
                profile: vec![4],
                query: vec![7],
            },
        ]
    );
    // A window that ends on day 14 does not see item 7.
    let cut = item_cold_users(&data, 10 * DAY, 14 * DAY);
    assert_eq!(cut.new_items, vec![5, 6]);
}

#[test]
fn unfit_data_and_settings_are_errors_that_say_why() {
    let (data, features) = grouped_shop(200, 3);
    let late = ItemBenchConfig {
        cutoff_ms: 400 * DAY,
        ..quick_config()
    };
    let err = run_item_benchmark(&data, &features, &late, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("no new items"), "{err}");
    let mut bare = data.clone();
    bare.titles = vec![String::new(); data.items];
    let none = ItemFeatures {
        categories: vec![None; data.items],
        prices: vec![None; data.items],
    };
    let err = run_item_benchmark(&bare, &none, &quick_config(), &|_| {}).unwrap_err();
    assert!(
        err.to_string().contains("no titles, categories or prices"),
        "{err}"
    );
    let short = ItemFeatures::default();
    assert!(matches!(
        run_item_benchmark(&data, &short, &quick_config(), &|_| {}),
        Err(ColdStartError::Data(_))
    ));
    let unknown = ItemBenchConfig {
        methods: vec!["psychic".into()],
        ..quick_config()
    };
    assert!(matches!(
        run_item_benchmark(&data, &features, &unknown, &|_| {}),
        Err(ColdStartError::Config(_))
    ));
}
