//! `metarec meta-train`: meta-trains the strategy adjuster of a trained model.

use crate::Global;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct MetaTrainArgs {
    /// A preset name or a scenario TOML file (the one the model was trained on).
    #[arg(long, default_value = "default")]
    scenario: String,
    /// The adjuster: `bayes` (a per-user Bayesian correction of the network's head).
    #[arg(long, default_value = "bayes")]
    adjuster: String,
    /// The trained model directory (from `metarec train`); `adjuster.json` is written into it.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Training users per prior scale.
    #[arg(long, default_value_t = 600)]
    users: usize,
    /// Comma-separated prior scales to try.
    #[arg(long, default_value = "0.03,0.1,0.3,1")]
    grid: String,
    /// Seed of the training users and the policy's sampling.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
}

pub fn run(args: MetaTrainArgs, global: &Global) -> Result<()> {
    if args.adjuster != "bayes" {
        bail!("unknown adjuster `{}`; expected: bayes", args.adjuster);
    }
    let grid: Vec<f64> = args
        .grid
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--grid must be comma-separated numbers: {e}"))?;
    let scenario = crate::sim::build_scenario(&args.scenario, global)?;
    global.progress(format!(
        "meta-training the Bayesian adjuster of {}: {} prior scales x {} training users",
        args.model.display(),
        grid.len(),
        args.users
    ));
    let bar = global.bar(grid.len() as u64, "prior scales");
    let manifest = metarec_eval::meta::meta_train_bayes(
        &scenario,
        &args.model,
        &grid,
        args.users,
        args.seed,
        &|line| global.step(&bar, line),
    );
    bar.finish_and_clear();
    let manifest = manifest?;
    let run = crate::report::log_meta(&args.logdir.logdir, &args.model, args.seed, &manifest)?;
    global.progress(format!("TensorBoard run: {}", run.display()));
    println!("prior scale  reward/training user");
    for (tau, r) in &manifest.grid {
        let mark = if *tau == manifest.config.prior_scale {
            "  <- chosen"
        } else {
            ""
        };
        println!("{tau:>11}  {r:>19.3}{mark}");
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
