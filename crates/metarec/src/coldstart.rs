//! `metarec coldstart`: the cold-start rating benchmark on MovieLens-100k (MeLU's episode
//! protocol, see docs/coldstart.md): prints the main table, the paired comparison with MF
//! fold-in and the K-sweep, and optionally writes everything as JSON. With `--shop DIR --cutoff
//! DATE`, the cold-start benchmark on a shop's own history instead: new users after the cutoff,
//! their first K items as support, every method against item-kNN paired by user; with `--model
//! BUNDLE`, the trained network too (`coldstart_model`); with `--items` too, the item variant
//! ([`items`]): new items after the cutoff, ranked from their features.

use crate::Global;
use crate::args::{MAX_ITERATIONS, MAX_SEEDS, MAX_THREADS, MAX_WIDTH, count};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_coldstart::bench::{Budget, METHODS, REFERENCE, budget_label};
use metarec_coldstart::shop::SHOP_REFERENCE;
use metarec_coldstart::{
    BenchConfig, ExternalScorer, RatingData, Report, ShopBenchConfig, ShopData, ShopReport,
    UserFilter, run_benchmark, run_shop_benchmark_with,
};
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use std::path::PathBuf;

mod items;

#[derive(Args)]
pub struct ColdStartArgs {
    /// The data set (only ml-100k so far; see --shop for a shop's own history).
    #[arg(long, default_value = "ml-100k")]
    data: String,
    /// Run the benchmark on a shop directory's own history instead (`metarec shop import`):
    /// new users are those whose first event is on or after --cutoff.
    #[arg(long, value_name = "DIR", requires = "cutoff")]
    shop: Option<PathBuf>,
    /// With --shop: the cutoff, a date (2011-09-01, midnight UTC) or an ISO 8601 time; every
    /// model is fitted on the events before it.
    #[arg(long, value_name = "DATE", value_parser = parse_cutoff, requires = "shop")]
    cutoff: Option<i64>,
    /// With --shop: support sizes K, comma-separated (each new user's first K distinct items).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,3,5,10",
        value_parser = count::<usize>(MAX_SUPPORT)
    )]
    support: Vec<usize>,
    /// With --shop: days before the cutoff whose new users choose the hyperparameters (default:
    /// as long as the period after the cutoff, at most half the time before it).
    #[arg(long, value_parser = count::<u64>(MAX_SUPPORT), requires = "shop")]
    validation_days: Option<u64>,
    /// With --shop: also measure the blend's ceiling, `bayes-knn` with every setting but its
    /// noise chosen on the new users themselves (a limit of the method's family, not a method).
    #[arg(long, requires = "shop")]
    ceiling: bool,
    /// With --shop: also rank with the network of a model bundle (`metarec train --shop`),
    /// given each new user's support as their history of clicks; the bundle must have been
    /// trained on this shop and on nothing on or after --cutoff.
    #[arg(long, value_name = "BUNDLE", requires = "shop")]
    model: Option<PathBuf>,
    /// With --shop: the item cold-start variant instead: items first seen on or after the
    /// cutoff, ranked for the users who bought them from their titles, categories and prices.
    #[arg(long, requires = "shop", conflicts_with_all = ["ceiling", "model", "support"])]
    items: bool,
    /// With --shop: the seed of the factorisation's initialisation.
    #[arg(long, default_value_t = 0, requires = "shop")]
    seed: u64,
    /// Number of random user splits (seeds first-seed, first-seed + 1, ...).
    #[arg(long, default_value_t = 10, value_parser = count::<u64>(MAX_SEEDS))]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Support budgets, comma-separated (`all` = every rating outside the query set).
    #[arg(
        long,
        default_value = "1,3,5,10,20,all",
        value_delimiter = ',',
        value_parser = parse_budget
    )]
    ks: Vec<Support>,
    /// Methods, comma-separated (the reference, mf-foldin or with --shop item-knn, always runs;
    /// default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Latent dimension of the factorisation (shared by MF, the Bayesian adjuster and MeLU's
    /// item inputs; default 10, with --shop 32).
    #[arg(long, value_parser = count::<usize>(MAX_WIDTH))]
    dim: Option<usize>,
    /// MeLU meta-training epochs.
    #[arg(long, default_value_t = 30, value_parser = count::<usize>(MAX_ITERATIONS))]
    melu_epochs: usize,
    /// Also train on users with more than 100 ratings (never evaluated); a departure from
    /// MeLU's protocol, which drops them.
    #[arg(long)]
    heavy_users_train: bool,
    /// Worker threads (seeds run in parallel; results do not depend on it).
    #[arg(long, value_parser = count::<usize>(MAX_THREADS))]
    threads: Option<usize>,
    /// Write the full report (settings, table, paired comparisons, per-seed metrics) as JSON.
    #[arg(long, value_name = "FILE", visible_alias = "json")]
    out: Option<PathBuf>,
}

/// One support budget of `--ks`.
#[derive(Clone, Copy)]
struct Support(Budget);

/// The largest numeric support budget: evaluated users have at most 100 ratings, so any budget
/// from 90 on already means every rating outside the query set.
const MAX_BUDGET: u64 = 100_000;

/// The largest support size and validation window of the shop benchmark.
const MAX_SUPPORT: u64 = 10_000;

fn parse_cutoff(s: &str) -> Result<i64, String> {
    metarec_data::time::parse_timestamp_ms(s).ok_or_else(|| {
        format!("`{s}` is not a date (YYYY-MM-DD) or an ISO 8601 time such as 2011-09-01T00:00:00Z")
    })
}

fn parse_budget(s: &str) -> Result<Support, String> {
    let s = s.trim();
    if s == "all" {
        return Ok(Support(None));
    }
    count::<usize>(MAX_BUDGET)(s)
        .map(|k| Support(Some(k)))
        .map_err(|e| format!("support budget `{s}` {e}, or `all`"))
}

pub fn run(args: ColdStartArgs, global: &Global) -> Result<()> {
    if let Some(dir) = &args.shop {
        return run_shop(&args, dir, global);
    }
    if args.data != "ml-100k" {
        bail!(
            "unknown data set `{}` (the cold-start benchmark runs on ml-100k)",
            args.data
        );
    }
    let last_seed = args
        .first_seed
        .checked_add(args.seeds - 1)
        .context("--first-seed plus --seeds runs past the largest seed, 18446744073709551615")?;
    let mut config = BenchConfig {
        seeds: (args.first_seed..=last_seed).collect(),
        budgets: args.ks.iter().map(|s| s.0).collect(),
        methods: args.methods.as_ref().map_or_else(
            || METHODS.iter().map(|m| m.to_string()).collect(),
            |ms| ms.iter().map(|m| m.trim().to_string()).collect(),
        ),
        ..BenchConfig::default()
    };
    config.mf.dim = args.dim.unwrap_or(10);
    config.melu.epochs = args.melu_epochs;
    if let Some(t) = args.threads {
        config.threads = t;
    }
    let dir = global.data.require(Dataset::MovieLens100k)?;
    global.progress(format!("loading {}", dir.display()));
    let ml = metarec_data::movielens::load_movielens(&dir, &LoadOptions::default())?;
    let filter = UserFilter {
        heavy_users_train: args.heavy_users_train,
        ..UserFilter::default()
    };
    let data = RatingData::from_movielens(&ml, filter)?;
    global.progress(format!(
        "{} users with 13 to 100 ratings ({} ratings), {} training-only heavier users, {} items; \
         {} seeds x {} budgets on {} threads",
        data.train_only_from,
        data.users[..data.train_only_from]
            .iter()
            .map(|u| u.ratings.len())
            .sum::<usize>(),
        data.users.len() - data.train_only_from,
        data.items,
        config.seeds.len(),
        config.budgets.len(),
        config.threads
    ));
    let report = run_benchmark(&data, &config, &|line| global.progress(line))?;
    print_report(&report);
    if let Some(path) = &args.out {
        crate::report::write_results(path, "coldstart", &report)?;
        global.progress(format!("wrote {}", path.display()));
    }
    Ok(())
}

fn stat(report: &Report, method: &str, budget: &str, metric: &str) -> Option<(f64, f64)> {
    report
        .table
        .iter()
        .find(|r| r.method == method && r.budget == budget)?
        .metrics
        .iter()
        .find(|(n, _)| n == metric)
        .map(|(_, s)| (s.mean, s.sd))
}

fn print_report(report: &Report) {
    let seeds = report.config.seeds.len();
    let budgets: Vec<String> = report
        .config
        .budgets
        .iter()
        .map(|&k| budget_label(k))
        .collect();
    // The headline budget is the largest one (`all` when swept), MeLU's protocol.
    let head = budgets.last().cloned().unwrap_or_default();
    let methods: Vec<&str> = METHODS
        .iter()
        .copied()
        .filter(|m| report.table.iter().any(|r| r.method == *m))
        .collect();
    let metrics = [
        ("mae", "MAE"),
        ("mae_rounded", "MAE rounded"),
        ("rmse", "RMSE"),
        ("ndcg3", "nDCG@3"),
        ("ndcg5", "nDCG@5"),
        ("p5", "P@5"),
        ("hr10", "HR@10"),
        ("ndcg10", "NDCG@10"),
    ];
    println!(
        "MovieLens-100k cold start: {} users (+{} training-only), {} items; support K = {head}; \
         mean +- sd over {seeds} seeds",
        report.users, report.train_only_users, report.items
    );
    print!("{:<12}", "method");
    for (_, label) in metrics {
        print!(" {label:>15}");
    }
    println!();
    for m in &methods {
        print!("{m:<12}");
        for (name, _) in metrics {
            match stat(report, m, &head, name) {
                Some((mean, sd)) => print!(" {:>15}", format!("{mean:.4}+-{sd:.4}")),
                None => print!(" {:>15}", "-"),
            }
        }
        println!();
    }
    println!();
    println!(
        "against {REFERENCE} at K = {head}, paired by seed: mean difference (sd) [wins/{seeds}]"
    );
    print!("{:<12}", "method");
    for (_, label) in metrics {
        print!(" {label:>22}");
    }
    println!();
    for m in methods.iter().filter(|m| **m != REFERENCE) {
        print!("{m:<12}");
        for (name, _) in metrics {
            match report
                .paired
                .iter()
                .find(|p| p.method == *m && p.budget == head && p.metric == name)
            {
                Some(p) => print!(
                    " {:>22}",
                    format!("{:+.4}({:.4})[{}]", p.mean_diff, p.sd_diff, p.wins)
                ),
                None => print!(" {:>22}", "-"),
            }
        }
        println!();
    }
    for (name, label) in [
        ("mae", "MAE"),
        (
            "mae_rounded",
            "MAE of the predictions rounded to the nearest rating",
        ),
        ("p5", "P@5"),
        ("ndcg10", "NDCG@10"),
    ] {
        println!();
        println!("K-sweep, {label} (mean over seeds; wins against {REFERENCE} in brackets)");
        print!("{:<12}", "method");
        for b in &budgets {
            print!(" {:>13}", format!("K={b}"));
        }
        println!();
        for m in &methods {
            print!("{m:<12}");
            for b in &budgets {
                let mean = stat(report, m, b, name).map_or(f64::NAN, |s| s.0);
                let wins = report
                    .paired
                    .iter()
                    .find(|p| p.method == *m && p.budget == *b && p.metric == name)
                    .map_or(String::new(), |p| format!("[{}]", p.wins));
                print!(" {:>13}", format!("{mean:.4}{wins}"));
            }
            println!();
        }
    }
    println!();
    println!("finished in {:.1}s", report.seconds);
}

/// `coldstart --shop`: the benchmark on a shop's own history.
fn run_shop(args: &ColdStartArgs, dir: &std::path::Path, global: &Global) -> Result<()> {
    let Some(cutoff_ms) = args.cutoff else {
        bail!("--shop needs --cutoff DATE");
    };
    if args.items {
        return items::run_shop_items(args, dir, cutoff_ms, global);
    }
    let mut config = ShopBenchConfig {
        cutoff_ms,
        budgets: args.support.clone(),
        validation_days: args.validation_days.map(|d| d as f64),
        seed: args.seed,
        ceiling: args.ceiling,
        ..ShopBenchConfig::default()
    };
    overrides(args, &mut config.methods, &mut config.als_grid);
    let (shop, data) = load_shop(dir, cutoff_ms, global)?;
    let mut network = match &args.model {
        Some(model) => {
            global.progress(format!("loading {}", model.display()));
            Some(crate::coldstart_model::network_scorer(
                model, &shop, &data, cutoff_ms,
            )?)
        }
        None => None,
    };
    let report = run_shop_benchmark_with(
        &data,
        &config,
        network.as_mut().map(|n| n as &mut dyn ExternalScorer),
        &|line| global.progress(line),
    )?;
    print_shop_report(&report, &shop.manifest.name);
    if let Some(path) = &args.out {
        crate::report::write_results(path, "coldstart-shop", &report)?;
        global.progress(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// `--methods` and `--dim`, applied to either shop benchmark's settings.
fn overrides(
    args: &ColdStartArgs,
    methods: &mut Vec<String>,
    als_grid: &mut [metarec_coldstart::mf::ImplicitConfig],
) {
    if let Some(ms) = &args.methods {
        *methods = ms.iter().map(|m| m.trim().to_string()).collect();
    }
    if let Some(dim) = args.dim {
        for c in als_grid {
            c.dim = dim;
        }
    }
}

/// Loads the shop directory for either shop benchmark, with a progress line of its size.
fn load_shop(
    dir: &std::path::Path,
    cutoff_ms: i64,
    global: &Global,
) -> Result<(metarec_data::shop::Shop, ShopData)> {
    global.progress(format!("loading {}", dir.display()));
    let shop = metarec_data::shop::Shop::load(dir)
        .with_context(|| format!("reading the shop {}", dir.display()))?;
    let data = ShopData::from_shop(&shop);
    global.progress(format!(
        "{}: {} users, {} items, {} interactions; cutoff {}",
        shop.manifest.name,
        data.users(),
        data.items,
        data.interactions.len(),
        metarec_data::time::format_ms(cutoff_ms)
    ));
    Ok((shop, data))
}

/// The tuned neighbourhood's settings, as the chosen settings and the ceiling print them.
fn describe_hood(h: &metarec_coldstart::shop::Hood) -> String {
    format!(
        "damping {}, popularity exponent {}, support recency {}",
        h.damping, h.popularity_exponent, h.recency
    )
}

/// The blend's weights and its popularity's half-life, as the chosen settings and the ceiling
/// print them.
fn describe_blend(w: &metarec_coldstart::shop::BlendWeights, half_life: Option<f64>) -> String {
    format!(
        "bayes {} basket share {} popularity {} (half-life {}) titles {}",
        w.beta,
        w.eta,
        w.gamma,
        half_life.map_or_else(|| "none".to_string(), |h| format!("{h} days")),
        w.tau
    )
}

/// Prints one table of a shop benchmark, a row per method (`width` characters for its name), and
/// returns the reference's mean NDCG@10, which every ratio divides by.
pub(crate) fn print_method_table(
    methods: &[metarec_coldstart::shop::MethodResult],
    reference: &str,
    width: usize,
) -> Option<f64> {
    println!(
        "{:<width$} {:>24} {:>7} {:>9} {:>7} {:>30} {:>7}",
        "method",
        "NDCG@10",
        "HR@10",
        "recall@20",
        "MRR",
        format!("NDCG@10 - {reference} (paired)"),
        "ratio"
    );
    let reference = methods
        .iter()
        .find(|m| m.method == reference)
        .and_then(|m| m.metric("ndcg10"))
        .map(|i| i.mean);
    for m in methods {
        let get = |n: &str| m.metric(n).map_or(f64::NAN, |i| i.mean);
        let ndcg = m.metric("ndcg10");
        let ci = ndcg.map_or_else(String::new, |i| {
            format!("{:.4} [{:.4}, {:.4}]", i.mean, i.low, i.high)
        });
        let diff = m.diff("ndcg10").map_or_else(
            || "-".to_string(),
            |d| format!("{:+.4} [{:+.4}, {:+.4}]", d.mean, d.low, d.high),
        );
        let ratio = match (ndcg, reference) {
            (Some(i), Some(r)) if r > 0.0 => format!("{:.2}x", i.mean / r),
            _ => "-".into(),
        };
        println!(
            "{:<width$} {ci:>24} {:>7.4} {:>9.4} {:>7.4} {diff:>30} {ratio:>7}",
            m.method,
            get("hr10"),
            get("recall20"),
            get("mrr")
        );
    }
    reference
}

fn print_shop_report(report: &ShopReport, name: &str) {
    println!(
        "{name}: cold start after {} ({} items; models fitted on {} users' {} interactions before it; \
         hyperparameters chosen on new users from {} on)",
        metarec_data::time::format_ms(report.config.cutoff_ms),
        report.items,
        report.training_users,
        report.training_interactions,
        metarec_data::time::format_ms(report.validation_cutoff_ms),
    );
    println!(
        "factorisation chosen: dim {}, lambda {}, alpha {}",
        report.als.dim, report.als.lambda, report.als.alpha
    );
    for b in &report.budgets {
        println!();
        println!(
            "K = {}: {} new users, {:.1} query items each on average; mean [95% interval] over users",
            b.k, b.users, b.mean_query
        );
        let reference = print_method_table(&b.methods, SHOP_REFERENCE, 11);
        let c = &b.chosen;
        println!(
            "chosen on {} validation users: fold-in lambda {}, noise {}, gradient rate {} x {} steps; \
             tuned neighbourhood: {}; blend: {}",
            c.validation_users,
            c.fold_lambda,
            c.noise,
            c.gradient.0,
            c.gradient.1,
            describe_hood(&c.neighbourhood),
            describe_blend(&c.blend, c.popularity_half_life)
        );
        if let (Some(c), Some(r)) = (&b.ceiling, reference) {
            println!(
                "ceiling of bayes-knn (every setting but the noise chosen on these new users; not a method): \
                 NDCG@10 {:.4} ({:.2}x item-knn) with {}; {}",
                c.ndcg10,
                c.ndcg10 / r,
                describe_hood(&c.neighbourhood),
                describe_blend(&c.blend, c.popularity_half_life)
            );
        }
    }
    println!();
    println!("finished in {:.1}s", report.seconds);
}
