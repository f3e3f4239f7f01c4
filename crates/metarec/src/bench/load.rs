//! `metarec bench load`: the Online Retail load (parse + clean + index) against
//! `pandas.read_csv` of the same file.

use super::{median, warn_debug_build};
use crate::Global;
use crate::args::count;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_data::LoadOptions;
use metarec_data::fetch::Dataset;
use metarec_data::online_retail::load_online_retail;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[derive(Args)]
pub struct BenchLoadArgs {
    /// Timed repetitions of each side (the median is compared).
    #[arg(long, default_value_t = 7, value_parser = count::<usize>(1000))]
    repeats: usize,
    /// The Python interpreter with pandas installed.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// The baseline: pandas' C parser reading the same file, timed inside Python so that interpreter
/// start-up and the import are not counted against it.
const PANDAS_SCRIPT: &str = r#"
import sys, time
import pandas as pd
path, n = sys.argv[1], int(sys.argv[2])
pd.read_csv(path)  # warm the page cache and pandas' lazy imports
times = []
for _ in range(n):
    t = time.perf_counter()
    pd.read_csv(path)
    times.append(time.perf_counter() - t)
print(" ".join(repr(t) for t in times))
"#;

fn pandas_times(python: &str, path: &Path, repeats: usize) -> Result<Vec<f64>> {
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
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .context("unexpected output from the pandas script")
        })
        .collect()
}

pub fn run(args: BenchLoadArgs, global: &Global) -> Result<()> {
    let BenchLoadArgs { repeats, python } = args;
    warn_debug_build("load");
    global.data.require(Dataset::OnlineRetail)?;
    let path = global.data.online_retail_csv();
    let size_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    let options = LoadOptions::default();
    // One untimed load warms the page cache, as the pandas side does.
    let first = load_online_retail(&path, &options)?;
    let mut ours = Vec::with_capacity(repeats);
    for i in 0..repeats {
        global.progress(format!("metarec load {}/{repeats}", i + 1));
        let t = Instant::now();
        let d = load_online_retail(&path, &options)?;
        ours.push(t.elapsed().as_secs_f64());
        std::hint::black_box(d);
    }
    global.progress("pandas.read_csv ...");
    let theirs = pandas_times(&python, &path, repeats)?;
    let (m_ours, m_theirs) = (median(ours.clone()), median(theirs.clone()));
    let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "Online Retail load: {} records, {size_mb:.1} MB, median of {repeats} runs, {} threads available",
        first.report.records,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  {:<44} {:>10} {:>10}",
        "implementation", "median s", "min s"
    );
    println!(
        "  {:<44} {:>10.4} {:>10.4}",
        "metarec (parse + clean + catalog + index)",
        m_ours,
        min(&ours)
    );
    println!(
        "  {:<44} {:>10.4} {:>10.4}",
        "pandas.read_csv (parse only)",
        m_theirs,
        min(&theirs)
    );
    let ratio = m_theirs / m_ours;
    println!(
        "  speed ratio (pandas median / metarec median): {ratio:.2}x ({})",
        if ratio >= 1.0 {
            "metarec is at least as fast"
        } else {
            "metarec is SLOWER"
        }
    );
    Ok(())
}
