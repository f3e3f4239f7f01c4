//! `metarec embed`: item-title embeddings with the local text encoder, cached by model and text.

use crate::Global;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use metarec_data::fetch::Dataset;
use metarec_text::{EmbeddingCache, TextEncoder};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct EmbedArgs {
    /// The catalog whose titles to embed (online-retail).
    #[arg(long, default_value = "online-retail")]
    catalog: String,
    /// A sentence-transformers model directory (default: the fetched MiniLM in the data directory).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Output file (JSON: model id, dimension, item keys, row-major vectors).
    #[arg(long, default_value = "embeddings.json", value_name = "FILE")]
    out: PathBuf,
    /// Titles per forward pass.
    #[arg(long, default_value_t = 128)]
    batch: usize,
}

#[derive(Serialize)]
struct Output<'a> {
    model: &'a str,
    dim: usize,
    keys: Vec<String>,
    vectors: Vec<f32>,
}

/// The titles of the Online Retail catalog (the key when an item has no title), in id order.
pub fn retail_titles(global: &Global) -> Result<(Vec<String>, Vec<String>)> {
    let data = crate::sim::load_retail(global)?;
    let keys: Vec<String> = data
        .catalog
        .ids()
        .map(|id| data.catalog.key(id).unwrap_or_default().to_owned())
        .collect();
    let titles = data
        .catalog
        .ids()
        .map(|id| {
            data.catalog
                .title(id)
                .or(data.catalog.key(id))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    Ok((keys, titles))
}

/// Loads the encoder from `--model` or the data directory.
pub fn load_encoder(model: Option<PathBuf>, global: &Global) -> Result<TextEncoder> {
    let dir = match model {
        Some(d) => d,
        None => global.data.require(Dataset::MiniLm)?,
    };
    Ok(TextEncoder::load(&dir)?)
}

pub fn run(args: EmbedArgs, global: &Global) -> Result<()> {
    if args.catalog != "online-retail" {
        bail!(
            "unknown catalog `{}`; expected: online-retail",
            args.catalog
        );
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (keys, titles) = retail_titles(global)?;
    let encoder = load_encoder(args.model, global)?;
    let mut cache = EmbeddingCache::open(
        &global.data.root().join("cache"),
        encoder.id(),
        encoder.dim(),
    );
    let missing: Vec<&str> = {
        let mut m: Vec<&str> = titles
            .iter()
            .map(String::as_str)
            .filter(|t| cache.get(t).is_none())
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    global.progress(format!(
        "{} titles: {} cached, {} to embed",
        titles.len(),
        titles.len()
            - titles
                .iter()
                .filter(|t| missing.binary_search(&t.as_str()).is_ok())
                .count(),
        missing.len()
    ));
    let bar = ProgressBar::new(missing.len() as u64);
    if global.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} titles {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    for chunk in missing.chunks(args.batch) {
        let vectors = encoder.embed(chunk)?;
        for (t, v) in chunk.iter().zip(vectors) {
            cache.insert(t, v);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    cache.save()?;
    let mut vectors = Vec::with_capacity(titles.len() * encoder.dim());
    for t in &titles {
        vectors.extend_from_slice(cache.get(t).context("a title is missing from the cache")?);
    }
    let out = Output {
        model: encoder.id(),
        dim: encoder.dim(),
        keys,
        vectors,
    };
    let text = serde_json::to_string(&out)?;
    metarec_data::log::atomic_write(&args.out, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} item embeddings ({} dims) written to {}; embedded {} new titles in {secs:.1} s{}",
        titles.len(),
        encoder.dim(),
        args.out.display(),
        missing.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" ({:.0} titles/s)", missing.len() as f64 / secs)
        }
    );
    Ok(())
}
