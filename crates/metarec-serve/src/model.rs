//! [`ServedModel`]: a model directory checked and ready to decide.
//!
//! A model directory is what `metarec meta-train` or `metarec demo` writes: `model.safetensors`,
//! `manifest.json` and `adjuster.json`. [`ServedModel::load`] verifies everything before anything
//! serves: the manifest's format and the weights' SHA-256 against the manifest, the feature schema
//! and catalog fingerprint against the served catalog, every tensor's shape and finiteness
//! (`metarec_neural::checkpoint::load`), and the adjuster's kind and settings. The model version
//! is derived from the bytes of all three files, so two different models never share one.

use crate::error::ServeError;
use metarec_core::{Catalog, ItemId, RewardFn};
use metarec_neural::adjust::{ADJUSTER_FILE, AdjusterManifest, BayesianAdjuster};
use metarec_neural::checkpoint::{self, MANIFEST, WEIGHTS, sha256_hex};
use metarec_neural::model::Frozen;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The catalog the server ranks from, with its key index.
#[derive(Debug)]
pub struct ServedCatalog {
    /// The observable catalog the model was trained on.
    pub catalog: Catalog,
    index: HashMap<String, ItemId>,
}

impl ServedCatalog {
    /// Indexes a catalog by item key.
    pub fn new(catalog: Catalog) -> ServedCatalog {
        let index = catalog
            .ids()
            .filter_map(|id| catalog.key(id).map(|k| (k.to_owned(), id)))
            .collect();
        ServedCatalog { catalog, index }
    }

    /// The id of an item key.
    pub fn id(&self, key: &str) -> Option<ItemId> {
        self.index.get(key).copied()
    }

    /// The key of an item id.
    pub fn key(&self, id: ItemId) -> &str {
        self.catalog.key(id).unwrap_or("")
    }
}

/// A verified model.
pub struct ServedModel {
    /// `sha256:` and 16 hex digits of the hash of the manifest, weights and adjuster files.
    pub version: String,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The network with its meta-trained adjuster settings.
    pub adjuster: BayesianAdjuster,
    /// The objective the model was trained for (rewards of resolved events).
    pub reward: RewardFn,
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| ServeError::Model {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl ServedModel {
    /// Loads and verifies a model directory for `catalog`.
    pub fn load(dir: &Path, catalog: &ServedCatalog) -> Result<ServedModel, ServeError> {
        let manifest_bytes = read(&dir.join(MANIFEST))?;
        let weight_bytes = read(&dir.join(WEIGHTS))?;
        let adjuster_path = dir.join(ADJUSTER_FILE);
        let adjuster_bytes = read(&adjuster_path)?;
        let bad_adjuster = |reason: String| ServeError::Model {
            path: adjuster_path.display().to_string(),
            reason,
        };
        let settings: AdjusterManifest = serde_json::from_slice(&adjuster_bytes)
            .map_err(|e| bad_adjuster(format!("invalid adjuster file: {e}")))?;
        if settings.kind != "bayes" {
            return Err(bad_adjuster(format!(
                "adjuster kind `{}`; this server serves `bayes`",
                settings.kind
            )));
        }
        let c = settings.config;
        if !(c.prior_scale.is_finite() && c.prior_scale > 0.0) {
            return Err(bad_adjuster(format!(
                "prior_scale {} must be positive",
                c.prior_scale
            )));
        }
        if c.thompson && !(1..=1024).contains(&c.draws) {
            return Err(bad_adjuster(format!("draws {} must be 1 to 1024", c.draws)));
        }
        // The checkpoint loader checks the weights' checksum, the schema against the catalog,
        // and every tensor's presence, shape and finiteness.
        let loaded = checkpoint::load(dir, &catalog.catalog)?;
        let items = metarec_neural::item_tensor(&loaded.features)?;
        let frozen = Frozen::from_model(&loaded.model, &items)?;
        let mut all = manifest_bytes;
        all.extend_from_slice(&weight_bytes);
        all.extend_from_slice(&adjuster_bytes);
        let version = format!("sha256:{}", &sha256_hex(&all)[..16]);
        Ok(ServedModel {
            version,
            dir: dir.to_owned(),
            adjuster: BayesianAdjuster::new(Arc::new(frozen), Arc::new(loaded.features), c)
                .with_prior_shape(&settings.prior_shape)
                .map_err(bad_adjuster)?,
            reward: loaded.manifest.reward,
        })
    }

    /// Width of the user head (and of every adjuster state).
    pub fn embed(&self) -> usize {
        self.adjuster.frozen().embed
    }
}
