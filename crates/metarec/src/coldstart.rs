//! `metarec coldstart`: the cold-start rating benchmark on MovieLens-100k (MeLU's episode
//! protocol, see docs/coldstart.md): prints the main table, the paired comparison with MF
//! fold-in and the K-sweep, and optionally writes everything as JSON.

use crate::Global;
use crate::args::{MAX_ITERATIONS, MAX_SEEDS, MAX_THREADS, MAX_WIDTH, count};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_coldstart::bench::{Budget, METHODS, REFERENCE, budget_label};
use metarec_coldstart::{BenchConfig, RatingData, Report, UserFilter, run_benchmark};
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use std::path::PathBuf;

#[derive(Args)]
pub struct ColdStartArgs {
    /// The data set (only ml-100k so far).
    #[arg(long, default_value = "ml-100k")]
    data: String,
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
    /// Methods, comma-separated (mf-foldin always runs as the reference).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "global-mean,item-mean,mf-foldin,bayes-flat,bayes,melu"
    )]
    methods: Vec<String>,
    /// Latent dimension of the factorisation (shared by MF, the Bayesian adjuster and MeLU's
    /// item inputs).
    #[arg(long, default_value_t = 10, value_parser = count::<usize>(MAX_WIDTH))]
    dim: usize,
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
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One support budget of `--ks`.
#[derive(Clone, Copy)]
struct Support(Budget);

/// The largest numeric support budget: evaluated users have at most 100 ratings, so any budget
/// from 90 on already means every rating outside the query set.
const MAX_BUDGET: u64 = 100_000;

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
        methods: args.methods.iter().map(|m| m.trim().to_string()).collect(),
        ..BenchConfig::default()
    };
    config.mf.dim = args.dim;
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
    for (name, label) in [("mae", "MAE"), ("p5", "P@5"), ("ndcg10", "NDCG@10")] {
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
