//! [`ADJUSTER_FILE`], the adjuster's file in a model directory, and what it holds,
//! [`AdjusterManifest`]: the chosen adjuster and the settings meta-training tried.

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
}
