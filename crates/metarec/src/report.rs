//! `metarec report`: renders results files (JSON) into a self-contained `index.html`; and the
//! TensorBoard runs that `train`, `meta-train`, `arena` and `demo` write under `--logdir`.
//!
//! Rendering lives in `metarec-report`; this module reads files, writes pages atomically and
//! maps the commands' results onto TensorBoard scalars:
//! - `train`: run `train-<model>-<algo>-seed<seed>`, one step per iteration: `train/reward_per_user`,
//!   `train/return_per_user`, `train/slates_per_user`, `train/loss`, `train/entropy`;
//! - `meta-train`: run `meta-train-<model>-seed<seed>`, one step per prior scale tried:
//!   `meta/prior_scale`, `meta/reward_per_training_user`;
//! - `arena`: run `arena-<scenario>/<policy>` per policy, step t = interaction t of a new user:
//!   `arena/reward_at_interaction` with `..._low95` / `..._high95`, and at step 0 the per-user
//!   summaries (`arena/reward_per_user`, `arena/ctr`, `arena/cvr`, `arena/revenue_per_user`,
//!   `arena/regret_per_user`).

use crate::Global;
use anyhow::{Context as _, Result};
use clap::Args;
use metarec_eval::ArenaReport;
use metarec_neural::adjust::AdjusterManifest;
use metarec_neural::train::IterationStats;
use metarec_report::tfevents::{EventWriter, sanitize_component};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// Results files: `arena --json` output, a model's manifest.json (training curves) or
    /// adjuster.json (meta-training), `sim calibrate --json`, `ope --data obd --json`,
    /// `coldstart --out` and `new-items --out` output.
    #[arg(required = true, value_name = "RESULTS.json")]
    files: Vec<PathBuf>,
    /// Output directory; `index.html` is written into it.
    #[arg(long, default_value = "report", value_name = "DIR")]
    out: PathBuf,
    /// Title of the page.
    #[arg(long, default_value = "metarec report")]
    title: String,
}

/// The TensorBoard log directory option shared by the commands that learn or evaluate.
#[derive(Args, Clone)]
pub struct LogdirArg {
    /// TensorBoard log directory: one run per policy / seed is written under it
    /// (`tensorboard --logdir runs` shows them).
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub logdir: PathBuf,
}

pub fn run(args: ReportArgs, global: &Global) -> Result<()> {
    let files: Vec<(String, PathBuf)> = args
        .files
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    let page = write_report(&args.out, &args.title, &files)?;
    global.progress(format!("{} results files rendered", files.len()));
    println!("report written to {}", page.display());
    Ok(())
}

/// Reads `(shown name, path)` results files, renders them in order and writes
/// `dir/index.html` (atomically); returns the page's path.
pub fn write_report(dir: &Path, title: &str, files: &[(String, PathBuf)]) -> Result<PathBuf> {
    let mut inputs = Vec::with_capacity(files.len());
    for (name, path) in files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        inputs.push((name.clone(), bytes));
    }
    let html = metarec_report::render_report(title, &inputs)?.to_html();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let page = dir.join("index.html");
    write_text(&page, &html)?;
    Ok(page)
}

/// Writes a whole text file beside its name and renames it into place.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    metarec_data::log::atomic_write(path, |out| std::io::Write::write_all(out, text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `value` as pretty JSON tagged with its results kind (`"results_kind"`), so that
/// `metarec report` recognises it.
pub fn write_results<T: Serialize>(path: &Path, kind: &str, value: &T) -> Result<()> {
    write_text(path, &results_json(kind, value)?)
}

/// `value` as pretty JSON tagged with its results kind.
pub fn results_json<T: Serialize>(kind: &str, value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(
        &metarec_report::results::tagged(kind, value)?,
    )?)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The training run of a model: `logdir/train-<model>-<algo>-seed<seed>`.
pub fn training_run(logdir: &Path, model: &Path, algo: &str, seed: u64) -> Result<EventWriter> {
    let run = logdir.join(sanitize_component(&format!(
        "train-{}-{algo}-seed{seed}",
        file_name(model)
    )));
    Ok(EventWriter::create(&run)?)
}

/// One training iteration's scalars.
pub fn log_iteration(writer: &mut EventWriter, s: &IterationStats) -> Result<()> {
    writer.scalars(
        s.iteration as i64,
        &[
            ("train/reward_per_user", s.reward_per_user),
            ("train/return_per_user", s.return_per_user),
            ("train/slates_per_user", s.slates_per_user),
            ("train/loss", s.loss),
            ("train/entropy", s.entropy),
        ],
    )?;
    Ok(())
}

/// The meta-training grid as one run: `logdir/meta-train-<model>-seed<seed>`.
pub fn log_meta(
    logdir: &Path,
    model: &Path,
    seed: u64,
    manifest: &AdjusterManifest,
) -> Result<PathBuf> {
    let run = logdir.join(sanitize_component(&format!(
        "meta-train-{}-seed{seed}",
        file_name(model)
    )));
    let mut w = EventWriter::create(&run)?;
    for (i, (tau, reward)) in manifest.grid.iter().enumerate() {
        w.scalars(
            i as i64,
            &[
                ("meta/prior_scale", *tau),
                ("meta/reward_per_training_user", *reward),
            ],
        )?;
    }
    for (i, (tau, reward)) in manifest.mean_grid.iter().enumerate() {
        w.scalars(
            i as i64,
            &[
                ("meta/mean_prior_scale", *tau),
                ("meta/mean_reward_per_training_user", *reward),
            ],
        )?;
    }
    w.scalar("meta/chosen_prior_scale", 0, manifest.config.prior_scale)?;
    for (i, (tau, thompson, reward)) in manifest.shaped_grid.iter().enumerate() {
        w.scalars(
            i as i64,
            &[
                ("meta/shaped_prior_scale", *tau),
                ("meta/shaped_thompson", if *thompson { 1.0 } else { 0.0 }),
                ("meta/shaped_reward_per_training_user", *reward),
            ],
        )?;
    }
    w.scalar(
        "meta/chosen_thompson",
        0,
        if manifest.config.thompson { 1.0 } else { 0.0 },
    )?;
    w.scalar(
        "meta/chosen_learned_shape",
        0,
        if manifest.prior_shape.is_empty() {
            0.0
        } else {
            1.0
        },
    )?;
    // Offline meta-training on a shop: each setting's query log-likelihood, the network's, and
    // the chosen setting's gain on validation users.
    if let Some(o) = &manifest.offline {
        for (i, t) in o.tried.iter().enumerate() {
            w.scalars(
                i as i64,
                &[
                    ("meta/offline_setting", t.setting),
                    ("meta/offline_shaped", if t.shaped { 1.0 } else { 0.0 }),
                    ("meta/offline_query_log_likelihood", t.query_log_likelihood),
                ],
            )?;
        }
        w.scalars(
            0,
            &[
                ("meta/offline_network_log_likelihood", o.network),
                ("meta/validation_network", o.validation.network),
                ("meta/validation_adjusted", o.validation.adjusted),
                ("meta/validation_gain", o.validation.gain),
                ("meta/validation_gain_low", o.validation.low),
                ("meta/validation_gain_high", o.validation.high),
            ],
        )?;
    }
    w.flush()?;
    Ok(run)
}

/// One run per contestant under `logdir/arena-<scenario>/`; returns the runs' directory.
pub fn log_arena(logdir: &Path, report: &ArenaReport) -> Result<PathBuf> {
    let dir = logdir.join(sanitize_component(&format!("arena-{}", report.scenario)));
    for c in &report.contestants {
        let mut w = EventWriter::create(&dir.join(sanitize_component(&c.policy)))?;
        w.scalars(
            0,
            &[
                ("arena/reward_per_user", c.reward.mean),
                ("arena/ctr", c.ctr.mean),
                ("arena/cvr", c.cvr.mean),
                ("arena/revenue_per_user", c.revenue.mean),
                ("arena/regret_per_user", c.regret.mean),
            ],
        )?;
        for (t, s) in c.curve.iter().enumerate() {
            w.scalars(
                t as i64 + 1,
                &[
                    ("arena/reward_at_interaction", s.mean),
                    ("arena/reward_at_interaction_low95", s.low),
                    ("arena/reward_at_interaction_high95", s.high),
                ],
            )?;
        }
        w.flush()?;
    }
    Ok(dir)
}
