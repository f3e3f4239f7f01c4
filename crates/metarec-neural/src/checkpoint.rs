//! Checkpoints: a model directory holds `model.safetensors` (the weights), `catalog.json` (the
//! catalog it ranks) and `manifest.json` (format, architecture, feature schema, reward, training
//! settings, metrics, the data it was trained on, and the checksums of the other two); see
//! [`crate::bundle`] for the whole directory as one artifact.
//!
//! Loading checks everything before using anything: the manifest's format, that the feature
//! schema matches the catalog at hand (a fingerprint of item keys, feature names and values), and
//! that every tensor exists with the expected shape; each failure is a typed error naming the file
//! and what is wrong. Both files are written beside their final names and renamed into place.

use crate::error::NeuralError;
use crate::features::Features;
use crate::model::{ModelConfig, TwoTower, sorted_vars};
use crate::train::{IterationStats, TrainConfig};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use metarec_core::{Catalog, RewardFn};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest format this version writes and reads. Format 1 had no catalog file and named
/// its scenario only.
pub const FORMAT: &str = "metarec-neural/2";
/// The catalog file name.
pub const CATALOG: &str = "catalog.json";

/// What a model was trained on, kept whole, so that commands taking the model rebuild the same
/// world without the data being named again, or know which data to ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// A simulated scenario.
    Scenario {
        /// The scenario's name.
        name: String,
        /// Its full configuration as TOML, as given (before calibration, which building it
        /// repeats).
        toml: String,
    },
    /// A simulator fitted to a shop directory (`metarec train --shop DIR --algo reinforce`, or a
    /// scenario whose `[shop] dir` names one): the world is rebuilt from the scenario and the
    /// shop, and only from the same shop (its catalog and events by SHA-256).
    ShopSimulator {
        /// The scenario's name.
        name: String,
        /// Its full configuration as TOML, as given (its `[shop] dir` is the shop directory as
        /// given to the command that trained the model).
        toml: String,
        /// The shop directory, as given.
        dir: String,
        /// SHA-256 of the shop's `catalog.json` when the model was trained.
        catalog_sha256: String,
        /// SHA-256 of the shop's `events.jsonl` when the model was trained.
        events_sha256: String,
    },
    /// A shop's own logged events (a shop directory, `metarec train --shop`). No simulator can
    /// be rebuilt from it: such a model is evaluated off-policy on the shop's held-out part and
    /// meta-trained on the shop's users.
    Shop {
        /// The shop's name (its `shop.json`).
        name: String,
        /// The shop directory as given to `train --shop`.
        dir: String,
        /// SHA-256 of the shop's `catalog.json`: the bundle's own catalog may carry more
        /// feature columns (title embeddings), so this is what says which shop it ranks.
        catalog_sha256: String,
        /// SHA-256 of the shop's `events.jsonl` when the model was trained.
        events_sha256: String,
        /// The share of the shop's rankings, the latest by time, held out from training
        /// (`metarec_data::shop::split_by_time`), for evaluation.
        holdout: f64,
    },
}

impl DataSource {
    /// The scenario's or the shop's name (what [`Manifest::scenario`] records).
    pub fn name(&self) -> &str {
        match self {
            DataSource::Scenario { name, .. }
            | DataSource::ShopSimulator { name, .. }
            | DataSource::Shop { name, .. } => name,
        }
    }

    /// `scenario `NAME`` or `shop `NAME` (DIR)`, for messages.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Scenario { name, .. } => format!("scenario `{name}`"),
            DataSource::ShopSimulator { name, dir, .. } => {
                format!("scenario `{name}` fitted to shop {dir}")
            }
            DataSource::Shop { name, dir, .. } => format!("shop `{name}` ({dir})"),
        }
    }

    /// Why a model trained on this source cannot be played in a simulated scenario, for
    /// every command that would rebuild one (the arena, meta-training without `--shop`,
    /// `train --resume` without `--shop`): `None` for a scenario, the message for a shop.
    /// `model` is the model directory.
    pub fn no_simulator(&self, model: &Path) -> Option<String> {
        match self {
            DataSource::Scenario { .. } | DataSource::ShopSimulator { .. } => None,
            DataSource::Shop { name, dir, .. } => Some(format!(
                "model {} was trained on shop `{name}` ({dir}), not in a simulated scenario, so no simulator can play it; evaluate it with `metarec ope --shop {dir}`, meta-train it with `metarec meta-train --model {} --shop {dir}`, train it further with `metarec train --shop {dir} --resume` (or train a model in a simulator of the shop with `metarec train --shop {dir} --algo reinforce`)",
                model.display(),
                model.display()
            )),
        }
    }
}
/// Weights file name.
pub const WEIGHTS: &str = "model.safetensors";
/// Manifest file name.
pub const MANIFEST: &str = "manifest.json";

/// What the network expects of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// Items in the catalog.
    pub items: usize,
    /// Item input width.
    pub item_dim: usize,
    /// User input width.
    pub user_dim: usize,
    /// The catalog's numeric feature names.
    pub item_features: Vec<String>,
    /// FNV-1a of the item keys, feature names and feature values, in order
    /// ([`Catalog::fingerprint`]).
    pub catalog_fingerprint: String,
}

impl FeatureSchema {
    /// The schema of a catalog.
    pub fn of(catalog: &Catalog) -> FeatureSchema {
        let features = Features::new(catalog);
        FeatureSchema {
            items: catalog.len(),
            item_dim: features.item_dim(),
            user_dim: features.user_dim(),
            item_features: catalog.features().names().to_vec(),
            catalog_fingerprint: catalog.fingerprint(),
        }
    }
}

/// The manifest of a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The metarec version that wrote it.
    pub metarec_version: String,
    /// The architecture.
    pub model: ModelConfig,
    /// The training settings of the last run.
    pub train: TrainConfig,
    /// Algorithms run so far, in order (a supervised start, then reinforcement learning...).
    pub algos: Vec<String>,
    /// What the network expects of the catalog.
    pub features: FeatureSchema,
    /// The objective it was trained for.
    pub reward: RewardFn,
    /// The name of the scenario it was trained on, or of the shop ([`DataSource::name`]).
    pub scenario: String,
    /// The data it was trained on, in full.
    pub source: DataSource,
    /// SHA-256 of `catalog.json` (hex), checked when the bundle loads.
    pub catalog_sha256: String,
    /// Optimiser steps done in total.
    pub iterations: usize,
    /// Per-iteration statistics of every run.
    pub metrics: Vec<IterationStats>,
    /// SHA-256 of `model.safetensors` (hex), filled in by [`save`] and checked by [`load`], so a
    /// damaged or swapped weights file is caught before it serves. Absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// SHA-256 of some bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Manifest {
    /// The manifest of a trainer's current state: `algos` run so far and the per-iteration
    /// `metrics` of every run.
    pub fn for_trainer(
        trainer: &crate::train::Trainer,
        catalog: &Catalog,
        source: DataSource,
        algos: Vec<String>,
        metrics: Vec<IterationStats>,
    ) -> Manifest {
        let name = source.name().to_owned();
        Manifest {
            format: FORMAT.into(),
            metarec_version: env!("CARGO_PKG_VERSION").into(),
            model: trainer.config.model,
            train: trainer.config.clone(),
            algos,
            features: FeatureSchema::of(catalog),
            reward: trainer.reward,
            scenario: name,
            source,
            catalog_sha256: String::new(),
            iterations: trainer.iterations_done,
            metrics,
            weights_sha256: None,
        }
    }
}

/// A loaded checkpoint.
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// The input schema.
    pub features: Features,
    /// The variables.
    pub varmap: VarMap,
    /// The network.
    pub model: TwoTower,
}

fn io(path: &Path, source: std::io::Error) -> NeuralError {
    NeuralError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), NeuralError>,
) -> Result<(), NeuralError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the catalog, the weights and the manifest into `dir` (created if needed), each file
/// beside its final name and renamed into place; the manifest, which holds the others'
/// checksums, comes last.
pub fn save(
    dir: &Path,
    varmap: &VarMap,
    manifest: &Manifest,
    catalog: &Catalog,
) -> Result<(), NeuralError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let catalog_text =
        serde_json::to_vec(catalog).map_err(|e| NeuralError::Config(e.to_string()))?;
    let catalog_sha256 = sha256_hex(&catalog_text);
    write_atomically(&dir.join(CATALOG), |tmp| {
        std::fs::write(tmp, &catalog_text).map_err(|e| io(tmp, e))
    })?;
    let mut checksum = None;
    write_atomically(&dir.join(WEIGHTS), |tmp| {
        varmap.save(tmp)?;
        let bytes = std::fs::read(tmp).map_err(|e| io(tmp, e))?;
        checksum = Some(sha256_hex(&bytes));
        Ok(())
    })?;
    let manifest = Manifest {
        weights_sha256: checksum,
        catalog_sha256,
        ..manifest.clone()
    };
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| NeuralError::Config(e.to_string()))?;
    write_atomically(&dir.join(MANIFEST), |tmp| {
        std::fs::write(tmp, text).map_err(|e| io(tmp, e))
    })
}

/// Reads only the manifest of a model directory.
pub fn read_manifest(dir: &Path) -> Result<Manifest, NeuralError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    #[derive(Deserialize)]
    struct Format {
        format: Option<String>,
    }
    let old = match serde_json::from_str::<Format>(&text) {
        Ok(Format {
            format: Some(format),
        }) if format == "metarec-neural/1" => Some(format),
        _ => None,
    };
    if let Some(format) = old {
        return Err(NeuralError::Corrupt {
            path: path.display().to_string(),
            reason: format!(
                "written by an older metarec (format `{format}`), before models carried their catalog and scenario; train it again with `metarec train`"
            ),
        });
    }
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| NeuralError::Corrupt {
        path: path.display().to_string(),
        reason: format!("invalid manifest: {e}"),
    })?;
    if manifest.format != FORMAT {
        return Err(NeuralError::Corrupt {
            path: path.display().to_string(),
            reason: format!(
                "format `{}`, this metarec reads `{FORMAT}`",
                manifest.format
            ),
        });
    }
    Ok(manifest)
}

/// Reads a model directory's catalog alone, without its weights: the manifest, then
/// `catalog.json` checked against the manifest's SHA-256. For commands that need only the
/// catalog a model ranks, such as resolving the item keys of an interaction log.
pub fn read_catalog(dir: &Path) -> Result<Catalog, NeuralError> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(CATALOG);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    parse_catalog(&path, &bytes, &manifest)
}

/// `catalog.json`'s bytes as the catalog the manifest describes: checksum first, then the
/// parse (whose constructor checks every invariant).
pub(crate) fn parse_catalog(
    path: &Path,
    bytes: &[u8],
    manifest: &Manifest,
) -> Result<Catalog, NeuralError> {
    let corrupt = |reason: String| NeuralError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let actual = sha256_hex(bytes);
    if actual != manifest.catalog_sha256 {
        return Err(corrupt(format!(
            "checksum mismatch: SHA-256 {actual}, the manifest says {}",
            manifest.catalog_sha256
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("invalid catalog: {e}")))
}

/// Loads a model directory for `catalog`, checking that it fits.
pub fn load(dir: &Path, catalog: &Catalog) -> Result<Loaded, NeuralError> {
    let manifest = read_manifest(dir)?;
    let schema = FeatureSchema::of(catalog);
    let where_ = || PathBuf::from(dir).display().to_string();
    if manifest.features.items != schema.items
        || manifest.features.item_features != schema.item_features
    {
        return Err(NeuralError::Mismatch {
            path: where_(),
            reason: format!(
                "trained for {} items with features [{}]; this catalog has {} items with [{}]",
                manifest.features.items,
                manifest.features.item_features.join(", "),
                schema.items,
                schema.item_features.join(", ")
            ),
        });
    }
    if manifest.features.catalog_fingerprint != schema.catalog_fingerprint {
        return Err(NeuralError::Mismatch {
            path: where_(),
            reason: format!(
                "trained on another catalog (fingerprint {}, this one {}): it was trained on {}",
                manifest.features.catalog_fingerprint,
                schema.catalog_fingerprint,
                manifest.source.describe()
            ),
        });
    }
    let features = Features::new(catalog)
        .with_feedback(manifest.model.feedback)
        .with_memory(manifest.model.memory);
    let varmap = VarMap::new();
    let model = TwoTower::new(&varmap, DType::F32, manifest.model, &features)?;
    let weights = dir.join(WEIGHTS);
    let bytes = std::fs::read(&weights).map_err(|e| io(&weights, e))?;
    let corrupt = |reason: String| NeuralError::Corrupt {
        path: weights.display().to_string(),
        reason,
    };
    if let Some(expected) = &manifest.weights_sha256 {
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(corrupt(format!(
                "checksum mismatch: SHA-256 {actual}, the manifest says {expected}"
            )));
        }
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| corrupt(format!("cannot read safetensors: {e}")))?;
    for (name, var) in sorted_vars(&varmap) {
        let t = tensors
            .get(&name)
            .ok_or_else(|| corrupt(format!("tensor `{name}` is missing")))?;
        if t.dims() != var.dims() {
            return Err(corrupt(format!(
                "tensor `{name}` has shape {:?}, the architecture needs {:?}",
                t.dims(),
                var.dims()
            )));
        }
        let t = t.to_dtype(DType::F32)?;
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(corrupt(format!("tensor `{name}` holds non-finite values")));
        }
        var.set(&t)?;
    }
    Ok(Loaded {
        manifest,
        features,
        varmap,
        model,
    })
}
