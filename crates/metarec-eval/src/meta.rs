//! Meta-training of the strategy adjuster: choosing its prior across many training users.
//!
//! The adjuster's prior mean is the trained network's user tower (itself meta-trained by
//! reinforcement learning across users); what remains is the prior scale `tau` of the per-user
//! correction. [`meta_train_bayes`] plays a grid of scales on users drawn with a training seed
//! (never the arena's) and keeps the scale with the highest mean reward per user: an empirical
//! Bayes choice made on the training tasks.

use metarec_core::{
    Environment, EventId, Interaction, Policy, RewardFn, decision_from_choice, rng_for,
};
use metarec_neural::adjust::{
    ADJUSTER_FILE, AdjustedPolicy, AdjusterManifest, BayesConfig, BayesianAdjuster,
};
use metarec_neural::model::Frozen;
use metarec_sim::Scenario;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Why meta-training failed.
#[derive(Debug, Error)]
pub enum MetaError {
    /// The model directory cannot be used.
    #[error(transparent)]
    Neural(#[from] metarec_neural::NeuralError),
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
    /// Nothing to try.
    #[error("{0}")]
    Config(String),
}

/// Loads a model directory's network as an adjuster with the given settings.
pub fn load_adjuster(
    dir: &Path,
    catalog: &metarec_core::Catalog,
    config: BayesConfig,
) -> Result<BayesianAdjuster, metarec_neural::NeuralError> {
    let loaded = metarec_neural::checkpoint::load(dir, catalog)?;
    let items = metarec_neural::item_tensor(&loaded.features)?;
    let frozen = Frozen::from_model(&loaded.model, &items)?;
    Ok(BayesianAdjuster::new(
        Arc::new(frozen),
        Arc::new(loaded.features),
        config,
    ))
}

/// Reads the adjuster settings saved in a model directory.
pub fn read_adjuster(dir: &Path) -> Result<AdjusterManifest, MetaError> {
    let path = dir.join(ADJUSTER_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| MetaError::Io {
        path: format!(
            "{} (run `metarec meta-train --model {}` first)",
            path.display(),
            dir.display()
        ),
        source: e,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| MetaError::Config(format!("{}: invalid adjuster file: {e}", path.display())))
}

/// Plays users `first..first + users` with `policy` and returns each user's total reward.
pub fn play_users<E: Environment>(
    env: &mut E,
    policy: &mut dyn Policy,
    first: u64,
    users: usize,
    reward: &RewardFn,
    seed: u64,
) -> Result<Vec<f64>, MetaError> {
    let mut rng = rng_for(seed, 0x6d65);
    let k = env.slate_size();
    let mut totals = Vec::with_capacity(users);
    for user in first..first + users as u64 {
        let mut context = Some(env.reset(user));
        if let Some(c) = &context {
            policy.start_user(c);
        }
        let mut total = 0.0;
        while let Some(ctx) = context {
            let choice = policy.decide(&ctx, k, &mut rng);
            let decision =
                decision_from_choice(choice, EventId(String::new()), policy.name(), String::new())?;
            let step = env.step(&decision);
            total += reward.reward(&step.feedback);
            let next = step.next;
            policy.observe(&Interaction {
                context: ctx,
                decision,
                feedback: step.feedback,
            });
            context = next;
        }
        totals.push(total);
    }
    Ok(totals)
}

/// Chooses the adjuster's prior scale on training users and writes `adjuster.json` into the
/// model directory. `progress` gets a line per scale tried.
pub fn meta_train_bayes(
    scenario: &Scenario,
    model_dir: &Path,
    grid: &[f64],
    users: usize,
    seed: u64,
    progress: &dyn Fn(&str),
) -> Result<AdjusterManifest, MetaError> {
    if grid.is_empty() || users == 0 {
        return Err(MetaError::Config(
            "need at least one prior scale and one user".into(),
        ));
    }
    if let Some(bad) = grid.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(MetaError::Config(format!(
            "prior scale {bad} must be positive"
        )));
    }
    // Training users: a seed of their own and numbers far from the arena's.
    let env_seed = scenario.config.seed ^ 0x6d65_7461 ^ seed;
    let reward = scenario.config.reward;
    let mut results = Vec::with_capacity(grid.len());
    for &tau in grid {
        let mut env = scenario.env_with_seed(env_seed);
        let config = BayesConfig {
            prior_scale: tau,
            ..BayesConfig::default()
        };
        let adjuster = load_adjuster(model_dir, &scenario.world.catalog, config)?;
        let mut policy = AdjustedPolicy::new("adjusted", adjuster);
        let totals = play_users(&mut env, &mut policy, 1 << 42, users, &reward, seed)?;
        let mean = totals.iter().sum::<f64>() / totals.len() as f64;
        progress(&format!(
            "prior scale {tau}: {mean:.3} reward per training user"
        ));
        results.push((tau, mean));
    }
    let best =
        results.iter().copied().fold(
            (grid[0], f64::NEG_INFINITY),
            |b, r| if r.1 > b.1 { r } else { b },
        );
    let manifest = AdjusterManifest {
        kind: "bayes".into(),
        config: BayesConfig {
            prior_scale: best.0,
            ..BayesConfig::default()
        },
        grid: results,
        users,
    };
    let path = model_dir.join(ADJUSTER_FILE);
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| MetaError::Config(e.to_string()))?;
    metarec_data::log::atomic_write(&path, |out| std::io::Write::write_all(out, text.as_bytes()))
        .map_err(|e| MetaError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(manifest)
}
