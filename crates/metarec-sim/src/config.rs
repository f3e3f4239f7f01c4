//! [`ScenarioConfig`]: every parameter of a simulated shop, read from TOML presets or files.
//!
//! Presets live in `crates/metarec-sim/scenarios/*.toml` and are compiled in; `default.toml`
//! documents every parameter. A scenario file may set any subset of parameters: the rest keep
//! their defaults. Unknown keys are errors, so a typo never silently falls back to a default.

use crate::error::SimError;
use crate::mf::MfConfig;
use metarec_core::RewardFn;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The compiled-in presets: `(name, TOML text)`.
pub const PRESETS: &[(&str, &str)] = &[
    ("default", include_str!("../scenarios/default.toml")),
    ("no-fatigue", include_str!("../scenarios/no-fatigue.toml")),
    ("small", include_str!("../scenarios/small.toml")),
    (
        "full-catalog",
        include_str!("../scenarios/full-catalog.toml"),
    ),
    ("text", include_str!("../scenarios/text.toml")),
];

/// The values of `shop.signal`.
pub const SIGNALS: [&str; 5] = ["auto", "purchase", "add_to_cart", "click", "mix"];

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScenarioConfig {
    /// The scenario's name.
    pub name: String,
    /// One line about what it models.
    pub description: String,
    /// Seed of everything stochastic in the scenario: user draws, reactions, data splits.
    pub seed: u64,
    /// Which real products are on offer.
    pub catalog: CatalogConfig,
    /// The ground-truth factorisation of real purchases.
    pub fit: MfConfig,
    /// The shop's own (observable) item embedding.
    pub observed: ObservedConfig,
    /// How new users are drawn.
    pub population: PopulationConfig,
    /// How users examine, click and buy.
    pub choice: ChoiceConfig,
    /// Patience, boredom and the end of a visit.
    pub session: SessionConfig,
    /// Whether and how users come back.
    pub returns: ReturnConfig,
    /// The objective used by the arena and trainers unless overridden.
    pub reward: RewardFn,
    /// Targets that `metarec sim calibrate` fits the click and purchase biases to.
    pub calibration: CalibrationConfig,
    /// The shop the world is fitted to (`[shop]`); without a directory, Online Retail.
    pub shop: ShopConfig,
}

/// Which shop directory (`metarec shop import`) the world is fitted to, and how its events
/// become the factorisation's evidence. Without `dir` the world is fitted to Online Retail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShopConfig {
    /// The shop directory (format `metarec-shop/1`); empty: Online Retail.
    pub dir: String,
    /// The events the hidden vectors are fitted on: `auto` (purchases, else add-to-carts, else
    /// clicks: the strongest signal the shop logs), `purchase`, `add_to_cart`, `click`, or
    /// `mix` (every kind, weighted by the three weights below).
    pub signal: String,
    /// Weight of a purchase in the evidence with `signal = "mix"`.
    pub purchase_weight: f64,
    /// Weight of an add-to-cart with `signal = "mix"`.
    pub add_to_cart_weight: f64,
    /// Weight of a click with `signal = "mix"`.
    pub click_weight: f64,
    /// The categorical user field new users are grouped by (the observable part of a user):
    /// a user token `NAME=VALUE`, else the most common value of that name on the user's events;
    /// empty: the first user field with two or more values, else the first such event field.
    pub user_attribute: String,
    /// Fit the examination curve and the click and purchase biases to the shop's logged
    /// impressions (CTR by position, purchases per click) when it has any, instead of to
    /// `[calibration]`'s targets; the slate size becomes the shop's most common ranking length.
    pub fit_impressions: bool,
}

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            dir: String::new(),
            signal: "auto".into(),
            purchase_weight: 1.0,
            add_to_cart_weight: 0.5,
            click_weight: 0.2,
            user_attribute: String::new(),
            fit_impressions: true,
        }
    }
}

/// Which real products are on offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Keep the most-purchased `items` products; 0 keeps all (3,656).
    pub items: usize,
}

/// The shop's own item embedding: factorisation of a random half of the customers, so policies
/// see item vectors that are informative but not the hidden truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservedConfig {
    /// Latent dimension of the observable embedding (0: no embedding features).
    pub dim: usize,
    /// Fraction of customers whose purchases the shop's embedding is fitted on.
    pub customer_fraction: f64,
    /// Principal components of the items' title embeddings (from the text encoder) added as
    /// observable features (0: none). The hidden item model stays fitted to purchases, so the
    /// title is an informative but imperfect proxy of it, as in a real shop.
    pub text_dims: usize,
}

/// How new users are drawn: a fitted customer of the chosen country, plus Gaussian noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopulationConfig {
    /// Noise standard deviation, as a multiple of each latent dimension's spread over customers.
    pub bandwidth: f64,
    /// Draw from customers of the new user's country (observable) rather than from everyone.
    pub by_country: bool,
    /// Countries with fewer fitted customers than this draw from everyone.
    pub min_country_customers: usize,
}

/// How users examine, click and buy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChoiceConfig {
    /// Positions per slate (K).
    pub slate_size: usize,
    /// Position `k` (0-based) is examined with probability `1 / (k + 1)^examination_decay`.
    pub examination_decay: f64,
    /// Weight of the hidden affinity `<user, item>` in the click logit.
    pub affinity_scale: f64,
    /// Weight of the item's standardised log popularity in the click logit.
    pub popularity_weight: f64,
    /// Constant of the click logit (set by calibration).
    pub click_bias: f64,
    /// Constant of the purchase-given-click logit (set by calibration).
    pub purchase_bias: f64,
    /// Weight of the affinity in the purchase logit.
    pub purchase_affinity: f64,
    /// Weight of `ln(price / median price)` subtracted from the purchase logit.
    pub price_sensitivity: f64,
    /// Largest quantity of one purchase (real wholesale orders reach thousands).
    pub max_quantity: u32,
    /// The probability of examining each position, when given (one value in (0, 1] per
    /// position; later positions take the last): a curve fitted to a shop's impressions replaces
    /// `examination_decay`'s. Empty: `examination_decay`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examination: Vec<f64>,
}

/// Patience, boredom and the end of a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Patience at the start of a visit; the visit ends when it falls to 0 or below.
    pub patience: f64,
    /// Patience lost after a slate with no click.
    pub no_click_cost: f64,
    /// Patience regained per click (up to the starting patience).
    pub click_gain: f64,
    /// Probability of leaving after any slate, whatever happened.
    pub leave_probability: f64,
    /// Longest visit, in slates.
    pub max_steps: u32,
    /// Whether boredom and repeat penalties are on (fatigue).
    pub fatigue: bool,
    /// Weight of boredom (similarity of an item to recently shown items) in the click logit.
    pub boredom_weight: f64,
    /// Per-slate decay of boredom, in [0, 1).
    pub boredom_decay: f64,
    /// Click-logit penalty for an item already shown in this visit.
    pub repeat_penalty: f64,
    /// Recent history events (shown items, oldest dropped first) a context carries: the history
    /// a policy sees.
    pub history_length: usize,
}

/// Whether and how users come back after a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReturnConfig {
    /// Most visits per user (1: no returns).
    pub max_sessions: u32,
    /// Constant of the return logit.
    pub base: f64,
    /// Return-logit gain per click in the visit just ended.
    pub per_click: f64,
    /// Return-logit gain per purchase in the visit just ended.
    pub per_purchase: f64,
    /// Fraction of boredom that carries over to the next visit.
    pub boredom_carryover: f64,
}

/// Targets of the calibration of the click and purchase biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// Fit `choice.click_bias` and `choice.purchase_bias` to the targets whenever the scenario
    /// is built (false: use the values in `[choice]` as given).
    pub fit: bool,
    /// Target clicks per shown item under the browsing policy.
    pub ctr: f64,
    /// Target purchases per click.
    pub cvr: f64,
    /// Simulated users used to measure the rates.
    pub users: usize,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            name: "default".into(),
            description: "Online Retail's 500 best sellers, slates of 5, fatigue and returns on"
                .into(),
            seed: 42,
            catalog: CatalogConfig::default(),
            fit: MfConfig::default(),
            observed: ObservedConfig::default(),
            population: PopulationConfig::default(),
            choice: ChoiceConfig::default(),
            session: SessionConfig::default(),
            returns: ReturnConfig::default(),
            reward: RewardFn::default(),
            calibration: CalibrationConfig::default(),
            shop: ShopConfig::default(),
        }
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig { items: 500 }
    }
}

impl Default for ObservedConfig {
    fn default() -> Self {
        ObservedConfig {
            dim: 8,
            customer_fraction: 0.5,
            text_dims: 0,
        }
    }
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            bandwidth: 0.3,
            by_country: true,
            min_country_customers: 20,
        }
    }
}

impl Default for ChoiceConfig {
    fn default() -> Self {
        ChoiceConfig {
            slate_size: 5,
            examination_decay: 1.0,
            affinity_scale: 5.0,
            popularity_weight: 0.3,
            click_bias: -3.0,
            purchase_bias: -1.5,
            purchase_affinity: 2.0,
            price_sensitivity: 0.5,
            max_quantity: 24,
            examination: Vec::new(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            patience: 3.0,
            no_click_cost: 1.0,
            click_gain: 0.5,
            leave_probability: 0.05,
            max_steps: 30,
            fatigue: true,
            boredom_weight: 1.5,
            boredom_decay: 0.7,
            repeat_penalty: 2.0,
            history_length: 100,
        }
    }
}

impl Default for ReturnConfig {
    fn default() -> Self {
        ReturnConfig {
            max_sessions: 4,
            base: -1.0,
            per_click: 0.4,
            per_purchase: 0.8,
            boredom_carryover: 0.2,
        }
    }
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            fit: true,
            ctr: 0.05,
            cvr: 0.15,
            users: 2000,
        }
    }
}

fn invalid(parameter: &'static str, value: impl ToString, rule: &'static str) -> SimError {
    SimError::Invalid {
        parameter,
        value: value.to_string(),
        rule,
    }
}

fn positive(parameter: &'static str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(parameter, v, "must be a positive number"))
    }
}

fn non_negative(parameter: &'static str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(parameter, v, "must be a non-negative number"))
    }
}

fn finite(parameter: &'static str, v: f64) -> Result<(), SimError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(invalid(parameter, v, "must be a finite number"))
    }
}

impl ScenarioConfig {
    /// A preset by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Self, SimError> {
        if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            return Self::from_toml(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(name_or_path, &text),
            Err(_) => Err(SimError::UnknownScenario {
                name: name_or_path.into(),
                presets: PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Parses and validates TOML text; `name` labels errors.
    pub fn from_toml(name: &str, text: &str) -> Result<Self, SimError> {
        let config: ScenarioConfig = toml::from_str(text).map_err(|e| SimError::Parse {
            name: name.into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The scenario as TOML, every parameter included.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), SimError> {
        let c = &self.choice;
        if !(1..=50).contains(&c.slate_size) {
            return Err(invalid(
                "choice.slate_size",
                c.slate_size,
                "must be 1 to 50",
            ));
        }
        if self.catalog.items != 0 && self.catalog.items < c.slate_size {
            return Err(invalid(
                "catalog.items",
                self.catalog.items,
                "must be 0 (all) or at least choice.slate_size",
            ));
        }
        if !(1..=256).contains(&self.fit.dim) {
            return Err(invalid("fit.dim", self.fit.dim, "must be 1 to 256"));
        }
        if self.fit.iterations == 0 {
            return Err(invalid("fit.iterations", 0, "must be at least 1"));
        }
        // A positive penalty keeps every least-squares solve well posed.
        positive("fit.regularization", self.fit.regularization)?;
        non_negative("fit.alpha", self.fit.alpha)?;
        if self.observed.dim > 256 {
            return Err(invalid(
                "observed.dim",
                self.observed.dim,
                "must be 0 to 256",
            ));
        }
        if self.observed.text_dims > 64 {
            return Err(invalid(
                "observed.text_dims",
                self.observed.text_dims,
                "must be 0 to 64",
            ));
        }
        let frac = self.observed.customer_fraction;
        if !(frac > 0.0 && frac <= 1.0) {
            return Err(invalid(
                "observed.customer_fraction",
                frac,
                "must be in (0, 1]",
            ));
        }
        let p = &self.population;
        non_negative("population.bandwidth", p.bandwidth)?;
        for (name, v) in [
            ("choice.examination_decay", c.examination_decay),
            ("choice.affinity_scale", c.affinity_scale),
            ("choice.popularity_weight", c.popularity_weight),
            ("choice.click_bias", c.click_bias),
            ("choice.purchase_bias", c.purchase_bias),
            ("choice.purchase_affinity", c.purchase_affinity),
            ("choice.price_sensitivity", c.price_sensitivity),
            ("returns.base", self.returns.base),
            ("returns.per_click", self.returns.per_click),
            ("returns.per_purchase", self.returns.per_purchase),
        ] {
            finite(name, v)?;
        }
        if c.examination_decay < 0.0 {
            return Err(invalid(
                "choice.examination_decay",
                c.examination_decay,
                "must be non-negative",
            ));
        }
        if c.examination
            .iter()
            .any(|e| !(e.is_finite() && *e > 0.0 && *e <= 1.0))
        {
            return Err(invalid(
                "choice.examination",
                format!("{:?}", c.examination),
                "every value must be in (0, 1]",
            ));
        }
        if c.max_quantity == 0 {
            return Err(invalid("choice.max_quantity", 0, "must be at least 1"));
        }
        let s = &self.session;
        positive("session.patience", s.patience)?;
        for (name, v) in [
            ("session.no_click_cost", s.no_click_cost),
            ("session.click_gain", s.click_gain),
            ("session.boredom_weight", s.boredom_weight),
            ("session.repeat_penalty", s.repeat_penalty),
        ] {
            non_negative(name, v)?;
        }
        if !(0.0..1.0).contains(&s.leave_probability) {
            return Err(invalid(
                "session.leave_probability",
                s.leave_probability,
                "must be in [0, 1)",
            ));
        }
        if !(0.0..1.0).contains(&s.boredom_decay) {
            return Err(invalid(
                "session.boredom_decay",
                s.boredom_decay,
                "must be in [0, 1)",
            ));
        }
        if s.max_steps == 0 {
            return Err(invalid("session.max_steps", 0, "must be at least 1"));
        }
        if self.returns.max_sessions == 0 {
            return Err(invalid("returns.max_sessions", 0, "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.returns.boredom_carryover) {
            return Err(invalid(
                "returns.boredom_carryover",
                self.returns.boredom_carryover,
                "must be in [0, 1]",
            ));
        }
        let cal = &self.calibration;
        if !(cal.ctr > 0.0 && cal.ctr < 1.0) {
            return Err(invalid("calibration.ctr", cal.ctr, "must be in (0, 1)"));
        }
        if !(cal.cvr > 0.0 && cal.cvr < 1.0) {
            return Err(invalid("calibration.cvr", cal.cvr, "must be in (0, 1)"));
        }
        if cal.users == 0 {
            return Err(invalid("calibration.users", 0, "must be at least 1"));
        }
        let shop = &self.shop;
        if !SIGNALS.contains(&shop.signal.as_str()) {
            return Err(invalid(
                "shop.signal",
                &shop.signal,
                "must be auto, purchase, add_to_cart, click or mix",
            ));
        }
        for (name, v) in [
            ("shop.purchase_weight", shop.purchase_weight),
            ("shop.add_to_cart_weight", shop.add_to_cart_weight),
            ("shop.click_weight", shop.click_weight),
        ] {
            non_negative(name, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_validates() {
        for (name, _) in PRESETS {
            let c = ScenarioConfig::load(name).unwrap();
            assert_eq!(&c.name, name);
        }
    }

    #[test]
    fn the_default_preset_is_the_default_config() {
        assert_eq!(
            ScenarioConfig::load("default").unwrap(),
            ScenarioConfig::default()
        );
    }

    #[test]
    fn partial_files_keep_defaults_and_typos_are_errors() {
        let c = ScenarioConfig::from_toml("t", "name = \"t\"\n[choice]\nslate_size = 3\n").unwrap();
        assert_eq!(c.choice.slate_size, 3);
        assert_eq!(c.session, SessionConfig::default());
        let err = ScenarioConfig::from_toml("t", "[choice]\nslate_sise = 3\n").unwrap_err();
        assert!(err.to_string().contains("slate_sise"), "{err}");
        let err = ScenarioConfig::from_toml("t", "[session]\nboredom_decay = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("session.boredom_decay"), "{err}");
        assert!(matches!(
            ScenarioConfig::load("no-such-preset"),
            Err(SimError::UnknownScenario { .. })
        ));
    }

    #[test]
    fn toml_round_trip() {
        let c = ScenarioConfig::default();
        assert_eq!(ScenarioConfig::from_toml("rt", &c.to_toml()).unwrap(), c);
    }
}
