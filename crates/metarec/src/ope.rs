//! `metarec ope`: off-policy evaluation on logged data: the Open Bandit Dataset, a shop's own
//! impressions (`--shop DIR`), or an interaction log (`--log FILE`, such as a server's `log
//! export`). `bench ope` (in `bench/ope.rs`) shares its table.
//!
//! On a shop or a log, `--policy` takes a comma-separated list of metarec policies (baselines,
//! `neural:DIR`, `neural-greedy:DIR`, `neural-static:DIR`, `adjusted:DIR`, and `uniform`); each is built for the
//! log's catalog by [`PolicySpec::build_for_catalog`] and judged through its decisions in the
//! logged contexts: frozen ([`MonteCarloPolicy`]), or, for the adjusted policy, replayed over
//! each user's rounds in time order ([`ReplayPolicy`]).

use crate::Global;
use crate::args::{MAX_ITERATIONS, count, fraction, number, positive};
use crate::catalog::CatalogArgs;
use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use metarec_core::{Catalog, Interaction, RewardFn};
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::obd::{ObdCampaign, ObdPolicy};
use metarec_data::shop::interactions::{InteractionOptions, shop_log, split_by_time};
use metarec_eval::PolicySpec;
use metarec_ope::arrays::read_npy;
use metarec_ope::obd::{Experiment, ExperimentReport, Target, run_experiment_with};
use metarec_ope::{
    ArrayPolicy, Bootstrap, Clipping, Estimate, Estimator, EvaluationPolicy, FloorReport,
    LoggedData, MeanModel, MonteCarlo, MonteCarloPolicy, OpeError, Prepared, PropensityFloor,
    ReplayPolicy, StaticPolicy, all_estimators, dsjson, evaluate, on_policy_estimate,
};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the logs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The Open Bandit Dataset in the data directory (`metarec data fetch obd`).
    Obd,
    /// An interaction log (a header naming the catalog, then JSON Lines of interactions) given
    /// by `--log`.
    Log,
    /// A Vowpal Wabbit decision-service JSON log given by `--log`.
    Dsjson,
    /// A shop directory given by `--shop`: its impressions that carry the logging policy's
    /// propensities, the latest `--holdout` share of its rankings.
    Shop,
}

impl Source {
    /// The option's value, for messages that must name the source the user chose.
    fn as_str(self) -> &'static str {
        match self {
            Source::Obd => "obd",
            Source::Log => "log",
            Source::Dsjson => "dsjson",
            Source::Shop => "shop",
        }
    }
}

/// The policy to evaluate on Open Bandit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Bernoulli Thompson sampling under ZOZOTOWN's prior for the campaign.
    Bts,
    /// The uniform random slate.
    Uniform,
    /// A greedy ridge model trained on the first part of the logs and evaluated on the rest.
    Learned,
    /// A metarec baseline (`--baseline NAME`), its distribution counted over seeded decisions.
    Baseline,
}

/// `metarec ope`.
#[derive(Args)]
pub struct OpeArgs {
    /// Where the logs come from (default: `shop` with --shop, `log` with --log, else `obd`).
    #[arg(long, value_enum)]
    data: Option<Source>,
    /// Open Bandit logging policy whose logs are evaluated on: random or bts.
    #[arg(long, default_value = "random")]
    logs: String,
    /// Open Bandit campaign: all, men or women.
    #[arg(long, default_value = "all")]
    campaign: String,
    /// The interaction log (with `--data log` or `--data dsjson`), for example a server's
    /// `metarec log export`; its item keys are resolved with --model, --shop or --catalog.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Display positions evaluated on a log or a shop (default: every logged position).
    #[arg(long, value_parser = count::<usize>(1000))]
    positions: Option<usize>,
    /// The policy to evaluate. On Open Bandit: bts (default), uniform, learned or baseline. On a
    /// shop or a log: a comma-separated list of uniform, baselines (random, popularity, egreedy,
    /// linucb, ...) and models (neural:DIR, neural-greedy:DIR, neural-static:DIR, adjusted:DIR); default uniform.
    #[arg(long, value_name = "POLICY[,POLICY...]")]
    policy: Option<String>,
    /// The share of a shop's rankings, the latest by time, that is evaluated on (rankings before
    /// them are the training part; default: the share the models named in --policy were trained
    /// with on the shop, else 0.2); with --log, the share of the log's last records (default:
    /// all of them).
    #[arg(long, value_parser = fraction)]
    holdout: Option<f64>,
    /// Monte Carlo slates for the Thompson-sampling distribution.
    #[arg(long, default_value_t = 100_000, value_parser = count::<usize>(MAX_ITERATIONS))]
    draws: usize,
    /// Seed of the Monte Carlo slates (and of the policies' decisions on a shop or a log).
    #[arg(long, default_value_t = 12345)]
    mc_seed: u64,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(100_000))]
    resamples: usize,
    /// Seed of the bootstrap (and of the policies built).
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
    /// Evaluate a policy trained anywhere by its action distribution: a NumPy `.npy` file of
    /// shape (rounds, actions, positions), Open Bandit Pipeline's `action_dist` (float64 or
    /// float32, C order). Row i is the i-th evaluated round in log order; action a is the
    /// catalog's a-th item (on Open Bandit, item id a). Replaces --policy on Open Bandit; on a
    /// log or a shop it is evaluated beside the policies --policy names (default: none).
    #[arg(long, value_name = "FILE.npy")]
    action_dist: Option<PathBuf>,
    /// The metarec baseline evaluated by `--policy baseline` on Open Bandit.
    #[arg(long, default_value = "random")]
    baseline: String,
    /// Decisions per round from which a metarec policy's distribution is counted (one when the
    /// policy's choice is certain, as a greedy policy's is).
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

/// One policy's rows in `metarec ope --json` on a shop or a log.
#[derive(Serialize)]
struct PolicyReport {
    /// The policy as named.
    policy: String,
    /// Whether it was replayed over each user's rounds (adapting), rather than frozen.
    replayed: bool,
    /// Decisions counted per round, on average (1 for a certain choice).
    decisions_per_round: f64,
    /// One row per estimator.
    estimates: Vec<Estimate>,
    /// What weight clipping did.
    clipping: Clipping,
}

/// Which rounds of a shop were evaluated on.
#[derive(Serialize)]
struct HeldOut {
    /// The share of rankings held out.
    holdout: f64,
    /// Rankings in the shop.
    rankings: usize,
    /// Rankings before the held-out part.
    training: usize,
    /// Held-out rankings.
    held_out: usize,
    /// Held-out rankings carrying the logging policy's propensities (the rounds evaluated).
    with_propensities: usize,
}

/// What `metarec ope --data log|dsjson|shop --json` prints.
#[derive(Serialize)]
struct LoggedReport {
    /// The log file or shop directory.
    source: String,
    /// `log`, `dsjson` or `shop`.
    format: &'static str,
    /// The catalog's fingerprint.
    catalog: String,
    /// Which rounds of a shop (or of a log with --holdout) were evaluated on.
    held_out: Option<HeldOut>,
    /// Rounds evaluated.
    rounds: usize,
    /// Slate entries over all rounds.
    entries: usize,
    /// Display positions evaluated.
    positions: usize,
    /// The logging policy's own value per round.
    logging_value: f64,
    /// The same with its bootstrap interval: the reference row.
    logging: Estimate,
    /// One entry per policy evaluated.
    policies: Vec<PolicyReport>,
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
    let source = match (args.data, &args.log, &args.catalog.shop) {
        (Some(source), _, _) => source,
        (None, Some(_), _) => Source::Log,
        (None, None, Some(_)) => Source::Shop,
        (None, None, None) => Source::Obd,
    };
    match source {
        Source::Obd => run_obd(&args, global, bootstrap, floor),
        Source::Shop => {
            let dir = args
                .catalog
                .shop
                .as_deref()
                .context("--data shop needs --shop DIR")?;
            if args.log.is_some() {
                bail!(
                    "--data shop evaluates on the shop's own impressions; --log FILE reads a log (--data log), whose keys --shop may resolve"
                );
            }
            let shop = metarec_data::shop::Shop::load(dir)
                .with_context(|| format!("cannot load shop {}", dir.display()))?;
            let log = shop_log(&shop, &InteractionOptions::default());
            let holdout = shop_holdout(&args, &shop, global)?;
            let (training, held) = split_by_time(&log, holdout);
            let rows: Vec<(usize, &Interaction)> = held
                .clone()
                .filter(|&i| log.logged_propensities[i])
                .map(|i| (i + 1, &log.interactions[i]))
                .collect();
            if rows.is_empty() {
                bail!(
                    "shop {}: none of the {} held-out rankings (the latest {:.0}% of {}) carries the logging policy's propensities, so no policy can be judged on them; the events need a propensity on every impression",
                    dir.display(),
                    held.len(),
                    100.0 * holdout,
                    log.interactions.len()
                );
            }
            let held_out = HeldOut {
                holdout,
                rankings: log.interactions.len(),
                training: training.len(),
                held_out: held.len(),
                with_propensities: rows.len(),
            };
            let name = format!("shop {}", dir.display());
            evaluate_logged(
                &args,
                global,
                Logged {
                    source: dir.display().to_string(),
                    format: "shop",
                    catalog: &shop.catalog,
                    catalog_name: &name,
                    rows,
                    held_out: Some(held_out),
                },
                bootstrap,
                floor,
            )
        }
        Source::Log | Source::Dsjson => {
            let format = source.as_str();
            let path = args
                .log
                .as_deref()
                .with_context(|| format!("--data {format} needs --log FILE"))?;
            let (catalog, name) = args.catalog.require(&format!("--data {format}"))?;
            // Each interaction keeps its line, so that errors found later (a propensity below
            // the floor) name the line of the file.
            let numbered: Vec<(usize, Interaction)> = if source == Source::Dsjson {
                dsjson::read_file_lines(path, &catalog)?
            } else {
                let (records, report) =
                    metarec_data::log::read_log_lines(path, &catalog, &LoadOptions::default())?;
                for note in &report.notes {
                    global.progress(format!("{}: note: {note}", path.display()));
                }
                records
                    .into_iter()
                    .map(|(line, i)| (usize::try_from(line).unwrap_or(usize::MAX), i))
                    .collect()
            };
            if let Some(out) = &args.export_dsjson {
                let n = dsjson::write_file(
                    out,
                    numbered.iter().map(|(_, i)| i),
                    &RewardFn::default(),
                    &catalog,
                )?;
                global.progress(format!("wrote {n} DSJSON lines to {}", out.display()));
            }
            let (held_out, first) = match args.holdout {
                Some(holdout) => {
                    let n = numbered.len();
                    let held = ((n as f64) * holdout).round() as usize;
                    let cut = n - held.min(n);
                    (
                        Some(HeldOut {
                            holdout,
                            rankings: n,
                            training: cut,
                            held_out: n - cut,
                            with_propensities: n - cut,
                        }),
                        cut,
                    )
                }
                None => (None, 0),
            };
            let rows: Vec<(usize, &Interaction)> = numbered[first..]
                .iter()
                .map(|(line, i)| (*line, i))
                .collect();
            evaluate_logged(
                &args,
                global,
                Logged {
                    source: path.display().to_string(),
                    format,
                    catalog: &catalog,
                    catalog_name: &name,
                    rows,
                    held_out,
                },
                bootstrap,
                floor,
            )
        }
    }
}

/// The share of a shop's rankings held out when `--holdout` is not given and no model trained
/// on the shop says otherwise.
const DEFAULT_HOLDOUT: f64 = 0.2;

/// The held-out share of a shop to evaluate on: `--holdout`, else the share that the models
/// named in `--policy` were trained with on this shop (`train --shop --holdout`, recorded in
/// their bundles, so a model is judged only on rankings it never saw), else
/// [`DEFAULT_HOLDOUT`]. Models trained with different shares need `--holdout`; a `--holdout`
/// smaller than a model's share is a warning, since the held-out rankings then include some it
/// was trained on.
fn shop_holdout(args: &OpeArgs, shop: &metarec_data::shop::Shop, global: &Global) -> Result<f64> {
    let mut recorded: Vec<(String, f64)> = Vec::new();
    for named in parse_policies(args.policy.as_deref().unwrap_or("uniform"))? {
        let Named::Spec(spec) = named else { continue };
        let Some(model) = spec.model() else { continue };
        let manifest = metarec_neural::checkpoint::read_manifest(model.dir())?;
        if let metarec_neural::checkpoint::DataSource::Shop {
            catalog_sha256,
            holdout,
            ..
        } = &manifest.source
        {
            if *catalog_sha256 == shop.manifest.catalog_sha256 {
                recorded.push((model.dir().display().to_string(), *holdout));
            }
        }
    }
    match args.holdout {
        Some(h) => {
            for (model, trained) in recorded.iter().filter(|(_, t)| h < *t) {
                global.progress(format!(
                    "warning: {model} was trained with --holdout {trained}: with --holdout {h} some of the evaluated rankings were in its training part"
                ));
            }
            Ok(h)
        }
        None => match recorded.split_first() {
            None => Ok(DEFAULT_HOLDOUT),
            Some(((first, h), rest)) => {
                if let Some((other, g)) = rest.iter().find(|(_, g)| g != h) {
                    bail!(
                        "{first} and {other} were trained with different held-out shares ({h} and {g}) of this shop: pass --holdout"
                    );
                }
                Ok(*h)
            }
        },
    }
}

/// `metarec ope --data obd`.
fn run_obd(
    args: &OpeArgs,
    global: &Global,
    bootstrap: Bootstrap,
    floor: PropensityFloor,
) -> Result<()> {
    if args.catalog.shop.is_some() || args.log.is_some() {
        bail!(
            "--data obd reads the Open Bandit Dataset; --log and --shop are for --data log, dsjson or shop"
        );
    }
    if let Some(path) = &args.action_dist {
        if args.policy.is_some() {
            bail!("--action-dist names the policy to evaluate on Open Bandit; leave out --policy");
        }
        return run_obd_experiment(args, global, Target::Given, bootstrap, floor, &|log| {
            let dist = read_npy("action_dist", path)?;
            let policy = ArrayPolicy::for_shape(
                path.display().to_string(),
                dist,
                [
                    log.rounds.len(),
                    log.catalog.len(),
                    metarec_ope::obd::POSITIONS,
                ],
            )?;
            Ok(Box::new(policy))
        })
        .with_context(|| format!("--action-dist {}", path.display()));
    }
    let name = args.policy.as_deref().unwrap_or("bts");
    let policy = PolicyArg::from_str(name, false).map_err(|_| {
        anyhow::anyhow!(
            "on Open Bandit --policy is one of bts, uniform, learned or baseline (--baseline NAME), not `{name}`"
        )
    })?;
    let target = match policy {
        PolicyArg::Bts => Target::Bts,
        PolicyArg::Uniform => Target::Uniform,
        PolicyArg::Baseline => Target::Given,
        PolicyArg::Learned => Target::Learned {
            train_fraction: args.train_fraction,
            temperature: args.temperature,
        },
    };
    let build = |log: &metarec_data::obd::ObdLog| -> Result<Box<dyn EvaluationPolicy>, OpeError> {
        let reason = |e: &dyn std::fmt::Display| OpeError::Config {
            name: "baseline",
            reason: e.to_string(),
        };
        let policy =
            metarec_learn::build_policy(&args.baseline, &log.catalog, &click_reward(), args.seed)
                .map_err(|e| reason(&e))?;
        let mc = MonteCarloPolicy::new(
            policy,
            metarec_ope::obd::POSITIONS,
            args.policy_draws,
            args.seed,
        )?;
        Ok(Box::new(mc))
    };
    run_obd_experiment(args, global, target, bootstrap, floor, &build)
}

/// Runs one Open Bandit experiment on `target` (a [`Target::Given`] policy made by `build`)
/// and prints its table.
fn run_obd_experiment(
    args: &OpeArgs,
    global: &Global,
    target: Target,
    bootstrap: Bootstrap,
    floor: PropensityFloor,
    build: &metarec_ope::obd::PolicyBuilder<'_>,
) -> Result<()> {
    let logs: ObdPolicy = args.logs.parse()?;
    let campaign: ObdCampaign = args.campaign.parse()?;
    let dir = global.data.require(Dataset::Obd)?;
    let what = match (&target, &args.action_dist) {
        (Target::Given, Some(path)) => format!("the action distribution in {}", path.display()),
        (Target::Given, None) => format!("baseline {}", args.baseline),
        (Target::Bts, _) => "bts".to_owned(),
        (Target::Uniform, _) => "uniform".to_owned(),
        (Target::Learned { .. }, _) => "the learned policy".to_owned(),
    };
    global.progress(format!(
        "evaluating {what} on the {logs} logs of campaign {campaign}"
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
        let log = metarec_data::obd::load_obd(&dir, logs, campaign, &LoadOptions::default())?;
        let interactions: Vec<_> = (0..log.rounds.len())
            .filter_map(|i| log.interaction(i))
            .collect();
        let n = dsjson::write_file(out, &interactions, &click_reward(), &log.catalog)?;
        global.progress(format!("wrote {n} DSJSON lines to {}", out.display()));
    }
    let report = run_experiment_with(&dir, &exp, build)?;
    if args.json {
        println!("{}", crate::report::results_json("ope", &report)?);
    } else {
        print_obd(&report, &exp);
    }
    Ok(())
}

/// Logged rounds to evaluate on, with where they come from.
struct Logged<'a> {
    source: String,
    format: &'static str,
    catalog: &'a Catalog,
    /// The catalog in messages (`shop DIR`, `model DIR`, `catalog FILE`).
    catalog_name: &'a str,
    /// Each round's row (its line in a file, its ranking in a shop) and interaction.
    rows: Vec<(usize, &'a Interaction)>,
    held_out: Option<HeldOut>,
}

/// A policy named on a shop or a log.
enum Named {
    /// The uniform random slate, exactly.
    Uniform,
    /// Any metarec policy.
    Spec(PolicySpec),
    /// A policy trained elsewhere, by its action distribution in a `.npy` file.
    Array(PathBuf),
}

/// Parses `--policy` on a shop or a log.
fn parse_policies(list: &str) -> Result<Vec<Named>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "uniform" => out.push(Named::Uniform),
            "bts" | "learned" | "baseline" => bail!(
                "--policy {name} is for Open Bandit (its prior and features); on a shop or a log --policy takes uniform, baselines and models (neural:DIR, neural-greedy:DIR, neural-static:DIR, adjusted:DIR)"
            ),
            name => out.push(Named::Spec(PolicySpec::parse(name)?)),
        }
    }
    if out.is_empty() {
        bail!("--policy names no policy");
    }
    Ok(out)
}

/// Evaluates every policy of `--policy` on logged rounds with every estimator, and prints one
/// table per policy with the logging policy's own value as the reference row.
fn evaluate_logged(
    args: &OpeArgs,
    global: &Global,
    logged: Logged<'_>,
    bootstrap: Bootstrap,
    floor: PropensityFloor,
) -> Result<()> {
    let reward = RewardFn::default();
    let mut policies = match (&args.policy, &args.action_dist) {
        (Some(list), _) => parse_policies(list)?,
        (None, Some(_)) => Vec::new(),
        (None, None) => parse_policies("uniform")?,
    };
    if let Some(path) = &args.action_dist {
        policies.push(Named::Array(path.clone()));
    }
    let catalog = logged.catalog;
    let positions = match args.positions {
        Some(p) => p,
        None => logged
            .rows
            .iter()
            .flat_map(|(_, i)| (0..i.decision.slate.len()).map(|k| i.decision.position(k)))
            .max()
            .map_or(1, |p| p as usize + 1),
    };
    let data = LoggedData::from_rows(
        logged.rows.iter().map(|(row, i)| (*row, *i)),
        catalog.len(),
        positions,
        &reward,
        floor,
    )
    .with_context(|| logged.source.clone())?;
    let interactions: Vec<&Interaction> = logged.rows.iter().map(|(_, i)| *i).collect();
    let model = MeanModel::fit(&data, 10.0, &|_| true)?;
    let logging = on_policy_estimate(&data, &bootstrap)?;
    let estimators = all_estimators(args.switch_tau, args.os_lambda);
    let refs: Vec<&dyn Estimator> = estimators.iter().map(|e| e.as_ref()).collect();
    let mut loaded: Vec<Arc<metarec_neural::bundle::ModelBundle>> = Vec::new();
    let mut reports = Vec::new();
    for named in policies {
        let (name, replayed, prepared, decisions) = match named {
            Named::Uniform => {
                let uniform = StaticPolicy::uniform(catalog.len(), positions)?;
                let prepared = Prepared::new(&data, &uniform, &model, args.clip)?;
                ("uniform".to_owned(), false, prepared, 0.0)
            }
            Named::Array(path) => {
                let name = path.display().to_string();
                let policy = read_npy("action_dist", &path)
                    .and_then(|dist| ArrayPolicy::new(&name, dist, &data))
                    .with_context(|| format!("--action-dist {name}"))?;
                let prepared = Prepared::new(&data, &policy, &model, args.clip)?;
                (name, false, prepared, 0.0)
            }
            Named::Spec(mut spec) => {
                spec.load(&mut loaded)?;
                let name = spec.name().to_owned();
                global.progress(format!("evaluating {name} on {} rounds", data.rounds()));
                let policy =
                    spec.build_for_catalog(catalog, logged.catalog_name, &reward, args.seed)?;
                let rounds = data.rounds() as f64;
                if spec.adapts_to_users() {
                    // The adjusted policy's point is its per-user state, so it is replayed over
                    // each user's rounds, learning from the logged feedback as it goes.
                    let replay = ReplayPolicy::replay(
                        policy,
                        &data,
                        &interactions,
                        positions,
                        args.policy_draws,
                        args.mc_seed,
                    )?;
                    let decisions = (0..data.rounds())
                        .filter_map(|r| replay.round(r))
                        .map(|d| d.decisions as f64)
                        .sum::<f64>();
                    let prepared = Prepared::new(&data, &replay, &model, args.clip)?;
                    (name, true, prepared, decisions / rounds)
                } else {
                    let mc =
                        MonteCarloPolicy::new(policy, positions, args.policy_draws, args.mc_seed)?;
                    let prepared = Prepared::new(&data, &mc, &model, args.clip)?;
                    (name, false, prepared, mc.decisions() as f64 / rounds)
                }
            }
        };
        let estimates = evaluate(&prepared, &refs, &bootstrap)?;
        reports.push(PolicyReport {
            policy: name,
            replayed,
            decisions_per_round: decisions,
            estimates,
            clipping: prepared.clipping,
        });
    }
    if args.json {
        let report = LoggedReport {
            source: logged.source,
            format: logged.format,
            catalog: catalog.fingerprint(),
            held_out: logged.held_out,
            rounds: data.rounds(),
            entries: data.entries(),
            positions,
            logging_value: data.on_policy_value(),
            logging,
            policies: reports,
            propensity_floor: data.floor_report(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let what = match &logged.held_out {
        Some(h) if logged.format == "shop" => format!(
            "shop {}: the latest {:.0}% of its {} rankings by time ({} held out after {} training rankings, {} of them with logged propensities)",
            logged.source,
            100.0 * h.holdout,
            h.rankings,
            h.held_out,
            h.training,
            h.with_propensities
        ),
        Some(h) => format!(
            "{}: its last {} of {} records",
            logged.source, h.held_out, h.rankings
        ),
        None => logged.source.clone(),
    };
    println!(
        "Off-policy evaluation on {what} ({} rounds, {} entries, {positions} positions; reward 1 per click, 5 per purchase); logging policy value {:.6}",
        data.rounds(),
        data.entries(),
        data.on_policy_value()
    );
    println!(
        "reward model: per (item, position) means shrunk to the overall mean; bootstrap: {} Poisson resamples, seed {}; metarec policies: up to {} decisions per round, seed {} (one when the choice is certain)",
        bootstrap.resamples, bootstrap.seed, args.policy_draws, args.mc_seed
    );
    for r in &reports {
        println!();
        let how = if r.replayed {
            "replayed over each user's rounds in time order, observing each logged round after deciding"
        } else if r.policy == "uniform" {
            "exact"
        } else {
            "frozen"
        };
        println!(
            "policy {} ({how}{})",
            r.policy,
            if r.decisions_per_round > 0.0 {
                format!(", {:.1} decisions per round", r.decisions_per_round)
            } else {
                String::new()
            }
        );
        print_clipping(&r.clipping, &data.floor_report());
        let mut rows = vec![logging.clone()];
        rows.extend(r.estimates.iter().cloned());
        print_table(&rows, data.on_policy_value(), None, &[]);
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
    // The first column fits the longest name (the reference row's is longer than any
    // estimator's).
    let width = estimates
        .iter()
        .map(|e| e.estimator.chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    let mut header = format!(
        "{:<width$} {:>10}  {:<24} {:>10} {:>9}",
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
            "{:<width$} {:>10.6}  {:<24} {:>10} {:>9}",
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
