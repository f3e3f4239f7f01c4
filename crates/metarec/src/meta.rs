//! `metarec meta-train`: meta-trains the strategy adjuster of a trained model.

use crate::Global;
use crate::args::{MAX_USERS, count, positive};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

/// The largest prior scale or inner step size in a grid: the network's head has weights of order
/// one, so a million is already far past any setting worth trying.
const MAX_GRID_VALUE: f64 = 1e6;

#[derive(Args)]
pub struct MetaTrainArgs {
    /// A preset name or a scenario TOML file (default: the one the model was trained on, as its
    /// bundle records it).
    #[arg(long)]
    scenario: Option<String>,
    /// The adjuster: `bayes` (a per-user Bayesian correction of the network's head, Thompson
    /// sampling) or `gradient` (first-order MAML / Reptile: gradient steps on the head from a
    /// meta-learned initial correction).
    #[arg(long, default_value = "bayes")]
    adjuster: String,
    /// The trained model directory (from `metarec train`); `adjuster.json` is written into it.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Training users per setting (gradient: half as many more judge each step size).
    #[arg(long, default_value_t = 600, value_parser = count::<usize>(MAX_USERS))]
    users: usize,
    /// Comma-separated settings to try: prior scales (bayes; default 0.03,0.1,0.3,1,3, each
    /// tried with Thompson sampling and with the posterior mean) or inner step sizes
    /// (gradient; default 0.03,0.1,0.3).
    #[arg(long)]
    grid: Option<String>,
    /// Inner gradient steps after each interaction (gradient).
    #[arg(long, default_value_t = 1, value_parser = count::<usize>(1000))]
    steps: usize,
    /// Reptile's outer step towards each user's adapted correction (gradient).
    #[arg(long, default_value_t = 0.1, value_parser = positive(1.0))]
    reptile_rate: f64,
    /// Also learn the shape of the prior covariance from training users' corrections and try
    /// every prior scale with it (bayes): twice the settings.
    #[arg(long)]
    learn_shape: bool,
    /// Seed of the training users and the policy's sampling.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
}

pub fn run(args: MetaTrainArgs, global: &Global) -> Result<()> {
    let gradient = match args.adjuster.as_str() {
        "bayes" => false,
        "gradient" => true,
        other => bail!("unknown adjuster `{other}`; expected: bayes, gradient"),
    };
    let default_grid = if gradient {
        "0.03,0.1,0.3"
    } else {
        "0.03,0.1,0.3,1,3"
    };
    // The grid is read here rather than by clap because its default depends on --adjuster; it
    // is still checked before any work starts.
    let grid = crate::args::list(
        "--grid",
        args.grid.as_deref().unwrap_or(default_grid),
        positive(MAX_GRID_VALUE),
    )?;
    let bundle = std::sync::Arc::new(metarec_neural::bundle::ModelBundle::load(&args.model)?);
    let scenario = crate::sim::scenario_for(
        args.scenario.as_deref(),
        std::slice::from_ref(&bundle),
        global,
    )?;
    let (label, grid_len) = if gradient {
        ("step sizes", grid.len())
    } else {
        (
            "settings",
            metarec_eval::meta::bayes_progress_steps(grid.len(), args.learn_shape),
        )
    };
    let bar = global.bar(grid_len as u64, label);
    let progress = |line: &str| global.step(&bar, line);
    let result = if gradient {
        global.progress(format!(
            "meta-training the gradient adjuster of {} by Reptile: {} step sizes x {} training users",
            args.model.display(),
            grid.len(),
            args.users
        ));
        let config = metarec_eval::meta::ReptileConfig {
            step_sizes: grid,
            steps: args.steps,
            rate: args.reptile_rate,
            users: args.users,
            eval_users: (args.users / 2).max(1),
            seed: args.seed,
        };
        metarec_eval::meta::meta_train_gradient(&scenario, &bundle, &config, &progress)
    } else {
        global.progress(format!(
            "meta-training the Bayesian adjuster of {}: {} prior scales x {} training users",
            args.model.display(),
            grid.len(),
            args.users
        ));
        metarec_eval::meta::meta_train_bayes(
            &scenario,
            &bundle,
            &grid,
            args.users,
            args.seed,
            args.learn_shape,
            &progress,
        )
    };
    bar.finish_and_clear();
    let manifest = result?;
    let run = crate::report::log_meta(&args.logdir.logdir, &args.model, args.seed, &manifest)?;
    global.progress(format!("TensorBoard run: {}", run.display()));
    let chosen = match &manifest.gradient {
        Some(g) if gradient => g.step_size,
        _ => manifest.config.prior_scale,
    };
    if gradient {
        println!("  step size  reward/training user");
        for (value, r) in &manifest.grid {
            let mark = if *value == chosen { "  <- chosen" } else { "" };
            println!("{value:>11}  {r:>19.3}{mark}");
        }
    } else {
        let with_shape = !manifest.shaped_grid.is_empty();
        if with_shape {
            println!(
                "reward per training user; prior covariance tau^2 I (identity) or tau^2 S (S learned from training users)"
            );
            println!(
                "prior scale  identity, Thompson  identity, mean  learned S, Thompson  learned S, mean"
            );
        } else {
            println!("reward per training user; prior covariance tau^2 I");
            println!("prior scale  identity, Thompson  identity, mean");
        }
        let shaped = |tau: f64, thompson: bool| {
            manifest
                .shaped_grid
                .iter()
                .find(|s| s.0 == tau && s.1 == thompson)
                .map_or(f64::NAN, |s| s.2)
        };
        let thompson = manifest.config.thompson;
        let learned = !manifest.prior_shape.is_empty();
        for (i, (value, r)) in manifest.grid.iter().enumerate() {
            let mean = manifest.mean_grid.get(i).map_or(f64::NAN, |m| m.1);
            let mark = if *value == chosen {
                format!(
                    "  <- chosen: {}, {}",
                    if learned { "learned S" } else { "identity" },
                    if thompson {
                        "Thompson sampling"
                    } else {
                        "posterior mean"
                    }
                )
            } else {
                String::new()
            };
            let learned_columns = if with_shape {
                format!(
                    "  {:>19.3}  {:>15.3}",
                    shaped(*value, true),
                    shaped(*value, false)
                )
            } else {
                String::new()
            };
            println!("{value:>11}  {r:>18.3}  {mean:>14.3}{learned_columns}{mark}");
        }
    }
    println!(
        "wrote {}; use it in the arena: metarec arena --policies lints,neural-greedy:{dir},adjusted:{dir}",
        args.model
            .join(metarec_neural::adjust::ADJUSTER_FILE)
            .display(),
        dir = args.model.display()
    );
    Ok(())
}
