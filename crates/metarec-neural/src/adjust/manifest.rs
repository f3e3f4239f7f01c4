//! [`ADJUSTER_FILE`], the adjuster's file in a model directory, and what it holds,
//! [`AdjusterManifest`] (the chosen adjuster, the settings meta-training tried and the weights it
//! was fitted to), read as a typed [`AdjusterSpec`].

use super::{BayesConfig, GradientConfig};
use serde::{Deserialize, Serialize};

/// The adjuster's file in a model directory.
pub const ADJUSTER_FILE: &str = "adjuster.json";

/// What meta-training (`metarec_eval::meta`) chose and why: the mean reward per training user of
/// every setting it tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjusterManifest {
    /// The adjuster kind: `bayes` or `gradient`.
    pub kind: String,
    /// The Bayesian adjuster's chosen settings (used when `kind` is `bayes`).
    pub config: BayesConfig,
    /// The gradient-based adjuster's settings, with its meta-learned initial correction (used
    /// when `kind` is `gradient`).
    #[serde(default)]
    pub gradient: Option<GradientConfig>,
    /// `(setting, mean reward per training user)` for every setting tried: the prior scale of
    /// `bayes` (with Thompson sampling), the step size of `gradient`.
    pub grid: Vec<(f64, f64)>,
    /// `(prior scale, mean reward per training user)` of `bayes` deciding with the posterior
    /// mean instead of a Thompson draw. Empty for `gradient` and in manifests written before
    /// meta-training compared the two.
    #[serde(default)]
    pub mean_grid: Vec<(f64, f64)>,
    /// The learned shape of `bayes`'s prior covariance ([`prior_shape`](super::prior_shape)),
    /// when the chosen setting uses it; empty for the identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior_shape: Vec<f64>,
    /// Like `grid` and `mean_grid`, with the learned prior shape: `(prior scale, Thompson
    /// sampling, mean reward per training user)`. Empty when no shape was learned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shaped_grid: Vec<(f64, bool, f64)>,
    /// Training users per setting.
    pub users: usize,
    /// The chosen Bayesian setting against the network alone (greedy, no adjuster) on simulated
    /// users that took part in no choice, as reward per user: what the adjuster adds to its
    /// network, measured without the optimism of having been chosen on the same users. `None`
    /// offline (see `offline`), for `gradient`, and in files written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<ValidationGain>,
    /// Offline meta-training on a shop's logged users (`metarec meta-train --shop`): each
    /// setting's query log-likelihood against the unadjusted network's, and the chosen
    /// setting's gain on validation users. `None` after meta-training on simulated users,
    /// whose numbers are the rewards in `grid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineEvidence>,
    /// SHA-256 of the weights the adjuster was fitted to (hex): a model trained further since
    /// is refused until meta-trained again. Absent in files written before it was recorded,
    /// which are refused likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// The evidence of offline meta-training on a shop's logged users, where each user's training
/// history is a task: the adjuster's state is updated on the first `support` interactions and
/// judged on the rest (the query) by the mean log-likelihood of their clicks per shown item,
/// against the calibrated network alone on the same queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineEvidence {
    /// The shop's name.
    pub shop: String,
    /// How settings were judged (the metric's description).
    pub metric: String,
    /// Interactions in each support set.
    pub support: usize,
    /// Users whose queries chose the setting (and, for `gradient`, whose histories moved the
    /// initial correction).
    pub selection_users: usize,
    /// Users held out from every choice, on which the chosen setting's gain is reported.
    pub validation_users: usize,
    /// The network alone on the queries the settings were judged on (the selection users'; for
    /// `gradient`, those of the half that did not move the initial correction).
    pub network: f64,
    /// Every setting tried, on the same queries.
    pub tried: Vec<OfflineSetting>,
    /// The chosen setting against the network alone on the validation users.
    pub validation: ValidationGain,
}

/// One setting of offline meta-training and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineSetting {
    /// The prior scale (`bayes`) or inner step size (`gradient`).
    pub setting: f64,
    /// Whether the prior covariance had the learned shape (`bayes`).
    pub shaped: bool,
    /// Mean query log-likelihood per shown item, averaged over users.
    pub query_log_likelihood: f64,
}

/// The chosen setting's gain over the network alone on validation users. Offline the measure is
/// the mean query log-likelihood per shown item; on simulated users it is the reward per user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationGain {
    /// Validation users (tasks).
    pub users: usize,
    /// The network alone: the measure averaged over users.
    pub network: f64,
    /// The adjusted network, likewise.
    pub adjusted: f64,
    /// The mean per-user gain (adjusted minus network).
    pub gain: f64,
    /// Lower end of the gain's 95% interval (normal approximation over users).
    pub low: f64,
    /// Upper end of the gain's 95% interval.
    pub high: f64,
}

/// The adjuster a model was meta-trained with, by kind: what a bundle serves.
#[derive(Debug, Clone, PartialEq)]
pub enum AdjusterSpec {
    /// The Bayesian correction of the head.
    Bayes {
        /// Its settings.
        config: BayesConfig,
        /// The learned shape of the prior covariance; empty for the identity.
        prior_shape: Vec<f64>,
    },
    /// The gradient-based (Reptile) correction.
    Gradient {
        /// Its settings, with the meta-learned initial correction.
        config: GradientConfig,
    },
}

impl AdjusterSpec {
    /// The kind's name, as `adjuster.json` writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            AdjusterSpec::Bayes { .. } => "bayes",
            AdjusterSpec::Gradient { .. } => "gradient",
        }
    }
}

impl AdjusterManifest {
    /// The typed adjuster this file describes, with its settings checked; the error says what
    /// is wrong with the file.
    pub fn spec(&self) -> Result<AdjusterSpec, String> {
        match self.kind.as_str() {
            "bayes" => {
                let c = self.config;
                if !(c.prior_scale.is_finite() && c.prior_scale > 0.0) {
                    return Err(format!("prior_scale {} must be positive", c.prior_scale));
                }
                if c.thompson && !(1..=1024).contains(&c.draws) {
                    return Err(format!("draws {} must be 1 to 1024", c.draws));
                }
                Ok(AdjusterSpec::Bayes {
                    config: c,
                    prior_shape: self.prior_shape.clone(),
                })
            }
            "gradient" => {
                let config = self
                    .gradient
                    .clone()
                    .ok_or("kind `gradient` without `gradient` settings")?;
                if !(config.step_size.is_finite() && config.step_size > 0.0) {
                    return Err(format!("step_size {} must be positive", config.step_size));
                }
                Ok(AdjusterSpec::Gradient { config })
            }
            other => Err(format!(
                "unknown adjuster kind `{other}` (expected bayes or gradient)"
            )),
        }
    }
}
