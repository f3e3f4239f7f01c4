//! `metarec serve` (the HTTP server), `metarec log export` (the server's database as an
//! interaction log) and `metarec bench serve` (a loopback load test of `/v1/rank`).

use crate::Global;
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
    /// The scenario whose catalog the model was trained on (default: the one in its manifest).
    #[arg(long)]
    scenario: Option<String>,
    /// Seconds after a rank during which feedback is accepted.
    #[arg(long, default_value_t = 600.0)]
    reward_window: f64,
    /// Reward recorded for events that get no feedback within the window.
    #[arg(long, default_value_t = 0.0)]
    default_reward: f64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    body_limit: usize,
    /// Seed of the exploration.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// What an acknowledged event survives: `machine` (an fsync per commit group: power cuts
    /// and OS crashes) or `process` (no fsync per commit: the server being killed, not a
    /// power cut; much lower latency on slow disks).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
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

/// Loads the catalog a model was trained on: the scenario named in its manifest (or given).
fn model_catalog(
    model: &Path,
    scenario: Option<&str>,
    global: &Global,
) -> Result<metarec_core::Catalog> {
    let manifest = metarec_neural::checkpoint::read_manifest(model)?;
    let name = scenario.unwrap_or(&manifest.scenario);
    let scenario = crate::sim::build_scenario(name, global)
        .with_context(|| format!("cannot build scenario `{name}` for the model's catalog"))?;
    Ok(scenario.world.catalog.clone())
}

pub fn run(args: ServeArgs, global: &Global) -> Result<()> {
    if !(args.reward_window.is_finite() && args.reward_window > 0.0) {
        bail!("--reward-window must be a positive number of seconds");
    }
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
    let catalog = model_catalog(&args.model, args.scenario.as_deref(), global)?;
    let mut config = ServerConfig::new(args.model.clone(), args.db.clone(), keys, pseudonyms);
    config.reward_window = Duration::from_secs_f64(args.reward_window);
    config.default_reward = args.default_reward;
    config.body_limit = args.body_limit;
    config.seed = args.seed;
    config.durability = args.durability.into();
    let server = Server::open(catalog, config)?;
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
        // On stdout and flushed at once: scripts and tests started with port 0 read it.
        println!(
            "metarec serve: listening on http://{addr} (model {}, database {})",
            server.model_version(),
            args.db.display()
        );
        std::io::stdout().flush()?;
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
    #[arg(long, default_value = "1,8,64")]
    connections: String,
    /// Seconds of load per connection count (after a one-second warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Candidates per rank request.
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// Slate size.
    #[arg(long, default_value_t = 10)]
    slate: usize,
    /// One rank in this many is followed by a click (so users adapt during the run).
    #[arg(long, default_value_t = 5)]
    feedback_every: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The scenario whose catalog the model was trained on (default: the one in its manifest).
    #[arg(long)]
    scenario: Option<String>,
    /// Open loop: send this many rank requests per second in all, on a fixed schedule spread
    /// over the connections, and time each request from when it was due (so a stalled server
    /// is charged for the requests it delayed). 0: closed loop, each connection sends its next
    /// request as soon as the last one is answered.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The server's `--durability`.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Machine)]
    durability: DurabilityArg,
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
    args: &BenchServeArgs,
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
                    let mut cell = Cell {
                        latencies: Vec::new(),
                        lags: Vec::new(),
                        requests: 0,
                        feedback: 0,
                        errors: 0,
                        seconds: 0.0,
                    };
                    let mut n = 0usize;
                    // Under --rate, connection t's k-th request is due at
                    // start + (k * connections + t) / rate.
                    let interval = (args.rate > 0.0)
                        .then(|| Duration::from_secs_f64(connections as f64 / args.rate));
                    let mut due = match interval {
                        Some(_) => start + Duration::from_secs_f64(t as f64 / args.rate),
                        None => start,
                    };
                    while Instant::now() < deadline {
                        // 1,000 users spread over the connections; candidates rotate through
                        // the catalog.
                        let user = format!("user{}", (t * 7919 + n) % 1000);
                        let offset = (n * 13) % keys.len();
                        let candidates: Vec<&String> =
                            keys.iter().cycle().skip(offset).take(args.candidates).collect();
                        let body = serde_json::json!({
                            "user": user,
                            "context": {"country": "United Kingdom"},
                            "candidates": candidates,
                            "slate_size": args.slate,
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
                                if n % args.feedback_every.max(1) == 0 {
                                    let v = r.json();
                                    let fb = serde_json::json!({
                                        "event_id": v["event_id"], "position": n % args.slate, "kind": "click"
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
    let mut total = Cell {
        latencies: Vec::new(),
        lags: Vec::new(),
        requests: 0,
        feedback: 0,
        errors: 0,
        seconds: start.elapsed().as_secs_f64(),
    };
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

pub fn bench(args: BenchServeArgs, global: &Global) -> Result<()> {
    let connections: Vec<usize> = args
        .connections
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--connections must be comma-separated counts: {e}"))?;
    if connections.contains(&0) || args.candidates == 0 || args.slate == 0 {
        bail!("--connections, --candidates and --slate must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a non-negative number of requests per second");
    }
    if args.slate > args.candidates {
        bail!("--slate must not exceed --candidates");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -p metarec -- bench serve`"
        );
    }
    let catalog = model_catalog(&args.model, args.scenario.as_deref(), global)?;
    let keys: Vec<String> = catalog
        .ids()
        .filter_map(|id| catalog.key(id).map(str::to_owned))
        .collect();
    if keys.len() < args.candidates {
        bail!(
            "the catalog has {} items, fewer than --candidates {}",
            keys.len(),
            args.candidates
        );
    }
    let tmp = std::env::temp_dir().join(format!("metarec-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let token = "bench-admin-token-0123456789";
    // The server is a separate process (this binary's `serve`), so the load generator's threads
    // and the server's workers compete for the cores as they would on one machine.
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--quiet", "--data-dir"])
        .arg(global.data.root())
        .arg("serve")
        .arg("--model")
        .arg(&args.model)
        .arg("--db")
        .arg(tmp.join("bench.db"))
        .args(["--addr", "127.0.0.1:0", "--workers"])
        .arg(args.workers.to_string())
        .arg("--durability")
        .arg(
            clap::ValueEnum::to_possible_value(&args.durability)
                .context("every durability has a name")?
                .get_name(),
        )
        .args(
            args.scenario
                .iter()
                .flat_map(|s| ["--scenario", s.as_str()]),
        )
        .env("METAREC_API_KEYS", format!("admin:{token}"))
        .env("METAREC_PSEUDONYM_KEY", "bench-pseudonym-secret-0123")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start `metarec serve`")?;
    let result = (|| -> Result<()> {
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("the server did not start: `{}`", line.trim()))?;
        println!(
            "/v1/rank, {} candidates, slate {}, 1 click per {} ranks, 1,000 users; server: {} workers, durability {:?}; {} cores on this machine",
            args.candidates,
            args.slate,
            args.feedback_every,
            args.workers,
            args.durability,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        if args.rate > 0.0 {
            println!(
                "open loop at {} rank requests/s in all; latency counted from when each request was due",
                args.rate
            );
        } else {
            println!("closed loop: each connection sends as soon as its last request is answered");
        }
        println!(
            "connections  requests/s  feedback/s      p50 ms      p99 ms    p99.9 ms  errors  server CPU us/req  load CPU us/req{}",
            if args.rate > 0.0 {
                "  send lag p99 ms"
            } else {
                ""
            }
        );
        let server_pid = child.id().to_string();
        for &c in &connections {
            load(addr, token, &keys, &args, c, 1.0);
            let before = (cpu_seconds(&server_pid), cpu_seconds("self"));
            let cell = load(addr, token, &keys, &args, c, args.seconds);
            let after = (cpu_seconds(&server_pid), cpu_seconds("self"));
            let ms = |q| 1000.0 * percentile(&cell.latencies, q);
            // CPU per rank request (its share of feedback included), or `-` off Linux.
            let per_request = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if cell.requests > 0 => {
                    format!("{:.0}", 1e6 * (b - a) / cell.requests as f64)
                }
                _ => "-".to_owned(),
            };
            let lag = if args.rate > 0.0 {
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
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
