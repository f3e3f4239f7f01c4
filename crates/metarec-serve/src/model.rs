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
//!
//! Either adjuster kind is served: [`ServedAdjuster`] holds the bundle's Bayesian or
//! gradient-based adjuster and dispatches prior, update, decision and explanation to it, each
//! kind through the one generic decision path (`decide_exploring`, `explain_slate_with`).
//!
//! A [`ServedModel`] is a snapshot: the model with the catalog it serves
//! ([`ServedCatalog`], the bundle's items and those changed over the
//! API) and a network with tower outputs for each of them. [`ServedModel::with_items`] makes
//! the next snapshot when items change or a model is reloaded.

use crate::engine::UserState;
use crate::error::ServeError;
pub use crate::items::ServedCatalog;
use metarec_core::{Adjuster, Context, Interaction, ItemId, RewardFn, Rng};
use metarec_neural::adjust::{
    ADJUSTER_FILE, AdjustedChoice, AdjusterSpec, BayesianAdjuster, DecideBuffers, Exploration,
    GradientAdjuster, ScoreParts, decide_exploring, explain_slate_with,
};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::features::Features;
use metarec_neural::model::Frozen;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The adjuster a served model adapts its users with, of the kind its bundle was meta-trained
/// with. Every user state it is given is of its own kind and width in practice (states of another
/// kind or width are dropped at open, and a reload cannot change either); should one not be, it
/// is treated as a new user's prior rather than trusted.
pub enum ServedAdjuster {
    /// The Bayesian correction of the head: Thompson sampling or the posterior mean.
    Bayes(BayesianAdjuster),
    /// The gradient-based (Reptile) correction: always greedy, with propensity 1 per position.
    Gradient(GradientAdjuster),
}

impl ServedAdjuster {
    /// The kind's name, as `adjuster.json` writes it: `bayes` or `gradient`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServedAdjuster::Bayes(_) => "bayes",
            ServedAdjuster::Gradient(_) => "gradient",
        }
    }

    /// Width of the user head (and of every adjuster state).
    pub fn embed(&self) -> usize {
        match self {
            ServedAdjuster::Bayes(a) => a.frozen().embed,
            ServedAdjuster::Gradient(a) => a.frozen().embed,
        }
    }

    /// Whether `state` is of this adjuster's kind and width, so that it can be served as it is.
    pub(crate) fn fits(&self, state: &UserState) -> bool {
        state.kind() == self.kind() && state.dim() == self.embed()
    }

    /// A new user's state.
    pub(crate) fn prior(&self) -> UserState {
        match self {
            ServedAdjuster::Bayes(a) => UserState::Bayes(a.prior()),
            ServedAdjuster::Gradient(a) => UserState::Gradient(a.prior()),
        }
    }

    /// Folds an interaction into a user's state. A state that does not fit this adjuster is
    /// replaced by the prior first.
    pub(crate) fn update(&self, state: &mut UserState, interaction: &Interaction) {
        if !self.fits(state) {
            *state = self.prior();
        }
        match (self, state) {
            (ServedAdjuster::Bayes(a), UserState::Bayes(s)) => a.update(s, interaction),
            (ServedAdjuster::Gradient(a), UserState::Gradient(s)) => a.update(s, interaction),
            // The state was made to fit above, so the kinds agree.
            _ => {}
        }
    }

    /// Decides a slate of `k` for a user in `state` (`decide_exploring`). Under
    /// [`Exploration::Greedy`] the Bayesian adjuster samples or ranks by its posterior mean as
    /// configured, and the gradient-based one ranks greedily by its adapted correction, with
    /// propensity 1 per position; any other exploration draws around the greedy correction's
    /// scores, with the explorer's exact propensities. A state that does not fit this adjuster
    /// decides as the prior.
    pub(crate) fn decide(
        &self,
        state: &UserState,
        context: &Context,
        k: usize,
        exploration: Exploration,
        rng: &mut Rng,
    ) -> AdjustedChoice {
        let mut buffers = DecideBuffers::default();
        match self {
            ServedAdjuster::Bayes(a) => {
                let s = match state {
                    UserState::Bayes(s) if self.fits(state) => Cow::Borrowed(s),
                    _ => Cow::Owned(a.prior()),
                };
                decide_exploring(a, &s, context, k, exploration, rng, &mut buffers)
            }
            ServedAdjuster::Gradient(a) => {
                let s = match state {
                    UserState::Gradient(s) if self.fits(state) => Cow::Borrowed(s),
                    _ => Cow::Owned(a.prior()),
                };
                decide_exploring(a, &s, context, k, exploration, rng, &mut buffers)
            }
        }
    }

    /// The network this adjuster scores with.
    fn network(&self) -> (&Frozen, &Features) {
        match self {
            ServedAdjuster::Bayes(a) => (a.frozen(), a.features()),
            ServedAdjuster::Gradient(a) => (a.frozen(), a.features()),
        }
    }

    /// The same adjuster over a copy of its network in which the items `changed` of `catalog`
    /// have the tower outputs of their served feature rows: an item the network was trained
    /// with keeps its own id embedding, an item added since takes the mean one (see
    /// `Frozen::item_output`), and its corrected score and adjuster updates read its vector
    /// like any other item's. `changed` is in id order, so new items are appended in turn.
    fn with_items(
        &self,
        catalog: &ServedCatalog,
        changed: &[ItemId],
    ) -> Result<ServedAdjuster, String> {
        let (frozen, features) = self.network();
        let (mut frozen, mut features) = (frozen.clone(), features.clone());
        for &id in changed {
            let x = catalog
                .features_of(id)
                .ok_or_else(|| format!("item {} is not in the served catalog", id.index()))?;
            features
                .set_item_input(id, x)
                .map_err(|e| format!("item `{}`: {e}", catalog.key(id)))?;
            let out = frozen
                .item_output(x, Some(id))
                .map_err(|e| format!("item `{}`: {e}", catalog.key(id)))?;
            frozen
                .set_item(id, &out)
                .map_err(|e| format!("item `{}`: {e}", catalog.key(id)))?;
        }
        let (frozen, features) = (Arc::new(frozen), Arc::new(features));
        Ok(match self {
            ServedAdjuster::Bayes(a) => ServedAdjuster::Bayes(a.with_network(frozen, features)?),
            ServedAdjuster::Gradient(a) => {
                ServedAdjuster::Gradient(a.with_network(frozen, features)?)
            }
        })
    }

    /// The additive parts of each item's score under the correction `delta` a decision ranked
    /// with (`explain_slate_with`); each item's parts add up to its score.
    pub fn explain_slate(
        &self,
        context: &Context,
        delta: &[f64],
        items: &[ItemId],
    ) -> Vec<ScoreParts> {
        match self {
            ServedAdjuster::Bayes(a) => explain_slate_with(a, context, delta, items),
            ServedAdjuster::Gradient(a) => explain_slate_with(a, context, delta, items),
        }
    }
}

/// A verified model.
pub struct ServedModel {
    /// The bundle's version: `sha256:` and 16 hex digits of the hash of all its files.
    pub version: String,
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The network with its meta-trained adjuster, of either kind.
    pub adjuster: ServedAdjuster,
    /// The objective the model was trained for (rewards of resolved events).
    pub reward: RewardFn,
    /// The fingerprint of the bundle's catalog, so a reload can check that the new model ranks
    /// the same items (the changes made over the API are applied to either alike).
    pub catalog_fingerprint: String,
    /// The items it ranks: the bundle's catalog with the changes made over the API. The
    /// adjuster's network has tower outputs for every one of them, so a snapshot of a model
    /// always ranks, explains and adapts exactly the items its catalog names.
    pub catalog: Arc<ServedCatalog>,
}

impl ServedModel {
    /// Loads and verifies a model bundle, ranking the bundle's catalog as it is. The bundle's
    /// loader checks every file (checksums, the catalog against the feature schema, every
    /// tensor) and whether the adjuster was fitted to these weights.
    pub fn load(dir: &Path) -> Result<ServedModel, ServeError> {
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
            } => ServedAdjuster::Bayes(
                BayesianAdjuster::new(
                    bundle.network.frozen.clone(),
                    bundle.network.features.clone(),
                    *config,
                )
                .with_prior_shape(prior_shape)
                .map_err(bad_adjuster)?,
            ),
            AdjusterSpec::Gradient { config } => {
                let embed = bundle.network.frozen.embed;
                // An initial correction of another width would silently be replaced by zero
                // (`GradientAdjuster::prior`), and a non-finite one would make every score
                // NaN, so both are refused here like a bad prior shape.
                if !config.init.is_empty() && config.init.len() != embed {
                    return Err(bad_adjuster(format!(
                        "the gradient adjuster's initial correction has {} values; the head has {embed}",
                        config.init.len()
                    )));
                }
                if config.init.iter().any(|v| !v.is_finite()) {
                    return Err(bad_adjuster(
                        "the gradient adjuster's initial correction is not finite".into(),
                    ));
                }
                ServedAdjuster::Gradient(GradientAdjuster::new(
                    bundle.network.frozen.clone(),
                    bundle.network.features.clone(),
                    config.clone(),
                ))
            }
        };
        let model = ServedModel {
            version: bundle.version.clone(),
            dir: dir.to_owned(),
            adjuster,
            reward: bundle.manifest.reward,
            catalog_fingerprint: bundle.manifest.features.catalog_fingerprint.clone(),
            catalog: Arc::new(ServedCatalog::new(bundle.catalog.clone())),
        };
        Ok(model)
    }

    /// The same model serving `catalog`, whose items `changed` (in id order) differ from what
    /// this model's network holds: their tower outputs are computed from their feature rows.
    /// `catalog` must be this model's catalog with changes made over the API (same bundle
    /// catalog); anything else is an error, and this model is left as it is.
    pub fn with_items(
        &self,
        catalog: Arc<ServedCatalog>,
        changed: &[ItemId],
    ) -> Result<ServedModel, ServeError> {
        let adjuster = self
            .adjuster
            .with_items(&catalog, changed)
            .map_err(|reason| ServeError::Model {
                path: self.dir.display().to_string(),
                reason,
            })?;
        Ok(ServedModel {
            version: self.version.clone(),
            dir: self.dir.clone(),
            adjuster,
            reward: self.reward,
            catalog_fingerprint: self.catalog_fingerprint.clone(),
            catalog,
        })
    }

    /// Width of the user head (and of every adjuster state).
    pub fn embed(&self) -> usize {
        self.adjuster.embed()
    }
}
