//! Training and offline meta-training on made-up shops with known tastes
//! (`support/synthetic_shop.rs`): the network learns to rank held-out impressions, importance
//! weighting is exact on uniform logs and measured on biased ones, purchases-only shops train on
//! organic slates, and the meta-trained adjuster does not lose to the network alone on
//! validation users.

#[path = "support/synthetic_shop.rs"]
mod synthetic_shop;

use metarec_core::{Interaction, ItemId, RewardFn};
use metarec_data::shop::Shop;
use metarec_data::shop::interactions::{InteractionOptions, shop_log};
use metarec_eval::meta::shop::{AdjusterKind, OfflineConfig, meta_train_shop};
use metarec_eval::shop::{
    ShopError, ShopTrainConfig, ShopTraining, click_auc, shop_source, training_data,
    training_histories,
};
use metarec_neural::NeuralError;
use metarec_neural::bundle::{AdjusterStatus, ModelBundle};
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::features::{Features, UserView};
use metarec_neural::model::Frozen;
use metarec_neural::train::{Algo, LoggedData, TrainConfig, Trainer, Weighting};
use std::path::Path;
use synthetic_shop::{Logging, SynthShop, Truth, write_shop};

/// Trains the network on the shop's training part with supervised learning.
fn train(shop: &Shop, config: &ShopTrainConfig, iterations: usize) -> (Trainer, ShopTraining) {
    let log = shop_log(shop, &InteractionOptions::default());
    let data = training_data(shop, &log, config).unwrap();
    let mut trainer = Trainer::new(
        &shop.catalog,
        RewardFn::default(),
        TrainConfig {
            algo: Algo::Supervised,
            iterations,
            batch: 64,
            seed: config.seed,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    trainer
        .train_logged(
            LoggedData {
                interactions: &data.interactions,
                weights: data.entry_weights(),
            },
            |_, _| Ok::<(), NeuralError>(()),
        )
        .unwrap();
    (trainer, data)
}

fn user_index(interaction: &Interaction) -> usize {
    interaction
        .context
        .user
        .0
        .trim_start_matches("user_")
        .parse()
        .unwrap()
}

/// The true expected clicks per slate of the network's top `k` in each held-out context.
fn true_clicks(
    frozen: &Frozen,
    features: &Features,
    truth: &Truth,
    held_out: &[Interaction],
    k: usize,
) -> f64 {
    let mut view = UserView::default();
    let (mut scratch, mut g) = (Vec::new(), Vec::new());
    let mut total = 0.0;
    for it in held_out {
        features.user_view(&it.context, &mut view);
        frozen.user(
            &view.input,
            &view.clicked,
            &view.ignored,
            &mut scratch,
            &mut g,
        );
        let mut scored: Vec<(f32, usize)> = (0..features.items())
            .map(|i| {
                let id = ItemId(i as u32);
                let s = frozen.score(
                    &g,
                    i,
                    view.ignored.contains(&id),
                    view.clicked.contains(&id),
                );
                (s, i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let u = user_index(it);
        total += scored
            .iter()
            .take(k)
            .enumerate()
            .map(|(p, &(_, i))| truth.click(u, i, p))
            .sum::<f64>();
    }
    total / held_out.len() as f64
}

/// The true expected clicks per slate of the logged slates.
fn logged_clicks(truth: &Truth, held_out: &[Interaction]) -> f64 {
    let total: f64 = held_out
        .iter()
        .map(|it| {
            let u = user_index(it);
            it.decision
                .slate
                .items()
                .iter()
                .enumerate()
                .map(|(p, i)| truth.click(u, i.index(), p))
                .sum::<f64>()
        })
        .sum();
    total / held_out.len() as f64
}

fn made_up(dir: &Path, name: &str, config: SynthShop) -> (Shop, Truth) {
    let path = dir.join(name);
    let truth = write_shop(&path, &config);
    (Shop::load(&path).unwrap(), truth)
}

#[test]
fn the_network_trained_on_a_shop_ranks_held_out_impressions_and_beats_the_logging_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, truth) = made_up(dir.path(), "uniform", SynthShop::default());
    let config = ShopTrainConfig::default();
    let (trainer, data) = train(&shop, &config, 300);
    // 300 users x 8 slates, the last fifth by time held out.
    assert_eq!(data.interactions.len() + data.held_out.len(), 2400);
    assert_eq!(data.held_out.len(), 480);
    assert!(!data.organic && data.weights.is_none());
    let auc = click_auc(trainer.frozen(), &trainer.features, &data.held_out);
    let fresh = Trainer::new(&shop.catalog, RewardFn::default(), TrainConfig::default()).unwrap();
    let before = click_auc(fresh.frozen(), &fresh.features, &data.held_out);
    let clicks = true_clicks(
        trainer.frozen(),
        &trainer.features,
        &truth,
        &data.held_out,
        4,
    );
    let logging = logged_clicks(&truth, &data.held_out);
    println!(
        "held-out click AUC {:?} (untrained {:?}); true clicks per slate: top 4 {clicks:.3}, logged {logging:.3}",
        auc.auc, before.auc
    );
    assert!(auc.auc.unwrap() > 0.75, "{auc:?}");
    assert!(clicks > 1.5 * logging, "{clicks} vs {logging}");
    // Same seed, same network.
    let (again, _) = train(&shop, &config, 300);
    assert_eq!(again.frozen(), trainer.frozen());
}

#[test]
fn importance_weights_are_exact_on_uniform_logs_and_both_weightings_learn_on_biased_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ips = ShopTrainConfig {
        weighting: Weighting::Ips { max_weight: 10.0 },
        ..ShopTrainConfig::default()
    };
    // Uniform slates: every propensity is 1 / items, so every weight is 1.
    let (shop, _) = made_up(dir.path(), "uniform", SynthShop::default());
    let (_, data) = train(&shop, &ips, 1);
    let w = data.weights.as_ref().unwrap();
    assert!(w.weights.iter().flatten().all(|&x| x == 1.0));
    assert_eq!((w.clipped as f64, w.effective), (0.0, w.entries as f64));
    // Best sellers with uniform exploration a fifth of the time: the weights shrink the
    // effective sample; the unweighted fit is measured against them (see
    // `ShopTrainConfig::weighting`).
    let biased = SynthShop {
        logging: Logging::Popular { epsilon: 0.2 },
        ..SynthShop::default()
    };
    let (shop, truth) = made_up(dir.path(), "popular", biased);
    let mut results = Vec::new();
    for config in [ShopTrainConfig::default(), ips.clone()] {
        let (trainer, data) = train(&shop, &config, 300);
        let auc = click_auc(trainer.frozen(), &trainer.features, &data.held_out);
        let clicks = true_clicks(
            trainer.frozen(),
            &trainer.features,
            &truth,
            &data.held_out,
            4,
        );
        let logging = logged_clicks(&truth, &data.held_out);
        println!(
            "{:?}: held-out AUC {:?}, true clicks per slate {clicks:.3} (logged {logging:.3}), Kish's size {:?}",
            config.weighting,
            auc.auc,
            data.weights.as_ref().map(|w| (w.effective, w.entries))
        );
        assert!(auc.auc.unwrap() > 0.6);
        assert!(clicks > logging, "{clicks} vs {logging}");
        results.push(clicks);
    }
    let w = training_data(
        &shop,
        &shop_log(&shop, &InteractionOptions::default()),
        &ips,
    )
    .unwrap()
    .weights
    .unwrap();
    assert!(w.effective < 0.5 * w.entries as f64, "{}", w.effective);
    // A training ranking without logged propensities rules the weights out.
    let mut log = shop_log(&shop, &InteractionOptions::default());
    log.logged_propensities[5] = false;
    assert!(matches!(
        training_data(&shop, &log, &ips),
        Err(ShopError::Propensities { missing: 1, .. })
    ));
    assert!(training_data(&shop, &log, &ShopTrainConfig::default()).is_ok());
}

#[test]
fn a_purchases_only_shop_trains_on_organic_slates() {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthShop {
        logging: Logging::PurchasesOnly,
        ..SynthShop::default()
    };
    let (shop, _) = made_up(dir.path(), "purchases", config);
    let log = shop_log(&shop, &InteractionOptions::default());
    assert!(!log.has_impressions());
    let (trainer, data) = train(&shop, &ShopTrainConfig::default(), 300);
    assert!(data.organic);
    assert_eq!(data.interactions.len() + data.held_out.len(), 2400);
    assert!(
        data.interactions
            .iter()
            .all(|i| i.decision.slate.len() == 5)
    );
    let auc = click_auc(trainer.frozen(), &trainer.features, &data.held_out);
    println!("purchases only: held-out AUC of the bought item against sampled negatives {auc:?}");
    assert!(auc.auc.unwrap() > 0.6, "{auc:?}");
    // Organic slates were never shown: there is nothing to weight by.
    let ips = ShopTrainConfig {
        weighting: Weighting::Ips { max_weight: 10.0 },
        ..ShopTrainConfig::default()
    };
    assert!(matches!(
        training_data(&shop, &log, &ips),
        Err(ShopError::OrganicWeights)
    ));
}

/// Trains and saves a bundle of the shop into `model`.
fn save_bundle(shop: &Shop, model: &Path) -> ModelBundle {
    let config = ShopTrainConfig::default();
    let (trainer, _) = train(shop, &config, 300);
    let source = shop_source(shop, "made-up/", config.holdout);
    let manifest = Manifest::for_trainer(
        &trainer,
        &shop.catalog,
        source,
        vec!["supervised".into()],
        trainer.history.clone(),
    );
    checkpoint::save(model, &trainer.varmap, &manifest, &shop.catalog).unwrap();
    ModelBundle::load(model).unwrap()
}

#[test]
fn the_adjuster_meta_trained_on_a_shop_does_not_lose_to_the_network_on_validation_users() {
    let dir = tempfile::tempdir().unwrap();
    // Users differ in taste: twelve clusters with a wide spread within each, so what a user's
    // first slates show of them is worth more than what the network reads from any user's
    // history.
    let config = SynthShop {
        users: 400,
        rounds: 10,
        taste_noise: 1.2,
        clusters: 12,
        ..SynthShop::default()
    };
    let (shop, _) = made_up(dir.path(), "tastes", config);
    let model = dir.path().join("model");
    let bundle = save_bundle(&shop, &model);
    let log = shop_log(&shop, &InteractionOptions::default());
    let histories = training_histories(&shop, &log, 0.2, 4, 11);
    assert_eq!(histories.len(), 400);
    assert!(histories.iter().all(|h| h.interactions.len() == 8));
    for kind in [AdjusterKind::Bayes, AdjusterKind::Gradient] {
        let config = OfflineConfig {
            kind,
            grid: match kind {
                AdjusterKind::Bayes => vec![0.03, 0.1, 0.3, 1.0],
                AdjusterKind::Gradient => vec![0.01, 0.03, 0.1],
            },
            learn_shape: kind == AdjusterKind::Bayes,
            ..OfflineConfig::default()
        };
        let manifest = meta_train_shop(&bundle, "made-up", &histories, &config, &|line| {
            println!("{line}")
        })
        .unwrap();
        let evidence = manifest.offline.as_ref().unwrap();
        let v = &evidence.validation;
        println!("{kind:?}: {v:?}");
        assert_eq!(v.users, 80);
        assert_eq!(evidence.selection_users, 320);
        assert!(v.adjusted >= v.network, "{v:?}");
        // On this shop the gain is clear: its whole 95% interval is above zero.
        assert!(v.low > 0.0, "{v:?}");
        assert!((v.gain - (v.adjusted - v.network)).abs() < 1e-9);
        assert!(v.low <= v.gain && v.gain <= v.high);
        // Written beside the weights it was fitted to: the bundle serves it.
        let reloaded = ModelBundle::load(&model).unwrap();
        assert!(matches!(reloaded.adjuster, AdjusterStatus::Fitted(_)));
        let file = reloaded.adjuster_file.unwrap();
        assert_eq!(file.kind, manifest.kind);
        assert_eq!(file.offline.map(|o| o.validation.users), Some(80));
        // Same seed, same choice and numbers.
        let again = meta_train_shop(&bundle, "made-up", &histories, &config, &|_| {}).unwrap();
        assert_eq!(again, manifest);
    }
}
