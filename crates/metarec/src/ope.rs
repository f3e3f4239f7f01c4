//! `metarec ope`: off-policy evaluation on logged data (the Open Bandit Dataset, or an interaction
//! log). `bench ope` (in `bench/ope.rs`) shares its table.

use crate::Global;
use crate::args::{MAX_ITERATIONS, count, fraction, number, positive};
use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use metarec_core::RewardFn;
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::obd::{ObdCampaign, ObdPolicy};
use metarec_ope::obd::{Experiment, ExperimentReport, Target, run_experiment_with};
use metarec_ope::{
    Bootstrap, Clipping, Estimate, Estimator, EvaluationPolicy, FloorReport, LoggedData, MeanModel,
    MonteCarlo, MonteCarloPolicy, OpeError, Prepared, PropensityFloor, StaticPolicy,
    all_estimators, dsjson, evaluate,
};
use serde::Serialize;
use std::path::PathBuf;

/// Where the logs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The Open Bandit Dataset in the data directory (`metarec data fetch obd`).
    Obd,
    /// An interaction log (JSON Lines of interactions) given by `--log`.
    Log,
    /// A Vowpal Wabbit decision-service JSON log given by `--log`.
    Dsjson,
}

impl Source {
    /// The option's value, for messages that must name the source the user chose.
    fn as_str(self) -> &'static str {
        match self {
            Source::Obd => "obd",
            Source::Log => "log",
            Source::Dsjson => "dsjson",
        }
    }
}

/// The policy to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Bernoulli Thompson sampling under ZOZOTOWN's prior for the campaign (Open Bandit only).
    Bts,
    /// The uniform random slate.
    Uniform,
    /// A greedy ridge model trained on the first part of the logs and evaluated on the rest
    /// (Open Bandit only).
    Learned,
    /// A metarec baseline (`--baseline NAME`), its distribution counted over seeded decisions
    /// (Open Bandit only).
    Baseline,
}

/// `metarec ope`.
#[derive(Args)]
pub struct OpeArgs {
    /// Where the logs come from.
    #[arg(long, value_enum, default_value = "obd")]
    data: Source,
    /// Open Bandit logging policy whose logs are evaluated on: random or bts.
    #[arg(long, default_value = "random")]
    logs: String,
    /// Open Bandit campaign: all, men or women.
    #[arg(long, default_value = "all")]
    campaign: String,
    /// The interaction log (with `--data log` or `--data dsjson`).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Catalog size of the log (with `--data log` or `--data dsjson`): larger item ids are
    /// errors.
    #[arg(long, value_parser = count::<usize>(100_000_000))]
    items: Option<usize>,
    /// Display positions evaluated (with `--data log` or `--data dsjson`).
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(1000))]
    positions: usize,
    /// The policy to evaluate.
    #[arg(long, value_enum, default_value = "bts")]
    policy: PolicyArg,
    /// Monte Carlo slates for the Thompson-sampling distribution.
    #[arg(long, default_value_t = 100_000, value_parser = count::<usize>(MAX_ITERATIONS))]
    draws: usize,
    /// Seed of the Monte Carlo slates.
    #[arg(long, default_value_t = 12345)]
    mc_seed: u64,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(100_000))]
    resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Clip importance weights at this value, and raise logging propensities below
    /// `--propensity-floor` to the floor (both reported); no clipping when absent.
    #[arg(long, value_parser = positive(1e12))]
    clip: Option<f64>,
    /// The smallest logging propensity accepted (in (0, 1]): a smaller one is an error naming
    /// its row, or, with `--clip`, raised to the floor and counted.
    #[arg(long, default_value_t = PropensityFloor::DEFAULT, value_parser = floor_value)]
    propensity_floor: f64,
    /// Switch-DR: weights above this fall back to the reward model.
    #[arg(long, default_value_t = 10.0, value_parser = positive(1e12))]
    switch_tau: f64,
    /// DR-OS shrinkage strength.
    #[arg(long, default_value_t = 100.0, value_parser = number(0.0, 1e12))]
    os_lambda: f64,
    /// Cross-fitting folds of the reward model.
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(100))]
    folds: usize,
    /// Ridge penalty of the linear reward model and of the learned policy; by default chosen
    /// from 1, 10, ..., 100,000 by out-of-fold squared error.
    #[arg(long, value_parser = positive(1e12))]
    lambda: Option<f64>,
    /// The learned policy samples Plackett-Luce slates at this temperature (in standard
    /// deviations of its scores) instead of showing its top three.
    #[arg(long, value_parser = number(1e-3, 1e3))]
    temperature: Option<f64>,
    /// The metarec baseline evaluated by `--policy baseline` (random, egreedy, linucb, ...).
    #[arg(long, default_value = "random")]
    baseline: String,
    /// Decisions per round from which `--policy baseline`'s distribution is counted.
    #[arg(long, default_value_t = 100, value_parser = count::<usize>(MAX_ITERATIONS))]
    policy_draws: usize,
    /// Share of the rounds (in time order) the learned policy trains on.
    #[arg(long, default_value_t = 0.5, value_parser = fraction)]
    train_fraction: f64,
    /// Also write the evaluated log as Vowpal Wabbit decision-service JSON to this file.
    #[arg(long, value_name = "FILE")]
    export_dsjson: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A boxed policy as a policy, so the registry's policies fit [`MonteCarloPolicy`].
struct Boxed(Box<dyn metarec_core::Policy>);

impl metarec_core::Policy for Boxed {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn decide(
        &mut self,
        context: &metarec_core::Context,
        k: usize,
        rng: &mut metarec_core::Rng,
    ) -> metarec_core::SlateChoice {
        self.0.decide(context, k, rng)
    }
}

/// Reads `--propensity-floor`, so that a floor out of range is a usage error (exit status 2); the
/// range itself is the library's ([`PropensityFloor::new`]).
fn floor_value(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|v| PropensityFloor::new(v, false).ok())
        .map(|f| f.floor())
        .ok_or_else(|| "must be a number greater than 0 and at most 1".to_owned())
}

/// What `metarec ope --data log|dsjson --json` prints.
#[derive(Serialize)]
struct LogReport<'a> {
    /// The log file.
    source: String,
    /// `log` or `dsjson`.
    format: &'static str,
    /// The evaluated policy.
    policy: &'static str,
    /// Rounds evaluated.
    rounds: usize,
    /// Slate entries over all rounds.
    entries: usize,
    /// The logging policy's own value per round.
    logging_value: f64,
    /// One row per estimator.
    estimates: &'a [Estimate],
    /// What weight clipping did.
    clipping: Clipping,
    /// What the propensity floor did.
    propensity_floor: FloorReport,
}

/// One point per click and nothing else: Open Bandit's reward.
fn click_reward() -> RewardFn {
    RewardFn::new(1.0, 0.0, 0.0, 0.0).expect("finite weights and gamma in [0, 1]")
}

/// Threads for the bootstraps and Monte Carlo draws: one per core.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `metarec ope`.
pub fn run(args: OpeArgs, global: &Global) -> Result<()> {
    let bootstrap = Bootstrap {
        resamples: args.resamples,
        seed: args.seed,
        threads: threads(),
    };
    // Asking for clipping accepts its bias for bounded weights; the same trade is made for
    // propensities below the floor, which are then raised to it instead of stopping the run.
    let floor = PropensityFloor::new(args.propensity_floor, args.clip.is_some())?;
    match args.data {
        Source::Obd => {
            let logs: ObdPolicy = args.logs.parse()?;
            let campaign: ObdCampaign = args.campaign.parse()?;
            let target = match args.policy {
                PolicyArg::Bts => Target::Bts,
                PolicyArg::Uniform => Target::Uniform,
                PolicyArg::Baseline => Target::Given,
                PolicyArg::Learned => Target::Learned {
                    train_fraction: args.train_fraction,
                    temperature: args.temperature,
                },
            };
            let dir = global.data.require(Dataset::Obd)?;
            global.progress(format!(
                "evaluating {} on the {logs} logs of campaign {campaign}",
                format!("{:?}", args.policy).to_lowercase()
            ));
            let exp = Experiment {
                logs,
                campaign,
                target,
                monte_carlo: MonteCarlo {
                    draws: args.draws,
                    seed: args.mc_seed,
                    threads: threads(),
                },
                bootstrap,
                clip: args.clip,
                propensity_floor: floor,
                switch_tau: args.switch_tau,
                os_lambda: args.os_lambda,
                folds: args.folds,
                lambda: args.lambda,
            };
            if let Some(out) = &args.export_dsjson {
                let log =
                    metarec_data::obd::load_obd(&dir, logs, campaign, &LoadOptions::default())?;
                let interactions: Vec<_> = (0..log.rounds.len())
                    .filter_map(|i| log.interaction(i))
                    .collect();
                let n = dsjson::write_file(out, &interactions, &click_reward())?;
                global.progress(format!("wrote {n} DSJSON lines to {}", out.display()));
            }
            let build =
                |log: &metarec_data::obd::ObdLog| -> Result<Box<dyn EvaluationPolicy>, OpeError> {
                    let reason = |e: &dyn std::fmt::Display| OpeError::Config {
                        name: "baseline",
                        reason: e.to_string(),
                    };
                    let policy = metarec_learn::build_policy(
                        &args.baseline,
                        &log.catalog,
                        &click_reward(),
                        args.seed,
                    )
                    .map_err(|e| reason(&e))?;
                    let mc = MonteCarloPolicy::new(
                        Boxed(policy),
                        metarec_ope::obd::POSITIONS,
                        args.policy_draws,
                        args.seed,
                    )?;
                    Ok(Box::new(mc))
                };
            let report = run_experiment_with(&dir, &exp, &build)?;
            if args.json {
                println!("{}", crate::report::results_json("ope", &report)?);
            } else {
                print_obd(&report, &exp);
            }
        }
        Source::Log | Source::Dsjson => {
            let source = args.data.as_str();
            let path = args
                .log
                .as_deref()
                .with_context(|| format!("--data {source} needs --log FILE"))?;
            let items = args
                .items
                .with_context(|| format!("--data {source} needs --items N (the catalog size)"))?;
            if args.policy != PolicyArg::Uniform {
                bail!(
                    "--data {source} evaluates --policy uniform only (BTS and learned need Open Bandit's prior and features)"
                );
            }
            // Each interaction keeps its line, so that errors found later (a propensity below
            // the floor, an unknown item) name the line of the file.
            let numbered: Vec<(usize, metarec_core::Interaction)> = if args.data == Source::Dsjson {
                dsjson::read_file_lines(path)?
            } else {
                metarec_data::log::read_log_lines(path, &LoadOptions::default())?
                    .0
                    .into_iter()
                    .map(|(line, i)| (usize::try_from(line).unwrap_or(usize::MAX), i))
                    .collect()
            };
            if let Some(out) = &args.export_dsjson {
                let n =
                    dsjson::write_file(out, numbered.iter().map(|(_, i)| i), &RewardFn::default())?;
                global.progress(format!("wrote {n} DSJSON lines to {}", out.display()));
            }
            let data = LoggedData::from_rows(
                numbered.iter().map(|(line, i)| (*line, i)),
                items,
                args.positions,
                &RewardFn::default(),
                floor,
            )
            .with_context(|| format!("{}", path.display()))?;
            let policy = StaticPolicy::uniform(items, args.positions)?;
            let model = MeanModel::fit(&data, 10.0, &|_| true)?;
            let prepared = Prepared::new(&data, &policy, &model, args.clip)?;
            let estimators = all_estimators(args.switch_tau, args.os_lambda);
            let refs: Vec<&dyn Estimator> = estimators.iter().map(|e| e.as_ref()).collect();
            let estimates = evaluate(&prepared, &refs, &bootstrap)?;
            if args.json {
                let report = LogReport {
                    source: path.display().to_string(),
                    format: source,
                    policy: "uniform",
                    rounds: data.rounds(),
                    entries: data.entries(),
                    logging_value: data.on_policy_value(),
                    estimates: &estimates,
                    clipping: prepared.clipping,
                    propensity_floor: data.floor_report(),
                };
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Off-policy evaluation of uniform on {} ({} rounds, {} entries; reward 1 per click, 5 per purchase); logging policy value {:.6}",
                    path.display(),
                    data.rounds(),
                    data.entries(),
                    data.on_policy_value()
                );
                print_clipping(&prepared.clipping, &data.floor_report());
                println!();
                print_table(&estimates, data.on_policy_value(), None, &[]);
            }
        }
    }
    Ok(())
}

/// Prints what weight clipping and the propensity floor did.
fn print_clipping(clipping: &Clipping, floor: &FloorReport) {
    match clipping.clip {
        Some(c) => println!(
            "clipping: weights capped at {c}: {} entries clipped (largest weight {:.2})",
            clipping.clipped, clipping.max_weight
        ),
        None => println!("clipping: none (largest weight {:.2})", clipping.max_weight),
    }
    if floor.clip {
        println!(
            "propensity floor {:e}: {} rows clipped to it ({} entries)",
            floor.floor, floor.clipped_rows, floor.clipped_entries
        );
    } else {
        println!(
            "propensity floor {:e}: smaller propensities are errors (--clip raises them to it)",
            floor.floor
        );
    }
}

/// `a / b` when that is a finite number: ratios to a zero logging value are left blank rather
/// than printed as NaN or infinity.
fn ratio(a: f64, b: f64) -> Option<f64> {
    Some(a / b).filter(|r| r.is_finite())
}

fn interval(e: &Estimate) -> String {
    format!("[{:.6}, {:.6}]", e.low, e.high)
}

/// Prints one row per estimator: estimate, interval, ratio to the logging policy's value, ESS,
/// and optionally the relative error against a known on-policy value and ratios to references.
pub(crate) fn print_table(
    estimates: &[Estimate],
    logging: f64,
    truth: Option<f64>,
    refs: &[(&str, f64)],
) {
    let mut header = format!(
        "{:<16} {:>10}  {:<24} {:>10} {:>9}",
        "estimator", "estimate", "95% interval", "vs logging", "ESS"
    );
    if truth.is_some() {
        header.push_str(&format!(" {:>10}", "rel. error"));
    }
    for (name, _) in refs {
        header.push_str(&format!(" {:>24}", format!("vs {name} [95%]")));
    }
    println!("{header}");
    for e in estimates {
        let mut line = format!(
            "{:<16} {:>10.6}  {:<24} {:>10} {:>9}",
            e.estimator,
            e.value,
            interval(e),
            ratio(e.value, logging).map_or("-".to_owned(), |r| format!("{r:.3}x")),
            e.ess.map_or("-".to_owned(), |s| format!("{s:.0}"))
        );
        if let Some(t) = truth {
            let error = ratio(100.0 * (e.value - t).abs(), t);
            line.push_str(&format!(
                " {:>10}",
                error.map_or("-".to_owned(), |r| format!("{r:.1}%"))
            ));
        }
        for &(_, v) in refs {
            let text = match (ratio(e.value, v), ratio(e.low, v), ratio(e.high, v)) {
                (Some(m), Some(l), Some(h)) => format!("{m:.2}x [{l:.2}, {h:.2}]"),
                _ => "-".to_owned(),
            };
            line.push_str(&format!(" {text:>24}"));
        }
        println!("{line}");
    }
}

fn print_obd(r: &ExperimentReport, exp: &Experiment) {
    println!(
        "Off-policy evaluation of {} on the Open Bandit {} logs, campaign {} ({} rounds{})",
        r.policy,
        exp.logs,
        exp.campaign,
        r.rounds,
        if r.train_rounds > 0 {
            format!(", after training on the first {}", r.train_rounds)
        } else {
            String::new()
        }
    );
    println!(
        "reward model: ridge (lambda {}{}), {}-fold cross-fitted; bootstrap: {} Poisson resamples, seed {}",
        r.lambda,
        if r.lambda_errors.is_empty() {
            ""
        } else {
            ", by out-of-fold error"
        },
        exp.folds,
        exp.bootstrap.resamples,
        exp.bootstrap.seed
    );
    if matches!(exp.target, Target::Bts) {
        println!(
            "BTS distribution: {} Monte Carlo slates, seed {}",
            exp.monte_carlo.draws, exp.monte_carlo.seed
        );
    }
    print_clipping(&r.clipping, &r.propensity_floor);
    println!();
    let refs: Vec<(&str, f64)> = if matches!(exp.target, Target::Learned { .. }) {
        vec![("random", r.logging_value), ("BTS", r.bts_value)]
    } else {
        Vec::new()
    };
    print_table(&r.estimates, r.logging_value, r.on_policy_value, &refs);
    println!();
    println!(
        "logging policy ({}) on-policy CTR on these rounds: {:.6}",
        exp.logs, r.logging_value
    );
    println!(
        "weighted estimators rest on {} clicked entries with a non-zero weight",
        r.weighted_rewards
    );
    println!("random on-policy CTR (random logs): {:.6}", r.random_value);
    println!("bts on-policy CTR (bts logs): {:.6}", r.bts_value);
    if let Some(t) = r.on_policy_value {
        println!(
            "rel. error: |estimate - {} on-policy CTR {:.6}| / that CTR",
            r.policy, t
        );
    }
}
