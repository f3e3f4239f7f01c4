//! `metarec train`: trains the neural policy on a simulated scenario, or on a shop's own logged
//! events (`--shop`), and saves a model bundle.

use crate::Global;
use crate::args::{
    MAX_ITERATIONS, MAX_WIDTH, count, fraction, number, positive, probability, whole,
};
use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use metarec_core::{Catalog, Environment, RewardFn};
use metarec_data::fetch::Dataset;
use metarec_data::shop::Shop;
use metarec_data::shop::interactions::{InteractionOptions, shop_log};
use metarec_eval::PolicySpec;
use metarec_eval::policies::check_catalog;
use metarec_eval::shop::{
    DEFAULT_MAX_WEIGHT, ShopTrainConfig, check_bundle, click_auc, shop_source, training_data,
    with_title_features,
};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::{self, DataSource, Manifest};
use metarec_neural::model::{Encoder, ModelConfig};

/// `--encoder`: the user tower's encoder ([`Encoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EncoderArg {
    /// Linear in the means of the clicked and ignored items' vectors.
    Mean,
    /// The mean encoder plus a DeepSets term over the items' sums.
    Set,
}
use metarec_neural::train::{
    Algo, IterationStats, LoggedData, TrainConfig, TrainData, Trainer, Weighting,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The most simulated users (or logged interactions) per optimiser step, as the library allows.
const MAX_BATCH: u64 = metarec_neural::train::MAX_BATCH as u64;
/// The largest reward weight: rewards are per click, per purchase and per unit of revenue, and
/// weights past a million only scale the loss towards overflow.
const MAX_WEIGHT: f64 = 1e6;
/// The coldest Plackett-Luce temperature: scores are divided by it, so a tiny one overflows them
/// to infinity, and at a thousandth the sampling is already all but greedy.
const MIN_TEMPERATURE: f64 = 1e-3;
/// The most sampled negatives per organic slate: a slate is one forward pass row per item, and
/// past a few hundred the positive is a needle in the batch.
const MAX_NEGATIVES: u64 = 1000;
/// The most title-embedding components: MiniLM's vectors have 384 dimensions.
const MAX_TEXT_DIMS: u64 = 384;
/// Title-embedding components added by default when the shop's catalog has titles and the
/// encoder is fetched: as many as the simulated scenarios with text features use.
const DEFAULT_TEXT_DIMS: usize = 8;
/// Titles per forward pass of the text encoder.
const TEXT_BATCH: usize = 128;

/// How `--shop` training weighs the logged entries.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightingArg {
    /// Every shown item counts the same (the default; see the ARCHITECTURE's training section).
    None,
    /// Self-normalised inverse propensity weights, clipped at --max-weight times their mean
    /// (needs the logging policy's propensity on every training ranking).
    Ips,
}

#[derive(Args)]
pub struct TrainArgs {
    /// A preset name or a scenario TOML file (default: `default`, or with --resume the scenario
    /// the model was trained on, as its bundle records it); with --shop and a simulator
    /// algorithm, the parameters of the simulator fitted to the shop.
    #[arg(long)]
    scenario: Option<String>,
    /// Train on a shop directory (`metarec shop import`). With `--algo supervised` (the
    /// default with --shop), on its own logged events: click and purchase likelihood on the
    /// logged impressions (or on purchases and clicks with sampled negatives when the shop logs
    /// none), the latest --holdout of rankings by time held out for evaluation; the model
    /// carries the shop's catalog. With a simulator algorithm (reinforce, actor-critic,
    /// distill, posterior), in a simulator fitted to the shop (the scenario's `[shop] dir`), whose world
    /// the model's bundle records so the arena can rebuild it.
    #[arg(long, value_name = "SHOP")]
    shop: Option<PathBuf>,
    /// reinforce, actor-critic, supervised, distill (imitate --teacher on the network's own
    /// visits) or posterior (learn, on its own visits, every item's value for the hidden user,
    /// which the simulator reveals: the network learns the posterior mean of each item's value
    /// from the history, so its greedy slate is the exact posterior's) [default: reinforce;
    /// supervised with --shop].
    #[arg(long)]
    algo: Option<String>,
    /// The teacher of `--algo distill`: `informed` (the exact-model Bayesian yardstick, which
    /// knows the simulator but must learn each user from the same feedback), `informed:N` for
    /// N particles per user, or `informed-move[:N]`, whose particles are resampled and moved
    /// when they degenerate (a better posterior for the same particles, at about 1.7x the cost);
    /// the references `informed-blind[:N]` (feedback read without positions or purchases),
    /// `informed-observed[:N]` (items known only through their observable features) and
    /// `informed-network:DIR` (items known through the features and DIR's item vectors) teach
    /// too.
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
    /// The user tower's encoder of the session's clicked and ignored items: `mean` (linear in
    /// their mean item vectors) or `set` (adds a DeepSets term over their sums, which grows
    /// with the evidence); the bundle's manifest records it, and --resume keeps the model's.
    #[arg(long, value_enum, default_value_t = EncoderArg::Mean)]
    encoder: EncoderArg,
    /// Width of the set encoder's per-item features and of its MLP's hidden layer (0: the
    /// --hidden width); only `--encoder set` reads it.
    #[arg(long, default_value_t = 0, value_parser = whole::<usize>(0, MAX_WIDTH))]
    set_width: usize,
    /// A long-run memory: the user tower reads the last W history events as the session, as
    /// a network without one reads its whole history, and the events before them (as many as
    /// the scenario's `history_length` keeps: 100 in the default scenario) through a channel of
    /// their own; 0: no memory [default: 20 for a new network; with --resume the model's]. With
    /// --resume on a model without one, the model gains it, starting at zero: training starts
    /// from the model's own scores.
    #[arg(long, value_name = "W", value_parser = whole::<usize>(0, 100_000))]
    memory: Option<usize>,
    /// Seed of weights, sampling and training users.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Sample each training user's slates from a stream of their own rather than one stream
    /// through the batch: the runs that `metarec.ray.train` splits over workers (Python) give
    /// the same network as this.
    #[arg(long)]
    user_streams: bool,
    /// With `--algo distill`: imitate the teacher's best N items in its order in each state,
    /// not only the slate it would show (0: the slate). The informed teacher ranks the whole
    /// catalog, so a deeper ranking tells the network more per state.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = whole::<usize>(0, metarec_neural::train::MAX_IMITATE_DEPTH as u64))]
    imitate_depth: usize,
    /// With `--algo distill` or `posterior`: sample the network's own visits at this
    /// temperature instead of the model's (the loss still reads the model's). Lower keeps the
    /// visits near the greedy network's, the states it meets when it serves.
    #[arg(long, value_name = "T")]
    rollout_temperature: Option<f64>,
    /// Save a checkpoint every this many steps (and at the end).
    #[arg(long, default_value_t = 50, value_parser = count::<usize>(MAX_ITERATIONS))]
    checkpoint_every: usize,
    /// Logged interactions for supervised training (default: simulated with random slates).
    #[arg(long, value_name = "FILE", conflicts_with = "shop")]
    log: Option<PathBuf>,
    /// The share of the shop's rankings, the latest by time, held out from training for
    /// evaluation (`metarec ope --shop` and `meta-train --shop` use the same split)
    /// [default: 0.2, or with --resume the model's].
    #[arg(long, requires = "shop", value_parser = fraction)]
    holdout: Option<f64>,
    /// How to weigh the shop's logged entries: `none`, or `ips` (inverse propensity weights).
    #[arg(long, value_enum, default_value = "none", requires = "shop")]
    weighting: WeightingArg,
    /// The clip of `--weighting ips`, as a multiple of the mean weight.
    #[arg(long, default_value_t = DEFAULT_MAX_WEIGHT, requires = "shop", value_parser = number(1.0, MAX_WEIGHT))]
    max_weight: f64,
    /// Sampled negatives per purchase or click when the shop logs no impressions.
    #[arg(long, default_value_t = 4, requires = "shop", value_parser = count::<usize>(MAX_NEGATIVES))]
    negatives: usize,
    /// Learn each bought or clicked item as one choice out of the whole catalog (a softmax over
    /// every item's score) instead of telling it from its --negatives sampled ones; only for a
    /// shop that logs no impressions, where a slate is the item and its sampled negatives.
    /// With --resume, a model trained with it keeps it.
    #[arg(long, requires = "shop")]
    catalog_softmax: bool,
    /// Title-embedding features: the first K principal components of the MiniLM embeddings of
    /// the catalog's titles, added as `text_0..text_{K-1}` (0 turns them off) [default: 8 when
    /// the catalog has titles and `metarec data fetch minilm` has run, else 0].
    #[arg(long, value_name = "K", requires = "shop", conflicts_with = "resume", value_parser = whole::<usize>(0, MAX_TEXT_DIMS))]
    text_dims: Option<usize>,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
    /// Also write a report directory with the learning curves (`index.html`).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

impl TrainArgs {
    /// Whether this is supervised training on a shop's logged events (`--shop` with no
    /// `--algo`, or `--algo supervised`), rather than training in a simulator.
    fn on_shop_logs(&self) -> bool {
        self.shop.is_some() && self.algo.as_deref().is_none_or(|a| a == "supervised")
    }

    /// What clap cannot check: the options of one way of training given to the other.
    /// Supervised training on a shop's logs has no scenario; training in a simulator of a shop
    /// has no held-out split, weighting or title features of the shop's logs.
    pub fn usage_error(&self) -> Option<String> {
        if self.on_shop_logs() {
            return self.scenario.as_ref().map(|_| {
                "--scenario cannot be used with supervised training on --shop, which reads the shop's logged events; pass --algo reinforce (or actor-critic, distill) to train in a simulator of the shop with that scenario's parameters".to_owned()
            });
        }
        self.shop.as_ref()?;
        let algo = self.algo.as_deref().unwrap_or_default();
        let logged_only = [
            ("--holdout", self.holdout.is_some()),
            ("--weighting", self.weighting != WeightingArg::None),
            ("--text-dims", self.text_dims.is_some()),
        ];
        logged_only.iter().find(|(_, given)| *given).map(|(name, _)| {
            format!(
                "{name} cannot be used with --algo {algo} on --shop: it concerns supervised training on the shop's logged events, and --algo {algo} trains in a simulator of the shop"
            )
        })
    }
}

pub fn run(args: TrainArgs, global: &Global) -> Result<()> {
    if let Some(message) = args.usage_error() {
        bail!("{message}");
    }
    if args.on_shop_logs() {
        return run_shop(args, global);
    }
    let algo = Algo::parse(args.algo.as_deref().unwrap_or("reinforce"))?;
    if algo == Algo::Supervised && args.shop.is_some() {
        bail!("supervised training on --shop reads the shop's logged events");
    }
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
    let scenario = crate::sim::scenario_for(
        args.scenario.as_deref(),
        args.shop.as_deref(),
        resumed.as_slice(),
        global,
    )?;
    let (reward, config) = settings(&args, &scenario.config.reward, algo)?;
    // Training users are drawn with a seed of their own, so no arena user is ever a training user.
    let mut env = scenario.env_with_seed(scenario.config.seed ^ 0x7472_6169_6e00 ^ args.seed);
    let mut teacher = if algo == Algo::Distill {
        Some(build_teacher(&args.teacher, &scenario, &reward, args.seed)?)
    } else {
        None
    };
    let catalog = env.catalog().clone();
    let (mut trainer, mut algos, metrics) = match resumed {
        Some(bundle) => {
            check_catalog("the resumed model", &bundle, &scenario)?;
            let bundle = Arc::try_unwrap(bundle)
                .ok()
                .context("the bundle is not shared")?;
            resume_with_memory(bundle, reward, config.clone(), &args, global)?
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

    let source = metarec_eval::shop::scenario_source(&scenario);
    let data = TrainData {
        logged: &logged,
        teacher: teacher.as_mut().map(|t| t as &mut dyn metarec_core::Policy),
    };
    let run = TrainingRun {
        args: &args,
        global,
        algo,
        catalog: &catalog,
        source,
        algos,
    };
    let metrics = run.run(&mut trainer, metrics, |trainer, hook| {
        // The scenario's simulator reveals its users, which posterior distillation learns from.
        trainer.train_revealed(&mut env, data, hook)
    })?;
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

/// The part of a training command that every data source shares: the progress bar, the
/// TensorBoard run, checkpoints every `--checkpoint-every` steps and at the end, and the report.
struct TrainingRun<'a> {
    args: &'a TrainArgs,
    global: &'a Global,
    algo: Algo,
    catalog: &'a Catalog,
    source: DataSource,
    /// Algorithms run so far, this one included.
    algos: Vec<String>,
}

/// The hook a training loop calls after each iteration.
type Hook<'h> = dyn FnMut(&Trainer, &IterationStats) -> Result<()> + 'h;

impl TrainingRun<'_> {
    /// Runs `train` (the trainer's loop, given the hook to call after each iteration) with the
    /// progress bar, TensorBoard and checkpoints, saves the bundle and writes the report;
    /// returns the per-iteration statistics of every run so far (`metrics` and this one's).
    fn run(
        &self,
        trainer: &mut Trainer,
        mut metrics: Vec<IterationStats>,
        train: impl FnOnce(&mut Trainer, &mut Hook<'_>) -> Result<()>,
    ) -> Result<Vec<IterationStats>> {
        let (args, global, algo) = (self.args, self.global, self.algo);
        let bar = global.bar(args.iterations as u64, "iterations");
        let save = |trainer: &Trainer, metrics: &[IterationStats]| {
            let manifest = Manifest::for_trainer(
                trainer,
                self.catalog,
                self.source.clone(),
                self.algos.clone(),
                metrics.to_vec(),
            );
            checkpoint::save(&args.out, &trainer.varmap, &manifest, self.catalog)
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
        let mut hook = |trainer: &Trainer, stats: &IterationStats| -> Result<()> {
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
                save(trainer, &metrics)?;
                tensorboard.flush()?;
            }
            Ok(())
        };
        train(trainer, &mut hook)?;
        bar.finish();
        save(trainer, &metrics)?;
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
        Ok(metrics)
    }
}

/// `train --shop`: supervised training on the shop's logged events (see [`TrainArgs::shop`]).
fn run_shop(args: TrainArgs, global: &Global) -> Result<()> {
    let Some(dir) = args.shop.clone() else {
        bail!("--shop is required here");
    };
    let shop = Shop::load(&dir).with_context(|| format!("cannot load shop {}", dir.display()))?;
    let resumed = if args.resume {
        let bundle = ModelBundle::load(&args.out)
            .with_context(|| format!("cannot resume from {}", args.out.display()))?;
        if let DataSource::ShopSimulator { .. } = &bundle.manifest.source {
            bail!(
                "{} was trained in {}, not on the shop's logged events: resume it there with `--algo {}`",
                args.out.display(),
                bundle.manifest.source.describe(),
                bundle
                    .manifest
                    .algos
                    .last()
                    .map_or("reinforce", String::as_str)
            );
        }
        let holdout = check_bundle(&bundle, &shop)?;
        if let Some(h) = args.holdout.filter(|h| *h != holdout) {
            bail!(
                "--holdout {h}: {} was trained with --holdout {holdout}; resume with the same split",
                args.out.display()
            );
        }
        global.progress(format!(
            "resuming {} after {} iterations",
            args.out.display(),
            bundle.manifest.iterations
        ));
        Some(bundle)
    } else {
        if args.out.join(checkpoint::MANIFEST).exists() {
            bail!(
                "{} already holds a model: pass --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        None
    };
    let holdout = match &resumed {
        Some(bundle) => match &bundle.manifest.source {
            DataSource::Shop { holdout, .. } => *holdout,
            DataSource::Scenario { .. } => bail!("the resumed model was not trained on a shop"),
            DataSource::ShopSimulator { .. } => bail!(
                "the resumed model was trained in a simulator of the shop, not on its logged events: resume it with the --algo it was trained with"
            ),
        },
        None => args.holdout.unwrap_or(0.2),
    };
    let log = shop_log(&shop, &InteractionOptions::default());
    global.progress(format!(
        "shop `{}`: {} items, {} users, {} rankings ({} with logged propensities), {} organic events",
        shop.manifest.name,
        shop.catalog.len(),
        shop.users.len(),
        log.interactions.len(),
        log.logged_propensities.iter().filter(|l| **l).count(),
        log.organic.len()
    ));
    let weighting = match args.weighting {
        WeightingArg::None => Weighting::None,
        WeightingArg::Ips => Weighting::Ips {
            max_weight: args.max_weight,
        },
    };
    let data = training_data(
        &shop,
        &log,
        &ShopTrainConfig {
            holdout,
            weighting,
            negatives: args.negatives,
            seed: args.seed,
        },
    )?;
    if args.catalog_softmax && !data.organic {
        bail!(
            "--catalog-softmax: shop `{}` logs impressions, so its rankings say which shown items were passed over; the catalog softmax is for shops that log none (it would count every item never shown as passed over)",
            shop.manifest.name
        );
    }
    global.progress(format!(
        "training on {} {} (the latest {holdout} by time held out: {}){}",
        data.interactions.len(),
        if data.organic {
            "slates of a bought or clicked item and sampled negatives (the shop logs no impressions)"
        } else {
            "logged rankings"
        },
        data.held_out.len(),
        match &data.weights {
            Some(w) => format!(
                "; inverse propensity weights clipped at {} x the mean ({} of {} entries clipped, Kish's effective size {:.0})",
                args.max_weight, w.clipped, w.entries, w.effective
            ),
            None => String::new(),
        }
    ));
    let (reward, mut config) = settings(&args, &RewardFn::default(), Algo::Supervised)?;
    // A model trained with the catalog softmax keeps it when resumed: its scores are log-odds
    // of a choice out of the catalog, and the slate cross-entropy would read them otherwise.
    config.catalog_softmax |= resumed
        .as_ref()
        .is_some_and(|b| b.manifest.train.catalog_softmax);
    let (catalog, mut trainer, algos, metrics) = match resumed {
        Some(bundle) => {
            let catalog = (*bundle.catalog).clone();
            let (trainer, mut algos, metrics) =
                resume_with_memory(bundle, reward, config, &args, global)?;
            algos.push(Algo::Supervised.name().to_owned());
            (catalog, trainer, algos, metrics)
        }
        None => {
            let catalog = catalog_with_titles(&shop, args.text_dims, args.seed, global)?;
            let trainer = Trainer::new(&catalog, reward, config)?;
            (
                catalog,
                trainer,
                vec![Algo::Supervised.name().to_owned()],
                Vec::new(),
            )
        }
    };
    let run = TrainingRun {
        args: &args,
        global,
        algo: Algo::Supervised,
        catalog: &catalog,
        source: shop_source(&shop, &dir.display().to_string(), holdout),
        algos,
    };
    let logged = LoggedData {
        interactions: &data.interactions,
        weights: data.entry_weights(),
    };
    let metrics = run.run(&mut trainer, metrics, |trainer, hook| {
        trainer.train_logged(logged, hook)
    })?;
    let auc = click_auc(trainer.frozen(), &trainer.features, &data.held_out);
    println!(
        "trained {} (supervised on shop `{}`) for {} iterations in total; last loss {:.4}",
        args.out.display(),
        shop.manifest.name,
        trainer.iterations_done,
        metrics.last().map_or(f64::NAN, |m| m.loss)
    );
    match auc.auc {
        Some(a) => println!(
            "held-out click AUC {a:.4} over {} shown items ({} clicked; 0.5 is chance)",
            auc.entries, auc.clicks
        ),
        None => println!(
            "held-out click AUC: n/a ({} shown items, {} clicked: needs both kinds)",
            auc.entries, auc.clicks
        ),
    }
    println!(
        "next: metarec meta-train --model {out} --shop {shop}; metarec serve --model {out}",
        out = args.out.display(),
        shop = dir.display()
    );
    Ok(())
}

/// The shop's catalog, with the first `text_dims` principal components of its titles' MiniLM
/// embeddings as features when asked (or by default, when the catalog has titles and the
/// encoder is fetched).
fn catalog_with_titles(
    shop: &Shop,
    text_dims: Option<usize>,
    seed: u64,
    global: &Global,
) -> Result<Catalog> {
    let catalog = &shop.catalog;
    let has_titles = catalog.ids().any(|id| catalog.title(id).is_some());
    let fetched = global.data.is_present(Dataset::MiniLm);
    let k = match text_dims {
        Some(0) => return Ok(catalog.clone()),
        Some(k) => {
            if !has_titles {
                bail!(
                    "--text-dims {k}: the catalog of shop `{}` has no titles to embed",
                    shop.manifest.name
                );
            }
            if !fetched {
                bail!(
                    "--text-dims {k}: the title encoder is not in {}: run `metarec data fetch minilm` first (or pass --text-dims 0)",
                    global.data.root().display()
                );
            }
            k
        }
        None if has_titles && fetched => DEFAULT_TEXT_DIMS,
        None => {
            if has_titles {
                global.progress(
                    "no title features: run `metarec data fetch minilm` to add them (--text-dims)",
                );
            }
            return Ok(catalog.clone());
        }
    };
    let keys = catalog.keys().to_vec();
    let titles = crate::embed::catalog_titles(catalog);
    let embeddings = crate::embed::embed_titles(keys, &titles, None, TEXT_BATCH, global)?;
    if k > embeddings.dim {
        bail!(
            "--text-dims {k}: the encoder's embeddings have only {} dimensions",
            embeddings.dim
        );
    }
    global.progress(format!(
        "adding {k} title features (principal components of {}-dimensional MiniLM embeddings)",
        embeddings.dim
    ));
    Ok(with_title_features(
        catalog,
        &embeddings.vectors,
        embeddings.dim,
        k,
        seed,
    )?)
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

/// A trainer that continues `bundle`'s training with `config` (its architecture replaced by the
/// bundle's), with the algorithms and per-iteration metrics the bundle's manifest records.
pub(crate) fn resume_trainer(
    bundle: ModelBundle,
    reward: RewardFn,
    mut config: TrainConfig,
) -> Result<(Trainer, Vec<String>, Vec<IterationStats>)> {
    config.model = bundle.manifest.model;
    let trainer = Trainer::resume(
        (*bundle.network.features).clone(),
        bundle.varmap,
        bundle.model,
        reward,
        config,
        bundle.manifest.iterations,
    )?;
    Ok((trainer, bundle.manifest.algos, bundle.manifest.metrics))
}

/// A trainer that continues `bundle`'s training, in a scenario or on a shop, with the memory
/// `--memory` asks for: the model's own when the option is absent; a model without a memory
/// gains one (`widen_to_memory`, starting from the model's own scores); a trained memory's
/// window cannot change.
fn resume_with_memory(
    bundle: ModelBundle,
    reward: RewardFn,
    config: TrainConfig,
    args: &TrainArgs,
    global: &Global,
) -> Result<(Trainer, Vec<String>, Vec<IterationStats>)> {
    let had = bundle.manifest.model.memory;
    let wanted = args.memory.unwrap_or(had);
    if wanted > 0 && had == 0 {
        global.progress(format!(
            "the model gains a long-run memory (recent window {wanted} events)"
        ));
        return resume_widened(bundle, reward, config, |varmap, model, features| {
            metarec_neural::model::widen_to_memory(varmap, model, features, args.seed, wanted)
        });
    }
    if wanted != had {
        bail!(
            "--memory {wanted}: the model's recent window is {had} events, and a trained memory cannot change"
        );
    }
    resume_trainer(bundle, reward, config)
}

/// A trainer that continues `bundle`'s training in a wider network: `widen` builds it from the
/// bundle's variables, architecture and features (`widen_to_set`, `widen_to_memory`), and the
/// training keeps the bundle's iteration count, algorithms and metrics.
pub(crate) fn resume_widened(
    bundle: ModelBundle,
    reward: RewardFn,
    config: TrainConfig,
    widen: impl FnOnce(
        &metarec_neural::VarMap,
        ModelConfig,
        &metarec_neural::features::Features,
    ) -> Result<
        (
            metarec_neural::VarMap,
            metarec_neural::model::TwoTower,
            ModelConfig,
        ),
        metarec_neural::NeuralError,
    >,
) -> Result<(Trainer, Vec<String>, Vec<IterationStats>)> {
    let (varmap, network, wide) = widen(
        &bundle.varmap,
        bundle.manifest.model,
        &bundle.network.features,
    )?;
    let trainer = Trainer::resume(
        (*bundle.network.features).clone(),
        varmap,
        network,
        reward,
        TrainConfig {
            model: wide,
            ..config
        },
        bundle.manifest.iterations,
    )?;
    Ok((trainer, bundle.manifest.algos, bundle.manifest.metrics))
}

/// The teacher of distillation, by name.
pub(crate) fn build_teacher(
    name: &str,
    scenario: &metarec_sim::Scenario,
    reward: &RewardFn,
    seed: u64,
) -> Result<metarec_sim::InformedPolicy> {
    PolicySpec::teacher(name, scenario, reward, seed)
        .map_err(|e| anyhow::anyhow!("--teacher {name}: {e}"))
}

/// The reward (the options over `base`) and the training settings the options ask for.
fn settings(args: &TrainArgs, base: &RewardFn, algo: Algo) -> Result<(RewardFn, TrainConfig)> {
    if args.imitate_depth > 0 && algo != Algo::Distill {
        anyhow::bail!(
            "--imitate-depth {} needs --algo distill (it sets how much of the teacher's ranking to imitate)",
            args.imitate_depth
        );
    }
    let reward = RewardFn::new(
        args.click.unwrap_or(base.click_weight()),
        args.purchase.unwrap_or(base.purchase_weight()),
        args.revenue.unwrap_or(base.revenue_weight()),
        args.gamma.unwrap_or(base.gamma()),
    )?;
    let config = TrainConfig {
        algo,
        model: ModelConfig {
            hidden: args.hidden,
            embed: args.embed,
            temperature: args.temperature,
            feedback: !args.no_feedback,
            encoder: match args.encoder {
                EncoderArg::Mean => Encoder::Mean,
                EncoderArg::Set => Encoder::Set,
            },
            set_width: args.set_width,
            memory: args.memory.unwrap_or(metarec_neural::model::DEFAULT_MEMORY),
            ..ModelConfig::default()
        },
        iterations: args.iterations,
        batch: args.batch,
        learning_rate: args.lr,
        entropy: args.entropy,
        seed: args.seed,
        user_streams: args.user_streams,
        imitate_depth: args.imitate_depth,
        catalog_softmax: args.catalog_softmax,
        rollout_temperature: args.rollout_temperature,
        ..TrainConfig::default()
    };
    Ok((reward, config))
}
