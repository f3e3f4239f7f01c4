//! `metarec bench import`: `shop import` of a generated shop (a million events, 50,000 items by
//! default) against `pandas.read_csv` of the same events file, with the peak memory of each, and
//! against pandas doing the same job (reading, sorting and writing the events); then the
//! import's steps, the events step being the like-for-like comparison with `read_csv`.

use super::{median, thousands, warn_debug_build};
use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_data::shop::import::{ImportSpec, prepare_shop_with};
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
/// growth of the process's peak resident memory over what importing pandas took. The peak is
/// the kernel's VmHWM: `ru_maxrss` would start at this (larger) process's peak, which a child
/// inherits at fork.
const PANDAS_SCRIPT: &str = r#"
import sys, time, resource
import pandas as pd
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, n = sys.argv[1], int(sys.argv[2])
base = peak_kb()
times = []
for _ in range(n):
    t = time.perf_counter()
    df = pd.read_csv(path)
    times.append(time.perf_counter() - t)
    del df
peak = peak_kb()
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

/// Runs a pandas script on the events file: `script PATH REPEATS [OUT]`, which prints its times
/// on one line and its peak memory growth in bytes on the next.
fn pandas(
    python: &str,
    script: &str,
    path: &Path,
    repeats: usize,
    out: Option<&Path>,
) -> Result<(Vec<f64>, u64)> {
    let mut command = Command::new(python);
    command
        .args(["-c", script])
        .arg(path)
        .arg(repeats.to_string());
    if let Some(out) = out {
        command.arg(out);
    }
    let out = command
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

/// The same job done with pandas, for reference: read the events, sort them stably by time,
/// write them as JSON lines, hash the bytes with SHA-256 and sync the file. It checks nothing and
/// builds no catalog, so it is still less work than an import.
const PANDAS_SAME_JOB: &str = r#"
import sys, time, hashlib, os
import pandas as pd
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = []
for _ in range(n):
    t = time.perf_counter()
    df = pd.read_csv(path)
    df = df.sort_values("timestamp", kind="stable")
    data = df.to_json(orient="records", lines=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(out, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    times.append(time.perf_counter() - t)
    del df, data
print(" ".join(repr(t) for t in times))
print(0)
"#;

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
    let mut steps: Vec<Vec<(String, f64)>> = Vec::with_capacity(args.repeats);
    let mut peak = 0u64;
    let before = rss().unwrap_or(0);
    let measured_peak = reset_peak_rss();
    for i in 0..args.repeats {
        global.progress(format!("metarec shop import {}/{}", i + 1, args.repeats));
        let (total, run) = timed_import(&spec, &out)?;
        ours.push(total);
        steps.push(run);
        peak = peak.max(peak_rss().unwrap_or(0));
    }
    global.progress("pandas.read_csv ...");
    let (theirs, pandas_peak) = pandas(
        &args.python,
        PANDAS_SCRIPT,
        &files.events,
        args.repeats,
        None,
    )?;
    global.progress("pandas doing the same job (read, sort, write JSON lines, hash, sync) ...");
    let (same_job, _) = pandas(
        &args.python,
        PANDAS_SAME_JOB,
        &files.events,
        args.repeats,
        Some(&tmp.path().join("pandas-events.jsonl")),
    )?;
    let m_same = median(same_job);
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
    println!(
        "  {:<58} {:>9.3} {:>12} {:>10}",
        "pandas: read_csv, stable sort, to_json lines, SHA-256, fsync",
        m_same,
        thousands(events / m_same),
        "n/a"
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
    println!(
        "  against pandas doing the same job (reading, sorting and writing it): {:.2}x",
        m_same / m_ours
    );
    // Where the import's time goes: pandas only parses, so the like-for-like comparison is
    // the events step alone; the rest is work pandas does not do.
    println!("  the import's steps (median s over the runs):");
    let names: Vec<String> = steps
        .first()
        .map(|run| run.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    for name in &names {
        let times: Vec<f64> = steps
            .iter()
            .filter_map(|run| run.iter().find(|(n, _)| n == name).map(|(_, t)| *t))
            .collect();
        let m = median(times);
        let rate = if name == EVENTS_STEP {
            format!(
                "{} events/s, {:.2}x pandas.read_csv",
                thousands(events / m),
                m_theirs / m
            )
        } else {
            String::new()
        };
        println!("    {name:<44} {m:>7.3} {rate}");
    }
    Ok(())
}

/// The step of an import that parses and checks the events file.
const EVENTS_STEP: &str = "reading the events";

/// One import, timed whole and by step: the steps are the importer's progress messages (paths
/// and counts dropped), then writing the shop.
fn timed_import(spec: &ImportSpec, out: &Path) -> Result<(f64, Vec<(String, f64)>)> {
    let start = Instant::now();
    let mut steps: Vec<(String, f64)> = Vec::new();
    let mut current: Option<String> = None;
    let mut since = Instant::now();
    let prepared = prepare_shop_with(spec, &mut |message: &str| {
        if let Some(step) = current.take() {
            steps.push((step, since.elapsed().as_secs_f64()));
        }
        current = Some(step_name(message));
        since = Instant::now();
    })?;
    if let Some(step) = current.take() {
        steps.push((step, since.elapsed().as_secs_f64()));
    }
    let write = Instant::now();
    let outcome = prepared.save(out, true)?;
    steps.push((
        "writing the shop (JSON, SHA-256, fsync)".into(),
        write.elapsed().as_secs_f64(),
    ));
    std::hint::black_box(outcome);
    Ok((start.elapsed().as_secs_f64(), steps))
}

/// A progress message without its paths or counts (`reading the events /tmp/x.csv` -> `reading
/// the events`), so that runs can be matched step by step.
fn step_name(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("reading the ") {
        let what = rest.split_whitespace().next().unwrap_or("");
        let beside = if rest.contains(" and the users ") {
            " and the users"
        } else {
            ""
        };
        return format!("reading the {what}{beside}");
    }
    if message.starts_with("building the catalog and sorting") {
        return "building the catalog, sorting the events".into();
    }
    message.to_owned()
}
