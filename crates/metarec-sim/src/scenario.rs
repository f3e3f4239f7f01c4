//! [`Scenario`]: a configuration made runnable: the fitted world (of Online Retail, or of a
//! shop directory), with the click and purchase biases calibrated to the scenario's targets, or
//! to a shop's logged impressions.

use crate::calibrate::{Fitted, fit_biases};
use crate::config::ScenarioConfig;
use crate::error::SimError;
use crate::shop::ShopEnv;
use crate::world::World;
use metarec_data::online_retail::OnlineRetail;
use metarec_data::shop::Shop;
use std::sync::Arc;

/// A built scenario: shareable between threads, cheap to open environments on.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The configuration, with calibrated biases when `calibration.fit` is on.
    pub config: ScenarioConfig,
    /// The configuration as given, before calibration: building it again on the same data
    /// gives the same scenario, so a model bundle records it to rebuild its world.
    pub source: ScenarioConfig,
    /// The fitted world.
    pub world: Arc<World>,
    /// The calibration's result, when it ran.
    pub calibration: Option<Fitted>,
    /// The shop the world was fitted to, when it was ([`Scenario::build_from_shop`]).
    pub shop: Option<ShopStamp>,
}

/// Which shop a world was fitted to: what a model bundle records so that the same world is
/// rebuilt only from the same shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopStamp {
    /// The shop's name (`shop.json`).
    pub name: String,
    /// SHA-256 of its `catalog.json`.
    pub catalog_sha256: String,
    /// SHA-256 of its `events.jsonl`.
    pub events_sha256: String,
}

impl Scenario {
    /// Fits the world to the data and calibrates the biases (when the scenario asks for it).
    pub fn build(config: ScenarioConfig, data: &OnlineRetail) -> Result<Scenario, SimError> {
        Scenario::build_with_text(config, data, None)
    }

    /// Like [`Scenario::build`], with the title embeddings of `data`'s catalog (row-major, with
    /// their dimension), which scenarios with `observed.text_dims > 0` need.
    pub fn build_with_text(
        config: ScenarioConfig,
        data: &OnlineRetail,
        text: Option<(&[f32], usize)>,
    ) -> Result<Scenario, SimError> {
        config.validate()?;
        let world = Arc::new(World::build_with_text(data, &config, text)?);
        Ok(Scenario::calibrated(config.clone(), config, world))
    }

    /// Fits the world to a shop directory's events (`config.shop` says how; its `dir` is what
    /// the caller loaded `shop` from) and calibrates the biases. When the shop logged
    /// impressions with clicks and `shop.fit_impressions` is on, the slate size becomes the
    /// shop's most common ranking length, the examination curve follows its CTR by position
    /// ([`crate::evidence::ImpressionFacts::examination`]) and the biases are fitted to its CTR and purchases per
    /// click, not to `[calibration]`'s targets. `text`: title embeddings of every item of the
    /// shop's catalog, for `observed.text_dims > 0`.
    pub fn build_from_shop(
        config: ScenarioConfig,
        shop: &Shop,
        text: Option<(&[f32], usize)>,
    ) -> Result<Scenario, SimError> {
        config.validate()?;
        let source = config.clone();
        let mut config = config;
        let world = Arc::new(World::build_from_shop(shop, &config, text)?);
        let facts = world
            .real
            .impressions
            .as_ref()
            .filter(|_| config.shop.fit_impressions);
        if let Some(f) = facts {
            config.choice.slate_size = f.slate_size.clamp(1, 50);
            config.choice.examination = f.examination();
            config.calibration.fit = true;
            config.calibration.ctr = f.target_ctr().clamp(1e-4, 0.99);
            // A shop whose shown items were clicked but never bought keeps the configured
            // conversion target: a rate of 0 has no finite bias.
            if f.purchases > 0 {
                config.calibration.cvr = f.cvr().clamp(1e-4, 0.99);
            }
            if world.catalog.len() < config.choice.slate_size {
                return Err(SimError::TooSmall(format!(
                    "{} items for the shop's slates of {}",
                    world.catalog.len(),
                    config.choice.slate_size
                )));
            }
            config.validate()?;
        }
        let mut scenario = Scenario::calibrated(config, source, world);
        scenario.shop = Some(ShopStamp {
            name: shop.manifest.name.clone(),
            catalog_sha256: shop.manifest.catalog_sha256.clone(),
            events_sha256: shop.manifest.events_sha256.clone(),
        });
        Ok(scenario)
    }

    /// A scenario over a fitted world, its biases calibrated when `config` asks for it.
    fn calibrated(config: ScenarioConfig, source: ScenarioConfig, world: Arc<World>) -> Scenario {
        let mut config = config;
        let calibration = if config.calibration.fit {
            let fitted = fit_biases(&world, &config);
            config.choice.click_bias = fitted.click_bias;
            config.choice.purchase_bias = fitted.purchase_bias;
            Some(fitted)
        } else {
            None
        };
        Scenario {
            config,
            source,
            world,
            calibration,
            shop: None,
        }
    }

    /// A fresh environment with the scenario's seed.
    pub fn env(&self) -> ShopEnv {
        ShopEnv::new(self.world.clone(), &self.config)
    }

    /// A fresh environment whose users are drawn with another seed (the world stays the same).
    pub fn env_with_seed(&self, seed: u64) -> ShopEnv {
        let mut config = self.config.clone();
        config.seed = seed;
        ShopEnv::new(self.world.clone(), &config)
    }
}
