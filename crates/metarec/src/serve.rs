//! `metarec serve` (the HTTP server), `metarec log export` (the server's database as an
//! interaction log) and `metarec bench serve` (a loopback load test of `/v1/rank`).

use crate::Global;
use crate::args::{DAY, MAX_THREADS, count, number, seconds, whole, zero_or};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use metarec_serve::auth::{ApiKeys, Pseudonymizer};
use metarec_serve::client::Client;
use metarec_serve::{Durability, Server, ServerConfig};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ServeArgs {
    /// The model directory (from `metarec meta-train` or `metarec demo`: model.safetensors,
    /// manifest.json, adjuster.json).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The SQLite database of decisions, feedback and user states (created if missing).
    #[arg(long, default_value = "metarec.db", value_name = "FILE")]
    db: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// File of API keys, `scope:token` per line (scopes: rank, admin); default: the
    /// METAREC_API_KEYS environment variable in the same format, comma-separated.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// File holding the pseudonymisation secret (at least 16 bytes); default: the
    /// METAREC_PSEUDONYM_KEY environment variable.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Seconds after a rank during which feedback is accepted (at most 30 days).
    #[arg(long, default_value_t = 600.0, value_parser = seconds(30 * DAY))]
    reward_window: f64,
    /// Reward recorded for events that get no feedback within the window.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = number(-1e6, 1e6))]
    default_reward: f64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_parser = count::<usize>(1 << 30))]
    body_limit: usize,
    /// Seed of the exploration.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0, value_parser = whole::<usize>(0, MAX_THREADS))]
    workers: usize,
    /// What an acknowledged event survives: `machine` (an fsync per commit group: power cuts
    /// and OS crashes) or `process` (no fsync per commit: the server being killed, not a
    /// power cut; much lower latency on slow disks).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
    /// Largest write-ahead log in MiB: the writer checkpoints and truncates it at half of this.
    #[arg(long, default_value_t = 64, value_parser = count::<u64>(1 << 20))]
    wal_limit_mb: u64,
    /// Seconds a connection may take to send a complete request head, from its opening or its
    /// previous answer (so idle keep-alive connections close after it too).
    #[arg(long, default_value_t = 5.0, value_parser = seconds(DAY))]
    header_timeout: f64,
    /// Seconds a request body may take to arrive.
    #[arg(long, default_value_t = 10.0, value_parser = seconds(DAY))]
    body_timeout: f64,
    /// Most connections served at once (more wait in the listen queue).
    #[arg(long, default_value_t = 512, value_parser = count::<usize>(100_000))]
    max_connections: usize,
}

/// `--durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// SQLite synchronous FULL.
    Machine,
    /// SQLite synchronous NORMAL.
    Process,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Durability {
        match d {
            DurabilityArg::Machine => Durability::Machine,
            DurabilityArg::Process => Durability::Process,
        }
    }
}

fn read_secret_source(file: Option<&Path>, var: &str, what: &str) -> Result<String> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} file {}", path.display())),
        None => std::env::var(var).map_err(|_| {
            anyhow::anyhow!("no {what}: pass the file option or set the {var} environment variable")
        }),
    }
}

/// The catalog a model ranks, from its bundle.
fn model_catalog(
    model: &Path,
    _scenario: Option<&str>,
    _global: &Global,
) -> Result<metarec_core::Catalog> {
    let bundle = metarec_neural::bundle::ModelBundle::load(model)?;
    Ok((*bundle.catalog).clone())
}

/// A duration from seconds that `args::seconds` already checked; `what` names the option.
fn duration(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

pub fn run(args: ServeArgs, _global: &Global) -> Result<()> {
    let reward_window = duration(args.reward_window, "--reward-window")?;
    let header_timeout = duration(args.header_timeout, "--header-timeout")?;
    let body_timeout = duration(args.body_timeout, "--body-timeout")?;
    let keys = ApiKeys::parse(&read_secret_source(
        args.keys.as_deref(),
        "METAREC_API_KEYS",
        "API keys",
    )?)?;
    let secret = read_secret_source(
        args.secret_file.as_deref(),
        "METAREC_PSEUDONYM_KEY",
        "pseudonymisation secret",
    )?;
    let pseudonyms = Pseudonymizer::new(secret.trim().as_bytes())?;
    let mut config = ServerConfig::new(args.model.clone(), args.db.clone(), keys, pseudonyms);
    config.reward_window = reward_window;
    config.header_timeout = header_timeout;
    config.body_timeout = body_timeout;
    config.log_limit_bytes = args.wal_limit_mb << 20;
    config.max_connections = args.max_connections;
    config.default_reward = args.default_reward;
    config.body_limit = args.body_limit;
    config.seed = args.seed;
    config.durability = args.durability.into();
    let server = Server::open(config)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.workers > 0 {
        runtime.worker_threads(args.workers);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        // On stdout and flushed at once: scripts and tests started with port 0 read it. Written
        // with `writeln!` rather than `println!`, so that a closed stdout is an error here (serve
        // ignores SIGPIPE) instead of a panic.
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "metarec serve: listening on http://{addr} (model {}, database {})",
            server.model_version(),
            args.db.display()
        )?;
        stdout.flush()?;
        server
            .run(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}

#[derive(Args)]
pub struct LogExportArgs {
    /// The server's database.
    #[arg(long, default_value = "metarec.db", value_name = "FILE")]
    db: PathBuf,
    /// The interaction log to write (JSON Lines).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn export(args: LogExportArgs, global: &Global) -> Result<()> {
    let n = metarec_serve::export_log(&args.db, &args.out)?;
    global.progress(format!("read {}", args.db.display()));
    println!("wrote {n} interactions to {}", args.out.display());
    Ok(())
}

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
    /// The scenario whose catalog the model was trained on (default: the one in its manifest).
    #[arg(long)]
    scenario: Option<String>,
    /// The server's `--durability`.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
}

/// What each load connection sends (shared by `bench serve` and `bench soak`).
#[derive(Args, Clone, Copy)]
struct LoadArgs {
    /// Candidates per rank request.
    #[arg(long, default_value_t = 100, value_parser = count::<usize>(100_000))]
    candidates: usize,
    /// Slate size.
    #[arg(long, default_value_t = 10, value_parser = count::<usize>(1000))]
    slate: usize,
    /// One rank in this many is followed by a click (so users adapt during the run).
    #[arg(long, default_value_t = 5, value_parser = count::<usize>(1_000_000))]
    feedback_every: usize,
    /// Open loop: send this many rank requests per second in all, on a fixed schedule spread
    /// over the connections, and time each request from when it was due (so a stalled server
    /// is charged for the requests it delayed). 0: closed loop, each connection sends its next
    /// request as soon as the last one is answered.
    #[arg(long, default_value_t = 0.0, value_parser = zero_or(0.01, 1e7))]
    rate: f64,
}

impl LoadArgs {
    fn check(&self) -> Result<()> {
        if self.slate > self.candidates {
            bail!("--slate must not exceed --candidates");
        }
        Ok(())
    }
}

struct Cell {
    latencies: Vec<f64>,
    /// Open loop: how late each request left, after its due time (the load generator's own
    /// scheduling delay, which the latencies include).
    lags: Vec<f64>,
    requests: usize,
    feedback: usize,
    errors: usize,
    seconds: f64,
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

/// Resident memory of a process in bytes, from `/proc/PID/status` (Linux only).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn load(
    addr: SocketAddr,
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
                        let r = client.request("POST", "/v1/rank", Some(body.as_bytes()));
                        let dt = t0.elapsed().as_secs_f64();
                        if let Some(interval) = interval {
                            due += interval;
                        }
                        n += 1;
                        match r {
                            Ok(r) if r.status == 200 => {
                                cell.latencies.push(dt);
                                cell.requests += 1;
                                if n % spec.feedback_every == 0 {
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

/// The admin token the benchmark's server accepts.
const BENCH_TOKEN: &str = "bench-admin-token-0123456789";

/// A `metarec serve` child process on a free loopback port with its own temporary database,
/// stopped and cleaned up when dropped. The server is a separate process (this binary's
/// `serve`), so the load generator's threads and the server's workers compete for the cores as
/// they would on one machine.
struct ServerChild {
    child: std::process::Child,
    addr: SocketAddr,
    dir: PathBuf,
    db: PathBuf,
}

impl ServerChild {
    fn spawn(
        global: &Global,
        model: &Path,
        scenario: Option<&str>,
        workers: usize,
        durability: DurabilityArg,
        extra: &[String],
    ) -> Result<ServerChild> {
        let dir = std::env::temp_dir().join(format!(
            "metarec-bench-serve-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("bench.db");
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--quiet", "--data-dir"])
            .arg(global.data.root())
            .arg("serve")
            .arg("--model")
            .arg(model)
            .arg("--db")
            .arg(&db)
            .args(["--addr", "127.0.0.1:0", "--workers"])
            .arg(workers.to_string())
            .arg("--durability")
            .arg(
                clap::ValueEnum::to_possible_value(&durability)
                    .context("every durability has a name")?
                    .get_name(),
            )
            .args(scenario.iter().flat_map(|s| ["--scenario", *s]))
            .args(extra)
            .env("METAREC_API_KEYS", format!("admin:{BENCH_TOKEN}"))
            .env("METAREC_PSEUDONYM_KEY", "bench-pseudonym-secret-0123")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start `metarec serve`")?;
        let started = (|| -> Result<SocketAddr> {
            let stdout = child.stdout.take().context("no stdout")?;
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line)?;
            line.split("http://")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("the server did not start: `{}`", line.trim()))
        })();
        let mut server = ServerChild {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            db,
        };
        server.addr = started?;
        Ok(server)
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The item keys of a model's catalog, at least `need` of them.
fn catalog_keys(
    model: &Path,
    scenario: Option<&str>,
    global: &Global,
    need: usize,
) -> Result<Vec<String>> {
    let catalog = model_catalog(model, scenario, global)?;
    let keys: Vec<String> = catalog
        .ids()
        .filter_map(|id| catalog.key(id).map(str::to_owned))
        .collect();
    if keys.len() < need {
        bail!(
            "the catalog has {} items, fewer than --candidates {need}",
            keys.len()
        );
    }
    Ok(keys)
}

/// The server a benchmark loads: its model, catalog and settings.
struct BenchServer<'a> {
    model: &'a Path,
    scenario: Option<&'a str>,
    workers: usize,
    durability: DurabilityArg,
}

impl BenchServer<'_> {
    /// The catalog's item keys (at least `candidates` of them) and a started server child,
    /// given `extra` server arguments.
    fn start(
        &self,
        global: &Global,
        candidates: usize,
        extra: &[String],
    ) -> Result<(Vec<String>, ServerChild)> {
        let keys = catalog_keys(self.model, self.scenario, global, candidates)?;
        let server = ServerChild::spawn(
            global,
            self.model,
            self.scenario,
            self.workers,
            self.durability,
            extra,
        )?;
        Ok((keys, server))
    }
}

fn warn_debug_build(command: &str) {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -p metarec -- bench {command}`"
        );
    }
}

pub fn bench(args: BenchServeArgs, global: &Global) -> Result<()> {
    let connections = args.connections.clone();
    args.load.check()?;
    warn_debug_build("serve");
    let (keys, server) = BenchServer {
        model: &args.model,
        scenario: args.scenario.as_deref(),
        workers: args.workers,
        durability: args.durability,
    }
    .start(global, args.load.candidates, &[])?;
    let spec = args.load;
    println!(
        "/v1/rank, {} candidates, slate {}, 1 click per {} ranks, 1,000 users; server: {} workers, durability {:?}; {} cores on this machine",
        spec.candidates,
        spec.slate,
        spec.feedback_every,
        args.workers,
        args.durability,
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
        "connections  requests/s  feedback/s      p50 ms      p99 ms    p99.9 ms  errors  server CPU us/req  load CPU us/req{}",
        if spec.rate > 0.0 {
            "  send lag p99 ms"
        } else {
            ""
        }
    );
    let server_pid = server.child.id().to_string();
    for &c in &connections {
        load(server.addr, BENCH_TOKEN, &keys, spec, c, 1.0);
        let before = (cpu_seconds(&server_pid), cpu_seconds("self"));
        let cell = load(server.addr, BENCH_TOKEN, &keys, spec, c, args.seconds);
        let after = (cpu_seconds(&server_pid), cpu_seconds("self"));
        let ms = |q| 1000.0 * percentile(&cell.latencies, q);
        // CPU per rank request (its share of feedback included), or `-` off Linux.
        let per_request = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if cell.requests > 0 => {
                format!("{:.0}", 1e6 * (b - a) / cell.requests as f64)
            }
            _ => "-".to_owned(),
        };
        let lag = if spec.rate > 0.0 {
            format!("  {:>16.3}", 1000.0 * percentile(&cell.lags, 0.99))
        } else {
            String::new()
        };
        println!(
            "{c:>11}  {:>10.0}  {:>10.0}  {:>10.3}  {:>10.3}  {:>10.3}  {:>6}  {:>17}  {:>15}{lag}",
            cell.requests as f64 / cell.seconds,
            cell.feedback as f64 / cell.seconds,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            cell.errors,
            per_request(before.0, after.0),
            per_request(before.1, after.1),
        );
    }
    Ok(())
}

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
    /// The scenario whose catalog the model was trained on (default: the one in its manifest).
    #[arg(long)]
    scenario: Option<String>,
    /// The server's `--durability`.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
}

/// The value of an unlabelled series in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn soak(args: BenchSoakArgs, global: &Global) -> Result<()> {
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
        scenario: args.scenario.as_deref(),
        workers: args.workers,
        durability: args.durability,
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
                server.addr,
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
