//! `metarec bench import`: `shop import` of a generated shop (a million events, 50,000 items by
//! default) against `pandas.read_csv` of the same events file, with the peak memory of each.

use super::{median, thousands, warn_debug_build};
use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_data::shop::import::{ImportSpec, import_shop};
use metarec_data::shop::synth::{SynthConfig, write_synth_shop};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[derive(Args)]
pub struct BenchImportArgs {
    /// Events to generate (about; the exact count is printed).
    #[arg(long, default_value_t = 1_000_000, value_parser = count::<u64>(100_000_000))]
    events: u64,
    /// Items in the generated catalog.
    #[arg(long, default_value_t = 50_000, value_parser = count::<usize>(10_000_000))]
    items: usize,
    /// Timed repetitions of each side (the median is compared).
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(100))]
    repeats: usize,
    /// Seed of the generated shop.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The Python interpreter with pandas installed.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// The baseline: pandas' C parser reading the same events file, timed inside Python, with the
/// growth of the process's peak resident memory over what importing pandas took.
const PANDAS_SCRIPT: &str = r#"
import sys, time, resource
import pandas as pd
path, n = sys.argv[1], int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(n):
    t = time.perf_counter()
    df = pd.read_csv(path)
    times.append(time.perf_counter() - t)
    del df
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(" ".join(repr(t) for t in times))
print((peak - base) * 1024)
"#;

/// The peak resident set of this process (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The current resident set (VmRSS), in bytes.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident set to the current one (Linux 4.0 and later), so the next peak is
/// the import's own.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn pandas(python: &str, path: &Path, repeats: usize) -> Result<(Vec<f64>, u64)> {
    let out = Command::new(python)
        .args(["-c", PANDAS_SCRIPT])
        .arg(path)
        .arg(repeats.to_string())
        .output()
        .with_context(|| format!("cannot run `{python}`"))?;
    if !out.status.success() {
        bail!(
            "the pandas baseline failed (is pandas installed? `pip install pandas`):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let times = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .context("unexpected output from the pandas script")
        })
        .collect::<Result<Vec<f64>>>()?;
    let peak = lines
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .context("no peak memory from the pandas script")?;
    Ok((times, peak))
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

pub fn run(args: BenchImportArgs, global: &Global) -> Result<()> {
    warn_debug_build("import");
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    // About 5.2 events per slate of 4 (views and the clicks and purchases on them) and two visits
    // of three slates per user on average.
    let users = ((args.events as f64 / (5.2 * 6.0)).ceil() as usize).max(1);
    let config = SynthConfig {
        items: args.items,
        users,
        seed: args.seed,
        ..SynthConfig::default()
    };
    global.progress(format!(
        "generating a shop of {} items and {users} users ...",
        args.items
    ));
    let files = write_synth_shop(&config, &tmp.path().join("files"))?;
    let size_mb = std::fs::metadata(&files.events)?.len() as f64 / 1e6;
    let spec = ImportSpec {
        catalog: Some(files.catalog.clone()),
        events: files.events.clone(),
        users: Some(files.users.clone()),
        ..ImportSpec::default()
    };
    let out = tmp.path().join("shop");
    let mut ours = Vec::with_capacity(args.repeats);
    let mut peak = 0u64;
    let before = rss().unwrap_or(0);
    let measured_peak = reset_peak_rss();
    for i in 0..args.repeats {
        global.progress(format!("metarec shop import {}/{}", i + 1, args.repeats));
        let t = Instant::now();
        let outcome = import_shop(&spec, &out, true)?;
        ours.push(t.elapsed().as_secs_f64());
        std::hint::black_box(outcome);
        peak = peak.max(peak_rss().unwrap_or(0));
    }
    global.progress("pandas.read_csv ...");
    let (theirs, pandas_peak) = pandas(&args.python, &files.events, args.repeats)?;
    let (m_ours, m_theirs) = (median(ours.clone()), median(theirs.clone()));
    let events = files.events_written as f64;
    println!(
        "Shop import: {} events ({size_mb:.0} MB CSV), {} items, {users} users; median of {} runs, {} threads available",
        thousands(events),
        thousands(args.items as f64),
        args.repeats,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  {:<58} {:>9} {:>12} {:>10}",
        "implementation", "median s", "events/s", "peak mem"
    );
    let ours_peak = if measured_peak {
        mb(peak.saturating_sub(before))
    } else {
        "n/a".into()
    };
    println!(
        "  {:<58} {:>9.3} {:>12} {:>10}",
        "metarec shop import (parse, check, sort, write the shop)",
        m_ours,
        thousands(events / m_ours),
        ours_peak
    );
    println!(
        "  {:<58} {:>9.3} {:>12} {:>10}",
        "pandas.read_csv of the events file (parse only)",
        m_theirs,
        thousands(events / m_theirs),
        mb(pandas_peak)
    );
    let ratio = m_theirs / m_ours;
    println!(
        "  speed ratio (pandas median / metarec median): {ratio:.2}x ({}); peak memory is the growth over the process before the import",
        if ratio >= 1.0 {
            "metarec is at least as fast"
        } else {
            "metarec is SLOWER"
        }
    );
    Ok(())
}
