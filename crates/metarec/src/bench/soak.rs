//! `metarec bench soak`: minutes of open-loop rank and feedback load against a `metarec serve`
//! child, reporting WAL and database size, resident memory and overdue events every interval.

use super::serve::{LoadArgs, load, percentile};
use super::server_child::{BENCH_TOKEN, BenchServer};
use super::warn_debug_build;
use crate::Global;
use crate::args::{DAY, MAX_THREADS, count, seconds, whole};
use crate::serve::DurabilityArg;
use anyhow::{Result, bail};
use clap::Args;
use metarec_serve::client::Client;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchSoakArgs {
    /// The model directory to serve.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Seconds of load in all.
    #[arg(long, default_value_t = 600.0, value_parser = seconds(7 * DAY))]
    duration: f64,
    /// Seconds between two report lines.
    #[arg(long, default_value_t = 30.0, value_parser = seconds(DAY))]
    every: f64,
    /// Keep-alive connections of the load.
    #[arg(long, default_value_t = 8, value_parser = count::<usize>(4096))]
    connections: usize,
    #[command(flatten)]
    load: LoadArgs,
    /// Server worker threads.
    #[arg(long, default_value_t = 2, value_parser = whole::<usize>(0, MAX_THREADS))]
    workers: usize,
    /// The server's `--reward-window` in seconds: short, so that events expire during the run
    /// and the sweeper is soaked too.
    #[arg(long, default_value_t = 5.0, value_parser = seconds(30 * DAY))]
    reward_window: f64,
    /// The server's `--wal-limit-mb`.
    #[arg(long, default_value_t = 64, value_parser = count::<u64>(1 << 20))]
    wal_limit_mb: u64,
    /// The server's `--durability`.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
}

/// Resident memory of a process in bytes, from `/proc/PID/status` (Linux only).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The value of an unlabelled series in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn run(args: BenchSoakArgs, global: &Global) -> Result<()> {
    if args.every > args.duration {
        bail!("--every must be at most --duration");
    }
    args.load.check()?;
    if args.load.rate <= 0.0 {
        bail!("--rate must be positive: a soak runs open loop at a fixed rate");
    }
    warn_debug_build("soak");
    let (keys, server) = BenchServer {
        model: &args.model,
        workers: args.workers,
        durability: args.durability,
        db: None,
    }
    .start(
        global,
        args.load.candidates,
        &[
            "--reward-window".into(),
            args.reward_window.to_string(),
            "--wal-limit-mb".into(),
            args.wal_limit_mb.to_string(),
        ],
    )?;
    let wal = {
        let mut name = server.db.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    };
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let limit = args.wal_limit_mb << 20;
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "soak: {} s open loop at {} ranks/s over {} connections, {} candidates, 1 click per {} ranks; server: {} workers, reward window {} s, WAL limit {} MB, durability {:?}",
        args.duration,
        args.load.rate,
        args.connections,
        args.load.candidates,
        args.load.feedback_every,
        args.workers,
        args.reward_window,
        args.wal_limit_mb,
        args.durability
    );
    println!(
        "{:>7}  {:>10}  {:>8}  {:>8}  {:>6}  {:>11}  {:>9}  {:>8}  {:>8}",
        "t s",
        "requests/s",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "WAL max MB",
        "DB MB",
        "RSS MB",
        "overdue"
    );
    let mut admin = Client::new(server.addr, Some(BENCH_TOKEN));
    let mut overdue = || -> Option<f64> {
        let text = admin.request("GET", "/metrics", None).ok()?.text();
        metric(&text, "metarec_events_overdue")
    };
    // The WAL is sampled every 100 ms by its own thread, so a peak between two report lines
    // is seen.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let peak = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    let (mut worst_p99, mut wal_max, mut errors) = (0.0f64, 0u64, 0usize);
    let mut rss: Vec<(f64, u64)> = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(size(&wal), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        while started.elapsed().as_secs_f64() + 0.5 < args.duration {
            let left = args.duration - started.elapsed().as_secs_f64();
            let cell = load(
                &[server.addr],
                BENCH_TOKEN,
                &keys,
                args.load,
                args.connections,
                args.every.min(left),
            );
            let t = started.elapsed().as_secs_f64();
            let p99 = 1000.0 * percentile(&cell.latencies, 0.99);
            let interval_peak = peak.swap(0, std::sync::atomic::Ordering::Relaxed);
            let resident = resident_bytes(server.child.id()).unwrap_or(0);
            worst_p99 = worst_p99.max(p99);
            wal_max = wal_max.max(interval_peak);
            errors += cell.errors;
            rss.push((t, resident));
            println!(
                "{t:>7.0}  {:>10.0}  {p99:>8.3}  {:>8.3}  {:>6}  {:>11.1}  {:>9.1}  {:>8.1}  {:>8}",
                cell.requests as f64 / cell.seconds,
                1000.0 * percentile(&cell.latencies, 0.999),
                cell.errors,
                mb(interval_peak),
                mb(size(&server.db)),
                mb(resident),
                overdue().map_or("-".to_owned(), |v| format!("{v:.0}"))
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Once the load stops, every open event expires within one window and is closed by the
    // next sweep; two sweep intervals later none may be left.
    let window = Duration::from_secs_f64(args.reward_window);
    std::thread::sleep(window + 2 * metarec_serve::api::sweep_interval(window));
    let left = overdue();
    let base = rss
        .iter()
        .find(|(t, _)| *t >= 120.0)
        .or(rss.last())
        .map_or(0, |r| r.1);
    let drift = rss
        .iter()
        .filter(|(t, _)| *t >= 120.0)
        .map(|(_, r)| (*r as f64 - base as f64).abs() / base.max(1) as f64)
        .fold(0.0f64, f64::max);
    println!();
    println!(
        "WAL: largest {:.1} MB against a limit of {} MB: {}",
        mb(wal_max),
        args.wal_limit_mb,
        if wal_max <= limit { "within" } else { "OVER" }
    );
    println!(
        "resident memory: at most {:.1}% from its value at minute 2 (or the last line when shorter): {}",
        100.0 * drift,
        if drift <= 0.10 { "flat" } else { "GREW" }
    );
    println!(
        "events past their window after the load stopped and two sweeps: {}",
        left.map_or("unknown (no /metrics answer)".to_owned(), |v| format!(
            "{v:.0}"
        ))
    );
    println!("worst interval p99: {worst_p99:.3} ms; errors: {errors}");
    Ok(())
}
