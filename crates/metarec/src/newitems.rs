//! `metarec new-items`: the new-item cold-start benchmark on Online Retail (id-only against
//! title-embedding features for products first sold in the last two months).

use crate::Global;
use crate::args::{MAX_WIDTH, count};
use anyhow::Result;
use clap::Args;
use metarec_eval::newitems::{NewItemConfig, run as run_benchmark};
use std::path::PathBuf;

#[derive(Args)]
pub struct NewItemArgs {
    /// Days before the last purchase where the hold-out window of new products starts.
    #[arg(long, default_value_t = 61, value_parser = count::<u32>(3650))]
    holdout_days: u32,
    /// Cut-off of HR and NDCG.
    #[arg(long, default_value_t = 10, value_parser = count::<usize>(10_000))]
    top_k: usize,
    /// Latent dimension of the factorisation.
    #[arg(long, default_value_t = 32, value_parser = count::<usize>(MAX_WIDTH))]
    dim: usize,
    /// Seed of the ridge validation split and of tie-breaking.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Skip the text features (no encoder needed).
    #[arg(long)]
    no_text: bool,
    /// A sentence-transformers model directory (default: the fetched MiniLM in the data directory).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Also write the report as JSON (for `metarec report`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: NewItemArgs, global: &Global) -> Result<()> {
    let config = NewItemConfig {
        holdout_days: args.holdout_days,
        top_k: args.top_k,
        mf: metarec_sim::mf::MfConfig {
            dim: args.dim,
            ..NewItemConfig::default().mf
        },
        seed: args.seed,
        ..NewItemConfig::default()
    };
    let embeddings = if args.no_text {
        None
    } else {
        Some(crate::embed::title_embeddings(args.model, 128, global)?)
    };
    let data = crate::sim::load_retail(global)?;
    let text = embeddings.as_ref().map(|e| (e.vectors.as_slice(), e.dim));
    let report = run_benchmark(&data, text, &config, &|line| global.progress(line))?;
    let k = config.top_k;
    println!(
        "new-item cold start: {} new products (first sold in the last {} days) ranked for {} customers ({} purchases of them); chance HR@{k} = {:.4}",
        report.new_items,
        config.holdout_days,
        report.test_users,
        report.targets,
        report.chance_hit_rate
    );
    println!(
        "{:<14} {:>24} {:>24} {:>26} {:>26}",
        "features",
        format!("HR@{k} [95% CI]"),
        format!("NDCG@{k} [95% CI]"),
        "HR diff vs id [95% CI]",
        "NDCG diff vs id [95% CI]"
    );
    for r in &report.results {
        let fmt =
            |s: &metarec_eval::Summary| format!("{:.4} [{:.4}, {:.4}]", s.mean, s.low, s.high);
        println!(
            "{:<14} {:>24} {:>24} {:>26} {:>26}",
            r.features,
            fmt(&r.hit_rate),
            fmt(&r.ndcg),
            fmt(&r.hit_rate_vs_id),
            fmt(&r.ndcg_vs_id)
        );
    }
    if let Some(path) = &args.out {
        crate::report::write_results(path, "new-items", &report)?;
        global.progress(format!("wrote {}", path.display()));
    }
    Ok(())
}
