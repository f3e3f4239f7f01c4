//! `metarec serve` (the HTTP server) and `metarec log export` (the server's database as an
//! interaction log). `bench serve` and `bench soak` (in `bench/`) start this command as a child.

use crate::Global;
use crate::args::{DAY, MAX_THREADS, count, number, positive, probability, seconds, whole};
use anyhow::{Context as _, Result};
use clap::Args;
use metarec_neural::adjust::Exploration;
use metarec_serve::auth::{ApiKeys, Pseudonymizer};
use metarec_serve::{Durability, Server, ServerConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// The model directory (from `metarec meta-train` or `metarec demo`: model.safetensors,
    /// manifest.json, adjuster.json).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Where decisions, feedback and user states are stored: a SQLite file (created if
    /// missing), or a PostgreSQL URL (`postgres://user[:password]@host:port/database`) that any
    /// number of servers may share (docs/serving.md, "Several servers").
    #[arg(long, default_value = "metarec.db", value_name = "FILE|URL")]
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
    /// Seconds without a slate shown to a user after which their next slate begins a new
    /// visit (at most 30 days). The network reads the visit's number, its step and the items
    /// it showed, as the simulator gives them; 30 minutes is the shop import's rule.
    #[arg(long, default_value_t = 1800.0, value_parser = seconds(30 * DAY))]
    visit_gap: f64,
    /// Reward recorded for events that get no feedback within the window.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = number(-1e6, 1e6))]
    default_reward: f64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_parser = count::<usize>(1 << 30))]
    body_limit: usize,
    /// Seed of the exploration (Thompson draws, `--explore`): a rank draws from the stream of
    /// the seed, the user and their visit and step, so the same requests draw the same slates.
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
    /// How ranks explore, with the exact propensities logged: `greedy` (the adjuster's own
    /// decision), `epsilon:E` (with probability E, 0 < E <= 1, a uniformly random slate, else
    /// the greedy one) or `softmax:T` (Plackett-Luce on the scores divided by T > 0; positions
    /// 0 and 1 exact, 2 exact over at most 256 candidates, later ones by Monte Carlo).
    #[arg(long, default_value = "greedy", value_parser = exploration, value_name = "greedy|epsilon:E|softmax:T")]
    explore: Exploration,
    /// Most items that may be added over `PUT /v1/items/{key}` (retired ones count).
    #[arg(long, default_value_t = 100_000, value_parser = whole::<usize>(0, 10_000_000))]
    max_added_items: usize,
    /// Apprentice mode: serve the shop's own ranking (each rank's `candidates`, in order, which
    /// it must then list) and log it, while the adjuster learns from its feedback; each answer
    /// also shows the slate the network would have chosen, and `/metrics` counts how often its
    /// first item agrees. For a shop that wants to watch before it lets the network rank.
    #[arg(long)]
    apprentice: bool,
}

/// Monte Carlo rankings behind the propensities of softmax positions without a closed form.
const SOFTMAX_DRAWS: usize = 200;

/// Parses `--explore`: `greedy`, `epsilon:E` with E in (0, 1], or `softmax:T` with T finite
/// and positive (at most 1e6).
fn exploration(text: &str) -> Result<Exploration, String> {
    let text = text.trim();
    if text == "greedy" {
        return Ok(Exploration::Greedy);
    }
    if let Some(e) = text.strip_prefix("epsilon:") {
        let epsilon = match probability(e) {
            Ok(0.0) => Err("must be greater than 0".to_owned()),
            other => other,
        }
        .map_err(|m| format!("epsilon {m}"))?;
        return Ok(Exploration::Epsilon(epsilon));
    }
    if let Some(t) = text.strip_prefix("softmax:") {
        let temperature = positive(1e6)(t).map_err(|m| format!("the temperature {m}"))?;
        return Ok(Exploration::Softmax {
            temperature,
            draws: SOFTMAX_DRAWS,
        });
    }
    Err("must be `greedy`, `epsilon:E` (0 < E <= 1) or `softmax:T` (T > 0)".to_owned())
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

/// A duration from seconds that `args::seconds` already checked; `what` names the option.
fn duration(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

pub fn run(args: ServeArgs, _global: &Global) -> Result<()> {
    let reward_window = duration(args.reward_window, "--reward-window")?;
    let visit_gap = duration(args.visit_gap, "--visit-gap")?;
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
    if let Some(url) = args
        .db
        .to_str()
        .filter(|s| metarec_serve::store::is_postgres_url(s))
    {
        config.postgres = Some(url.to_owned());
    }
    config.reward_window = reward_window;
    config.visit_gap = visit_gap;
    config.header_timeout = header_timeout;
    config.body_timeout = body_timeout;
    config.log_limit_bytes = args.wal_limit_mb << 20;
    config.max_connections = args.max_connections;
    config.default_reward = args.default_reward;
    config.body_limit = args.body_limit;
    config.seed = args.seed;
    config.durability = args.durability.into();
    config.explore = args.explore;
    config.max_added_items = args.max_added_items;
    config.apprentice = args.apprentice;
    let database = config.database();
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
            database
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
    /// The server's database: a SQLite file or a PostgreSQL URL.
    #[arg(long, default_value = "metarec.db", value_name = "FILE|URL")]
    db: PathBuf,
    /// The interaction log to write (JSON Lines).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The served catalog (`--model DIR`, the directory the server was started with): the
    /// database holds its dense item ids, the log its item keys and fingerprint.
    #[command(flatten)]
    catalog: crate::catalog::CatalogArgs,
}

pub fn export(args: LogExportArgs, global: &Global) -> Result<()> {
    let (catalog, source) = args.catalog.require("log export")?;
    global.progress(format!("naming items by the keys of {source}"));
    let n = metarec_serve::export_log(&args.db, &args.out, &catalog)?;
    global.progress("read the database");
    println!("wrote {n} interactions to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explore_takes_greedy_epsilon_and_softmax_within_their_ranges() {
        assert_eq!(exploration("greedy"), Ok(Exploration::Greedy));
        assert_eq!(exploration("epsilon:0.05"), Ok(Exploration::Epsilon(0.05)));
        assert_eq!(exploration("epsilon:1"), Ok(Exploration::Epsilon(1.0)));
        assert_eq!(
            exploration("softmax:0.5"),
            Ok(Exploration::Softmax {
                temperature: 0.5,
                draws: SOFTMAX_DRAWS
            })
        );
        for (bad, needle) in [
            ("epsilon:0", "greater than 0"),
            ("epsilon:1.5", "at most 1"),
            ("epsilon:nan", "NaN"),
            ("epsilon:", "epsilon must be a number"),
            ("softmax:0", "greater than 0"),
            ("softmax:-1", "greater than 0"),
            ("softmax:inf", "at most"),
            ("thompson", "must be `greedy`"),
            ("", "must be `greedy`"),
        ] {
            let e = exploration(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: `{needle}` not in `{e}`");
        }
        // Every accepted value passes the server's own check.
        for ok in ["greedy", "epsilon:1e-9", "softmax:1e6"] {
            assert_eq!(exploration(ok).unwrap().check(), Ok(()));
        }
    }
}
