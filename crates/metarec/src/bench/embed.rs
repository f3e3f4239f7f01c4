//! `metarec bench embed`: text encoder throughput on every distinct Online Retail title,
//! optionally against Python sentence-transformers run from `bench/st_embed.py`.

use super::thousands;
use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_data::fetch::Dataset;
use std::process::Command;
use std::time::Instant;

#[derive(Args)]
pub struct BenchEmbedArgs {
    /// Titles per forward pass.
    #[arg(long, default_value_t = 128, value_parser = count::<usize>(crate::embed::MAX_TEXT_BATCH))]
    batch: usize,
    /// A Python with sentence-transformers installed, for the baseline.
    #[arg(long, value_name = "PYTHON")]
    python: Option<String>,
}

pub fn run(args: BenchEmbedArgs, global: &Global) -> Result<()> {
    let BenchEmbedArgs { batch, python } = args;
    let (_, titles) = crate::embed::retail_titles(global)?;
    let mut distinct: Vec<&str> = titles.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let encoder = crate::embed::load_encoder(None, global)?;
    encoder.embed(&distinct[..batch.min(distinct.len())])?;
    global.progress(format!("embedding {} distinct titles ...", distinct.len()));
    let start = Instant::now();
    for chunk in distinct.chunks(batch) {
        std::hint::black_box(encoder.embed(chunk)?);
    }
    let ours = distinct.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "text encoder (all-MiniLM-L6-v2, batches of {batch}, {} threads): {} titles/s over {} Online Retail titles",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        thousands(ours),
        distinct.len()
    );
    println!(
        "  target: at least 300 titles/s: {}",
        if ours >= 300.0 { "met" } else { "NOT met" }
    );
    if let Some(python) = python {
        let list = std::env::temp_dir().join(format!("metarec-titles-{}.txt", std::process::id()));
        std::fs::write(&list, distinct.join("\n"))?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/st_embed.py");
        let model = global.data.path(Dataset::MiniLm);
        global.progress("Python sentence-transformers baseline ...");
        let out = Command::new(&python)
            .env("HF_HUB_OFFLINE", "1")
            .arg(script)
            .arg(&model)
            .arg(&list)
            .arg(batch.to_string())
            .output()
            .with_context(|| format!("cannot run `{python}`"))?;
        let _ = std::fs::remove_file(&list);
        if !out.status.success() {
            bail!(
                "the sentence-transformers baseline failed:\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let theirs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .parse()
            .context("unexpected output from the sentence-transformers script")?;
        println!(
            "  sentence-transformers (same titles and batch, same run): {} titles/s; ratio metarec / Python: {:.2}x",
            thousands(theirs),
            ours / theirs
        );
    }
    Ok(())
}
