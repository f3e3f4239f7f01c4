//! Meta-training of the strategy adjuster across many training users.
//!
//! The adjuster's prior mean is the trained network's user tower (itself meta-trained by
//! reinforcement learning across users); what remains is learned here, on users drawn with a
//! training seed (never the arena's):
//! - [`calibrate_network`], the first step of both: the network's scores (ranking logits) as click
//!   log-odds, by a logistic regression of clicks on scores over training users' visits;
//! - [`meta_train_bayes`]: the prior scale `tau` of the per-user correction and whether to
//!   decide by a Thompson draw or by the posterior mean, chosen from a grid by mean reward per
//!   training user (an empirical Bayes choice made on the training tasks);
//! - [`meta_train_gradient`]: Reptile. For each step size of a grid, the initial correction every
//!   user starts from is moved towards each training user's adapted correction after their visit
//!   (`init += rate * (delta_user - init)`); the step size whose final initial value earns most on
//!   a second set of training users is kept.
//!
//! [`shop`] meta-trains on a shop's logged users instead, where no simulator can play users:
//! each user's history is a task (support: the first interactions, query: the rest).

use crate::policies::{PolicyError, check_catalog};
use crate::summary::Summary;
use metarec_core::{Environment, EventIds, Observer, Policy, Recorder, RewardFn, rng_for, rollout};
use metarec_neural::adjust::{
    ADJUSTER_FILE, AdjustedPolicy, AdjusterManifest, BayesConfig, BayesianAdjuster, Calibration,
    ClickSample, GradientAdjuster, GradientConfig, HeadInput, ValidationGain, calibration_samples,
    fit_calibration, prior_shape,
};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::features::Features;
use metarec_neural::model::Frozen;
use metarec_neural::policy::{Mode, NeuralPolicy};
use metarec_sim::Scenario;
use std::sync::Arc;
use thiserror::Error;

pub mod shop;

impl From<PolicyError> for MetaError {
    fn from(e: PolicyError) -> Self {
        MetaError::Policy(Box::new(e))
    }
}

/// Why meta-training failed.
#[derive(Debug, Error)]
pub enum MetaError {
    /// The model does not fit the scenario.
    #[error(transparent)]
    Policy(Box<PolicyError>),
    /// A decision broke an invariant (a bug in a policy).
    #[error("invalid decision: {0}")]
    Decision(#[from] metarec_core::VocabError),
    /// Writing the adjuster file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing to try: an empty grid or no users.
    #[error("need at least one {0}")]
    Nothing(&'static str),
    /// A setting that must be positive is not.
    #[error("{what} {value} must be positive")]
    NotPositive {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// The Reptile rate is outside (0, 1].
    #[error("the Reptile rate {0} must be in (0, 1]")]
    Rate(f64),
    /// The logistic regression of clicks on scores did not converge.
    #[error("the click calibration did not converge on {0} shown items")]
    Calibration(usize),
    /// The learned prior shape is not a usable covariance.
    #[error("the learned prior shape: {0}")]
    Shape(String),
    /// Too few users have a query after their support set (offline meta-training).
    #[error(
        "offline meta-training needs at least two users with more than {support} interactions in the shop's training part (a support set and a query); found {found}: lower --support"
    )]
    Tasks {
        /// Users with enough interactions.
        found: usize,
        /// The support set's size.
        support: usize,
    },
    /// The validation share is outside [0, 1).
    #[error("the validation share {0} must be at least 0 and less than 1")]
    Validation(f64),
}

/// Plays users `first..first + users` with `policy` and returns each user's total reward.
pub fn play_users<E: Environment, P: Policy + ?Sized>(
    env: &mut E,
    policy: &mut P,
    first: u64,
    users: usize,
    reward: &RewardFn,
    seed: u64,
) -> Result<Vec<f64>, MetaError> {
    let mut totals = Totals {
        reward,
        current: 0.0,
        totals: Vec::with_capacity(users),
    };
    let mut rng = rng_for(seed, 0x6d65);
    let range = first..first + users as u64;
    rollout(env, policy, range, &mut rng, &mut totals, EventIds::None)?;
    Ok(totals.totals)
}

/// Each user's total reward.
struct Totals<'a> {
    reward: &'a RewardFn,
    current: f64,
    totals: Vec<f64>,
}

impl<E: ?Sized> Observer<E> for Totals<'_> {
    fn start_user(&mut self, _user: u64, _context: &metarec_core::Context) {
        self.current = 0.0;
    }

    fn stepped(&mut self, _t: usize, interaction: &metarec_core::Interaction, _last: bool) {
        self.current += self.reward.reward(&interaction.feedback);
    }

    fn end_user(&mut self, _user: u64, _slates: usize) {
        self.totals.push(self.current);
    }
}

/// Meta-learns how the network's scores map to click log-odds: plays `users` training users
/// with the network alone (greedy, no correction, its head read as `head` says) and fits a
/// logistic regression of every shown item's click on its score.
pub fn calibrate_network(
    scenario: &Scenario,
    frozen: &Arc<Frozen>,
    features: &Arc<Features>,
    head: HeadInput,
    users: usize,
    seed: u64,
) -> Result<Calibration, MetaError> {
    let env_seed = scenario.config.seed ^ 0x6361_6c69 ^ seed;
    let mut env = scenario.env_with_seed(env_seed);
    // A prior scale of zero width: the network's own greedy ranking, whatever the feedback.
    let network_only = BayesianAdjuster::new(
        frozen.clone(),
        features.clone(),
        BayesConfig {
            prior_scale: 1e-9,
            thompson: false,
            head,
            ..BayesConfig::default()
        },
    );
    let mut policy = AdjustedPolicy::new("network", network_only);
    let mut recorder = Recorder::default();
    let mut rng = rng_for(seed, 0x6d65);
    let range = (1 << 44)..(1 << 44) + users as u64;
    rollout(
        &mut env,
        &mut policy,
        range,
        &mut rng,
        &mut recorder,
        EventIds::None,
    )?;
    let samples: Vec<ClickSample> = recorder
        .log
        .iter()
        .flat_map(|it| calibration_samples(frozen, features, it, head))
        .collect();
    let calibration = fit_calibration(&samples);
    if !(calibration.offset.is_finite()
        && calibration.scale.is_finite()
        && calibration.position.is_finite())
    {
        return Err(MetaError::Calibration(samples.len()));
    }
    Ok(calibration)
}

/// How many lines [`meta_train_bayes`] gives its `progress`: the calibration, the learned shape
/// (when asked), one per setting tried, then the chosen setting on held-out users; a progress
/// bar's length.
pub fn bayes_progress_steps(grid: usize, learn_shape: bool) -> usize {
    let shapes = if learn_shape { 2 } else { 1 };
    2 + usize::from(learn_shape) + grid * shapes * 2
}

/// The ridge of the learned prior shape, as a share of its mean variance: small enough to keep
/// the learned directions, large enough that no direction's prior variance is zero.
const SHAPE_RIDGE: f64 = 0.1;

/// Chooses the adjuster's prior scale and its way of deciding (Thompson sampling or the
/// posterior mean) on training users and writes `adjuster.json` into the model directory, with
/// the SHA-256 of the weights it was fitted to.
/// Exploring by Thompson sampling pays only when what a draw can reveal outweighs what a worse
/// slate costs now; in a short visit it often does not, so the choice is made on data, like the
/// scale. `progress` gets a line per setting tried. `head` says what the user tower reads for
/// the head the adjuster corrects ([`HeadInput`]); the calibration is fitted to that head's
/// scores, and the held-out comparison is always against the network as trained (reading the
/// history), so the ablation `HeadInput::NewUser` reports what the adjuster alone earns
/// against the tower's own inference.
#[allow(clippy::too_many_arguments)]
pub fn meta_train_bayes(
    scenario: &Scenario,
    bundle: &ModelBundle,
    grid: &[f64],
    users: usize,
    seed: u64,
    learn_shape: bool,
    head: HeadInput,
    progress: &dyn Fn(&str),
) -> Result<AdjusterManifest, MetaError> {
    if grid.is_empty() {
        return Err(MetaError::Nothing("prior scale"));
    }
    if users == 0 {
        return Err(MetaError::Nothing("user"));
    }
    if let Some(&bad) = grid.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(MetaError::NotPositive {
            what: "prior scale",
            value: bad,
        });
    }
    check_catalog("adjusted", bundle, scenario)?;
    // Training users: a seed of their own and numbers far from the arena's.
    let env_seed = scenario.config.seed ^ 0x6d65_7461 ^ seed;
    let reward = scenario.config.reward;
    let (frozen, features) = (&bundle.network.frozen, &bundle.network.features);
    let calibration = calibrate_network(scenario, frozen, features, head, users, seed)?;
    progress(&format!(
        "click log-odds = {:.3} + {:.3} x network score {:+.3} x ln(1 + position)",
        calibration.offset, calibration.scale, calibration.position
    ));
    // The shape of the prior covariance: adapt a broad isotropic prior (tau = 1, posterior
    // mean) on users of their own and take the second moment of their final corrections, so
    // the prior puts its uncertainty where users actually differ from the network.
    // Off by default: on the models measured it did not beat the identity on new users, and
    // twice the settings to choose from make the choice on training users noisier.
    let shape = if !learn_shape {
        None
    } else {
        let mut env = scenario.env_with_seed(env_seed ^ 0x7368_6170);
        let config = BayesConfig {
            prior_scale: 1.0,
            thompson: false,
            calibration,
            head,
            ..BayesConfig::default()
        };
        let adjuster = BayesianAdjuster::new(frozen.clone(), features.clone(), config);
        let mut policy = AdjustedPolicy::new("shape", adjuster);
        play_users(&mut env, &mut policy, 1 << 43, users, &reward, seed)?;
        let mut states = policy.drain_states();
        // The map's order is arbitrary; summing in user order keeps the shape reproducible.
        states.sort_by(|a, b| a.0.cmp(&b.0));
        let corrections: Vec<Vec<f64>> = states
            .into_iter()
            .filter(|(_, s)| s.observations > 0)
            .map(|(_, s)| s.mean(&mut Vec::new()))
            .collect();
        prior_shape(&corrections, frozen.embed, SHAPE_RIDGE)
    };
    if shape.is_some() {
        progress("learned the prior's shape from the training users' corrections");
    }
    let mut results = Vec::with_capacity(grid.len());
    let mut mean_results = Vec::with_capacity(grid.len());
    let mut shaped_results = Vec::new();
    // Each user's reward under one setting, on the users numbered from `first`; every call
    // starts the same environment, so settings meet the same users (common random numbers).
    let play_setting = |config: BayesConfig, shaped: bool, first: u64| {
        let mut adjuster = BayesianAdjuster::new(frozen.clone(), features.clone(), config);
        if let (true, Some(shape)) = (shaped, &shape) {
            adjuster = adjuster.with_prior_shape(shape).map_err(MetaError::Shape)?;
        }
        let mut policy = AdjustedPolicy::new("adjusted", adjuster);
        let mut env = scenario.env_with_seed(env_seed);
        play_users(&mut env, &mut policy, first, users, &reward, seed)
    };
    // The best (reward, prior scale, thompson, shaped) so far; ties keep the earlier setting.
    let mut best = (f64::NEG_INFINITY, grid[0], true, false);
    for &tau in grid {
        for shaped in [false, true] {
            if shaped && shape.is_none() {
                continue;
            }
            for thompson in [true, false] {
                let config = BayesConfig {
                    prior_scale: tau,
                    thompson,
                    calibration,
                    head,
                    ..BayesConfig::default()
                };
                let totals = play_setting(config, shaped, 1 << 42)?;
                let mean = totals.iter().sum::<f64>() / totals.len() as f64;
                let how = if thompson {
                    "Thompson sampling"
                } else {
                    "posterior mean"
                };
                let prior = if shaped { "learned shape" } else { "identity" };
                progress(&format!(
                    "prior scale {tau}, {prior}, {how}: {mean:.3} reward per training user"
                ));
                match (shaped, thompson) {
                    (true, _) => shaped_results.push((tau, thompson, mean)),
                    (false, true) => results.push((tau, mean)),
                    (false, false) => mean_results.push((tau, mean)),
                }
                if mean > best.0 {
                    best = (mean, tau, thompson, shaped);
                }
            }
        }
    }
    // The chosen setting against the network alone on users no choice was made on: the grid's
    // best reward is an optimistic estimate (the maximum of noisy means), and only a paired
    // comparison on fresh users says whether the adjuster adds anything to its network.
    let chosen = BayesConfig {
        prior_scale: best.1,
        thompson: best.2,
        calibration,
        head,
        ..BayesConfig::default()
    };
    let held_out = {
        let first = 1 << 44;
        let mut env = scenario.env_with_seed(env_seed);
        let mut alone = NeuralPolicy::new(
            "network",
            String::new(),
            (**features).clone(),
            (**frozen).clone(),
            Mode::Greedy,
        );
        let network = play_users(&mut env, &mut alone, first, users, &reward, seed)?;
        let adjusted = play_setting(chosen, best.3, first)?;
        paired_gain(&network, &adjusted)
    };
    progress(&format!(
        "chosen setting on {} held-out training users: {:.3} reward per user against the network alone's {:.3}, gain {:+.3} [{:+.3}, {:+.3}]",
        held_out.users,
        held_out.adjusted,
        held_out.network,
        held_out.gain,
        held_out.low,
        held_out.high
    ));
    let manifest = AdjusterManifest {
        kind: "bayes".into(),
        config: chosen,
        gradient: None,
        grid: results,
        mean_grid: mean_results,
        prior_shape: if best.3 {
            shape.unwrap_or_default()
        } else {
            Vec::new()
        },
        shaped_grid: shaped_results,
        users,
        held_out: Some(held_out),
        offline: None,
        weights_sha256: bundle.manifest.weights_sha256.clone(),
    };
    write_manifest(bundle, &manifest)?;
    Ok(manifest)
}

/// The per-user gain of `adjusted` over `network` (the same users in the same order): the means
/// and the gain's mean with its 95% interval.
pub(crate) fn paired_gain(network: &[f64], adjusted: &[f64]) -> ValidationGain {
    let gains: Vec<f64> = adjusted.iter().zip(network).map(|(b, a)| b - a).collect();
    let g = Summary::of(&gains);
    ValidationGain {
        users: gains.len(),
        network: Summary::of(network).mean,
        adjusted: Summary::of(adjusted).mean,
        gain: g.mean,
        low: g.low,
        high: g.high,
    }
}

fn write_manifest(bundle: &ModelBundle, manifest: &AdjusterManifest) -> Result<(), MetaError> {
    let path = bundle.dir.join(ADJUSTER_FILE);
    let text = serde_json::to_string_pretty(manifest).map_err(|e| MetaError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    metarec_data::log::atomic_write(&path, |out| std::io::Write::write_all(out, text.as_bytes()))
        .map_err(|e| MetaError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Settings of Reptile meta-training.
#[derive(Debug, Clone, PartialEq)]
pub struct ReptileConfig {
    /// Inner step sizes to try.
    pub step_sizes: Vec<f64>,
    /// Inner gradient steps after each interaction.
    pub steps: usize,
    /// Outer (meta) step: how far the initial correction moves towards each user's adapted one.
    pub rate: f64,
    /// Training users whose visits update the initial correction, per step size.
    pub users: usize,
    /// Further training users on which each step size's result is judged.
    pub eval_users: usize,
    /// Seed of the training users.
    pub seed: u64,
}

/// Meta-trains the gradient-based adjuster by Reptile (see the module documentation) and writes
/// `adjuster.json` into the model directory. `progress` gets a line per step size.
pub fn meta_train_gradient(
    scenario: &Scenario,
    bundle: &ModelBundle,
    config: &ReptileConfig,
    progress: &dyn Fn(&str),
) -> Result<AdjusterManifest, MetaError> {
    if config.step_sizes.is_empty() {
        return Err(MetaError::Nothing("step size"));
    }
    if config.users == 0 || config.eval_users == 0 {
        return Err(MetaError::Nothing("training user and one evaluation user"));
    }
    if let Some(&bad) = config
        .step_sizes
        .iter()
        .find(|t| !(t.is_finite() && **t > 0.0))
    {
        return Err(MetaError::NotPositive {
            what: "step size",
            value: bad,
        });
    }
    if !(config.rate > 0.0 && config.rate <= 1.0) {
        return Err(MetaError::Rate(config.rate));
    }
    check_catalog("adjusted", bundle, scenario)?;
    let env_seed = scenario.config.seed ^ 0x6d65_7461 ^ config.seed;
    let reward = scenario.config.reward;
    let (frozen, features) = (&bundle.network.frozen, &bundle.network.features);
    let calibration = calibrate_network(
        scenario,
        frozen,
        features,
        HeadInput::History,
        config.users,
        config.seed,
    )?;
    progress(&format!(
        "click log-odds = {:.3} + {:.3} x network score {:+.3} x ln(1 + position)",
        calibration.offset, calibration.scale, calibration.position
    ));
    let mut results = Vec::with_capacity(config.step_sizes.len());
    let mut best: Option<(f64, GradientConfig)> = None;
    for &step_size in &config.step_sizes {
        let mut env = scenario.env_with_seed(env_seed);
        let adjuster = GradientAdjuster::new(
            frozen.clone(),
            features.clone(),
            GradientConfig {
                step_size,
                steps: config.steps,
                init: vec![0.0; frozen.embed],
                calibration,
            },
        );
        let mut policy = AdjustedPolicy::new("gradient", adjuster);
        for user in 0..config.users as u64 {
            play_users(
                &mut env,
                &mut policy,
                (1 << 42) + user,
                1,
                &reward,
                config.seed,
            )?;
            let rate = config.rate;
            for (_, state) in policy.drain_states() {
                let init = &mut policy.adjuster_mut().config.init;
                for (i, d) in init.iter_mut().zip(&state.delta) {
                    *i += rate * (d - *i);
                }
            }
        }
        let trained = policy.adjuster().config.clone();
        let totals = play_users(
            &mut env,
            &mut policy,
            1u64 << 43,
            config.eval_users,
            &reward,
            config.seed,
        )?;
        let mean = totals.iter().sum::<f64>() / totals.len() as f64;
        progress(&format!(
            "step size {step_size}: {mean:.3} reward per held-out training user (|init| = {:.3})",
            trained.init.iter().map(|x| x * x).sum::<f64>().sqrt()
        ));
        results.push((step_size, mean));
        if best.as_ref().is_none_or(|(m, _)| mean > *m) {
            best = Some((mean, trained));
        }
    }
    let (_, chosen) = best.expect("at least one step size was tried");
    let manifest = AdjusterManifest {
        kind: "gradient".into(),
        config: BayesConfig::default(),
        gradient: Some(chosen),
        grid: results,
        mean_grid: Vec::new(),
        prior_shape: Vec::new(),
        shaped_grid: Vec::new(),
        users: config.users,
        held_out: None,
        offline: None,
        weights_sha256: bundle.manifest.weights_sha256.clone(),
    };
    write_manifest(bundle, &manifest)?;
    Ok(manifest)
}
