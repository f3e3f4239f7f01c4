//! [`ModelBundle`]: a model directory as one complete, checked artifact.
//!
//! A bundle holds everything needed to rank, explain, adapt and be evaluated without the data it
//! was trained on:
//! - `manifest.json` ([`Manifest`]): format, architecture, feature schema, reward, training
//!   history, the full description of the data it was trained on ([`DataSource`](crate::checkpoint::DataSource)) and the
//!   SHA-256 of the two files below;
//! - `model.safetensors`: the weights;
//! - `catalog.json`: the catalog it ranks (keys, titles, prices, categories, features);
//! - `adjuster.json` (after meta-training): the strategy adjuster ([`AdjusterSpec`]) with the
//!   SHA-256 of the weights it was fitted to.
//!
//! [`ModelBundle::load`] checks every part once (formats, checksums, the catalog against the
//! feature schema, every tensor's shape and finiteness, the adjuster's settings and the weights
//! it was fitted to); a damaged, stale or mismatched part is a typed error naming its file.
//! Whoever holds a bundle builds policies from it in memory, so nothing reloads a checkpoint
//! that is already loaded.

use crate::adjust::{
    ADJUSTER_FILE, AdjustedPolicy, AdjusterManifest, AdjusterSpec, BayesianAdjuster,
    GradientAdjuster,
};
use crate::checkpoint::{self, CATALOG, MANIFEST, Manifest, WEIGHTS, sha256_hex};
use crate::error::NeuralError;
use crate::features::Features;
use crate::model::{Frozen, TwoTower};
use crate::policy::{Mode, NeuralPolicy};
use candle_nn::VarMap;
use metarec_core::{Catalog, Policy};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The trained network, ready for plain-Rust decisions.
#[derive(Clone)]
pub struct Network {
    /// The network with its item tower precomputed.
    pub frozen: Arc<Frozen>,
    /// The towers' inputs over the bundle's catalog.
    pub features: Arc<Features>,
}

/// Where a bundle's adjuster stands.
#[derive(Debug, Clone, PartialEq)]
pub enum AdjusterStatus {
    /// No `adjuster.json`: the model has not been meta-trained.
    Missing,
    /// Meta-trained on these weights.
    Fitted(AdjusterSpec),
    /// Meta-trained on other weights (the model was trained further since): unusable until
    /// meta-trained again.
    Stale {
        /// SHA-256 of the weights the adjuster was fitted to (`None` in files written before
        /// adjusters recorded it).
        fitted_to: Option<String>,
    },
}

/// A loaded, verified model directory.
pub struct ModelBundle {
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// The catalog the model ranks.
    pub catalog: Arc<Catalog>,
    /// The network for decisions.
    pub network: Network,
    /// The candle variables (for training further).
    pub varmap: VarMap,
    /// The candle model (for training further).
    pub model: TwoTower,
    /// The adjuster file as written by meta-training, when there is one.
    pub adjuster_file: Option<AdjusterManifest>,
    /// The adjuster's state against the weights.
    pub adjuster: AdjusterStatus,
    /// `sha256:` and 16 hex digits of the hash of every file of the bundle, so two different
    /// bundles never share a version.
    pub version: String,
}

fn read(path: &Path) -> Result<Vec<u8>, NeuralError> {
    std::fs::read(path).map_err(|source| NeuralError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl ModelBundle {
    /// Loads and verifies a model directory.
    pub fn load(dir: &Path) -> Result<ModelBundle, NeuralError> {
        let manifest = checkpoint::read_manifest(dir)?;
        let catalog_path = dir.join(CATALOG);
        let catalog_bytes = read(&catalog_path)?;
        let corrupt = |path: &Path, reason: String| NeuralError::Corrupt {
            path: path.display().to_string(),
            reason,
        };
        let catalog = checkpoint::parse_catalog(&catalog_path, &catalog_bytes, &manifest)?;
        // The checkpoint loader checks the schema and fingerprint against the catalog, the
        // weights' checksum, and every tensor's presence, shape and finiteness.
        let loaded = checkpoint::load(dir, &catalog)?;
        let items = crate::item_tensor(&loaded.features)?;
        let frozen = Frozen::from_model(&loaded.model, &items)?;
        let adjuster_path = dir.join(ADJUSTER_FILE);
        let (adjuster_file, adjuster, adjuster_bytes) = if adjuster_path.exists() {
            let bytes = read(&adjuster_path)?;
            let file: AdjusterManifest = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(&adjuster_path, format!("invalid adjuster file: {e}")))?;
            let status = if file.weights_sha256.as_ref() != manifest.weights_sha256.as_ref()
                || file.weights_sha256.is_none()
            {
                AdjusterStatus::Stale {
                    fitted_to: file.weights_sha256.clone(),
                }
            } else {
                AdjusterStatus::Fitted(
                    file.spec()
                        .map_err(|reason| corrupt(&adjuster_path, reason))?,
                )
            };
            (Some(file), status, bytes)
        } else {
            (None, AdjusterStatus::Missing, Vec::new())
        };
        let mut all = read(&dir.join(MANIFEST))?;
        all.extend_from_slice(&read(&dir.join(WEIGHTS))?);
        all.extend_from_slice(&catalog_bytes);
        all.extend_from_slice(&adjuster_bytes);
        Ok(ModelBundle {
            dir: dir.to_owned(),
            version: format!("sha256:{}", &sha256_hex(&all)[..16]),
            manifest: loaded.manifest,
            catalog: Arc::new(catalog),
            network: Network {
                frozen: Arc::new(frozen),
                features: Arc::new(loaded.features),
            },
            varmap: loaded.varmap,
            model: loaded.model,
            adjuster_file,
            adjuster,
        })
    }

    /// The adjuster the bundle was meta-trained with, or why it cannot be used: a typed error
    /// naming `adjuster.json` when it is missing or was fitted to other weights.
    pub fn adjuster(&self) -> Result<&AdjusterSpec, NeuralError> {
        let path = self.dir.join(ADJUSTER_FILE).display().to_string();
        match &self.adjuster {
            AdjusterStatus::Fitted(spec) => Ok(spec),
            AdjusterStatus::Missing => Err(NeuralError::NoAdjuster {
                path,
                dir: self.dir.display().to_string(),
            }),
            AdjusterStatus::Stale { fitted_to } => Err(NeuralError::StaleAdjuster {
                path,
                dir: self.dir.display().to_string(),
                fitted_to: fitted_to
                    .clone()
                    .unwrap_or_else(|| "unrecorded weights".into()),
                weights: self.manifest.weights_sha256.clone().unwrap_or_default(),
            }),
        }
    }

    /// Records a freshly meta-trained adjuster (already written to `adjuster.json`).
    pub fn set_adjuster(&mut self, file: AdjusterManifest) -> Result<(), NeuralError> {
        let spec = file.spec().map_err(|reason| NeuralError::Corrupt {
            path: self.dir.join(ADJUSTER_FILE).display().to_string(),
            reason,
        })?;
        self.adjuster = AdjusterStatus::Fitted(spec);
        self.adjuster_file = Some(file);
        Ok(())
    }

    /// The network alone as a policy: Plackett-Luce sampling (propensities of later positions
    /// from 32 Monte Carlo rankings) or, with `greedy`, the top scores.
    pub fn neural_policy(&self, name: &str, greedy: bool) -> NeuralPolicy {
        NeuralPolicy::new(
            name,
            self.manifest.iterations.to_string(),
            (*self.network.features).clone(),
            (*self.network.frozen).clone(),
            if greedy {
                Mode::Greedy
            } else {
                Mode::Sample { draws: 32 }
            },
        )
    }

    /// The network with its meta-trained adjuster as a policy.
    pub fn adjusted_policy(&self, name: &str) -> Result<Box<dyn Policy + Send>, NeuralError> {
        let Network { frozen, features } = self.network.clone();
        Ok(match self.adjuster()? {
            AdjusterSpec::Bayes {
                config,
                prior_shape,
            } => Box::new(AdjustedPolicy::new(
                name,
                BayesianAdjuster::new(frozen, features, *config)
                    .with_prior_shape(prior_shape)
                    .map_err(|reason| NeuralError::Corrupt {
                        path: self.dir.join(ADJUSTER_FILE).display().to_string(),
                        reason,
                    })?,
            )),
            AdjusterSpec::Gradient { config } => Box::new(AdjustedPolicy::new(
                name,
                GradientAdjuster::new(frozen, features, config.clone()),
            )),
        })
    }
}
