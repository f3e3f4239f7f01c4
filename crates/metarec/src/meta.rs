//! `metarec meta-train`: meta-trains the strategy adjuster of a trained model, on simulated
//! training users or offline on a shop's logged users (`--shop`).

use crate::Global;
use crate::args::{MAX_USERS, count, fraction, positive};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_data::shop::Shop;
use metarec_data::shop::interactions::{InteractionOptions, shop_log};
use metarec_eval::meta::shop::{AdjusterKind, OfflineConfig, meta_train_shop};
use metarec_eval::shop::{check_bundle, training_histories};
use metarec_neural::adjust::{AdjusterManifest, HeadInput};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::DataSource;
use std::path::PathBuf;

/// The largest prior scale or inner step size in a grid: the network's head has weights of order
/// one, so a million is already far past any setting worth trying.
const MAX_GRID_VALUE: f64 = 1e6;

#[derive(Args)]
pub struct MetaTrainArgs {
    /// A preset name or a scenario TOML file (default: the one the model was trained on, as its
    /// bundle records it).
    #[arg(long, conflicts_with = "shop")]
    scenario: Option<String>,
    /// Meta-train on the shop the model was trained on. A model trained on its logged events
    /// (`metarec train --shop`) meta-trains offline on its logged users: each user's history in
    /// the training part is a task, the adjuster updated on the first --support interactions
    /// and judged on the rest by their clicks' log-likelihood, against the network alone. A
    /// model trained in a simulator of the shop (`train --shop --algo reinforce`) meta-trains
    /// on simulated users of that simulator, rebuilt from this shop directory.
    #[arg(long, value_name = "SHOP")]
    shop: Option<PathBuf>,
    /// Interactions in each user's support set (--shop); users with no more are not tasks.
    #[arg(long, default_value_t = 3, requires = "shop", value_parser = count::<usize>(1000))]
    support: usize,
    /// The share of tasks held out as validation users, who take part in no choice and on whom
    /// the chosen setting's gain is reported (--shop).
    #[arg(long, default_value_t = 0.2, requires = "shop", value_parser = fraction)]
    validation: f64,
    /// Decide by Thompson sampling (bayes, --shop); by default by the posterior mean, since a
    /// log cannot tell what exploring would have found (meta-training on simulated users
    /// chooses between the two by reward).
    #[arg(long, requires = "shop")]
    thompson: bool,
    /// Sampled negatives per purchase or click when the shop logs no impressions (--shop).
    #[arg(long, default_value_t = 4, requires = "shop", value_parser = count::<usize>(1000))]
    negatives: usize,
    /// The adjuster: `bayes` (a per-user Bayesian correction of the network's head, Thompson
    /// sampling) or `gradient` (first-order MAML / Reptile: gradient steps on the head from a
    /// meta-learned initial correction).
    #[arg(long, default_value = "bayes")]
    adjuster: String,
    /// The trained model directory (from `metarec train`); `adjuster.json` is written into it.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Training users per setting (gradient: half as many more judge each step size); with
    /// --shop, every user with enough history is used.
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
    /// What the network's user tower reads for the head the adjuster corrects (bayes, on
    /// simulated users): `history`, the user's context and feedback so far, so the adjuster
    /// corrects what the network inferred; or `new-user`, the user as seen for the first time,
    /// the ablation in which the adjuster alone learns from each user's feedback (what it is
    /// worth against the network's own inference is the held-out comparison it reports).
    #[arg(long, value_enum, default_value_t = HeadArg::History)]
    head: HeadArg,
    /// Seed of the training users and the policy's sampling.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
}

/// `--head`, as the command line names [`HeadInput`].
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HeadArg {
    /// The user's context with their history.
    History,
    /// The user as seen for the first time.
    NewUser,
}

impl From<HeadArg> for HeadInput {
    fn from(head: HeadArg) -> HeadInput {
        match head {
            HeadArg::History => HeadInput::History,
            HeadArg::NewUser => HeadInput::NewUser,
        }
    }
}

pub fn run(args: MetaTrainArgs, global: &Global) -> Result<()> {
    let gradient = match args.adjuster.as_str() {
        "bayes" => false,
        "gradient" => true,
        other => bail!("unknown adjuster `{other}`; expected: bayes, gradient"),
    };
    if gradient && args.head != HeadArg::History {
        bail!("--head new-user is a setting of the Bayesian adjuster (--adjuster bayes)");
    }
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
    // A model trained in a simulator of the shop meta-trains in that simulator (simulated
    // mode); a model trained on the shop's logs meta-trains offline on its logged users.
    let simulated = args.shop.is_none()
        || matches!(
            ModelBundle::load(&args.model).map(|b| b.manifest.source),
            Ok(DataSource::ShopSimulator { .. })
        );
    if !simulated {
        if args.head != HeadArg::History {
            bail!(
                "--head new-user meta-trains on simulated users; a model trained on the shop's logs meta-trains offline, where it does not apply"
            );
        }
        let kind = if gradient {
            AdjusterKind::Gradient
        } else {
            AdjusterKind::Bayes
        };
        return run_shop(&args, kind, grid, global);
    }
    let bundle = std::sync::Arc::new(metarec_neural::bundle::ModelBundle::load(&args.model)?);
    let scenario = match &args.shop {
        Some(dir) => crate::sim::bundle_scenario(&bundle, Some(dir), global)?,
        None => crate::sim::scenario_for(
            args.scenario.as_deref(),
            None,
            std::slice::from_ref(&bundle),
            global,
        )?,
    };
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
            args.head.into(),
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
    if let Some(h) = &manifest.held_out {
        println!(
            "the chosen setting on {} held-out training users (paired, no choice made on them): {:.3} reward per user against the network alone's {:.3}, gain {:+.3} [{:+.3}, {:+.3}]{}",
            h.users,
            h.adjusted,
            h.network,
            h.gain,
            h.low,
            h.high,
            if h.low > 0.0 {
                ": the adjuster adds reward"
            } else if h.high < 0.0 {
                ": the adjuster costs reward, serve neural-greedy instead"
            } else {
                ": the interval includes 0, more --users narrow it"
            }
        );
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

/// `meta-train --shop`: offline meta-training on the shop's logged users.
fn run_shop(
    args: &MetaTrainArgs,
    kind: AdjusterKind,
    grid: Vec<f64>,
    global: &Global,
) -> Result<()> {
    let Some(dir) = &args.shop else {
        bail!("--shop is required here");
    };
    let bundle = ModelBundle::load(&args.model)?;
    let shop = Shop::load(dir).with_context(|| format!("cannot load shop {}", dir.display()))?;
    let holdout = check_bundle(&bundle, &shop)?;
    let log = shop_log(&shop, &InteractionOptions::default());
    let histories = training_histories(&shop, &log, holdout, args.negatives, args.seed);
    let config = OfflineConfig {
        kind,
        grid,
        support: args.support,
        validation: args.validation,
        learn_shape: args.learn_shape,
        thompson: args.thompson,
        steps: args.steps,
        rate: args.reptile_rate,
        seed: args.seed,
    };
    global.progress(format!(
        "meta-training the {} adjuster of {} offline on shop `{}`: {} users with training-part history (the latest {holdout} held out), support sets of {}",
        if kind == AdjusterKind::Gradient { "gradient" } else { "Bayesian" },
        args.model.display(),
        shop.manifest.name,
        histories.len(),
        args.support
    ));
    let bar = global.bar(
        metarec_eval::meta::shop::progress_steps(&config) as u64,
        "steps",
    );
    let progress = |line: &str| global.step(&bar, line);
    let result = meta_train_shop(&bundle, &shop.manifest.name, &histories, &config, &progress);
    bar.finish_and_clear();
    let manifest = result?;
    let run = crate::report::log_meta(&args.logdir.logdir, &args.model, args.seed, &manifest)?;
    global.progress(format!("TensorBoard run: {}", run.display()));
    print_offline(&manifest, kind);
    println!(
        "wrote {}; serve it: metarec serve --model {}",
        args.model
            .join(metarec_neural::adjust::ADJUSTER_FILE)
            .display(),
        args.model.display()
    );
    Ok(())
}

/// The offline meta-training table: every setting's query log-likelihood against the network
/// alone, and the chosen setting's gain on validation users.
fn print_offline(manifest: &AdjusterManifest, kind: AdjusterKind) {
    let Some(o) = &manifest.offline else {
        return;
    };
    let (chosen, shaped) = match (&manifest.gradient, kind) {
        (Some(g), AdjusterKind::Gradient) => (g.step_size, false),
        _ => (
            manifest.config.prior_scale,
            !manifest.prior_shape.is_empty(),
        ),
    };
    println!(
        "query log-likelihood of clicks per shown item, mean over {} users' queries after their first {} interactions",
        if kind == AdjusterKind::Gradient {
            "the judging half of the selection"
        } else {
            "the selection"
        },
        o.support
    );
    println!(
        "{:>12}  {:>10}  {:>16}  {:>12}",
        "setting", "prior", "log-likelihood", "vs network"
    );
    println!(
        "{:>12}  {:>10}  {:>16.5}  {:>12}",
        "network", "", o.network, ""
    );
    for t in &o.tried {
        let prior = match kind {
            AdjusterKind::Bayes if t.shaped => "learned S",
            AdjusterKind::Bayes => "identity",
            AdjusterKind::Gradient => "",
        };
        let mark = if t.setting == chosen && t.shaped == shaped {
            "  <- chosen"
        } else {
            ""
        };
        println!(
            "{:>12}  {prior:>10}  {:>16.5}  {:>+12.5}{mark}",
            t.setting,
            t.query_log_likelihood,
            t.query_log_likelihood - o.network
        );
    }
    let v = &o.validation;
    println!(
        "validation users ({}): network {:.5}, adjusted {:.5}, gain {:+.5} (95% interval {:+.5} to {:+.5})",
        v.users, v.network, v.adjusted, v.gain, v.low, v.high
    );
}
