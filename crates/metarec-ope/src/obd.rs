//! Open Bandit Dataset logs as [`LoggedData`]: one round per logged impression (one item at one
//! of three positions), the click as reward, the logged propensity, and the context that
//! [`metarec_data::obd::ObdLog::interaction`] builds (hashed user features as tokens, user-item
//! affinities as features).
//!
//! [`run_experiment`] is the whole of `metarec ope --data obd`: load a policy x campaign log,
//! build the evaluation policy ([`Target`]), fit the cross-fitted reward model, run every
//! estimator, and read the on-policy CTRs of both logging policies for reference.

use crate::data::{LoggedData, RawEntry};
use crate::error::OpeError;
use crate::estimator::{
    Bootstrap, Clipping, Estimate, Estimator, Prepared, all_estimators, evaluate,
};
use crate::model::{CrossFitted, LinearConfig, LinearModel, ModelConfig};
use crate::policy::{EvaluationPolicy, GreedyPolicy, MonteCarlo, StaticPolicy};
use crate::prior::BtsPrior;
use metarec_data::LoadOptions;
use metarec_data::obd::{ObdCampaign, ObdLog, ObdPolicy, load_obd};
use serde::Serialize;
use std::path::Path;

/// Number of display positions in Open Bandit logs.
pub const POSITIONS: usize = 3;

/// Converts a loaded log; `with_contexts` keeps each round's context (needed by context-aware
/// reward models and policies, at the cost of memory).
pub fn logged_data(log: &ObdLog, with_contexts: bool) -> Result<LoggedData, OpeError> {
    let mut data = LoggedData::new(log.catalog.len(), POSITIONS);
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
    /// A greedy policy over a [`LinearModel`] trained on the first `train_fraction` of the logs'
    /// rounds; the estimators then run on the remaining rounds only.
    Learned {
        /// Share of the rounds, in file (time) order, used for training; in `(0, 1)`.
        train_fraction: f64,
    },
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
    /// Switch-DR threshold.
    pub switch_tau: f64,
    /// DR-OS shrinkage.
    pub os_lambda: f64,
    /// Cross-fitting folds of the reward model.
    pub folds: usize,
    /// Ridge penalty of the linear models (reward model and learned policy).
    pub lambda: f64,
}

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
}

fn ctr(log: &ObdLog) -> f64 {
    let clicks = log.rounds.iter().filter(|r| r.click).count();
    clicks as f64 / log.rounds.len().max(1) as f64
}

/// Loads the logs, builds the evaluation policy and the cross-fitted reward model, and runs every
/// estimator. `obd_dir` is the Open Bandit folder (with `prior_bts.yaml` when the target is BTS).
pub fn run_experiment(obd_dir: &Path, exp: &Experiment) -> Result<ExperimentReport, OpeError> {
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
    let all = logged_data(&log, true)?;
    let linear = LinearConfig {
        lambda: exp.lambda,
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
        Target::Learned { train_fraction } => {
            if !(train_fraction > 0.0 && train_fraction < 1.0) {
                return Err(OpeError::Config {
                    name: "train_fraction",
                    reason: format!("{train_fraction} is not in (0, 1)"),
                });
            }
            let cut = ((all.rounds() as f64 * train_fraction) as usize).clamp(1, all.rounds() - 1);
            let train = all.slice(0..cut);
            let model = LinearModel::fit(&train, &linear, &|_| true)?;
            let eval = all.slice(cut..all.rounds());
            (
                Box::new(GreedyPolicy::new("learned-linear", model)),
                eval,
                cut,
                None,
            )
        }
    };
    let model = CrossFitted::fit(&ModelConfig::Linear(linear), &data, exp.folds)?;
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
    })
}
