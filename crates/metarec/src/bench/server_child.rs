//! The `metarec serve` child process that `bench serve` and `bench soak` load, started on a
//! free loopback port with its own temporary SQLite database or on a given database (a
//! PostgreSQL URL that several children share as replicas).

use crate::Global;
use crate::serve::DurabilityArg;
use anyhow::{Context as _, Result, bail};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The admin token the benchmark's server accepts.
pub(crate) const BENCH_TOKEN: &str = "bench-admin-token-0123456789";

/// A `metarec serve` child process on a free loopback port with its own temporary database,
/// stopped and cleaned up when dropped. The server is a separate process (this binary's
/// `serve`), so the load generator's threads and the server's workers compete for the cores as
/// they would on one machine.
pub(crate) struct ServerChild {
    pub(super) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    dir: PathBuf,
    pub(super) db: PathBuf,
}

impl ServerChild {
    pub(crate) fn spawn(
        global: &Global,
        model: &Path,
        workers: usize,
        durability: DurabilityArg,
        database: Option<&str>,
        extra: &[String],
    ) -> Result<ServerChild> {
        let dir = std::env::temp_dir().join(format!(
            "metarec-bench-serve-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let db = database.map_or_else(|| dir.join("bench.db"), PathBuf::from);
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

/// The item keys of a model's catalog (from its bundle), at least `need` of them.
fn catalog_keys(model: &Path, need: usize) -> Result<Vec<String>> {
    let bundle = metarec_neural::bundle::ModelBundle::load(model)?;
    let catalog = &bundle.catalog;
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
pub(super) struct BenchServer<'a> {
    pub(super) model: &'a Path,
    pub(super) workers: usize,
    pub(super) durability: DurabilityArg,
    /// A database URL to serve from instead of a temporary SQLite file.
    pub(super) db: Option<&'a str>,
}

impl BenchServer<'_> {
    /// The catalog's item keys (at least `candidates` of them) and a started server child,
    /// given `extra` server arguments.
    pub(super) fn start(
        &self,
        global: &Global,
        candidates: usize,
        extra: &[String],
    ) -> Result<(Vec<String>, ServerChild)> {
        let keys = catalog_keys(self.model, candidates)?;
        let server = ServerChild::spawn(
            global,
            self.model,
            self.workers,
            self.durability,
            self.db,
            extra,
        )?;
        Ok((keys, server))
    }
}
