//! `metarec bench ...`: speed measured as a ratio against a baseline run in the same process
//! invocation, printed as a table. One module per benchmark; `server_child` starts the
//! `metarec serve` child that `bench serve` and `bench soak` load.

mod embed;
mod import;
mod load;
mod neural;
mod ope;
mod serve;
pub(crate) mod server_child;
mod sim;
mod soak;

use crate::Global;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Serving: throughput and p50 / p99 / p99.9 latency of `/v1/rank` (100 candidates, users
    /// adapting through feedback) at 1, 8 and 64 keep-alive connections on loopback, against a
    /// `metarec serve` child process.
    Serve(serve::BenchServeArgs),
    /// Soak: minutes of open-loop rank and feedback load against a `metarec serve` child,
    /// printing every interval the request rate, p99, WAL and database size, resident memory
    /// and events past their reward window, then whether each stayed within its bound.
    Soak(soak::BenchSoakArgs),
    /// Text encoder throughput: every distinct Online Retail title embedded from scratch (all
    /// cores), optionally against Python sentence-transformers on the same titles.
    Embed(embed::BenchEmbedArgs),
    /// Neural policy: scoring latency for 100 and 1,000 candidates (p50 / p99, one thread)
    /// against LinUCB's decision on the same contexts, and training throughput.
    Neural(neural::BenchNeuralArgs),
    /// Simulated slate steps per second (decide + step + observe, one thread) for the random
    /// policy and LinUCB on catalogs of 100, 1,000 and 3,656 items (the whole catalog); optionally against RecoGym.
    Sim(sim::BenchSimArgs),
    /// Off-policy estimators: all seven with bootstrap intervals on a synthetic log of a million
    /// rows (rows per second; target under 10 s on 2 cores).
    Ope(ope::BenchOpeArgs),
    /// Online Retail load (parse + clean + index) against pandas.read_csv of the same file.
    Load(load::BenchLoadArgs),
    /// Shop import: `shop import` of a generated shop (a million events, 50,000 items) against
    /// pandas.read_csv of the same events file, with the peak memory of each.
    Import(import::BenchImportArgs),
}

pub fn run(command: BenchCommand, global: &Global) -> Result<()> {
    match command {
        BenchCommand::Ope(args) => ope::run(args, global),
        BenchCommand::Serve(args) => serve::run(args, global),
        BenchCommand::Soak(args) => soak::run(args, global),
        BenchCommand::Embed(args) => embed::run(args, global),
        BenchCommand::Neural(args) => neural::run(args, global),
        BenchCommand::Sim(args) => sim::run(args, global),
        BenchCommand::Load(args) => load::run(args, global),
        BenchCommand::Import(args) => import::run(args, global),
    }
}

/// Warns on standard error that timings of a debug build mean little, naming the release
/// command of `bench COMMAND`.
fn warn_debug_build(command: &str) {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -p metarec -- bench {command}`"
        );
    }
}

/// A rate rounded to a whole number with thousands separators.
fn thousands(x: f64) -> String {
    metarec_data::stats::thousands(x.round().max(0.0) as u64)
}

/// The median of timed runs (the mean of the middle two for an even count), the figure every
/// benchmark against an outside baseline compares.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
