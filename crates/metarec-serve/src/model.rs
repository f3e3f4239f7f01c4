//! [`ServedModel`]: a model directory checked and ready to decide.
//!
//! A model directory is the bundle `metarec meta-train` or `metarec demo` writes
//! (`metarec_neural::bundle::ModelBundle`): `model.safetensors`, `catalog.json`, `manifest.json`
//! and `adjuster.json`. [`ServedModel::load`] verifies everything before anything serves: the
//! checksums of the weights and the catalog, the feature schema and catalog fingerprint, every
//! tensor's shape and finiteness, the adjuster's kind and settings and that it was fitted to
//! these weights. The catalog the server ranks comes from the bundle, so serving needs no data
//! set. The model version is derived from the bytes of every file, so two different models
//! never share one.

use crate::error::ServeError;
use metarec_core::{Catalog, ItemId, RewardFn};
use metarec_neural::adjust::{ADJUSTER_FILE, AdjusterSpec, BayesianAdjuster};
use metarec_neural::bundle::ModelBundle;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    /// The bundle's version: `sha256:` and 16 hex digits of the hash of all its files.
    pub version: String,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The network with its meta-trained adjuster settings.
    pub adjuster: BayesianAdjuster,
    /// The objective the model was trained for (rewards of resolved events).
    pub reward: RewardFn,
    /// The fingerprint of the catalog it ranks, so a reload can check that the new model ranks
    /// the same items.
    pub catalog_fingerprint: String,
}

impl ServedModel {
    /// Loads and verifies a model bundle, returning the model and the catalog it ranks. The
    /// bundle's loader checks every file (checksums, the catalog against the feature schema,
    /// every tensor) and whether the adjuster was fitted to these weights.
    pub fn load(dir: &Path) -> Result<(ServedModel, Catalog), ServeError> {
        let bundle = ModelBundle::load(dir)?;
        let adjuster_path = dir.join(ADJUSTER_FILE);
        let bad_adjuster = |reason: String| ServeError::Model {
            path: adjuster_path.display().to_string(),
            reason,
        };
        let adjuster = match bundle.adjuster()? {
            AdjusterSpec::Bayes {
                config,
                prior_shape,
            } => BayesianAdjuster::new(
                bundle.network.frozen.clone(),
                bundle.network.features.clone(),
                *config,
            )
            .with_prior_shape(prior_shape)
            .map_err(bad_adjuster)?,
            other => {
                return Err(bad_adjuster(format!(
                    "adjuster kind `{}`; this server serves `bayes`",
                    other.kind()
                )));
            }
        };
        let model = ServedModel {
            version: bundle.version.clone(),
            dir: dir.to_owned(),
            adjuster,
            reward: bundle.manifest.reward,
            catalog_fingerprint: bundle.manifest.features.catalog_fingerprint.clone(),
        };
        Ok((model, (*bundle.catalog).clone()))
    }

    /// Width of the user head (and of every adjuster state).
    pub fn embed(&self) -> usize {
        self.adjuster.frozen().embed
    }
}
