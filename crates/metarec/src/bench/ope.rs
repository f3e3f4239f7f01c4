//! `metarec bench ope`: the off-policy estimators' throughput on a large synthetic log.

use super::warn_debug_build;
use crate::Global;
use crate::args::count;
use crate::ope::{print_table, threads};
use anyhow::{Result, bail};
use clap::Args;
use metarec_core::rng_for;
use metarec_ope::{
    Bootstrap, Estimator, LoggedData, MeanModel, Prepared, StaticPolicy, all_estimators, evaluate,
};
use std::time::Instant;

/// The most rows of `bench ope`'s synthetic log, which is held in memory.
const MAX_OPE_ROWS: u64 = 100_000_000;
/// The most bootstrap resamples of `bench ope`.
const MAX_RESAMPLES: u64 = 100_000;

#[derive(Args)]
pub struct BenchOpeArgs {
    /// Logged rows (one entry each).
    #[arg(long, default_value_t = 1_000_000, value_parser = count::<usize>(MAX_OPE_ROWS))]
    rows: usize,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(MAX_RESAMPLES))]
    resamples: usize,
}

/// Every estimator with its bootstrap on a synthetic Open-Bandit-shaped log (80 items, 3
/// positions, one entry per round, uniform logging, Bernoulli clicks), timed in two parts:
/// preparing the weights and model terms, and the estimates with their resamples.
pub fn run(args: BenchOpeArgs, global: &Global) -> Result<()> {
    use rand::Rng as _;
    let BenchOpeArgs { rows, resamples } = args;
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    warn_debug_build("ope");
    let (items, positions) = (80usize, 3usize);
    global.progress(format!("generating {rows} synthetic rounds"));
    let mut rng = rng_for(2026, 0);
    let rates: Vec<f64> = (0..items)
        .map(|_| 0.002 + 0.01 * rng.random::<f64>())
        .collect();
    let mut data = LoggedData::new(items, positions);
    for i in 0..rows {
        let item = rng.random_range(0..items);
        let position = rng.random_range(0..positions) as u32;
        let click = rng.random::<f64>() < rates[item];
        let entry = metarec_ope::RawEntry {
            item: item as u32,
            position,
            propensity: Some(1.0 / items as f64),
            reward: if click { 1.0 } else { 0.0 },
        };
        data.push_round(i + 1, None, &[entry])?;
    }
    // An evaluation policy that favours low item ids, as a Thompson-sampling prior would favour
    // its best items.
    let mut dist = Vec::with_capacity(items * positions);
    for _ in 0..positions {
        let raw: Vec<f64> = (0..items).map(|a| 1.0 / (1.0 + a as f64)).collect();
        let total: f64 = raw.iter().sum();
        dist.extend(raw.iter().map(|r| r / total));
    }
    let policy = StaticPolicy::new("harmonic", items, dist)?;
    let estimators = all_estimators(100.0, 100.0);
    let refs: Vec<&dyn Estimator> = estimators.iter().map(|e| e.as_ref()).collect();
    let bootstrap = Bootstrap {
        resamples,
        seed: 1,
        threads: threads(),
    };
    let start = Instant::now();
    let model = MeanModel::fit(&data, 10.0, &|_| true)?;
    let prepared = Prepared::new(&data, &policy, &model, None)?;
    let prepare_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let estimates = evaluate(&prepared, &refs, &bootstrap)?;
    let evaluate_s = t.elapsed().as_secs_f64();
    let total = start.elapsed().as_secs_f64();
    println!(
        "{rows} logged rows, {} estimators, {resamples} bootstrap resamples, {} threads",
        refs.len(),
        bootstrap.threads
    );
    println!("{:<40} {:>10} {:>16}", "step", "seconds", "rows/s");
    for (name, s) in [
        ("fit reward model + weights + DM terms", prepare_s),
        ("estimates + bootstrap", evaluate_s),
        ("total", total),
    ] {
        println!("{name:<40} {s:>10.3} {:>16.0}", rows as f64 / s);
    }
    println!(
        "row-resamples per second (all estimators): {:.3e}",
        rows as f64 * resamples as f64 / evaluate_s
    );
    println!(
        "target: total under 10 s on 2 cores -> {}",
        if total < 10.0 { "met" } else { "missed" }
    );
    println!();
    print_table(&estimates, data.on_policy_value(), None, &[]);
    Ok(())
}
