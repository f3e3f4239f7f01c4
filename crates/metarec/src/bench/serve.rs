//! `metarec bench serve`: a loopback load test of `/v1/rank` against a `metarec serve` child
//! process, and the load generator that `bench soak` runs too.

use super::server_child::{BENCH_TOKEN, BenchServer};
use super::warn_debug_build;
use crate::Global;
use crate::args::{DAY, MAX_THREADS, count, seconds, whole, zero_or};
use crate::serve::DurabilityArg;
use anyhow::{Result, bail};
use clap::Args;
use metarec_serve::client::Client;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchServeArgs {
    /// The model directory to serve.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Comma-separated connection counts.
    #[arg(long, default_value = "1,8,64", value_delimiter = ',', value_parser = count::<usize>(4096))]
    connections: Vec<usize>,
    /// Seconds of load per connection count (after a one-second warm-up).
    #[arg(long, default_value_t = 5.0, value_parser = seconds(DAY))]
    seconds: f64,
    #[command(flatten)]
    load: LoadArgs,
    /// Server worker threads.
    #[arg(long, default_value_t = 2, value_parser = whole::<usize>(0, MAX_THREADS))]
    workers: usize,
    /// The server's `--durability` (SQLite).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
    /// Serve from this PostgreSQL database (`postgres://...`; use a scratch database: the run
    /// adds rows) instead of a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Server processes sharing `--db`, each with `--workers` threads; the connections are
    /// spread over them in turn, as a load balancer would.
    #[arg(long, default_value_t = 1, value_parser = count::<usize>(64))]
    replicas: usize,
}

/// What each load connection sends (shared by `bench serve` and `bench soak`).
#[derive(Args, Clone, Copy)]
pub(super) struct LoadArgs {
    /// Candidates per rank request.
    #[arg(long, default_value_t = 100, value_parser = count::<usize>(100_000))]
    pub(super) candidates: usize,
    /// Slate size.
    #[arg(long, default_value_t = 10, value_parser = count::<usize>(1000))]
    slate: usize,
    /// One rank in this many is followed by a click (so users adapt during the run).
    #[arg(long, default_value_t = 5, value_parser = count::<usize>(1_000_000))]
    pub(super) feedback_every: usize,
    /// Open loop: send this many rank requests per second in all, on a fixed schedule spread
    /// over the connections, and time each request from when it was due (so a stalled server
    /// is charged for the requests it delayed). 0: closed loop, each connection sends its next
    /// request as soon as the last one is answered.
    #[arg(long, default_value_t = 0.0, value_parser = zero_or(0.01, 1e7))]
    pub(super) rate: f64,
    /// Ask for no explanations (`"explain": false`), as a client that never shows them would.
    #[arg(long)]
    pub(super) no_explain: bool,
    /// Send `GET /healthz` instead of ranks, and no feedback: the same server, HTTP stack,
    /// middleware and metrics with no decision and no store, which is the floor under the
    /// cost of any rank.
    #[arg(long)]
    pub(super) floor: bool,
}

impl LoadArgs {
    pub(super) fn check(&self) -> Result<()> {
        if self.slate > self.candidates {
            bail!("--slate must not exceed --candidates");
        }
        Ok(())
    }
}

pub(super) struct Cell {
    pub(super) latencies: Vec<f64>,
    /// Open loop: how late each request left, after its due time (the load generator's own
    /// scheduling delay, which the latencies include).
    lags: Vec<f64>,
    pub(super) requests: usize,
    feedback: usize,
    pub(super) errors: usize,
    pub(super) seconds: f64,
}

impl Cell {
    fn empty(seconds: f64) -> Cell {
        Cell {
            latencies: Vec::new(),
            lags: Vec::new(),
            requests: 0,
            feedback: 0,
            errors: 0,
            seconds,
        }
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat` (Linux only;
/// `None` elsewhere). The clock tick is taken as 100 Hz, the value on every Linux platform Rust
/// supports.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3, so utime and stime (fields 14 and 15) are at 11 and 12 from there.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Bytes a process has sent toward storage so far (`write_bytes` of `/proc/PID/io`: the page
/// cache pages it dirtied, which reach the disk; socket writes are not counted), or `None` where
/// the kernel does not account them (off Linux, or without task I/O accounting).
fn disk_bytes(pid: &str) -> Option<f64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Busy CPU seconds of the whole machine so far (every process: servers, database, load), from
/// `/proc/stat` (Linux only).
fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: f64 = fields.iter().take(8).sum();
    Some((total - fields.get(3)? - fields.get(4)?) / 100.0)
}

/// Sends rank (and feedback) requests to the servers at `addrs`, connection `t` to server
/// `t % addrs.len()`.
pub(super) fn load(
    addrs: &[SocketAddr],
    token: &str,
    keys: &[String],
    spec: LoadArgs,
    connections: usize,
    seconds: f64,
) -> Cell {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let results: Vec<Cell> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|t| {
                let addr = addrs[t % addrs.len()];
                scope.spawn(move || {
                    let mut client = Client::new(addr, Some(token));
                    let mut cell = Cell::empty(0.0);
                    let mut n = 0usize;
                    // Under --rate, connection t's k-th request is due at
                    // start + (k * connections + t) / rate.
                    let interval = (spec.rate > 0.0)
                        .then(|| Duration::from_secs_f64(connections as f64 / spec.rate));
                    let mut due = match interval {
                        Some(_) => start + Duration::from_secs_f64(t as f64 / spec.rate),
                        None => start,
                    };
                    while Instant::now() < deadline {
                        // 1,000 users spread over the connections; candidates rotate through
                        // the catalog.
                        let user = format!("user{}", (t * 7919 + n) % 1000);
                        let offset = (n * 13) % keys.len();
                        let candidates: Vec<&String> =
                            keys.iter().cycle().skip(offset).take(spec.candidates).collect();
                        let body = serde_json::json!({
                            "user": user,
                            "context": {"country": "United Kingdom"},
                            "candidates": candidates,
                            "slate_size": spec.slate,
                            "explain": !spec.no_explain,
                        })
                        .to_string();
                        // The body is built before waiting, so it is not charged to the server.
                        if interval.is_some() {
                            let now = Instant::now();
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                            cell.lags.push(due.elapsed().as_secs_f64());
                        }
                        let t0 = if interval.is_some() { due } else { Instant::now() };
                        let r = if spec.floor {
                            client.request("GET", "/healthz", None)
                        } else {
                            client.request("POST", "/v1/rank", Some(body.as_bytes()))
                        };
                        let dt = t0.elapsed().as_secs_f64();
                        if let Some(interval) = interval {
                            due += interval;
                        }
                        n += 1;
                        match r {
                            Ok(r) if r.status == 200 => {
                                cell.latencies.push(dt);
                                cell.requests += 1;
                                if !spec.floor && n % spec.feedback_every == 0 {
                                    let v = r.json();
                                    let fb = serde_json::json!({
                                        "event_id": v["event_id"], "position": n % spec.slate, "kind": "click"
                                    })
                                    .to_string();
                                    match client.request("POST", "/v1/feedback", Some(fb.as_bytes())) {
                                        Ok(r) if r.status == 200 => cell.feedback += 1,
                                        _ => cell.errors += 1,
                                    }
                                }
                            }
                            _ => cell.errors += 1,
                        }
                    }
                    cell
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .collect()
    });
    let mut total = Cell::empty(start.elapsed().as_secs_f64());
    for c in results {
        total.latencies.extend(c.latencies);
        total.lags.extend(c.lags);
        total.requests += c.requests;
        total.feedback += c.feedback;
        total.errors += c.errors;
    }
    total.latencies.sort_by(f64::total_cmp);
    total.lags.sort_by(f64::total_cmp);
    total
}

pub fn run(args: BenchServeArgs, global: &Global) -> Result<()> {
    let connections = args.connections.clone();
    args.load.check()?;
    warn_debug_build("serve");
    if args.replicas > 1 && args.db.is_none() {
        bail!(
            "--replicas {} needs --db postgres://...: replicas share one database",
            args.replicas
        );
    }
    if args
        .db
        .as_deref()
        .is_some_and(|db| !metarec_serve::store::is_postgres_url(db))
    {
        bail!(
            "--db must be a PostgreSQL URL (postgres://...); without it the benchmark uses a temporary SQLite file"
        );
    }
    let bench = BenchServer {
        model: &args.model,
        workers: args.workers,
        durability: args.durability,
        db: args.db.as_deref(),
    };
    let (keys, first) = bench.start(global, args.load.candidates, &[])?;
    let mut servers = vec![first];
    for _ in 1..args.replicas {
        servers.push(bench.start(global, args.load.candidates, &[])?.1);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let store = match &args.db {
        Some(_) => format!("PostgreSQL, {} replica(s)", args.replicas),
        None => format!("SQLite, durability {:?}", args.durability),
    };
    let spec = args.load;
    println!(
        "/v1/rank, {} candidates, slate {}{}, 1 click per {} ranks, 1,000 users; server: {} workers each, {store}; {} cores on this machine",
        spec.candidates,
        spec.slate,
        if spec.floor {
            " (--floor: GET /healthz instead, no feedback)"
        } else if spec.no_explain {
            ", no explanations"
        } else {
            ""
        },
        spec.feedback_every,
        args.workers,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if spec.rate > 0.0 {
        println!(
            "open loop at {} rank requests/s in all; latency counted from when each request was due",
            spec.rate
        );
    } else {
        println!("closed loop: each connection sends as soon as its last request is answered");
    }
    println!(
        "connections  requests/s  feedback/s      p50 ms      p99 ms    p99.9 ms  errors  server CPU us/req  load CPU us/req  machine CPU us/req  server disk kB/req{}",
        if spec.rate > 0.0 {
            "  send lag p99 ms"
        } else {
            ""
        }
    );
    let pids: Vec<String> = servers.iter().map(|s| s.child.id().to_string()).collect();
    // The servers' CPU in all (every replica), or `None` off Linux.
    let servers_cpu = || -> Option<f64> { pids.iter().map(|p| cpu_seconds(p)).sum() };
    // What they wrote toward the disk in all: the store's log and checkpoints (SQLite), not
    // what a PostgreSQL server writes on their behalf.
    let servers_disk = || -> Option<f64> { pids.iter().map(|p| disk_bytes(p)).sum() };
    for &c in &connections {
        load(&addrs, BENCH_TOKEN, &keys, spec, c, 1.0);
        let before = (servers_cpu(), cpu_seconds("self"), machine_cpu_seconds());
        let disk_before = servers_disk();
        let cell = load(&addrs, BENCH_TOKEN, &keys, spec, c, args.seconds);
        let after = (servers_cpu(), cpu_seconds("self"), machine_cpu_seconds());
        let disk_after = servers_disk();
        let ms = |q| 1000.0 * percentile(&cell.latencies, q);
        // CPU per rank request (its share of feedback included), or `-` off Linux.
        let per_request = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if cell.requests > 0 => {
                format!("{:.0}", 1e6 * (b - a) / cell.requests as f64)
            }
            _ => "-".to_owned(),
        };
        let disk = match (disk_before, disk_after) {
            (Some(a), Some(b)) if cell.requests > 0 => {
                format!("{:.1}", (b - a) / 1000.0 / cell.requests as f64)
            }
            _ => "-".to_owned(),
        };
        let lag = if spec.rate > 0.0 {
            format!("  {:>16.3}", 1000.0 * percentile(&cell.lags, 0.99))
        } else {
            String::new()
        };
        println!(
            "{c:>11}  {:>10.0}  {:>10.0}  {:>10.3}  {:>10.3}  {:>10.3}  {:>6}  {:>17}  {:>15}  {:>18}  {:>18}{lag}",
            cell.requests as f64 / cell.seconds,
            cell.feedback as f64 / cell.seconds,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            cell.errors,
            per_request(before.0, after.0),
            per_request(before.1, after.1),
            per_request(before.2, after.2),
            disk,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn disk_bytes_count_what_a_process_writes_to_a_file_and_not_to_a_socket() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        // This thread's own counts, so that other tests running at the same time add nothing.
        let before = disk_bytes("thread-self").expect("task I/O accounting");
        let mut file = std::fs::File::create(dir.path().join("f")).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        let written = disk_bytes("thread-self").unwrap() - before;
        assert!(written >= (1 << 20) as f64, "{written}");
        // A megabyte through a socket is not counted.
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::copy(&mut b, &mut std::io::sink()).unwrap();
        });
        let before = disk_bytes("thread-self").unwrap();
        a.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(a);
        reader.join().unwrap();
        assert!(disk_bytes("thread-self").unwrap() - before < (1 << 19) as f64);
        assert_eq!(disk_bytes("no-such-process"), None);
    }
}
