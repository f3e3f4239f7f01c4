//! `--model DIR`, `--shop DIR`, `--catalog FILE`: where a command takes the catalog whose item
//! keys an interaction log uses (logs name items by key; reading one needs the catalog to turn
//! keys into the dense ids policies and estimators work with).

use anyhow::{Context as _, Result};
use clap::Args;
use metarec_core::Catalog;
use std::path::PathBuf;

/// The catalog options, at most one of them.
#[derive(Args, Clone, Debug, Default)]
pub struct CatalogArgs {
    /// Resolve item keys with this model directory's catalog (the catalog the model ranks and a
    /// server serving it logs).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["shop", "catalog"])]
    pub model: Option<PathBuf>,
    /// Resolve item keys with this shop directory's catalog (`metarec shop import`).
    #[arg(long, value_name = "DIR", conflicts_with = "catalog")]
    pub shop: Option<PathBuf>,
    /// Resolve item keys with this catalog file (a `catalog.json` of a model or a shop).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

impl CatalogArgs {
    /// The catalog named, if any, with a description of where it came from for messages.
    pub fn load(&self) -> Result<Option<(Catalog, String)>> {
        if let Some(dir) = &self.model {
            let catalog = metarec_neural::checkpoint::read_catalog(dir)
                .with_context(|| format!("cannot read the catalog of model {}", dir.display()))?;
            return Ok(Some((catalog, format!("model {}", dir.display()))));
        }
        if let Some(dir) = &self.shop {
            let catalog = metarec_data::shop::Shop::read_catalog(dir)
                .with_context(|| format!("cannot read the catalog of shop {}", dir.display()))?;
            return Ok(Some((catalog, format!("shop {}", dir.display()))));
        }
        if let Some(path) = &self.catalog {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the catalog file {}", path.display()))?;
            let catalog: Catalog = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a valid catalog", path.display()))?;
            return Ok(Some((catalog, format!("catalog {}", path.display()))));
        }
        Ok(None)
    }

    /// The catalog named; `why` says in the error what needs it.
    pub fn require(&self, why: &str) -> Result<(Catalog, String)> {
        self.load()?.with_context(|| {
            format!(
                "{why} needs the catalog the log's item keys belong to: give --model DIR, --shop DIR or --catalog FILE"
            )
        })
    }
}
