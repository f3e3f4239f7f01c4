//! The shop cold-start protocol on small in-memory shops with known structure: the Bayesian
//! adjuster finds a new user's group from three items, nothing on or after the cutoff reaches a
//! fitted model or a hyperparameter choice, and unfit settings are clear errors.

use metarec_coldstart::ColdStartError;
use metarec_coldstart::mf::ImplicitConfig;
use metarec_coldstart::shop::{
    Interaction, PriorConfig, ShopBenchConfig, ShopData, ShopReport, cold_users, fit,
    run_shop_benchmark,
};
use metarec_core::rng_for;
use rand::Rng as _;

const DAY: i64 = 86_400_000;
const GROUPS: usize = 4;
const PER_GROUP: usize = 12;
/// The cutoff: day 90.
const CUTOFF: i64 = 90 * DAY;

/// A shop of `GROUPS` groups of `PER_GROUP` items. Each user belongs to a group, holds the token
/// `region=<group>` (a prior that knows the group) with probability 0.4 and another region
/// otherwise, and buys 5 to 9 distinct items of their own group, in random order over a few
/// days. Users start uniformly over 120 days, so about a quarter are new at the cutoff. The
/// groups are equally popular, so popularity can find a user's group only by chance, while three
/// items of the group reveal it.
fn grouped_shop(users: usize, seed: u64) -> ShopData {
    let mut rng = rng_for(seed, 0);
    let mut first_ms = Vec::new();
    let mut tokens = Vec::new();
    let mut events = Vec::new();
    for u in 0..users {
        let g = u % GROUPS;
        let region = if rng.random::<f64>() < 0.4 {
            g
        } else {
            rng.random_range(0..GROUPS)
        };
        tokens.push(vec![format!("region={region}")]);
        let start = rng.random_range(0..120 * DAY);
        first_ms.push(Some(start));
        let n = 5 + rng.random_range(0..5usize);
        let mut items: Vec<usize> = (0..PER_GROUP).collect();
        for j in 0..n {
            let pick = rng.random_range(j..PER_GROUP);
            items.swap(j, pick);
            events.push(Interaction {
                user: u as u32,
                item: (g * PER_GROUP + items[j]) as u32,
                ms: start + j as i64 * (DAY / 3),
                session: Some(u as u32),
            });
        }
    }
    events.sort_by_key(|e| e.ms);
    ShopData {
        items: GROUPS * PER_GROUP,
        first_ms,
        tokens,
        features: vec![Vec::new(); users],
        interactions: events,
        titles: Vec::new(),
    }
}

/// A small, quick configuration (debug builds run the tests).
fn quick_config() -> ShopBenchConfig {
    ShopBenchConfig {
        cutoff_ms: CUTOFF,
        budgets: vec![1, 3],
        als_grid: vec![ImplicitConfig {
            dim: 6,
            lambda: 1.0,
            alpha: 10.0,
            sweeps: 6,
        }],
        fold_scales: vec![0.5, 1.0],
        noise_grid: vec![0.5, 2.0],
        gradient_grid: vec![(0.5, 3), (1.0, 10)],
        blend_betas: vec![0.0, 0.5, 1.0],
        blend_etas: vec![0.0, 1.0],
        blend_taus: vec![0.0],
        blend_gammas: vec![0.0, 0.2],
        knn_dampings: vec![0.0, 0.5],
        knn_popularity_exponents: vec![0.3, 0.5],
        knn_recencies: vec![0.6, 1.0],
        prior: PriorConfig {
            min_token_users: 5,
            ..PriorConfig::default()
        },
        ..ShopBenchConfig::default()
    }
}

fn ndcg(report: &ShopReport, k: usize, method: &str) -> f64 {
    let b = report.budgets.iter().find(|b| b.k == k).unwrap();
    let m = b.methods.iter().find(|m| m.method == method).unwrap();
    m.metric("ndcg10").unwrap().mean
}

#[test]
fn three_items_reveal_the_group_to_the_bayesian_adjuster() {
    let data = grouped_shop(600, 1);
    let report = run_shop_benchmark(&data, &quick_config(), &|_| {}).unwrap();
    let k3 = report.budgets.iter().find(|b| b.k == 3).unwrap();
    assert!(k3.users > 50, "{} new users", k3.users);
    let (bayes, popularity) = (ndcg(&report, 3, "bayes"), ndcg(&report, 3, "popularity"));
    // Within the group every remaining item is as likely, so a method that knows the group puts
    // the query among the group's 9 unseen items; popularity finds the group only by chance.
    assert!(
        bayes > popularity + 0.3,
        "bayes {bayes} popularity {popularity}"
    );
    assert!(bayes > 0.6, "bayes {bayes}");
    let b = k3.methods.iter().find(|m| m.method == "bayes").unwrap();
    let pop = k3
        .methods
        .iter()
        .find(|m| m.method == "popularity")
        .unwrap();
    assert!(b.metric("hr10").unwrap().low > pop.metric("hr10").unwrap().high);
    // Paired against item-kNN: every method but the reference has an interval per metric.
    assert!(b.diff("ndcg10").is_some());
    let knn = k3.methods.iter().find(|m| m.method == "item-knn").unwrap();
    assert!(knn.vs_reference.is_empty());
    // The same settings give the same numbers.
    let again = run_shop_benchmark(&data, &quick_config(), &|_| {}).unwrap();
    assert_eq!(again.budgets, report.budgets);
}

#[test]
fn the_blends_ceiling_is_never_below_the_blend_chosen_on_validation() {
    let data = grouped_shop(400, 3);
    let plain = run_shop_benchmark(&data, &quick_config(), &|_| {}).unwrap();
    assert!(plain.budgets.iter().all(|b| b.ceiling.is_none()));
    let config = ShopBenchConfig {
        ceiling: true,
        ..quick_config()
    };
    let report = run_shop_benchmark(&data, &config, &|_| {}).unwrap();
    for b in &report.budgets {
        let ceiling = b.ceiling.as_ref().expect("a ceiling with --ceiling");
        // The validation's choice is one point of the ceiling's search, measured the same way.
        let blend = ndcg(&report, b.k, "bayes-knn");
        assert!(
            ceiling.ndcg10 >= blend - 1e-9,
            "K = {}: ceiling {} blend {blend}",
            b.k,
            ceiling.ndcg10
        );
        // Asking for the ceiling changes nothing else.
        let same = plain.budgets.iter().find(|p| p.k == b.k).unwrap();
        assert_eq!(same.methods, b.methods);
        assert_eq!(same.chosen, b.chosen);
    }
}

/// The data with every interaction on or after the cutoff moved to another item and the
/// attributes of every user who starts after the cutoff changed.
fn rewrite_after_cutoff(data: &ShopData) -> ShopData {
    let mut out = data.clone();
    for e in out.interactions.iter_mut().filter(|e| e.ms >= CUTOFF) {
        e.item = (e.item + 7) % data.items as u32;
    }
    for (u, t) in out.first_ms.iter().enumerate() {
        if t.is_some_and(|t| t >= CUTOFF) {
            out.tokens[u] = vec!["region=elsewhere".into()];
        }
    }
    out
}

#[test]
fn nothing_on_or_after_the_cutoff_reaches_a_fitted_model() {
    let data = grouped_shop(300, 2);
    let rewritten = rewrite_after_cutoff(&data);
    // The rewrite changes what the new users did...
    assert_ne!(
        cold_users(&data, CUTOFF, 3),
        cold_users(&rewritten, CUTOFF, 3)
    );
    let config = quick_config();
    let als = config.als_grid[0];
    let a = fit(&data, CUTOFF, &als, &config.prior, 0);
    let b = fit(&rewritten, CUTOFF, &als, &config.prior, 0);
    // ...and not one bit of any model fitted before the cutoff.
    assert_eq!(a, b);
    // The comparison can fail: a later cutoff reads rewritten events and fits other models.
    let later = CUTOFF + 10 * DAY;
    assert_ne!(
        fit(&data, later, &als, &config.prior, 0),
        fit(&rewritten, later, &als, &config.prior, 0)
    );
    // Hyperparameters are chosen on users from before the cutoff only: the rewrite leaves every
    // choice and the chosen factorisation bit for bit as they were.
    let ra = run_shop_benchmark(&data, &config, &|_| {}).unwrap();
    let rb = run_shop_benchmark(&rewritten, &config, &|_| {}).unwrap();
    assert_eq!(ra.als, rb.als);
    for (x, y) in ra.budgets.iter().zip(&rb.budgets) {
        assert_eq!(x.chosen, y.chosen);
    }
}

#[test]
fn support_and_query_follow_the_order_of_first_interaction() {
    let data = ShopData {
        items: 10,
        first_ms: vec![Some(0), Some(CUTOFF), Some(CUTOFF + 5)],
        tokens: vec![Vec::new(); 3],
        features: vec![Vec::new(); 3],
        interactions: [
            (0, 1, 0),
            (1, 4, CUTOFF),
            (1, 2, CUTOFF + 1),
            (1, 4, CUTOFF + 2),
            (1, 7, CUTOFF + 3),
            (1, 0, CUTOFF + 4),
            (2, 3, CUTOFF + 5),
            (1, 9, CUTOFF + 6),
        ]
        .iter()
        .map(|&(user, item, ms)| Interaction {
            user,
            item,
            ms,
            session: None,
        })
        .collect(),
        titles: Vec::new(),
    };
    // User 0 started before the cutoff; user 2 has one item; user 1 has 4, 2, 7, 0, 9.
    let k2 = cold_users(&data, CUTOFF, 2);
    assert_eq!(k2.len(), 1);
    assert_eq!(k2[0].user, 1);
    assert_eq!(k2[0].support, vec![4, 2]);
    assert_eq!(k2[0].query, vec![7, 0, 9]);
    // K = 3 needs six distinct items.
    assert!(cold_users(&data, CUTOFF, 3).is_empty());
}

#[test]
fn unfit_cutoffs_and_settings_are_errors_that_say_why() {
    let data = grouped_shop(200, 3);
    let run = |config: ShopBenchConfig| run_shop_benchmark(&data, &config, &|_| {});
    let message = |r: Result<ShopReport, ColdStartError>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error"),
    };
    let late = message(run(ShopBenchConfig {
        cutoff_ms: 400 * DAY,
        ..quick_config()
    }));
    assert!(late.contains("no new users"), "{late}");
    let early = message(run(ShopBenchConfig {
        cutoff_ms: -DAY,
        ..quick_config()
    }));
    assert!(early.contains("nothing to train on"), "{early}");
    let big = message(run(ShopBenchConfig {
        budgets: vec![40],
        ..quick_config()
    }));
    assert!(big.contains("43 or more distinct items"), "{big}");
    let zero = message(run(ShopBenchConfig {
        budgets: vec![0],
        ..quick_config()
    }));
    assert!(zero.contains("at least 1"), "{zero}");
    let unknown = message(run(ShopBenchConfig {
        methods: vec!["oracle".into()],
        ..quick_config()
    }));
    assert!(unknown.contains("unknown method `oracle`"), "{unknown}");
}
