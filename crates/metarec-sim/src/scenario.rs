//! [`Scenario`]: a configuration made runnable: the fitted world, with the click and purchase
//! biases calibrated to the scenario's targets.

use crate::calibrate::{Fitted, fit_biases};
use crate::config::ScenarioConfig;
use crate::error::SimError;
use crate::shop::ShopEnv;
use crate::world::World;
use metarec_data::online_retail::OnlineRetail;
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
        let source = config.clone();
        let mut config = config;
        let calibration = if config.calibration.fit {
            let fitted = fit_biases(&world, &config);
            config.choice.click_bias = fitted.click_bias;
            config.choice.purchase_bias = fitted.purchase_bias;
            Some(fitted)
        } else {
            None
        };
        Ok(Scenario {
            config,
            source,
            world,
            calibration,
        })
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
