//! `metarec sim ...` and `metarec arena`: scenarios, calibration, and the policy arena, in a
//! simulator fitted to Online Retail or to a shop directory (`--shop`, or `[shop] dir`).

use crate::Global;
use crate::args::{MAX_SEEDS, MAX_THREADS, MAX_USERS, count, whole};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::online_retail::{OnlineRetail, load_online_retail};
use metarec_data::shop::Shop;
use metarec_eval::arena::{ArenaConfig, run_arena};
use metarec_eval::{ModelRef, PolicySpec};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::DataSource;
use metarec_sim::config::PRESETS;
use metarec_sim::{Scenario, ScenarioConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Subcommand)]
pub enum SimCommand {
    /// List the scenario presets.
    Scenarios,
    /// Print a scenario with every parameter (as TOML, ready to edit and pass back by path).
    Show(ScenarioArg),
    /// Fit the simulator to the data and print the calibration report.
    Calibrate {
        #[command(flatten)]
        scenario: ScenarioArg,
        /// Simulated users per yardstick policy in the report.
        #[arg(long, default_value_t = 2000, value_parser = count::<usize>(MAX_USERS))]
        users: usize,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ScenarioArg {
    /// A preset name (see `metarec sim scenarios`) or a path to a TOML file.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Fit the scenario's world to this shop directory (`metarec shop import`) instead of
    /// Online Retail: sets the scenario's `[shop] dir`.
    #[arg(long, value_name = "SHOP")]
    pub shop: Option<PathBuf>,
}

#[derive(Args)]
pub struct ArenaArgs {
    /// A preset name or a path to a TOML file (default: the scenario the policies' models were
    /// trained on, else `default`).
    #[arg(long)]
    scenario: Option<String>,
    /// Fit the scenario's world to this shop directory instead of Online Retail (default: the
    /// shop the policies' models were trained in a simulator of, if any).
    #[arg(long, value_name = "SHOP")]
    shop: Option<PathBuf>,
    /// Comma-separated policies, or `all`.
    #[arg(
        long,
        default_value = "random,popularity,egreedy,itemknn,linucb,lints,linucb-user,lints-user,oracle,planner"
    )]
    policies: String,
    /// New users per seed.
    #[arg(long, default_value_t = 1000, value_parser = count::<usize>(MAX_USERS))]
    users: usize,
    /// Seeds (independent user populations and policy randomness).
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(MAX_SEEDS))]
    seeds: usize,
    /// Length of the cold-start curve (interactions per user).
    #[arg(long, default_value_t = 20, value_parser = count::<usize>(MAX_HORIZON))]
    horizon: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0, value_parser = whole::<usize>(0, MAX_THREADS))]
    threads: usize,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write every interaction (the project's log format) to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Comma-separated contestants that every other one is compared with on the same users.
    #[arg(long, default_value = "popularity")]
    against: String,
    #[command(flatten)]
    logdir: crate::report::LogdirArg,
    /// Also write a report directory: `arena.json` and an `index.html` with the table and the
    /// cold-start curves.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// The longest cold-start curve: a simulated user rarely stays for more than a few dozen slates,
/// and the arena keeps a curve of this length per policy and seed.
const MAX_HORIZON: u64 = 10_000;

/// Loads Online Retail (unpacking the shipped copy on first use).
pub fn load_retail(global: &Global) -> Result<OnlineRetail> {
    if !global.data.is_present(Dataset::OnlineRetail) {
        global.progress("unpacking the shipped Online Retail data ...");
    }
    global.data.require(Dataset::OnlineRetail)?;
    let spinner = global.spinner("loading Online Retail");
    let data = load_online_retail(&global.data.online_retail_csv(), &LoadOptions::default());
    spinner.finish_and_clear();
    Ok(data?)
}

/// A scenario's configuration by preset name or file, fitted to `shop` when one is given (its
/// `[shop] dir`, as given on the command line).
pub fn load_config(name: &str, shop: Option<&Path>) -> Result<ScenarioConfig> {
    let mut config = ScenarioConfig::load(name)?;
    if let Some(dir) = shop {
        // The name says which shop, in reports and in the bundles of models trained in it.
        config.name = format!("{} on {}", config.name, dir.display());
        config.shop.dir = dir.display().to_string();
    }
    Ok(config)
}

/// Loads, fits and calibrates a scenario named by a preset or a file, with progress messages.
pub fn build_scenario(name: &str, global: &Global) -> Result<Scenario> {
    build_config(load_config(name, None)?, None, global)
}

/// The scenario a model was trained on, rebuilt from the description its bundle carries; a
/// simulator of a shop is rebuilt from the shop directory it records, or from `shop` when given,
/// and only when that shop's catalog and events are the ones the model was trained on.
pub fn bundle_scenario(
    bundle: &ModelBundle,
    shop: Option<&Path>,
    global: &Global,
) -> Result<Scenario> {
    let (name, toml, stamp) = match &bundle.manifest.source {
        DataSource::Scenario { name, toml } => (name, toml, None),
        DataSource::ShopSimulator {
            name,
            toml,
            catalog_sha256,
            events_sha256,
            ..
        } => (
            name,
            toml,
            Some((catalog_sha256.as_str(), events_sha256.as_str())),
        ),
        DataSource::Shop { .. } => anyhow::bail!(
            "{}",
            bundle
                .manifest
                .source
                .no_simulator(&bundle.dir)
                .unwrap_or_default()
        ),
    };
    let mut config = ScenarioConfig::from_toml(name, toml).with_context(|| {
        format!(
            "the scenario recorded in {}",
            bundle
                .dir
                .join(metarec_neural::checkpoint::MANIFEST)
                .display()
        )
    })?;
    if let Some(dir) = shop {
        if stamp.is_none() {
            anyhow::bail!(
                "model {} was trained in {}, not in a simulator of a shop: leave out --shop {}",
                bundle.dir.display(),
                bundle.manifest.source.describe(),
                dir.display()
            );
        }
        config.shop.dir = dir.display().to_string();
    }
    build_config(config, stamp, global)
}

/// The scenario of a command that takes models: the one named (fitted to `shop` when given),
/// else the one every model was trained on (they must agree), else `default` (fitted to
/// `shop` when given). A model trained on a shop's logs has no scenario to play in: that is an
/// error saying how to evaluate it instead, whether or not a scenario is named.
pub fn scenario_for(
    named: Option<&str>,
    shop: Option<&Path>,
    bundles: &[Arc<ModelBundle>],
    global: &Global,
) -> Result<Scenario> {
    if let Some(message) = bundles
        .iter()
        .find_map(|b| b.manifest.source.no_simulator(&b.dir))
    {
        anyhow::bail!("{message}");
    }
    if let Some(name) = named {
        return build_config(load_config(name, shop)?, None, global);
    }
    let Some(first) = bundles.first() else {
        return build_config(load_config("default", shop)?, None, global);
    };
    if let Some(other) = bundles
        .iter()
        .find(|b| b.manifest.source != first.manifest.source)
    {
        anyhow::bail!(
            "{} and {} were trained on different scenarios (`{}` and `{}`): pass --scenario",
            first.dir.display(),
            other.dir.display(),
            first.manifest.scenario,
            other.manifest.scenario
        );
    }
    bundle_scenario(first, shop, global)
}

/// Fits and calibrates a scenario configuration, with progress messages: to its shop when
/// `[shop] dir` names one (which must have the catalog and events SHA-256 of `stamp`, when
/// given), else to Online Retail.
fn build_config(
    config: ScenarioConfig,
    stamp: Option<(&str, &str)>,
    global: &Global,
) -> Result<Scenario> {
    if !config.shop.dir.is_empty() {
        return build_shop_config(config, stamp, global);
    }
    let data = load_retail(global)?;
    global.progress(format!(
        "fitting scenario `{}` to {} purchases (ALS, then bias calibration) ...",
        config.name,
        data.purchases.len()
    ));
    // Scenarios with title features need the text encoder's embeddings of every title.
    let text = if config.observed.text_dims > 0 {
        Some(crate::embed::title_embeddings(None, 128, global)?)
    } else {
        None
    };
    let start = Instant::now();
    let spinner = global.spinner("fitting");
    let scenario = Scenario::build_with_text(
        config,
        &data,
        text.as_ref().map(|t| (t.vectors.as_slice(), t.dim)),
    );
    spinner.finish_and_clear();
    let scenario = scenario?;
    global.progress(format!(
        "scenario ready in {:.1} s: {} items, {} customers in the population",
        start.elapsed().as_secs_f64(),
        scenario.world.catalog.len(),
        scenario.world.population.customers()
    ));
    Ok(scenario)
}

/// [`build_config`] for a scenario fitted to a shop directory.
fn build_shop_config(
    config: ScenarioConfig,
    stamp: Option<(&str, &str)>,
    global: &Global,
) -> Result<Scenario> {
    let dir = PathBuf::from(&config.shop.dir);
    let shop = Shop::load(&dir).with_context(|| format!("cannot load shop {}", dir.display()))?;
    if let Some((catalog, events)) = stamp {
        if catalog != shop.manifest.catalog_sha256 || events != shop.manifest.events_sha256 {
            anyhow::bail!(
                "shop {} is not the one the model was trained in a simulator of: its catalog or events changed (SHA-256 of catalog.json {catalog}, of events.jsonl {events} then; {} and {} now); train the model again",
                dir.display(),
                shop.manifest.catalog_sha256,
                shop.manifest.events_sha256
            );
        }
    }
    global.progress(format!(
        "fitting scenario `{}` to shop `{}`: {} events of {} users on {} items (ALS, then bias calibration) ...",
        config.name,
        shop.manifest.name,
        shop.events.len(),
        shop.users.len(),
        shop.catalog.len()
    ));
    // Title features of a shop's simulator come from its own catalog's titles (an item without
    // one by its key, as `metarec embed` does).
    let text = if config.observed.text_dims > 0 {
        let catalog = &shop.catalog;
        let titles = crate::embed::catalog_titles(catalog);
        Some(crate::embed::embed_titles(
            catalog.keys().to_vec(),
            &titles,
            None,
            128,
            global,
        )?)
    } else {
        None
    };
    let start = Instant::now();
    let spinner = global.spinner("fitting");
    let scenario = Scenario::build_from_shop(
        config,
        &shop,
        text.as_ref().map(|t| (t.vectors.as_slice(), t.dim)),
    );
    spinner.finish_and_clear();
    let scenario = scenario?;
    global.progress(format!(
        "scenario ready in {:.1} s: {} items, {} users of shop `{}` in the population, slates of {}",
        start.elapsed().as_secs_f64(),
        scenario.world.catalog.len(),
        scenario.world.population.customers(),
        shop.manifest.name,
        scenario.config.choice.slate_size
    ));
    Ok(scenario)
}

pub fn run(command: SimCommand, global: &Global) -> Result<()> {
    match command {
        SimCommand::Scenarios => {
            for (name, _) in PRESETS {
                let c = ScenarioConfig::load(name)?;
                println!("{name:<14} {}", c.description);
            }
            println!("\n`metarec sim show --scenario NAME` prints every parameter.");
            Ok(())
        }
        SimCommand::Show(arg) => {
            print!(
                "{}",
                load_config(&arg.scenario, arg.shop.as_deref())?.to_toml()
            );
            Ok(())
        }
        SimCommand::Calibrate {
            scenario,
            users,
            json,
        } => {
            let config = load_config(&scenario.scenario, scenario.shop.as_deref())?;
            let scenario = build_config(config, None, global)?;
            global.progress(format!(
                "simulating {users} users under 5 yardstick policies ..."
            ));
            let spinner = global.spinner("simulating");
            let report = metarec_sim::calibrate::report(&scenario, users);
            spinner.finish_and_clear();
            if json {
                println!("{}", crate::report::results_json("calibration", &report)?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
    }
}

pub fn arena(args: ArenaArgs, global: &Global) -> Result<()> {
    let mut contestants = PolicySpec::parse_list(&args.policies)?;
    // Models are loaded once, here, so the scenario can follow them.
    let mut bundles = Vec::new();
    for spec in &mut contestants {
        spec.load(&mut bundles)?;
    }
    let scenario = scenario_for(
        args.scenario.as_deref(),
        args.shop.as_deref(),
        &bundles,
        global,
    )?;
    // `served:DIR` contestants play through `metarec serve` children, stopped when this
    // returns.
    let (_servers, served_failure) = crate::served::link_servers(&mut contestants, global)?;
    let config = ArenaConfig {
        users: args.users,
        seeds: args.seeds,
        horizon: args.horizon,
        threads: args.threads,
        keep_log: args.log.is_some(),
        reward: None,
        paired_against: args
            .against
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    global.progress(format!(
        "arena: {} policies x {} seeds x {} users ...",
        contestants.len(),
        args.seeds,
        args.users
    ));
    let start = Instant::now();
    let bar = global.bar((contestants.len() * args.seeds) as u64, "jobs");
    let report = run_arena(&scenario, &contestants, &config, &|line| {
        global.step(
            &bar,
            &format!("{line} ({:.1} s)", start.elapsed().as_secs_f64()),
        )
    });
    bar.finish_and_clear();
    if let Some(message) = crate::served::failure(&served_failure) {
        anyhow::bail!("a served contestant failed: {message}");
    }
    let report = report?;
    print!("{report}");
    // The observed yardstick is read against how much of the hidden item vectors the
    // observable features carry, so the arena says it where that yardstick plays.
    if contestants
        .iter()
        .any(|spec| matches!(spec, PolicySpec::Informed { settings, .. } if settings.observed))
    {
        let view = scenario.world.observed_view();
        println!(
            "informed-observed: the catalog's {} observable feature columns (and an intercept) explain {:.1}% of the hidden item vectors' sum of squares",
            scenario.world.catalog.features().dim(),
            100.0 * view.explained
        );
    }
    for spec in &contestants {
        if let (PolicySpec::InformedNetwork { name, .. }, Some(bundle)) =
            (spec, spec.model().and_then(ModelRef::bundle))
        {
            let view = metarec_eval::policies::network_view(&scenario.world, bundle);
            println!(
                "{name}: the catalog's {} observable feature columns and the network's {} item-vector columns (and an intercept) explain {:.1}% of the hidden item vectors' sum of squares",
                scenario.world.catalog.features().dim(),
                bundle.network.frozen.embed,
                100.0 * view.explained
            );
        }
    }
    if let Some(path) = &args.json {
        crate::report::write_results(path, "arena", &report)?;
        global.progress(format!("results written to {}", path.display()));
    }
    let runs = crate::report::log_arena(&args.logdir.logdir, &report)?;
    global.progress(format!(
        "TensorBoard runs written to {} (tensorboard --logdir {})",
        runs.display(),
        args.logdir.logdir.display()
    ));
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let json = dir.join("arena.json");
        crate::report::write_results(&json, "arena", &report)?;
        let page = crate::report::write_report(
            dir,
            "metarec arena report",
            &[("arena.json".into(), json)],
        )?;
        global.progress(format!("report written to {}", page.display()));
    }
    if let Some(path) = &args.log {
        let n = metarec_data::log::write_log(path, &report.log, &scenario.world.catalog)?;
        global.progress(format!("{n} interactions written to {}", path.display()));
    }
    Ok(())
}
