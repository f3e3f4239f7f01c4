//! Open Bandit Dataset logs as [`LoggedData`]: one round per logged impression (one item at one
//! of three positions), the click as reward, the logged propensity, and the context that
//! [`metarec_data::obd::ObdLog::interaction`] builds (hashed user features as tokens, user-item
//! affinities as features).
//!
//! [`run_experiment`] is the whole of `metarec ope --data obd`: load a policy x campaign log,
//! build the evaluation policy ([`Target`]), fit the cross-fitted reward model, run every
//! estimator, and read the on-policy CTRs of both logging policies for reference.

use crate::data::{FloorReport, LoggedData, PropensityFloor, RawEntry};
use crate::error::OpeError;
use crate::estimator::{
    Bootstrap, Clipping, Estimate, Estimator, Prepared, all_estimators, evaluate,
};
use crate::model::{CrossFitted, LinearConfig, LinearModel, ModelConfig, select_lambda};
use crate::policy::{EvaluationPolicy, GreedyPolicy, MonteCarlo, PlackettLucePolicy, StaticPolicy};
use crate::prior::BtsPrior;
use metarec_data::LoadOptions;
use metarec_data::obd::{ObdCampaign, ObdLog, ObdPolicy, load_obd};
use serde::Serialize;
use std::path::Path;

/// Number of display positions in Open Bandit logs.
pub const POSITIONS: usize = 3;

/// Converts a loaded log, checking propensities against `floor` (rows are the 1-based rounds);
/// `with_contexts` keeps each round's context (needed by context-aware reward models and
/// policies, at the cost of memory).
pub fn logged_data(
    log: &ObdLog,
    with_contexts: bool,
    floor: PropensityFloor,
) -> Result<LoggedData, OpeError> {
    let mut data = LoggedData::with_floor(log.catalog.len(), POSITIONS, floor);
    for (i, r) in log.rounds.iter().enumerate() {
        let context = if with_contexts {
            log.interaction(i).map(|x| x.context)
        } else {
            None
        };
        let entry = RawEntry {
            item: r.item.0,
            position: u32::from(r.position),
            propensity: Some(r.propensity),
            reward: if r.click { 1.0 } else { 0.0 },
        };
        data.push_round(i + 1, context, &[entry])?;
    }
    if data.rounds() == 0 {
        return Err(OpeError::EmptyLog);
    }
    Ok(data)
}

/// Each item's group for [`crate::LinearConfig::item_groups`]: its category (Open Bandit's
/// `item_feature_1`), 0 when it has none.
pub fn item_groups(log: &ObdLog) -> Vec<u32> {
    log.catalog
        .ids()
        .map(|id| log.catalog.category(id).map_or(0, |c| c.0))
        .collect()
}

/// The policy an Open Bandit experiment evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Bernoulli Thompson sampling under ZOZOTOWN's prior for the campaign (the policy behind the
    /// `bts` logs), its distribution estimated by Monte Carlo.
    Bts,
    /// The uniform random slate (the policy behind the `random` logs).
    Uniform,
    /// A policy over a [`LinearModel`] trained on the first `train_fraction` of the logs' rounds;
    /// the estimators then run on the remaining rounds only.
    Learned {
        /// Share of the rounds, in file (time) order, used for training; in `(0, 1)`.
        train_fraction: f64,
        /// `None`: the greedy top three. `Some(t)`: Plackett-Luce slates over the scores at
        /// temperature `t` (in score standard deviations), which overlap the logs far more.
        temperature: Option<f64>,
    },
    /// The policy passed to [`run_experiment_with`], built by the caller from the log's catalog.
    Given,
}

/// Settings of [`run_experiment`].
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Which logs to evaluate on.
    pub logs: ObdPolicy,
    /// Which campaign.
    pub campaign: ObdCampaign,
    /// Which policy to evaluate.
    pub target: Target,
    /// Monte Carlo settings of the Thompson-sampling distribution.
    pub monte_carlo: MonteCarlo,
    /// Bootstrap settings.
    pub bootstrap: Bootstrap,
    /// Optional weight clip.
    pub clip: Option<f64>,
    /// The smallest logging propensity accepted, and whether smaller ones are clipped to it.
    pub propensity_floor: PropensityFloor,
    /// Switch-DR threshold.
    pub switch_tau: f64,
    /// DR-OS shrinkage.
    pub os_lambda: f64,
    /// Cross-fitting folds of the reward model.
    pub folds: usize,
    /// Ridge penalty of the linear models (reward model and learned policy); `None` picks it
    /// from [`LAMBDA_GRID`] by out-of-fold squared error on the evaluated rounds.
    pub lambda: Option<f64>,
}

/// The penalties [`run_experiment`] chooses from when none is given.
pub const LAMBDA_GRID: [f64; 6] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5];

/// What [`run_experiment`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentReport {
    /// The evaluated policy's name.
    pub policy: String,
    /// Rounds evaluated on.
    pub rounds: usize,
    /// Rounds trained on (learned policies only).
    pub train_rounds: usize,
    /// The logging policy's own CTR on the evaluated rounds.
    pub logging_value: f64,
    /// The uniform random policy's own CTR on the campaign's `random` logs.
    pub random_value: f64,
    /// The Thompson-sampling policy's own CTR on the campaign's `bts` logs.
    pub bts_value: f64,
    /// The evaluated policy's own CTR where its logs exist (BTS, uniform).
    pub on_policy_value: Option<f64>,
    /// One row per estimator.
    pub estimates: Vec<Estimate>,
    /// What clipping did.
    pub clipping: Clipping,
    /// What the propensity floor did to the evaluated rounds.
    pub propensity_floor: FloorReport,
    /// The ridge penalty used, and the out-of-fold squared error of each candidate when it was
    /// selected.
    pub lambda: f64,
    /// `(penalty, out-of-fold mean squared error)` per candidate (empty when given).
    pub lambda_errors: Vec<(f64, f64)>,
    /// Entries with a reward and a non-zero importance weight: what the weighted estimators rest
    /// on (their bootstrap interval is a single point when there are none).
    pub weighted_rewards: usize,
}

fn ctr(log: &ObdLog) -> f64 {
    let clicks = log.rounds.iter().filter(|r| r.click).count();
    clicks as f64 / log.rounds.len().max(1) as f64
}

/// Loads the logs, builds the evaluation policy and the cross-fitted reward model, and runs every
/// estimator. `obd_dir` is the Open Bandit folder (with `prior_bts.yaml` when the target is BTS).
pub fn run_experiment(obd_dir: &Path, exp: &Experiment) -> Result<ExperimentReport, OpeError> {
    run_experiment_with(obd_dir, exp, &|_| {
        Err(OpeError::Config {
            name: "target",
            reason: "a given policy needs run_experiment_with".into(),
        })
    })
}

/// Makes the evaluation policy of [`Target::Given`] from the loaded log.
pub type PolicyBuilder<'a> = dyn Fn(&ObdLog) -> Result<Box<dyn EvaluationPolicy>, OpeError> + 'a;

/// [`run_experiment`] where [`Target::Given`] evaluates the policy that `build` makes from the
/// loaded log (for example a metarec baseline wrapped in [`crate::MonteCarloPolicy`]).
pub fn run_experiment_with(
    obd_dir: &Path,
    exp: &Experiment,
    build: &PolicyBuilder<'_>,
) -> Result<ExperimentReport, OpeError> {
    let options = LoadOptions::default();
    let load = |p: ObdPolicy| load_obd(obd_dir, p, exp.campaign, &options);
    let log = load(exp.logs)?;
    let other = load(match exp.logs {
        ObdPolicy::Random => ObdPolicy::Bts,
        ObdPolicy::Bts => ObdPolicy::Random,
    })?;
    let (random_log, bts_log) = match exp.logs {
        ObdPolicy::Random => (&log, &other),
        ObdPolicy::Bts => (&other, &log),
    };
    let all = logged_data(&log, true, exp.propensity_floor)?;
    let mut linear = LinearConfig {
        lambda: exp.lambda.unwrap_or(1.0),
        item_affinity: true,
        item_groups: Some(item_groups(&log)),
    };
    let (policy, data, train_rounds, on_policy): (
        Box<dyn EvaluationPolicy>,
        LoggedData,
        usize,
        Option<f64>,
    ) = match exp.target {
        Target::Bts => {
            let prior = BtsPrior::load(&obd_dir.join("prior_bts.yaml"))?;
            let p = StaticPolicy::bernoulli_ts(
                prior.campaign(exp.campaign.as_str())?,
                POSITIONS,
                &exp.monte_carlo,
            )?;
            (Box::new(p), all, 0, Some(ctr(bts_log)))
        }
        Target::Uniform => (
            Box::new(StaticPolicy::uniform(log.catalog.len(), POSITIONS)?),
            all,
            0,
            Some(ctr(random_log)),
        ),
        Target::Given => (build(&log)?, all, 0, None),
        Target::Learned {
            train_fraction,
            temperature,
        } => {
            if !(train_fraction > 0.0 && train_fraction < 1.0) {
                return Err(OpeError::Config {
                    name: "train_fraction",
                    reason: format!("{train_fraction} is not in (0, 1)"),
                });
            }
            let cut = ((all.rounds() as f64 * train_fraction) as usize).clamp(1, all.rounds() - 1);
            let train = all.slice(0..cut);
            let mut config = linear.clone();
            if exp.lambda.is_none() {
                config.lambda = select_lambda(&train, &linear, &LAMBDA_GRID, exp.folds)?.0;
            }
            let model = LinearModel::fit(&train, &config, &|_| true)?;
            let eval = all.slice(cut..all.rounds());
            (
                match temperature {
                    None => Box::new(GreedyPolicy::new("learned-linear", model)),
                    Some(t) => Box::new(PlackettLucePolicy::new(
                        format!("learned-linear-pl({t})"),
                        model,
                        t,
                    )?),
                },
                eval,
                cut,
                None,
            )
        }
    };
    // The penalty is chosen on the rounds evaluated on, by held-out prediction error only (never
    // by the estimates), then used for the cross-fitted reward model.
    let lambda_errors = match exp.lambda {
        Some(_) => Vec::new(),
        None => {
            let (best, errors) = select_lambda(&data, &linear, &LAMBDA_GRID, exp.folds)?;
            linear.lambda = best;
            errors
        }
    };
    let model = CrossFitted::fit(&ModelConfig::Linear(linear.clone()), &data, exp.folds)?;
    let prepared = Prepared::new(&data, policy.as_ref(), &model, exp.clip)?;
    let estimators = all_estimators(exp.switch_tau, exp.os_lambda);
    let refs: Vec<&dyn Estimator> = estimators.iter().map(|e| e.as_ref()).collect();
    let estimates = evaluate(&prepared, &refs, &exp.bootstrap)?;
    Ok(ExperimentReport {
        policy: policy.name(),
        rounds: data.rounds(),
        train_rounds,
        logging_value: data.on_policy_value(),
        random_value: ctr(random_log),
        bts_value: ctr(bts_log),
        on_policy_value: on_policy,
        estimates,
        clipping: prepared.clipping,
        propensity_floor: data.floor_report(),
        lambda: linear.lambda,
        lambda_errors,
        weighted_rewards: prepared
            .weights
            .iter()
            .zip(&prepared.rewards)
            .filter(|(w, r)| **w > 0.0 && **r != 0.0)
            .count(),
    })
}
