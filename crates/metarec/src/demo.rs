//! `metarec demo`: the main job end to end on the shipped data: calibrate the simulator on
//! Online Retail, fine-tune the shipped pretrained neural policy (or train one from scratch),
//! meta-train its strategy adjuster, run the cold-start arena against the baselines, print the
//! table and write a report directory.

use crate::Global;
use crate::args::{MAX_ITERATIONS, MAX_SEEDS, MAX_USERS, count, whole};
use anyhow::{Context as _, Result};
use clap::Args;
use metarec_core::{Environment, RewardFn};
use metarec_eval::PolicySpec;
use metarec_eval::arena::{ArenaConfig, run_arena};
use metarec_neural::adjust::HeadInput;
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::model::{Encoder, ModelConfig};
use metarec_neural::train::{Algo, TrainConfig, TrainData, Trainer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Distillation iterations that fine-tune the shipped network by default: about a minute on 2
/// cores, enough to show the training path and its curve without spending the demo's budget.
const FINE_TUNE_ITERATIONS: usize = 40;

/// Actor-critic iterations of each arm of the gamma ablation by default (batches of 256
/// simulated users, fine-tuning the demo's network).
const GAMMA_ABLATION_ITERATIONS: usize = 20;

/// Posterior-distillation iterations of a network trained from scratch by default: about four
/// minutes on 2 cores, the time 300 iterations of distilling the informed yardstick took (the
/// shipped network had 1,650 of those).
const FROM_SCRATCH_ITERATIONS: usize = 1200;

/// The temperature a network trained from scratch samples its visits at: a fifth of the model's,
/// so that posterior distillation, whose first-position probabilities are proportional to each
/// item's value, visits states near those its greedy slates reach.
const FROM_SCRATCH_ROLLOUT_TEMPERATURE: f64 = 0.2;

/// The architecture of the demo's network: the shipped network's widths and memory, with the
/// set encoder the demo widens it to. `bench neural` times the adjusters on it.
pub(crate) fn network_config() -> ModelConfig {
    ModelConfig {
        hidden: 64,
        embed: 32,
        memory: metarec_neural::model::DEFAULT_MEMORY,
        encoder: Encoder::Set,
        ..ModelConfig::default()
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// Report directory (calibration, training curve, model, arena table and JSON).
    #[arg(long, default_value = "report", value_name = "DIR")]
    out: PathBuf,
    /// Distillation iterations of the neural policy (batches of 256 simulated users): fine-tuning
    /// the shipped pretrained network (0 keeps it as shipped) [default: 40], or with
    /// --from-scratch training a new one by posterior distillation [default: 1200].
    #[arg(long, value_parser = whole::<usize>(0, MAX_ITERATIONS))]
    iterations: Option<usize>,
    /// Train the neural policy from scratch instead of fine-tuning the shipped pretrained one.
    #[arg(long)]
    from_scratch: bool,
    /// Skip the ablation networks (the averaging user tower, and gamma 0 against gamma 0.9); the arena
    /// still plays the adjuster off and the adjuster before meta-training.
    #[arg(long)]
    no_ablations: bool,
    /// Actor-critic iterations that fine-tune the demo's network in each arm of the gamma
    /// ablation (gamma 0 against gamma 0.9, the same users and seeds in both).
    #[arg(long, default_value_t = GAMMA_ABLATION_ITERATIONS, value_parser = whole::<usize>(0, MAX_ITERATIONS))]
    ablation_iterations: usize,
    /// New users per arena seed.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(MAX_USERS))]
    users: usize,
    /// Arena seeds.
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(MAX_SEEDS))]
    seeds: usize,
    /// Training users per prior scale when meta-training the adjuster.
    #[arg(long, default_value_t = 600, value_parser = count::<usize>(MAX_USERS))]
    meta_users: usize,
    /// Simulated users per yardstick policy in the calibration report.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(MAX_USERS))]
    calibration_users: usize,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
}

use crate::report::{write_results, write_text as write};

pub fn run(args: DemoArgs, global: &Global) -> Result<()> {
    let start = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    global.progress("1/5 calibrating the simulator on the shipped Online Retail data");
    let scenario = crate::sim::build_scenario("default", global)?;
    let spinner = global.spinner("simulating the yardstick policies");
    let calibration = metarec_sim::calibrate::report(&scenario, args.calibration_users);
    spinner.finish_and_clear();
    write(&args.out.join("calibration.txt"), &calibration.to_string())?;
    write_results(
        &args.out.join("calibration.json"),
        "calibration",
        &calibration,
    )?;

    let base = scenario.config.reward;
    let reward = RewardFn::new(
        base.click_weight(),
        base.purchase_weight(),
        base.revenue_weight(),
        0.0,
    )?;
    let mut env = scenario.env_with_seed(scenario.config.seed ^ 0x6465_6d6f);
    let catalog = env.catalog().clone();
    let iterations = args.iterations.unwrap_or(if args.from_scratch {
        FROM_SCRATCH_ITERATIONS
    } else {
        FINE_TUNE_ITERATIONS
    });
    // From scratch the network learns by posterior distillation, which needs no particle filter
    // and so takes many more iterations in the same time; fine-tuning the shipped network keeps
    // distilling the yardstick it was made from (posterior distillation from it lowered it).
    let config = if args.from_scratch {
        TrainConfig {
            algo: Algo::Posterior,
            model: network_config(),
            iterations,
            batch: 256,
            entropy: 0.0,
            rollout_temperature: Some(FROM_SCRATCH_ROLLOUT_TEMPERATURE),
            ..TrainConfig::default()
        }
    } else {
        TrainConfig {
            algo: Algo::Distill,
            model: network_config(),
            iterations,
            batch: 256,
            entropy: 0.0,
            imitate_depth: crate::pretrained::IMITATE_DEPTH,
            ..TrainConfig::default()
        }
    };
    let seed = config.seed;
    let model = args.out.join("model");
    let (mut trainer, mut algos, mut metrics) = if args.from_scratch {
        global.progress(format!(
            "2/5 training the neural policy from scratch: {iterations} iterations of posterior \
             distillation (learning every item's value for the hidden user) on 256 simulated users"
        ));
        (
            Trainer::new(&catalog, reward, config.clone())?,
            Vec::new(),
            Vec::new(),
        )
    } else {
        let bundle = crate::pretrained::unpack(&model)?;
        metarec_eval::policies::check_catalog("the shipped pretrained network", &bundle, &scenario)
            .context("the default scenario no longer matches the shipped network: run `metarec demo --from-scratch`, or rebuild the network with scripts/pretrain")?;
        global.progress(format!(
            "2/5 the shipped neural policy (pretrained for {} iterations, weights SHA-256 {}) with a set encoder, fine-tuned by {iterations} iterations of distilling the `{}` yardstick's ranking of its best {} items on 256 simulated users",
            bundle.manifest.iterations,
            &crate::pretrained::WEIGHTS_SHA256[..12],
            crate::pretrained::TEACHER,
            crate::pretrained::IMITATE_DEPTH
        ));
        // The shipped network averages the user's item vectors; the demo's network reads them
        // through the set encoder as well, widened so that it starts scoring exactly as the
        // shipped one and learns what the encoder adds while it is fine-tuned (measured in the
        // demo's table: the averaging tower, trained the same way, is the encoder ablation).
        crate::train::resume_widened(bundle, reward, config.clone(), |varmap, model, features| {
            metarec_neural::model::widen_to_set(varmap, model, features, seed)
        })?
    };
    let mut teacher = teacher_of(&config, &scenario, &reward)?;
    fit(
        global,
        &args.logdir.logdir,
        &model,
        &mut trainer,
        &mut env,
        teacher.as_mut(),
    )?;
    algos.push(config.algo.name().to_owned());
    metrics.extend(trainer.history.iter().cloned());
    save(&trainer, &catalog, &scenario, algos, metrics, &model)?;
    let mut bundle = ModelBundle::load(&model)?;
    let trained_iterations = bundle.manifest.iterations;
    // The whole curve: the shipped network's pretraining, then this run's iterations.
    let curve: String = bundle
        .manifest
        .metrics
        .iter()
        .map(|s| {
            format!(
                "{}\t{:.4}\t{:.4}\n",
                s.iteration, s.reward_per_user, s.entropy
            )
        })
        .collect();
    write(
        &args.out.join("training.tsv"),
        &format!("iteration\treward_per_user\tentropy\n{curve}"),
    )?;

    let ablations = if args.no_ablations {
        None
    } else {
        Some(ablation_networks(
            &args, global, &scenario, reward, config, &model,
        )?)
    };

    global.progress("3/5 meta-training the strategy adjuster on training users");
    let grid = [0.03, 0.1, 0.3, 1.0, 3.0];
    let bar = global.bar(
        metarec_eval::meta::bayes_progress_steps(grid.len(), false) as u64,
        "settings",
    );
    let adjuster = metarec_eval::meta::meta_train_bayes(
        &scenario,
        &bundle,
        &grid,
        args.meta_users,
        11,
        false,
        HeadInput::History,
        &|l| global.step(&bar, l),
    );
    bar.finish_and_clear();
    let adjuster = adjuster?;
    let unfitted = unfitted_copy(&model, &args.out.join("model-unfitted"), &adjuster)?;
    let alone = adjuster_alone(&args, global, &scenario, &model)?;
    bundle.set_adjuster(adjuster.clone())?;
    // The arena plays the bundle in memory: nothing is loaded again.
    let mut loaded = vec![Arc::new(bundle)];
    crate::report::log_meta(&args.logdir.logdir, &model, 11, &adjuster)?;

    global.progress(format!(
        "4/5 cold-start arena: {} new users x {} seeds per policy",
        args.users, args.seeds
    ));
    let m = model.display().to_string();
    let u = unfitted.display().to_string();
    let a = alone.display().to_string();
    // `neural-static` is the ablation of per-user adaptation itself: the same network ranking
    // every user as a new one, so the table shows what reading a user's feedback is worth.
    // `served` is the adjusted model as `metarec serve` serves it, played over HTTP, so the
    // table shows what a shop's users get from the server. `adjusted:` of the model whose
    // adjuster corrects the head of a new user is the Bayesian adjuster on its own, the only
    // learner of each user (`neural-static` plus the adjuster), against the tower's inference.
    let mut names = format!(
        "random,popularity,itemknn,linucb,lints,neural:{m},neural-greedy:{m},adjusted:{m},served:{m},adjusted:{u},neural-static:{m},adjusted:{a}"
    );
    // Against `neural-static` too: what each way of learning a user (the tower's reading of
    // the history, the adjuster alone, both) adds to the network that learns nothing.
    let mut paired_against = vec![
        "lints".to_string(),
        format!("neural-greedy:{m}"),
        format!("neural-static:{m}"),
    ];
    if let Some(a) = &ablations {
        let (mean, g0, g9) = (
            a.mean.display().to_string(),
            a.gamma0.display().to_string(),
            a.gamma9.display().to_string(),
        );
        names.push_str(&format!(
            ",neural-greedy:{mean},neural-greedy:{g0},neural-greedy:{g9}"
        ));
        paired_against.push(format!("neural-greedy:{g0}"));
    }
    names.push_str(",oracle,planner,informed");
    let mut contestants = PolicySpec::parse_list(&names)?;
    for spec in &mut contestants {
        spec.load(&mut loaded)?;
    }
    // The server child lives until the demo returns.
    let (_server, served_failure) = crate::served::link_servers(&mut contestants, global)?;
    let arena_config = ArenaConfig {
        users: args.users,
        seeds: args.seeds,
        paired_against,
        ..ArenaConfig::default()
    };
    let bar = global.bar((contestants.len() * args.seeds) as u64, "jobs");
    let report = run_arena(&scenario, &contestants, &arena_config, &|line| {
        global.step(&bar, line)
    });
    bar.finish_and_clear();
    if let Some(message) = crate::served::failure(&served_failure) {
        anyhow::bail!("the served model failed: {message}");
    }
    let report = report?;
    crate::report::log_arena(&args.logdir.logdir, &report)?;
    global.progress("5/5 writing the report");
    write(&args.out.join("arena.txt"), &report.to_string())?;
    write_results(&args.out.join("arena.json"), "arena", &report)?;
    let page = crate::report::write_report(
        &args.out,
        "metarec demo report",
        &[
            ("arena.json".into(), args.out.join("arena.json")),
            (
                "model/manifest.json".into(),
                model.join(checkpoint::MANIFEST),
            ),
            (
                "model/adjuster.json".into(),
                model.join(metarec_neural::adjust::ADJUSTER_FILE),
            ),
            ("calibration.json".into(), args.out.join("calibration.json")),
        ],
    )?;
    let summary = format!(
        "metarec demo report\n\n\
         index.html               open in a browser: arena table, cold-start curves with 95% bands, plots\n\
         calibration.txt / .json  the simulator fitted to Online Retail, real vs simulated purchases\n\
         training.tsv             reward per user while training ({} iterations of 256 users, {})\n\
         model/                   the model bundle (model.safetensors, catalog.json, manifest.json, adjuster.json)\n\
         model-unfitted/          the same network with the adjuster's settings before meta-training (an ablation)\n\
         model-alone/             the same network with a Bayesian adjuster that alone learns each user: the tower reads them as new (an ablation)\n\
         {}\
         arena.txt / .json        the cold-start arena on new users ({} x {} seeds); neural-static is the network without per-user adaptation (an ablation)\n\n\
         adjuster prior scale chosen by meta-training: {} (grid: {:?})\n\
         total time: {:.0} s\n",
        trained_iterations,
        if args.from_scratch {
            "from scratch, by posterior distillation".to_owned()
        } else {
            format!(
                "the last {iterations} fine-tuning the shipped network by distilling the informed yardstick"
            )
        },
        if ablations.is_some() {
            format!(
                "model-mean/              the same training with the averaging user tower in place of the set encoder (an ablation)\n\
                 model-gamma0/            the demo's network fine-tuned by {n} actor-critic iterations with gamma 0 (an ablation)\n\
                 model-gamma0.9/          ... and with gamma 0.9, on the same users and seeds\n",
                n = args.ablation_iterations
            )
        } else {
            String::new()
        },
        args.users,
        args.seeds,
        adjuster.config.prior_scale,
        adjuster.grid,
        start.elapsed().as_secs_f64()
    );
    write(&args.out.join("README.txt"), &summary)?;
    print!("{report}");
    println!(
        "\nreport written to {} ({}) in {:.0} s",
        args.out.display(),
        page.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The yardstick a distilling `config` imitates, or `None` for an algorithm without a teacher.
fn teacher_of(
    config: &TrainConfig,
    scenario: &metarec_sim::Scenario,
    reward: &RewardFn,
) -> Result<Option<metarec_sim::InformedPolicy>> {
    if config.algo != Algo::Distill {
        return Ok(None);
    }
    let teacher =
        crate::train::build_teacher(crate::pretrained::TEACHER, scenario, reward, config.seed)?;
    Ok(Some(teacher))
}

/// Trains `trainer` for its configured iterations on `env`, distilling `teacher` when given,
/// with a progress bar and a TensorBoard run for the model in `dir`. The simulator reveals its
/// users, which posterior distillation learns from.
fn fit(
    global: &Global,
    logdir: &Path,
    dir: &Path,
    trainer: &mut Trainer,
    env: &mut impl metarec_core::Oracle,
    teacher: Option<&mut metarec_sim::InformedPolicy>,
) -> Result<()> {
    let algo = trainer.config.algo;
    let mut tensorboard =
        crate::report::training_run(logdir, dir, algo.name(), trainer.config.seed)?;
    let bar = global.bar(trainer.config.iterations as u64, "iterations");
    let mut window = Vec::new();
    let data = TrainData {
        logged: &[],
        teacher: teacher.map(|t| t as &mut dyn metarec_core::Policy),
    };
    trainer.train_revealed(env, data, |_, s| -> Result<()> {
        crate::report::log_iteration(&mut tensorboard, s)?;
        window.push(s.reward_per_user);
        if window.len() > 20 {
            window.remove(0);
        }
        bar.set_message(format!(
            "reward/user {:.2}",
            window.iter().sum::<f64>() / window.len() as f64
        ));
        bar.inc(1);
        Ok(())
    })?;
    bar.finish();
    tensorboard.flush()?;
    Ok(())
}

/// Where the ablation networks were saved.
struct Ablations {
    /// The averaging user tower in place of the set encoder, trained as the demo's network is.
    mean: PathBuf,
    /// The demo's network fine-tuned by actor-critic with gamma 0 ...
    gamma0: PathBuf,
    /// ... and with gamma 0.9, on the same users and seeds.
    gamma9: PathBuf,
}

/// Trains the ablation networks beside the demo's network in `model`:
/// - the encoder ablation: the same training (`config`, the same teacher and users) with the
///   averaging user tower in place of the set encoder. Fine-tuning starts from the shipped
///   network as the demo's does, which the demo widens to a set network that starts scoring
///   exactly as the shipped one ([`metarec_neural::model::widen_to_set`]), so the two arms
///   differ only in what the encoder adds while they train;
/// - the gamma ablation: the demo's network fine-tuned by actor-critic on the scenario's reward
///   with gamma 0 (greedy) and with gamma 0.9, on the same users and seeds.
fn ablation_networks(
    args: &DemoArgs,
    global: &Global,
    scenario: &metarec_sim::Scenario,
    reward: RewardFn,
    config: TrainConfig,
    model: &Path,
) -> Result<Ablations> {
    let env_seed = scenario.config.seed ^ 0x6465_6d6f;
    let catalog = scenario.env_with_seed(env_seed).catalog().clone();
    let mean = args.out.join("model-mean");
    global.progress(format!(
        "2/5 ablation: the same {} iterations with the averaging user tower in place of the set encoder",
        config.iterations
    ));
    let mean_config = TrainConfig {
        model: ModelConfig {
            encoder: Encoder::Mean,
            ..config.model
        },
        ..config
    };
    let (mut trainer, mut algos, mut metrics) = if args.from_scratch {
        (
            Trainer::new(&catalog, reward, mean_config)?,
            Vec::new(),
            Vec::new(),
        )
    } else {
        let bundle = crate::pretrained::unpack(&mean)?;
        crate::train::resume_trainer(bundle, reward, mean_config)?
    };
    let mut env = scenario.env_with_seed(env_seed);
    let mut teacher = teacher_of(&config, scenario, &reward)?;
    fit(
        global,
        &args.logdir.logdir,
        &mean,
        &mut trainer,
        &mut env,
        teacher.as_mut(),
    )?;
    algos.push(config.algo.name().to_owned());
    metrics.extend(trainer.history.iter().cloned());
    save(&trainer, &catalog, scenario, algos, metrics, &mean)?;

    let mut arms = Vec::new();
    for gamma in [0.0, 0.9] {
        let dir = args.out.join(format!("model-gamma{gamma}"));
        global.progress(format!(
            "2/5 ablation: the demo's network fine-tuned by {} actor-critic iterations with gamma {gamma}",
            args.ablation_iterations
        ));
        let arm_reward = RewardFn::new(
            reward.click_weight(),
            reward.purchase_weight(),
            reward.revenue_weight(),
            gamma,
        )?;
        let rl = TrainConfig {
            algo: Algo::ActorCritic,
            iterations: args.ablation_iterations,
            batch: 256,
            // A gentler step than training from scratch: the arms start from a trained
            // network and should move it by what their objectives differ in, not unlearn it.
            learning_rate: 1e-3,
            entropy: 0.01,
            // Policy gradients learn from slates drawn at the model's own temperature.
            rollout_temperature: None,
            ..config
        };
        let bundle = ModelBundle::load(model)?;
        let (mut trainer, mut algos, mut metrics) =
            crate::train::resume_trainer(bundle, arm_reward, rl)?;
        let mut env = scenario.env_with_seed(env_seed ^ 0x6761_6d6d);
        fit(
            global,
            &args.logdir.logdir,
            &dir,
            &mut trainer,
            &mut env,
            None,
        )?;
        algos.push(Algo::ActorCritic.name().to_owned());
        metrics.extend(trainer.history.iter().cloned());
        save(&trainer, &catalog, scenario, algos, metrics, &dir)?;
        arms.push(dir);
    }
    let gamma9 = arms.pop().unwrap_or_default();
    let gamma0 = arms.pop().unwrap_or_default();
    Ok(Ablations {
        mean,
        gamma0,
        gamma9,
    })
}

/// Saves a trainer's network as a bundle in `dir`, with the training history `algos` and
/// `metrics`.
fn save(
    trainer: &Trainer,
    catalog: &metarec_core::Catalog,
    scenario: &metarec_sim::Scenario,
    algos: Vec<String>,
    metrics: Vec<metarec_neural::train::IterationStats>,
    dir: &Path,
) -> Result<()> {
    let manifest = Manifest::for_trainer(
        trainer,
        catalog,
        metarec_eval::shop::scenario_source(scenario),
        algos,
        metrics,
    );
    checkpoint::save(dir, &trainer.varmap, &manifest, catalog)?;
    Ok(())
}

/// Copies the network of the model in `model` (weights, manifest, catalog; no adjuster) into
/// `dir`, for an ablation that gives the same network another adjuster.
fn copy_network(model: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for name in [
        checkpoint::WEIGHTS,
        checkpoint::MANIFEST,
        checkpoint::CATALOG,
    ] {
        let bytes = std::fs::read(model.join(name))
            .with_context(|| format!("cannot read {}", model.join(name).display()))?;
        metarec_data::log::atomic_write(&dir.join(name), |out| {
            std::io::Write::write_all(out, &bytes)
        })
        .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// The ablation of the network's own inference: a copy of the model in `model-alone/` whose
/// Bayesian adjuster corrects the head the tower gives a new user (`--head new-user`), so the
/// adjuster alone learns each user, meta-trained on the same training users as the demo's own
/// (its calibration fitted to the new user's head, prior scales from 0.1 to 3, the broader
/// range a correction that carries all the user's evidence needs).
fn adjuster_alone(
    args: &DemoArgs,
    global: &Global,
    scenario: &metarec_sim::Scenario,
    model: &std::path::Path,
) -> Result<PathBuf> {
    let dir = args.out.join("model-alone");
    copy_network(model, &dir)?;
    // An adjuster an earlier run left in the directory is read as stale or fitted, and
    // replaced by this one's either way.
    let bundle = ModelBundle::load(&dir)?;
    global.progress(
        "3/5 ablation: the Bayesian adjuster alone, correcting the head of a new user (the tower reads no history)",
    );
    let grid = [0.1, 0.3, 1.0, 3.0];
    let bar = global.bar(
        metarec_eval::meta::bayes_progress_steps(grid.len(), false) as u64,
        "settings",
    );
    let alone = metarec_eval::meta::meta_train_bayes(
        scenario,
        &bundle,
        &grid,
        args.meta_users,
        11,
        false,
        HeadInput::NewUser,
        &|l| global.step(&bar, l),
    );
    bar.finish_and_clear();
    alone?;
    Ok(dir)
}

/// The ablation of meta-training: a copy of the model in `dir` whose adjuster keeps the settings
/// it has before any meta-training (`BayesConfig::default()`: prior scale 0.3, Thompson
/// sampling, the network's scores read as click log-odds as they are, no position term), so the
/// arena shows what meta-training adds over the same network and the same kind of adjuster.
fn unfitted_copy(
    model: &std::path::Path,
    dir: &std::path::Path,
    fitted: &metarec_neural::adjust::AdjusterManifest,
) -> Result<PathBuf> {
    copy_network(model, dir)?;
    let manifest = metarec_neural::adjust::AdjusterManifest {
        kind: "bayes".into(),
        config: metarec_neural::adjust::BayesConfig::default(),
        gradient: None,
        grid: Vec::new(),
        mean_grid: Vec::new(),
        prior_shape: Vec::new(),
        shaped_grid: Vec::new(),
        users: 0,
        held_out: None,
        offline: None,
        weights_sha256: fitted.weights_sha256.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    let path = dir.join(metarec_neural::adjust::ADJUSTER_FILE);
    metarec_data::log::atomic_write(&path, |out| std::io::Write::write_all(out, text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(dir.to_path_buf())
}
