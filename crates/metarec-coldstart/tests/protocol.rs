//! The protocol's guarantees on a synthetic data set: disjoint users, no query rating in
//! training or support, reproducible splits, models that see only training users, and a small
//! end-to-end run whose numbers do not depend on the thread count.

use metarec_coldstart::bench::{BenchConfig, run_benchmark};
use metarec_coldstart::data::{Obs, RatingData, User};
use metarec_coldstart::mf::{MfConfig, train_mf};
use metarec_coldstart::split::{QUERY_SIZE, Split, SplitFractions};
use std::collections::HashSet;

/// Users rating items from a rank-2 model plus a demographic effect, rounded to 1..=5 stars;
/// user `u` rates `13 + (u * 7) % 30` items.
fn synthetic(users: usize, items: usize) -> RatingData {
    let f = |a: usize, b: usize| ((a * 31 + b * 17) % 23) as f64 / 23.0 - 0.5;
    let users: Vec<User> = (0..users)
        .map(|u| {
            let n = 13 + (u * 7) % 30;
            let female = (u % 3 == 0) as u8 as f64;
            let ratings = (0..n)
                .map(|j| {
                    let i = (u * 13 + j * 7) % items;
                    let score = 3.4
                        + 0.6 * female
                        + 2.5 * (f(u, 0) * f(i, 1) + f(u, 2) * f(i, 3))
                        + f(i, 4);
                    Obs {
                        item: i as u32,
                        rating: score.round().clamp(1.0, 5.0),
                    }
                })
                .collect::<Vec<_>>();
            // Items repeat when n > items / 7 steps wrap; keep the first rating of each.
            let mut seen = HashSet::new();
            let ratings: Vec<Obs> = ratings
                .into_iter()
                .filter(|o| seen.insert(o.item))
                .collect();
            User {
                key: format!("u{u}"),
                ratings,
                features: vec![1.0, f(u, 5), female],
            }
        })
        .collect();
    let item_dim = 2;
    let n = users.len();
    RatingData {
        users,
        train_only_from: n,
        items,
        item_features: (0..items)
            .flat_map(|i| [((i % 4) == 0) as u8 as f64, f(i, 6)])
            .collect(),
        item_dim,
        user_feature_names: vec!["constant".into(), "age_z".into(), "female".into()],
        item_feature_names: vec!["genre=A".into(), "year_z".into()],
    }
}

#[test]
fn groups_are_disjoint_and_query_ratings_never_reach_training_or_support() {
    let data = synthetic(120, 90);
    assert!(data.users.iter().all(|u| u.ratings.len() > QUERY_SIZE));
    for seed in 0..5 {
        let split = Split::draw(&data, seed, SplitFractions::default()).unwrap();
        let train: HashSet<usize> = split.train.iter().copied().collect();
        let val: HashSet<usize> = split.validation.iter().map(|e| e.user).collect();
        let test: HashSet<usize> = split.test.iter().map(|e| e.user).collect();
        assert!(train.is_disjoint(&val) && train.is_disjoint(&test) && val.is_disjoint(&test));
        assert_eq!(train.len() + val.len() + test.len(), data.users.len());
        assert_eq!((train.len(), val.len()), (84, 12));
        for e in split.validation.iter().chain(&split.test) {
            assert_eq!(e.query.len(), QUERY_SIZE);
            // Query and pool partition the user's ratings.
            let mut all: Vec<(u32, u64)> = e
                .query
                .iter()
                .chain(&e.pool)
                .map(|o| (o.item, o.rating.to_bits()))
                .collect();
            let mut own: Vec<(u32, u64)> = data.users[e.user]
                .ratings
                .iter()
                .map(|o| (o.item, o.rating.to_bits()))
                .collect();
            all.sort_unstable();
            own.sort_unstable();
            assert_eq!(all, own);
            let query: HashSet<u32> = e.query.iter().map(|o| o.item).collect();
            for k in [Some(1), Some(5), Some(20), None] {
                let support = e.support(k);
                assert!(support.iter().all(|o| !query.contains(&o.item)));
                assert_eq!(support.len(), k.unwrap_or(usize::MAX).min(e.pool.len()));
            }
        }
    }
}

#[test]
fn splits_are_reproducible_from_the_seed() {
    let data = synthetic(120, 90);
    let a = Split::draw(&data, 7, SplitFractions::default()).unwrap();
    let b = Split::draw(&data, 7, SplitFractions::default()).unwrap();
    assert_eq!(a, b);
    let c = Split::draw(&data, 8, SplitFractions::default()).unwrap();
    assert_ne!(a.train, c.train);
}

#[test]
fn models_fitted_on_a_split_ignore_held_out_users_ratings() {
    // Rewriting every held-out user's ratings must leave the factorisation bit for bit the same.
    let data = synthetic(120, 90);
    let split = Split::draw(&data, 3, SplitFractions::default()).unwrap();
    let config = MfConfig {
        sweeps: 3,
        ..MfConfig::default()
    };
    let before = train_mf(&data, &split.train, &config, 3);
    let mut altered = data.clone();
    for e in split.validation.iter().chain(&split.test) {
        for o in &mut altered.users[e.user].ratings {
            o.rating = 6.0 - o.rating;
        }
    }
    let after = train_mf(&altered, &split.train, &config, 3);
    assert_eq!(before, after);
}

#[test]
fn split_rejects_users_without_a_support_item() {
    let mut data = synthetic(40, 90);
    data.users[5].ratings.truncate(QUERY_SIZE);
    let err = Split::draw(&data, 0, SplitFractions::default()).unwrap_err();
    assert!(err.to_string().contains("u5"), "{err}");
}

#[test]
fn training_only_users_always_train_and_never_get_episodes() {
    let mut data = synthetic(120, 90);
    data.train_only_from = 100;
    let split = Split::draw(&data, 2, SplitFractions::default()).unwrap();
    assert!((100..120).all(|u| split.train.contains(&u)));
    let held_out: Vec<usize> = split
        .validation
        .iter()
        .chain(&split.test)
        .map(|e| e.user)
        .collect();
    assert!(held_out.iter().all(|&u| u < 100));
    // The fractions apply to the 100 splittable users.
    assert_eq!((split.train.len(), split.validation.len()), (70 + 20, 10));
}

fn tiny_config(threads: usize) -> BenchConfig {
    let mut c = BenchConfig {
        seeds: vec![0, 1],
        budgets: vec![Some(1usize), Some(5), None],
        threads,
        ..BenchConfig::default()
    };
    c.mf.sweeps = 4;
    c.mf.dim = 3;
    c.mf_lambdas = vec![5.0];
    c.fold_lambdas = vec![2.0, 5.0];
    c.bayes.iterations = 3;
    c.bayes_noise_scales = vec![1.0, 2.0];
    c.melu.epochs = 2;
    c.melu.hidden1 = 8;
    c.melu.hidden2 = 4;
    c.melu_local_grid = vec![(0.0, 0), (0.05, 2)];
    c
}

#[test]
fn a_tiny_end_to_end_run_is_complete_and_thread_independent() {
    let data = synthetic(150, 60);
    let one = run_benchmark(&data, &tiny_config(1), &|_| {}).unwrap();
    let two = run_benchmark(&data, &tiny_config(2), &|_| {}).unwrap();
    assert_eq!(one.per_seed, two.per_seed);
    assert_eq!(one.table, two.table);
    // Seven methods x three budgets, each with every metric.
    assert_eq!(one.table.len(), 21);
    assert!(one.table.iter().all(|r| r.metrics.len() == 9));
    // Every method but the reference, at every budget, on eight metrics.
    assert_eq!(one.paired.len(), 6 * 3 * 8);
    assert!(one.paired.iter().all(|p| p.seeds == 2 && p.wins <= 2));
    let mae = |method: &str| {
        one.table
            .iter()
            .find(|r| r.method == method && r.budget == "all")
            .unwrap()
            .metrics[0]
            .1
            .mean
    };
    // On low-rank data with a full support set, fold-in must beat the global mean.
    assert!(
        mae("mf-foldin") < mae("global-mean"),
        "{}",
        mae("mf-foldin")
    );
    for r in &one.table {
        for (name, s) in &r.metrics {
            assert!(
                s.mean.is_finite() && s.sd >= 0.0,
                "{} {} {name}",
                r.method,
                r.budget
            );
        }
    }
}

#[test]
fn bad_settings_are_errors() {
    let data = synthetic(60, 40);
    let mut c = tiny_config(1);
    c.methods.push("oracle".into());
    let err = run_benchmark(&data, &c, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("oracle"), "{err}");
    let mut c = tiny_config(1);
    c.budgets = vec![Some(0)];
    assert!(run_benchmark(&data, &c, &|_| {}).is_err());
    for bad in [f64::NAN, -0.5, f64::INFINITY] {
        let mut c = tiny_config(1);
        c.bayes_popularities = vec![0.0, bad];
        let err = run_benchmark(&data, &c, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("ranking weights"), "{err}");
        let mut c = tiny_config(1);
        c.bayes_cautions = vec![bad];
        assert!(run_benchmark(&data, &c, &|_| {}).is_err());
    }
    let mut c = tiny_config(1);
    c.bayes_cautions = Vec::new();
    assert!(run_benchmark(&data, &c, &|_| {}).is_err());
}

#[test]
fn the_adjusters_catalogue_ranking_is_chosen_from_the_grid_and_recorded() {
    let data = synthetic(150, 60);
    let mut c = tiny_config(1);
    c.bayes_cautions = vec![0.0, 1.0];
    c.bayes_popularities = vec![0.0, 0.7];
    let report = run_benchmark(&data, &c, &|_| {}).unwrap();
    for chosen in &report.chosen {
        for r in [chosen.bayes_ranking, chosen.bayes_flat_ranking] {
            assert!(c.bayes_cautions.contains(&r.caution), "{r:?}");
            assert!(c.bayes_popularities.contains(&r.popularity), "{r:?}");
        }
    }
    // The rating predictions do not depend on the ranking grid: the error metrics are those of
    // a run with no ranking weights at all.
    let mut plain = tiny_config(1);
    plain.bayes_cautions = vec![0.0];
    plain.bayes_popularities = vec![0.0];
    let base = run_benchmark(&data, &plain, &|_| {}).unwrap();
    let metric = |r: &metarec_coldstart::bench::Report, name: &str| {
        r.table
            .iter()
            .filter(|row| row.method.starts_with("bayes"))
            .map(|row| row.metrics.iter().find(|(n, _)| n == name).unwrap().1.mean)
            .collect::<Vec<f64>>()
    };
    assert_eq!(metric(&report, "mae"), metric(&base, "mae"));
    assert_eq!(metric(&report, "mae_rounded"), metric(&base, "mae_rounded"));
    assert_eq!(metric(&report, "p5"), metric(&base, "p5"));
    // Popularity predicts ratings as item-mean does; only its catalogue ranking differs.
    let row = |r: &metarec_coldstart::bench::Report, m: &str| {
        r.table
            .iter()
            .find(|row| row.method == m && row.budget == "all")
            .unwrap()
            .metrics
            .clone()
    };
    assert_eq!(row(&base, "popularity")[0], row(&base, "item-mean")[0]);
}
