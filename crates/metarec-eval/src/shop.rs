//! The neural policy on a shop's own logs (a shop directory, `metarec_data::shop`): what
//! `metarec train --shop` learns from and how it is checked, and the users' histories that
//! offline meta-training ([`crate::meta::shop`]) turns into tasks.
//!
//! - [`training_data`]: the training part of the shop's log ([`split_by_time`], the one split
//!   every command shares): the logged rankings, or, for a shop that logs no impressions
//!   (purchases only), slates of each bought or clicked item with sampled negatives
//!   ([`ShopLog::organic_slates`]); shuffled with the seed (the log is in time order, and the
//!   trainer takes batches in turn), optionally with inverse propensity weights ([`Weighting`])
//!   when every training ranking logged its propensities; and the held-out part, for
//!   evaluation;
//! - [`click_auc`]: how well a network's scores separate clicked from unclicked shown items
//!   (the area under the ROC curve, pooled over entries);
//! - [`training_histories`]: each user's training-part interactions in time order;
//! - [`shop_source`] and [`check_bundle`]: what a model bundle records of its shop, and the
//!   check that a bundle was trained on a given shop;
//! - [`with_title_features`]: the first principal components of title embeddings as item
//!   features (`text_0`, ...), added to the catalog before training so serving needs no encoder.

use metarec_core::{Catalog, Interaction, VocabError, rng_for};
use metarec_data::shop::{Shop, ShopLog, split_by_time};
use metarec_neural::NeuralError;
use metarec_neural::adjust::{HeadInput, calibration_samples};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::DataSource;
use metarec_neural::features::Features;
use metarec_neural::model::Frozen;
use metarec_neural::train::{EntryWeights, Weighting, ips_weights};
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use thiserror::Error;

/// The default clip of inverse propensity weights, as a multiple of their mean weight.
///
/// Ten lets the weights correct exposure differences of up to tenfold (an epsilon-greedy
/// logging policy exploring a fifth of the time shows a rarely chosen item about a fifth as often
/// as under uniform slates) while no entry counts for more than ten average ones, so a batch of
/// 64 rankings (some 250 entries) is never dominated by one of them. On the made-up shops of the
/// tests, clips of 3, 10 and 100 ranked about equally (see [`ShopTrainConfig::weighting`] for
/// why the weights are not the default).
pub const DEFAULT_MAX_WEIGHT: f64 = 10.0;

/// The stream of [`rng_for`] that shuffles the training interactions.
const SHUFFLE_STREAM: u64 = 0x7368_7566;

/// Why a shop cannot be trained on, or a model does not belong to a shop.
#[derive(Debug, Error)]
pub enum ShopError {
    /// Nothing to learn from in the training part.
    #[error("shop `{shop}`: {reason}")]
    NoData {
        /// The shop's name.
        shop: String,
        /// What is missing.
        reason: String,
    },
    /// Importance weighting was asked for, but not every training ranking logged its
    /// propensities.
    #[error(
        "inverse propensity weighting needs the logging policy's propensity on every shown item, but {missing} of {rankings} training rankings lack them: train with `--weighting none`, or log propensities"
    )]
    Propensities {
        /// Training rankings without propensities.
        missing: usize,
        /// Training rankings.
        rankings: usize,
    },
    /// Importance weighting was asked for on organic slates, which were never shown.
    #[error(
        "the shop logs no impressions, so its training slates are built from purchases and clicks with sampled negatives, which no policy showed: there are no propensities to weight by; train with `--weighting none`"
    )]
    OrganicWeights,
    /// A model bundle was not trained on this shop.
    #[error("model {model}: {reason}")]
    Bundle {
        /// The model directory.
        model: String,
        /// What differs.
        reason: String,
    },
    /// The network or the weights could not be built.
    #[error(transparent)]
    Neural(#[from] NeuralError),
    /// The catalog could not take the title features.
    #[error("the catalog's title features: {0}")]
    Catalog(#[from] VocabError),
}

/// Settings of [`training_data`].
#[derive(Debug, Clone, PartialEq)]
pub struct ShopTrainConfig {
    /// The share of rankings, the latest by time, held out from training.
    pub holdout: f64,
    /// How to weigh the logged entries.
    ///
    /// Equal weights are the default, measured: on made-up shops with known tastes, logged by
    /// best sellers with uniform exploration (a fifth or a twentieth of the time), the network
    /// trained with inverse propensity weights (clipped at 3, 10 or 100 times the mean) ranked
    /// held-out impressions worse (click AUC 0.73 to 0.78 against 0.86) and its top four
    /// earned fewer true clicks (2.7 to 3.0 per slate against 3.1 to 3.3; the logging policy's
    /// 0.7 to 0.8). The network models the click given the user and the item, so the unweighted
    /// fit is consistent whatever the logging policy showed; the weights only shrink the
    /// effective sample (Kish's size fell from 15,360 entries to 3,100 and 740). Weighting pays
    /// when the network cannot represent the click model and must choose which items to fit
    /// well; it is kept as an option for that case.
    pub weighting: Weighting,
    /// Sampled negatives per organic slate (shops without impressions).
    pub negatives: usize,
    /// Seed of the shuffle and of the negatives.
    pub seed: u64,
}

impl Default for ShopTrainConfig {
    fn default() -> Self {
        ShopTrainConfig {
            holdout: 0.2,
            weighting: Weighting::None,
            negatives: 4,
            seed: 7,
        }
    }
}

/// What supervised training on a shop reads, and the held-out part to check it on.
#[derive(Debug, Clone)]
pub struct ShopTraining {
    /// The training interactions, shuffled.
    pub interactions: Vec<Interaction>,
    /// Their per-entry weights, when importance-weighted.
    pub weights: Option<EntryWeights>,
    /// The weighting used.
    pub weighting: Weighting,
    /// Whether the interactions are organic slates (the shop logs no impressions).
    pub organic: bool,
    /// The held-out interactions (rankings, or organic slates), in time order.
    pub held_out: Vec<Interaction>,
}

impl ShopTraining {
    /// The weights as the trainer takes them.
    pub fn entry_weights(&self) -> Option<&[Vec<f32>]> {
        self.weights.as_ref().map(|w| w.weights.as_slice())
    }
}

/// The training and held-out parts of a shop's log (see the module documentation).
pub fn training_data(
    shop: &Shop,
    log: &ShopLog,
    config: &ShopTrainConfig,
) -> Result<ShopTraining, ShopError> {
    let name = &shop.manifest.name;
    let n = shop.catalog.len();
    let (mut interactions, held_out, organic, missing) = if log.has_impressions() {
        let (train, test) = split_by_time(log, config.holdout);
        let missing = log.logged_propensities[train.clone()]
            .iter()
            .filter(|l| !**l)
            .count();
        (
            log.interactions[train].to_vec(),
            log.interactions[test].to_vec(),
            false,
            missing,
        )
    } else {
        let (train, test) = log.organic_split(config.holdout);
        (
            log.organic_slates(train, n, config.negatives, config.seed),
            log.organic_slates(test, n, config.negatives, config.seed),
            true,
            0,
        )
    };
    if interactions.is_empty() {
        return Err(ShopError::NoData {
            shop: name.clone(),
            reason: if organic && log.organic.is_empty() {
                "no impressions, clicks or purchases to learn from".into()
            } else {
                format!(
                    "nothing left to train on after holding out {} of the {}",
                    config.holdout,
                    if organic { "events" } else { "rankings" }
                )
            },
        });
    }
    let weighting = config.weighting;
    if let Weighting::Ips { .. } = weighting {
        if organic {
            return Err(ShopError::OrganicWeights);
        }
        if missing > 0 {
            return Err(ShopError::Propensities {
                missing,
                rankings: interactions.len(),
            });
        }
    }
    // The log is in time order and the trainer takes batches in turn: shuffled, each batch
    // mixes users and times.
    interactions.shuffle(&mut rng_for(config.seed, SHUFFLE_STREAM));
    let weights = match weighting {
        Weighting::None => None,
        Weighting::Ips { max_weight } => Some(ips_weights(&interactions, max_weight)?),
    };
    Ok(ShopTraining {
        interactions,
        weights,
        weighting,
        organic,
        held_out,
    })
}

/// One user's training-part interactions, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct UserHistory {
    /// The user's index in the shop's users.
    pub user: u32,
    /// Their interactions: logged rankings, or organic slates for a shop without impressions.
    pub interactions: Vec<Interaction>,
}

/// Every user's interactions in the training part of the split with `holdout` (rankings, or
/// organic slates with `negatives` seeded negatives when the shop logs no impressions), users in
/// the order of their index; users with none are left out.
pub fn training_histories(
    shop: &Shop,
    log: &ShopLog,
    holdout: f64,
    negatives: usize,
    seed: u64,
) -> Vec<UserHistory> {
    let mut by_user: BTreeMap<u32, Vec<Interaction>> = BTreeMap::new();
    if log.has_impressions() {
        let (train, _) = split_by_time(log, holdout);
        for k in train {
            by_user
                .entry(log.users[k])
                .or_default()
                .push(log.interactions[k].clone());
        }
    } else {
        let (train, _) = log.organic_split(holdout);
        for k in train {
            // One event at a time, so each slate stays with its event's user.
            for slate in log.organic_slates(k..k + 1, shop.catalog.len(), negatives, seed) {
                by_user.entry(log.organic[k].user).or_default().push(slate);
            }
        }
    }
    by_user
        .into_iter()
        .map(|(user, interactions)| UserHistory { user, interactions })
        .collect()
}

/// How well a network's scores separate clicked from unclicked shown items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickAuc {
    /// Shown items scored.
    pub entries: usize,
    /// Of which clicked.
    pub clicks: usize,
    /// The probability that a clicked item scores above an unclicked one (ties count half),
    /// pooled over all entries: 0.5 is chance. `None` without both kinds of entries.
    pub auc: Option<f64>,
}

/// The click AUC of the network's scores over the shown items of `interactions`, each scored
/// in the context it was shown in.
pub fn click_auc(frozen: &Frozen, features: &Features, interactions: &[Interaction]) -> ClickAuc {
    let samples: Vec<(f64, bool)> = interactions
        .iter()
        .flat_map(|i| calibration_samples(frozen, features, i, HeadInput::History))
        .map(|s| (s.score, s.clicked))
        .collect();
    ClickAuc {
        entries: samples.len(),
        clicks: samples.iter().filter(|s| s.1).count(),
        auc: auc(&samples),
    }
}

/// The area under the ROC curve of `(score, positive)` pairs by the rank-sum formula, tied
/// scores sharing their mean rank; `None` without both positives and negatives or with a score
/// that is not a number.
pub fn auc(samples: &[(f64, bool)]) -> Option<f64> {
    let positives = samples.iter().filter(|s| s.1).count();
    let negatives = samples.len() - positives;
    if positives == 0 || negatives == 0 || samples.iter().any(|s| s.0.is_nan()) {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end].0 == sorted[start].0 {
            end += 1;
        }
        // Ranks start + 1 ..= end share their mean.
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = sorted[start..end].iter().filter(|s| s.1).count();
        rank_sum += mean_rank * tied_positives as f64;
        start = end;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// The description of a scenario that a model bundle records: its name and its configuration as
/// given, so commands that take the model rebuild the same world, and for a simulator of a shop
/// the SHA-256 of the shop's catalog and events, so it is rebuilt only from the same shop.
pub fn scenario_source(scenario: &metarec_sim::Scenario) -> DataSource {
    let (name, toml) = (scenario.config.name.clone(), scenario.source.to_toml());
    match &scenario.shop {
        None => DataSource::Scenario { name, toml },
        Some(shop) => DataSource::ShopSimulator {
            name,
            toml,
            dir: scenario.source.shop.dir.clone(),
            catalog_sha256: shop.catalog_sha256.clone(),
            events_sha256: shop.events_sha256.clone(),
        },
    }
}

/// What a model bundle records of the shop it was trained on: its name, the directory as
/// given, the SHA-256 of its catalog and events, and the held-out share.
pub fn shop_source(shop: &Shop, dir: &str, holdout: f64) -> DataSource {
    DataSource::Shop {
        name: shop.manifest.name.clone(),
        dir: dir.to_owned(),
        catalog_sha256: shop.manifest.catalog_sha256.clone(),
        events_sha256: shop.manifest.events_sha256.clone(),
        holdout,
    }
}

/// Checks that `bundle` was trained on `shop` and returns the held-out share it recorded: the
/// bundle must come from `train --shop` on a shop with the same catalog (by SHA-256; the
/// bundle's own catalog may carry more feature columns, but the same items in the same order)
/// and the same events (otherwise the split by time would not be the one training used, and
/// held-out rankings could have been trained on).
pub fn check_bundle(bundle: &ModelBundle, shop: &Shop) -> Result<f64, ShopError> {
    let model = bundle.dir.display().to_string();
    let fail = |reason: String| ShopError::Bundle {
        model: model.clone(),
        reason,
    };
    let DataSource::Shop {
        name,
        catalog_sha256,
        events_sha256,
        holdout,
        ..
    } = &bundle.manifest.source
    else {
        return Err(fail(format!(
            "was trained on {}, not on shop `{}`; train a model on the shop with `metarec train --shop {}`",
            bundle.manifest.source.describe(),
            shop.manifest.name,
            shop.dir.display()
        )));
    };
    if *catalog_sha256 != shop.manifest.catalog_sha256 {
        return Err(fail(format!(
            "was trained on shop `{name}` with another catalog (SHA-256 {catalog_sha256}, this shop's is {}); train it on this shop",
            shop.manifest.catalog_sha256
        )));
    }
    if bundle.catalog.keys() != shop.catalog.keys() {
        return Err(fail(format!(
            "its catalog does not list the items of shop `{}` in the same order",
            shop.manifest.name
        )));
    }
    if *events_sha256 != shop.manifest.events_sha256 {
        return Err(fail(format!(
            "was trained on shop `{name}` before its events changed (events.jsonl SHA-256 {events_sha256}, now {}): the split by time would differ from training's; train it again",
            shop.manifest.events_sha256
        )));
    }
    Ok(*holdout)
}

/// The catalog with `k` title features: the first `k` principal components of the items' title
/// embeddings (`vectors`, `dim` values per item in id order), each standardised to unit
/// variance, as columns `text_0..text_{k-1}` after the existing ones (as simulated scenarios
/// with `observed.text_dims` do). The components come from a seeded subspace iteration, so the
/// same titles and seed give the same columns.
pub fn with_title_features(
    catalog: &Catalog,
    vectors: &[f32],
    dim: usize,
    k: usize,
    seed: u64,
) -> Result<Catalog, ShopError> {
    if dim == 0 || vectors.len() != dim * catalog.len() || k > dim {
        return Err(ShopError::Catalog(VocabError::LengthMismatch {
            field: "title embeddings",
            expected: dim * catalog.len(),
            actual: vectors.len(),
        }));
    }
    let rows: Vec<f64> = vectors.iter().map(|&v| f64::from(v)).collect();
    let scores = metarec_sim::world::principal_scores(&rows, dim, k, seed);
    let names: Vec<String> = (0..k).map(|j| format!("text_{j}")).collect();
    let values: Vec<f32> = scores.iter().map(|&v| v as f32).collect();
    Ok(catalog.with_features_appended(&names, &values)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_half() {
        // Positives at 0.9 and 0.4, negatives at 0.5, 0.4 and 0.1: of the 6 pairs, 0.9 beats
        // all three, 0.4 beats 0.1 and ties 0.4 (half): (3 + 1.5) / 6.
        let s = [
            (0.9, true),
            (0.4, true),
            (0.5, false),
            (0.4, false),
            (0.1, false),
        ];
        assert!((auc(&s).unwrap() - 4.5 / 6.0).abs() < 1e-12);
        assert_eq!(auc(&[(0.1, true), (0.2, true)]), None);
        assert_eq!(auc(&[(f64::NAN, true), (0.2, false)]), None);
        assert_eq!(auc(&[(0.3, true), (0.2, false)]), Some(1.0));
        assert_eq!(auc(&[(0.3, true), (0.3, false)]), Some(0.5));
    }
}
