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

/// The most titles per forward pass of the text encoder: a batch's activations grow with it, and
/// Online Retail has only a few thousand distinct titles, so a larger batch is one pass anyway.
pub const MAX_TEXT_BATCH: u64 = 4096;

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
    #[arg(long, default_value_t = 128, value_parser = crate::args::count::<usize>(MAX_TEXT_BATCH))]
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

/// Title embeddings of the Online Retail catalog, computed through the cache.
pub struct TitleEmbeddings {
    /// Item keys in id order.
    pub keys: Vec<String>,
    /// The encoder's id.
    pub model: String,
    /// Dimension.
    pub dim: usize,
    /// Row-major vectors in id order.
    pub vectors: Vec<f32>,
    /// Titles that were not cached and had to be embedded.
    pub embedded: usize,
    /// Seconds spent embedding them.
    pub seconds: f64,
}

/// Embeds every Online Retail title, reading cached vectors and embedding (with a progress bar)
/// and caching only the titles the cache lacks.
pub fn title_embeddings(
    model: Option<PathBuf>,
    batch: usize,
    global: &Global,
) -> Result<TitleEmbeddings> {
    let (keys, titles) = retail_titles(global)?;
    embed_titles(keys, &titles, model, batch, global)
}

/// The title of every item of a catalog in id order; an item without one goes by its key, as
/// `metarec embed` does.
pub fn catalog_titles(catalog: &metarec_core::Catalog) -> Vec<String> {
    catalog
        .ids()
        .map(|id| {
            catalog
                .title(id)
                .or(catalog.key(id))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Embeds `titles` (one per key, in the keys' order), reading cached vectors and embedding (with
/// a progress bar) and caching only the titles the cache lacks: the Online Retail catalog's, or a
/// shop's (`train --shop`).
pub fn embed_titles(
    keys: Vec<String>,
    titles: &[String],
    model: Option<PathBuf>,
    batch: usize,
    global: &Global,
) -> Result<TitleEmbeddings> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let encoder = load_encoder(model, global)?;
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
    if global.quiet || missing.is_empty() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} titles {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    for chunk in missing.chunks(batch) {
        let vectors = encoder.embed(chunk)?;
        for (t, v) in chunk.iter().zip(vectors) {
            cache.insert(t, v);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    cache.save()?;
    let mut vectors = Vec::with_capacity(titles.len() * encoder.dim());
    for t in titles {
        vectors.extend_from_slice(cache.get(t).context("a title is missing from the cache")?);
    }
    Ok(TitleEmbeddings {
        keys,
        model: encoder.id().to_owned(),
        dim: encoder.dim(),
        vectors,
        embedded: missing.len(),
        seconds,
    })
}

pub fn run(args: EmbedArgs, global: &Global) -> Result<()> {
    if args.catalog != "online-retail" {
        bail!(
            "unknown catalog `{}`; expected: online-retail",
            args.catalog
        );
    }
    let emb = title_embeddings(args.model, args.batch, global)?;
    let n = emb.keys.len();
    let out = Output {
        model: &emb.model,
        dim: emb.dim,
        keys: emb.keys,
        vectors: emb.vectors,
    };
    let text = serde_json::to_string(&out)?;
    metarec_data::log::atomic_write(&args.out, |f| std::io::Write::write_all(f, text.as_bytes()))?;
    println!(
        "{n} item embeddings ({} dims) written to {}; embedded {} new titles in {:.1} s{}",
        emb.dim,
        args.out.display(),
        emb.embedded,
        emb.seconds,
        if emb.embedded == 0 {
            String::new()
        } else {
            format!(" ({:.0} titles/s)", emb.embedded as f64 / emb.seconds)
        }
    );
    Ok(())
}
