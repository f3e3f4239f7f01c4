//! `metarec train`: trains the neural policy on a simulated scenario and saves a checkpoint.

use crate::Global;
use crate::args::{MAX_ITERATIONS, MAX_WIDTH, count, number, positive, probability};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_core::{Environment, RewardFn};
use metarec_eval::PolicySpec;
use metarec_eval::policies::check_catalog;
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::{self, DataSource, Manifest};
use metarec_neural::model::ModelConfig;
use metarec_neural::train::{Algo, TrainConfig, TrainData, Trainer};
use std::path::PathBuf;
use std::sync::Arc;

/// The most simulated users (or logged interactions) per optimiser step.
const MAX_BATCH: u64 = 100_000;
/// The largest reward weight: rewards are per click, per purchase and per unit of revenue, and
/// weights past a million only scale the loss towards overflow.
const MAX_WEIGHT: f64 = 1e6;
/// The coldest Plackett-Luce temperature: scores are divided by it, so a tiny one overflows them
/// to infinity, and at a thousandth the sampling is already all but greedy.
const MIN_TEMPERATURE: f64 = 1e-3;

#[derive(Args)]
pub struct TrainArgs {
    /// A preset name or a scenario TOML file (default: `default`, or with --resume the scenario
    /// the model was trained on, as its bundle records it).
    #[arg(long)]
    scenario: Option<String>,
    /// reinforce, actor-critic, supervised or distill (imitate --teacher on the network's own
    /// visits).
    #[arg(long, default_value = "reinforce")]
    algo: String,
    /// The teacher of `--algo distill`: `informed` (the exact-model Bayesian yardstick, which
    /// knows the simulator but must learn each user from the same feedback) or `informed:N` for
    /// N particles per user.
    #[arg(long, default_value = "informed")]
    teacher: String,
    /// Model directory (weights + manifest).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue training the model in --out (its architecture is kept).
    #[arg(long)]
    resume: bool,
    /// Optimiser steps.
    #[arg(long, default_value_t = 300, value_parser = count::<usize>(MAX_ITERATIONS))]
    iterations: usize,
    /// Simulated users per step (reinforcement learning) or logged interactions per step
    /// (supervised).
    #[arg(long, default_value_t = 64, value_parser = count::<usize>(MAX_BATCH))]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-3, value_parser = positive(1.0))]
    lr: f64,
    /// Discount per slate (default: the scenario's reward.gamma).
    #[arg(long, value_parser = probability)]
    gamma: Option<f64>,
    /// Reward per click (default: the scenario's).
    #[arg(long, allow_negative_numbers = true, value_parser = number(-MAX_WEIGHT, MAX_WEIGHT))]
    click: Option<f64>,
    /// Reward per purchase (default: the scenario's).
    #[arg(long, allow_negative_numbers = true, value_parser = number(-MAX_WEIGHT, MAX_WEIGHT))]
    purchase: Option<f64>,
    /// Reward per unit of revenue (default: the scenario's).
    #[arg(long, allow_negative_numbers = true, value_parser = number(-MAX_WEIGHT, MAX_WEIGHT))]
    revenue: Option<f64>,
    /// Entropy bonus weight.
    #[arg(long, default_value_t = 0.01, value_parser = number(0.0, 100.0))]
    entropy: f64,
    /// Hidden width of the towers.
    #[arg(long, default_value_t = 32, value_parser = count::<usize>(MAX_WIDTH))]
    hidden: usize,
    /// Output width of the towers.
    #[arg(long, default_value_t = 16, value_parser = count::<usize>(MAX_WIDTH))]
    embed: usize,
    /// Plackett-Luce temperature.
    #[arg(long, default_value_t = 1.0, value_parser = number(MIN_TEMPERATURE, 1000.0))]
    temperature: f64,
    /// Hide the user's clicks from the network (the non-adaptive ablation): it still sees
    /// which items it showed, but not which were clicked.
    #[arg(long)]
    no_feedback: bool,
    /// Seed of weights, sampling and training users.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Save a checkpoint every this many steps (and at the end).
    #[arg(long, default_value_t = 50, value_parser = count::<usize>(MAX_ITERATIONS))]
    checkpoint_every: usize,
    /// Logged interactions for supervised training (default: simulated with random slates).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
    /// Also write a report directory with the learning curves (`index.html`).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

pub fn run(args: TrainArgs, global: &Global) -> Result<()> {
    let algo = Algo::parse(&args.algo)?;
    let resumed = if args.resume {
        let bundle = ModelBundle::load(&args.out)
            .with_context(|| format!("cannot resume from {}", args.out.display()))?;
        global.progress(format!(
            "resuming {} after {} iterations",
            args.out.display(),
            bundle.manifest.iterations
        ));
        Some(Arc::new(bundle))
    } else {
        if args.out.join(checkpoint::MANIFEST).exists() {
            bail!(
                "{} already holds a model: pass --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        None
    };
    let scenario = crate::sim::scenario_for(args.scenario.as_deref(), resumed.as_slice(), global)?;
    let base = scenario.config.reward;
    let reward = RewardFn::new(
        args.click.unwrap_or(base.click_weight()),
        args.purchase.unwrap_or(base.purchase_weight()),
        args.revenue.unwrap_or(base.revenue_weight()),
        args.gamma.unwrap_or(base.gamma()),
    )?;
    let mut config = TrainConfig {
        algo,
        model: ModelConfig {
            hidden: args.hidden,
            embed: args.embed,
            temperature: args.temperature,
            feedback: !args.no_feedback,
            ..ModelConfig::default()
        },
        iterations: args.iterations,
        batch: args.batch,
        learning_rate: args.lr,
        entropy: args.entropy,
        seed: args.seed,
        ..TrainConfig::default()
    };
    // Training users are drawn with a seed of their own, so no arena user is ever a training user.
    let mut env = scenario.env_with_seed(scenario.config.seed ^ 0x7472_6169_6e00 ^ args.seed);
    let mut teacher = if algo == Algo::Distill {
        Some(build_teacher(&args.teacher, &scenario, &reward, args.seed)?)
    } else {
        None
    };
    let catalog = env.catalog().clone();
    let (mut trainer, mut algos, mut metrics) = match resumed {
        Some(bundle) => {
            check_catalog("the resumed model", &bundle, &scenario)?;
            let bundle = Arc::try_unwrap(bundle)
                .ok()
                .context("the bundle is not shared")?;
            config.model = bundle.manifest.model;
            let done = bundle.manifest.iterations;
            let trainer = Trainer::resume(
                (*bundle.network.features).clone(),
                bundle.varmap,
                bundle.model,
                reward,
                config.clone(),
                done,
            )?;
            (trainer, bundle.manifest.algos, bundle.manifest.metrics)
        }
        None => (
            Trainer::new(&catalog, reward, config.clone())?,
            Vec::new(),
            Vec::new(),
        ),
    };
    algos.push(algo.name().to_owned());
    let logged = if algo == Algo::Supervised {
        match &args.log {
            Some(path) => {
                // The log's item keys are resolved against the scenario's catalog, the one the
                // network ranks: a key it lacks is an error, never another item.
                let (records, report) = metarec_data::log::read_log(
                    path,
                    &catalog,
                    &metarec_data::LoadOptions::default(),
                )?;
                global.progress(format!("{report}"));
                records
            }
            None => {
                global.progress(
                    "simulating 3000 users under random slates for supervised training ...",
                );
                random_log(&scenario, args.seed)?
            }
        }
    } else {
        Vec::new()
    };

    let bar = global.bar(args.iterations as u64, "iterations");
    let source = model_source(&scenario);
    let save =
        |trainer: &Trainer, algos: &[String], metrics: &[metarec_neural::train::IterationStats]| {
            let manifest = Manifest::for_trainer(
                trainer,
                &catalog,
                source.clone(),
                algos.to_vec(),
                metrics.to_vec(),
            );
            checkpoint::save(&args.out, &trainer.varmap, &manifest, &catalog)
        };
    let mut tensorboard =
        crate::report::training_run(&args.logdir.logdir, &args.out, algo.name(), args.seed)?;
    global.progress(format!(
        "TensorBoard run: {} (tensorboard --logdir {})",
        tensorboard
            .path()
            .parent()
            .unwrap_or(&args.logdir.logdir)
            .display(),
        args.logdir.logdir.display()
    ));
    let every = args.checkpoint_every;
    let mut window: Vec<f64> = Vec::new();
    let data = TrainData {
        logged: &logged,
        teacher: teacher.as_mut().map(|t| t as &mut dyn metarec_core::Policy),
    };
    trainer.train(&mut env, data, |trainer, stats| -> Result<()> {
        window.push(if algo == Algo::Supervised {
            stats.loss
        } else {
            stats.reward_per_user
        });
        if window.len() > 20 {
            window.remove(0);
        }
        let avg = window.iter().sum::<f64>() / window.len() as f64;
        bar.set_message(if algo == Algo::Supervised {
            format!("loss {avg:.4}")
        } else {
            format!(
                "reward/user {avg:.2} (last 20 steps), entropy {:.2}",
                stats.entropy
            )
        });
        bar.inc(1);
        crate::report::log_iteration(&mut tensorboard, stats)?;
        metrics.push(stats.clone());
        if trainer.iterations_done % every == 0 {
            save(trainer, &algos, &metrics)?;
            tensorboard.flush()?;
        }
        Ok(())
    })?;
    bar.finish();
    save(&trainer, &algos, &metrics)?;
    tensorboard.flush()?;
    if let Some(dir) = &args.report {
        let page = crate::report::write_report(
            dir,
            "metarec training report",
            &[(
                checkpoint::MANIFEST.into(),
                args.out.join(checkpoint::MANIFEST),
            )],
        )?;
        global.progress(format!("report written to {}", page.display()));
    }
    let tail: Vec<_> = metrics.iter().rev().take(20).collect();
    if algo != Algo::Supervised && !tail.is_empty() {
        let r = tail.iter().map(|s| s.reward_per_user).sum::<f64>() / tail.len() as f64;
        println!(
            "trained {} ({}) for {} iterations in total; reward/user over the last {} batches: {r:.3}",
            args.out.display(),
            algo.name(),
            trainer.iterations_done,
            tail.len()
        );
    } else if let Some(last) = metrics.last() {
        println!(
            "trained {} ({}) for {} iterations in total; last loss {:.4}",
            args.out.display(),
            algo.name(),
            trainer.iterations_done,
            last.loss
        );
    }
    println!(
        "use it in the arena: metarec arena --policies linucb,lints,neural:{}",
        args.out.display()
    );
    Ok(())
}

/// The description of a scenario that a model bundle records: its name and its configuration as
/// given, so commands that take the model rebuild the same world.
pub fn model_source(scenario: &metarec_sim::Scenario) -> DataSource {
    DataSource::Scenario {
        name: scenario.config.name.clone(),
        toml: scenario.source.to_toml(),
    }
}

/// Interactions of 3000 simulated training users under uniformly random slates.
fn random_log(
    scenario: &metarec_sim::Scenario,
    seed: u64,
) -> Result<Vec<metarec_core::Interaction>> {
    use metarec_core::{EventIds, Recorder, rng_for, rollout};
    let mut env = scenario.env_with_seed(scenario.config.seed ^ 0x5e5e ^ seed);
    let mut policy = metarec_learn::baselines::RandomPolicy::new(env.catalog());
    let mut rng = rng_for(seed, 0x0109);
    let mut recorder = Recorder::default();
    let users = (1u64 << 41)..(1u64 << 41) + 3000;
    rollout(
        &mut env,
        &mut policy,
        users,
        &mut rng,
        &mut recorder,
        EventIds::Prefixed("r"),
    )?;
    Ok(recorder.log)
}

/// The teacher of distillation, by name.
fn build_teacher(
    name: &str,
    scenario: &metarec_sim::Scenario,
    reward: &RewardFn,
    seed: u64,
) -> Result<metarec_sim::InformedPolicy> {
    match PolicySpec::parse(name) {
        Ok(PolicySpec::Informed { settings, .. }) if !settings.thompson => {
            Ok(metarec_sim::InformedPolicy::new(
                scenario.world.clone(),
                &scenario.config,
                reward,
                metarec_sim::InformedConfig { seed, ..settings },
            ))
        }
        Err(e) => bail!("--teacher {name}: {e}"),
        _ => bail!("--teacher {name}: the teacher must be `informed` or `informed:N`"),
    }
}
