//! `metarec shop ...`: a shop's own data. `shop import` reads its catalog, events and users into a
//! shop directory; `shop stats` summarises one. The formats and the `--map` syntax are in
//! `docs/shop.md`.

use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use metarec_data::OnMalformed;
use metarec_data::shop::Shop;
use metarec_data::shop::import::{FieldMap, ImportSpec, prepare_shop_with};
use metarec_data::shop::synth::{Logging, SynthConfig, write_synth_shop};
use metarec_data::stats::{shop_stats, thousands};
use metarec_data::time::TimeFormat;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ShopCommand {
    /// Import a shop's files (catalog, events, users; CSV, TSV or JSON Lines, optionally
    /// gzipped) into a shop directory, checked and sorted by time.
    Import(ImportArgs),
    /// Summarise a shop directory: users, items, events by type, dates, density, revenue, CTR by
    /// position where impressions were logged, and what the import skipped.
    Stats(StatsArgs),
    /// Write a made-up shop's files (catalog.csv, users.csv, events.csv) with known tastes and
    /// exactly logged propensities: to try metarec without data, and for tests and benchmarks.
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Items in the catalog.
    #[arg(long, default_value_t = 300, value_parser = count::<usize>(10_000_000))]
    items: usize,
    /// Users.
    #[arg(long, default_value_t = 3000, value_parser = count::<usize>(100_000_000))]
    users: usize,
    /// Items per slate.
    #[arg(long, default_value_t = 4, value_parser = count::<usize>(100))]
    slate: usize,
    /// The logging policy: `uniform` (random slates), or `popular:EPSILON` (the best sellers,
    /// or with probability EPSILON a random slate).
    #[arg(long, default_value = "uniform", value_parser = logging)]
    logging: Logging,
    /// Seed of everything.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The folder to write the three files into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn logging(text: &str) -> Result<Logging, String> {
    match text.trim() {
        "uniform" => Ok(Logging::Uniform),
        t => match t.strip_prefix("popular:").map(|e| e.trim().parse::<f64>()) {
            Some(Ok(epsilon)) if epsilon > 0.0 && epsilon <= 1.0 => {
                Ok(Logging::Popular { epsilon })
            }
            _ => Err("expected `uniform` or `popular:EPSILON` with EPSILON in (0, 1]".into()),
        },
    }
}

#[derive(Args)]
pub struct ImportArgs {
    /// The events file: user_id, item_id, timestamp, type, and optional session_id, quantity,
    /// revenue, ranking_id, position, propensity; other columns become context.
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    /// The catalog file: item_id, and optional title, category, price, brand, available; other
    /// columns become item features. Without it the catalog is built from the events' columns.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// The users file: user_id and attributes (text columns become tokens, numeric ones
    /// features).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Column mapping, `FIELD=COLUMN,...`: also `catalog.FIELD=`, `FIELD=const:VALUE`,
    /// `FIELD=@row`, `FIELD=A+B`, `type.KIND=VALUE|VALUE`, `flag.KIND=COLUMN`, `position.base=1`,
    /// `category.split=SEP`, `context=A|B` (see docs/shop.md). May be repeated.
    #[arg(long, value_name = "ENTRIES", value_parser = map_entries)]
    map: Vec<String>,
    /// The layout of times that are neither epoch numbers nor ISO 8601, strftime style
    /// (`%m/%d/%Y %H:%M` reads `12/1/2010 8:26`).
    #[arg(long, value_name = "PATTERN", value_parser = time_format)]
    time_format: Option<TimeFormat>,
    /// A file of item keys, one per line, whose events are dropped and counted (service lines
    /// such as postage; `#` starts a comment).
    #[arg(long, value_name = "FILE")]
    exclude_items: Option<PathBuf>,
    /// Skip malformed records (counted by reason) instead of stopping at the first.
    #[arg(long)]
    skip_malformed: bool,
    /// The shop's name (default: the output directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Replace an existing shop directory at --out.
    #[arg(long)]
    force: bool,
    /// The shop directory to write (atomically: it appears complete or not at all).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args)]
pub struct StatsArgs {
    /// The shop directory.
    shop: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn map_entries(text: &str) -> Result<String, String> {
    text.parse::<FieldMap>()
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn time_format(text: &str) -> Result<TimeFormat, String> {
    text.parse()
}

pub fn run(command: ShopCommand, global: &Global) -> Result<()> {
    match command {
        ShopCommand::Import(args) => import(args, global),
        ShopCommand::Generate(args) => {
            let config = SynthConfig {
                items: args.items,
                users: args.users,
                slate_size: args.slate,
                logging: args.logging,
                seed: args.seed,
                ..SynthConfig::default()
            };
            global.progress(format!(
                "writing a made-up shop of {} items and {} users ...",
                args.items, args.users
            ));
            let files = write_synth_shop(&config, &args.out)?;
            println!(
                "wrote {} events ({} slates) to {}, {} and {}",
                thousands(files.events_written),
                thousands(files.slates),
                files.events.display(),
                files.catalog.display(),
                files.users.display()
            );
            Ok(())
        }
        ShopCommand::Stats(args) => {
            let shop = Shop::load(&args.shop)
                .with_context(|| format!("cannot read the shop {}", args.shop.display()))?;
            let stats = shop_stats(&shop);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{stats}");
            }
            Ok(())
        }
    }
}

fn import(args: ImportArgs, global: &Global) -> Result<()> {
    let mut map = FieldMap::default();
    for entries in &args.map {
        // Each value was checked by the parser; extending cannot fail on it.
        map.extend(entries)?;
    }
    let spec = ImportSpec {
        catalog: args.catalog,
        events: args.events,
        users: args.users,
        map,
        time_format: args.time_format,
        exclude_items: args.exclude_items,
        on_malformed: if args.skip_malformed {
            OnMalformed::Skip
        } else {
            OnMalformed::Fail
        },
        name: args.name,
    };
    let spinner = global.spinner("importing");
    let started = std::time::Instant::now();
    let prepared = prepare_shop_with(&spec, &mut |step: &str| {
        if spinner.is_hidden() {
            global.progress(format!("  {step}"));
        } else {
            spinner.set_message(step.to_owned());
        }
    });
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            spinner.finish_and_clear();
            return Err(e).context("the import stopped; nothing was written");
        }
    };
    spinner.set_message(format!("writing {}", args.out.display()));
    let outcome = prepared.save(&args.out, args.force);
    spinner.finish_and_clear();
    let outcome = outcome.with_context(|| format!("could not write {}", args.out.display()))?;
    let m = &outcome.manifest;
    for (report, source) in m
        .reports
        .iter()
        .zip(m.sources.iter().filter(|s| s.role != "exclude_items"))
    {
        println!("{}: {report}", source.role);
    }
    let kinds: Vec<String> = m
        .events_by_type
        .iter()
        .map(|(k, n)| format!("{k} {}", thousands(*n)))
        .collect();
    println!(
        "shop `{}` written to {}: {} users, {} items, {} events ({}) in {:.1} s",
        m.name,
        outcome.dir.display(),
        thousands(m.users as u64),
        thousands(m.items as u64),
        thousands(m.events),
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
