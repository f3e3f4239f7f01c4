//! Offline meta-training of the strategy adjuster on a shop's logged users
//! (`metarec meta-train --shop`), where no simulator can play users.
//!
//! Each user with more than `support` interactions in the shop's training part is a task
//! ([`UserHistory`], from [`crate::shop::training_histories`]): the adjuster's state starts at
//! its prior, is updated on the user's first `support` interactions (the support set), and is
//! judged on the rest (the query) by the mean log-likelihood of the query's clicks per shown
//! item under the calibrated network corrected by the state
//! ([`click_log_likelihood`]), against the calibrated network alone on the same queries. The
//! log-likelihood is the adjuster's own objective (both adjusters fit the click likelihood of
//! what a user was shown), it rewards calibrated probabilities rather than only their order, and
//! it is defined for every query, even one without a click, where a ranking metric is not.
//!
//! What is learned, in order:
//! - the calibration of the network's scores as click log-odds ([`fit_calibration`]) on every
//!   training interaction of the users not held out for validation;
//! - the users are split by a seeded draw into selection users and validation users (a share
//!   `validation` of the tasks); the validation users take part in no choice;
//! - `bayes`: optionally the prior's shape ([`prior_shape`]) from the selection users' corrections
//!   after their whole training histories under a broad prior; then every prior scale of the
//!   grid (with the identity, and with the learned shape when there is one) is scored on the
//!   selection users' queries, and the best is kept. Whether to decide by Thompson sampling is a
//!   setting, not learned: the log cannot tell what exploring would have found;
//! - `gradient` (Reptile): per inner step size, the initial correction moves towards each of the
//!   first half of the selection users' corrections after their whole histories
//!   (`init += rate * (delta_user - init)`), and the step size whose initial correction scores
//!   best on the other half's queries is kept;
//! - the chosen setting's per-user gain over the network alone on the validation users, with a
//!   95% interval: the evidence that the adjuster earns its place.
//!
//! Everything is a function of the histories and the seed.

use super::{MetaError, SHAPE_RIDGE, write_manifest};
use crate::shop::UserHistory;
use metarec_core::{Adjuster, Interaction, rng_for};
use metarec_neural::adjust::{
    AdjusterManifest, BayesConfig, BayesianAdjuster, Calibration, ClickSample, GradientAdjuster,
    GradientConfig, HeadAdjuster, HeadInput, OfflineEvidence, OfflineSetting, ValidationGain,
    calibration_samples, click_log_likelihood, fit_calibration, prior_shape,
};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::features::Features;
use metarec_neural::model::Frozen;
use rand::seq::SliceRandom;

/// The metric offline meta-training judges settings by, as `adjuster.json` records it.
pub const OFFLINE_METRIC: &str = "mean query log-likelihood of clicks per shown item, averaged over users, after updating on each user's support set";

/// The stream of [`rng_for`] that draws the validation users.
const VALIDATION_STREAM: u64 = 0x7661_6c69;

/// Which adjuster to meta-train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjusterKind {
    /// The Bayesian correction of the head.
    Bayes,
    /// The gradient-based (Reptile) correction.
    Gradient,
}

/// Settings of offline meta-training.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineConfig {
    /// The adjuster.
    pub kind: AdjusterKind,
    /// Prior scales (`bayes`) or inner step sizes (`gradient`) to try.
    pub grid: Vec<f64>,
    /// Interactions in each user's support set.
    pub support: usize,
    /// The share of tasks held out as validation users, in [0, 1).
    pub validation: f64,
    /// Also learn the prior's shape and try every scale with it (`bayes`).
    pub learn_shape: bool,
    /// Decide by Thompson sampling (`bayes`); the posterior mean otherwise.
    pub thompson: bool,
    /// Inner gradient steps per interaction (`gradient`).
    pub steps: usize,
    /// Reptile's outer step, in (0, 1] (`gradient`).
    pub rate: f64,
    /// Seed of the validation draw.
    pub seed: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            kind: AdjusterKind::Bayes,
            grid: vec![0.03, 0.1, 0.3, 1.0, 3.0],
            support: 3,
            validation: 0.2,
            learn_shape: false,
            thompson: false,
            steps: 1,
            rate: 0.1,
            seed: 11,
        }
    }
}

/// How many lines [`meta_train_shop`] gives its `progress` (a progress bar's length): the tasks
/// and calibration, the network alone, the learned shape when asked, one per setting tried, and
/// the validation users.
pub fn progress_steps(config: &OfflineConfig) -> usize {
    let shaped = config.kind == AdjusterKind::Bayes && config.learn_shape;
    let per_scale = if shaped { 2 } else { 1 };
    3 + usize::from(shaped) + config.grid.len() * per_scale
}

/// The mean click log-likelihood per shown item of a user's query (every interaction after
/// the first `support`) under the calibrated network corrected by the adjuster's state after
/// the support set; `None` for the network alone.
fn query_log_likelihood<A: HeadAdjuster>(
    network: (&Frozen, &Features),
    adjuster: Option<&A>,
    calibration: &Calibration,
    history: &[Interaction],
    support: usize,
) -> f64 {
    let (support_set, query) = history.split_at(support.min(history.len()));
    let delta = match adjuster {
        Some(a) => {
            let mut state = a.prior();
            for it in support_set {
                a.update(&mut state, it);
            }
            a.correction(&state)
        }
        None => Vec::new(),
    };
    let (frozen, features) = network;
    let (mut total, mut items) = (0.0, 0usize);
    for it in query {
        let (ll, n) = click_log_likelihood(frozen, features, calibration, &delta, it);
        total += ll;
        items += n;
    }
    total / items.max(1) as f64
}

/// The mean over `users` of [`query_log_likelihood`].
fn mean_query<A: HeadAdjuster>(
    network: (&Frozen, &Features),
    adjuster: Option<&A>,
    calibration: &Calibration,
    users: &[&UserHistory],
    support: usize,
) -> f64 {
    let total: f64 = users
        .iter()
        .map(|u| query_log_likelihood(network, adjuster, calibration, &u.interactions, support))
        .sum();
    total / users.len().max(1) as f64
}

/// Meta-trains the adjuster of `bundle` on the logged users of shop `shop` (see the module
/// documentation) and writes `adjuster.json` into the model directory with the weights' SHA-256
/// and the [`OfflineEvidence`]. `histories` are every user's training-part interactions
/// ([`crate::shop::training_histories`]); `progress` gets a line per step.
pub fn meta_train_shop(
    bundle: &ModelBundle,
    shop: &str,
    histories: &[UserHistory],
    config: &OfflineConfig,
    progress: &dyn Fn(&str),
) -> Result<AdjusterManifest, MetaError> {
    let what = match config.kind {
        AdjusterKind::Bayes => "prior scale",
        AdjusterKind::Gradient => "step size",
    };
    if config.grid.is_empty() {
        return Err(MetaError::Nothing(what));
    }
    if let Some(&bad) = config.grid.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(MetaError::NotPositive { what, value: bad });
    }
    if config.support == 0 {
        return Err(MetaError::Nothing("interaction in each support set"));
    }
    if !(config.validation >= 0.0 && config.validation < 1.0) {
        return Err(MetaError::Validation(config.validation));
    }
    if config.kind == AdjusterKind::Gradient && !(config.rate > 0.0 && config.rate <= 1.0) {
        return Err(MetaError::Rate(config.rate));
    }
    let mut tasks: Vec<&UserHistory> = histories
        .iter()
        .filter(|h| h.interactions.len() > config.support)
        .collect();
    if tasks.len() < 2 {
        return Err(MetaError::Tasks {
            found: tasks.len(),
            support: config.support,
        });
    }
    // The validation users: a seeded share of the tasks, at least one when a share is asked
    // for, and never all of them.
    tasks.shuffle(&mut rng_for(config.seed, VALIDATION_STREAM));
    let wanted = (tasks.len() as f64 * config.validation).ceil() as usize;
    let held = wanted.min(tasks.len() - 1);
    let (validation, selection) = tasks.split_at(held);
    let mut validation = validation.to_vec();
    let mut selection = selection.to_vec();
    validation.sort_by_key(|h| h.user);
    selection.sort_by_key(|h| h.user);
    let held_users: std::collections::HashSet<u32> = validation.iter().map(|h| h.user).collect();

    let (frozen, features) = (&bundle.network.frozen, &bundle.network.features);
    let network = (frozen.as_ref(), features.as_ref());
    let samples: Vec<ClickSample> = histories
        .iter()
        .filter(|h| !held_users.contains(&h.user))
        .flat_map(|h| &h.interactions)
        .flat_map(|it| calibration_samples(frozen, features, it, HeadInput::History))
        .collect();
    let calibration = fit_calibration(&samples);
    if !(calibration.offset.is_finite()
        && calibration.scale.is_finite()
        && calibration.position.is_finite())
    {
        return Err(MetaError::Calibration(samples.len()));
    }
    progress(&format!(
        "{} tasks ({} selection, {} validation users); click log-odds = {:.3} + {:.3} x network score {:+.3} x ln(1 + position) (from {} shown items)",
        tasks.len(),
        selection.len(),
        validation.len(),
        calibration.offset,
        calibration.scale,
        calibration.position,
        samples.len()
    ));
    let support = config.support;
    let none: Option<&BayesianAdjuster> = None;
    let network_ll = mean_query(network, none, &calibration, &selection, support);
    progress(&format!(
        "network alone: {network_ll:.5} query log-likelihood per shown item"
    ));

    let mut tried = Vec::new();
    let manifest = match config.kind {
        AdjusterKind::Bayes => {
            let make = |tau: f64, shape: Option<&[f64]>| -> Result<BayesianAdjuster, MetaError> {
                let adjuster = BayesianAdjuster::new(
                    frozen.clone(),
                    features.clone(),
                    BayesConfig {
                        prior_scale: tau,
                        thompson: config.thompson,
                        calibration,
                        ..BayesConfig::default()
                    },
                );
                match shape {
                    Some(s) => adjuster.with_prior_shape(s).map_err(MetaError::Shape),
                    None => Ok(adjuster),
                }
            };
            // The prior's shape: the second moment of the selection users' corrections after
            // their whole training histories under a broad prior (tau = 1).
            let shape = if config.learn_shape {
                let broad = make(1.0, None)?;
                let corrections: Vec<Vec<f64>> = selection
                    .iter()
                    .map(|u| {
                        let mut state = broad.prior();
                        for it in &u.interactions {
                            broad.update(&mut state, it);
                        }
                        state
                    })
                    .filter(|s| s.observations > 0)
                    .map(|s| s.mean(&mut Vec::new()))
                    .collect();
                let shape = prior_shape(&corrections, frozen.embed, SHAPE_RIDGE);
                if shape.is_some() {
                    progress("learned the prior's shape from the selection users' corrections");
                }
                shape
            } else {
                None
            };
            // The best (log-likelihood, prior scale, shaped) so far; ties keep the earlier.
            let mut best = (f64::NEG_INFINITY, config.grid[0], false);
            for &tau in &config.grid {
                for shaped in [false, true] {
                    let s = match (shaped, &shape) {
                        (false, _) => None,
                        (true, Some(s)) => Some(s.as_slice()),
                        (true, None) => continue,
                    };
                    let adjuster = make(tau, s)?;
                    let ll =
                        mean_query(network, Some(&adjuster), &calibration, &selection, support);
                    progress(&format!(
                        "prior scale {tau}, {}: {ll:.5} query log-likelihood per shown item ({:+.5} over the network)",
                        if shaped { "learned shape" } else { "identity" },
                        ll - network_ll
                    ));
                    tried.push(OfflineSetting {
                        setting: tau,
                        shaped,
                        query_log_likelihood: ll,
                    });
                    if ll > best.0 {
                        best = (ll, tau, shaped);
                    }
                }
            }
            let prior_shape = if best.2 {
                shape.unwrap_or_default()
            } else {
                Vec::new()
            };
            let chosen = make(
                best.1,
                (!prior_shape.is_empty()).then_some(prior_shape.as_slice()),
            )?;
            let validation_gain = gain(network, &chosen, &calibration, &validation, support);
            AdjusterManifest {
                kind: "bayes".into(),
                config: chosen.config,
                gradient: None,
                grid: Vec::new(),
                mean_grid: Vec::new(),
                prior_shape,
                shaped_grid: Vec::new(),
                users: selection.len(),
                held_out: None,
                offline: Some(OfflineEvidence {
                    shop: shop.to_owned(),
                    metric: OFFLINE_METRIC.into(),
                    support,
                    selection_users: selection.len(),
                    validation_users: validation.len(),
                    network: network_ll,
                    tried,
                    validation: validation_gain,
                }),
                weights_sha256: bundle.manifest.weights_sha256.clone(),
            }
        }
        AdjusterKind::Gradient => {
            // Reptile moves the initial correction on the first half of the selection users
            // and each step size is judged on the other half (the same user when there is
            // only one).
            let half = selection.len().div_ceil(2);
            let (reptile, judges) = selection.split_at(half);
            let judges = if judges.is_empty() { reptile } else { judges };
            let judge_network = mean_query(network, none, &calibration, judges, support);
            let mut best: Option<(f64, GradientConfig)> = None;
            for &step_size in &config.grid {
                let mut adjuster = GradientAdjuster::new(
                    frozen.clone(),
                    features.clone(),
                    GradientConfig {
                        step_size,
                        steps: config.steps,
                        init: vec![0.0; frozen.embed],
                        calibration,
                    },
                );
                for u in reptile {
                    let mut state = adjuster.prior();
                    for it in &u.interactions {
                        adjuster.update(&mut state, it);
                    }
                    for (i, d) in adjuster.config.init.iter_mut().zip(&state.delta) {
                        *i += config.rate * (d - *i);
                    }
                }
                let ll = mean_query(network, Some(&adjuster), &calibration, judges, support);
                progress(&format!(
                    "step size {step_size}: {ll:.5} query log-likelihood per shown item ({:+.5} over the network; |init| = {:.3})",
                    ll - judge_network,
                    adjuster
                        .config
                        .init
                        .iter()
                        .map(|x| x * x)
                        .sum::<f64>()
                        .sqrt()
                ));
                tried.push(OfflineSetting {
                    setting: step_size,
                    shaped: false,
                    query_log_likelihood: ll,
                });
                if best.as_ref().is_none_or(|(m, _)| ll > *m) {
                    best = Some((ll, adjuster.config.clone()));
                }
            }
            let Some((_, chosen)) = best else {
                return Err(MetaError::Nothing(what));
            };
            let adjuster = GradientAdjuster::new(frozen.clone(), features.clone(), chosen.clone());
            let validation_gain = gain(network, &adjuster, &calibration, &validation, support);
            AdjusterManifest {
                kind: "gradient".into(),
                config: BayesConfig::default(),
                gradient: Some(chosen),
                grid: Vec::new(),
                mean_grid: Vec::new(),
                prior_shape: Vec::new(),
                shaped_grid: Vec::new(),
                users: selection.len(),
                held_out: None,
                offline: Some(OfflineEvidence {
                    shop: shop.to_owned(),
                    metric: OFFLINE_METRIC.into(),
                    support,
                    selection_users: selection.len(),
                    validation_users: validation.len(),
                    network: judge_network,
                    tried,
                    validation: validation_gain,
                }),
                weights_sha256: bundle.manifest.weights_sha256.clone(),
            }
        }
    };
    if let Some(v) = manifest.offline.as_ref().map(|o| &o.validation) {
        progress(&format!(
            "validation users ({}): network {:.5}, adjusted {:.5}, gain {:+.5} [{:+.5}, {:+.5}]",
            v.users, v.network, v.adjusted, v.gain, v.low, v.high
        ));
    }
    write_manifest(bundle, &manifest)?;
    Ok(manifest)
}

/// The chosen adjuster against the network alone on the validation users: per-user query
/// log-likelihoods and the mean gain with its 95% interval (zero width for one user, and all
/// zeros without validation users).
fn gain<A: HeadAdjuster>(
    network: (&Frozen, &Features),
    adjuster: &A,
    calibration: &Calibration,
    users: &[&UserHistory],
    support: usize,
) -> ValidationGain {
    let none: Option<&A> = None;
    let (mut alone, mut adjusted) = (Vec::new(), Vec::new());
    for u in users {
        alone.push(query_log_likelihood(
            network,
            none,
            calibration,
            &u.interactions,
            support,
        ));
        adjusted.push(query_log_likelihood(
            network,
            Some(adjuster),
            calibration,
            &u.interactions,
            support,
        ));
    }
    super::paired_gain(&alone, &adjusted)
}
