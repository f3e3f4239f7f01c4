//! [`PyTrainer`]: the network's training on a simulator (REINFORCE, actor-critic, or
//! distillation from the informed yardstick), whole iterations at a time or split into its
//! halves, collecting a batch's users and learning from them, with the weights and the episodes
//! as exact bytes: what `metarec.ray.train` spreads over Ray actors.

use crate::sim::Simulator;
use crate::value_error;
use metarec_eval::PolicySpec;
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::model::ModelConfig;
use metarec_neural::train::{
    Algo, IterationStats, TrainConfig, Trainer, episodes_from_bytes, episodes_to_bytes,
};
use metarec_sim::{InformedPolicy, Scenario, ShopEnv};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::Arc;

/// The most users one `collect` call plays, which bounds what a bad range can ask for.
const MAX_COLLECT: u64 = 1 << 20;

/// A network in training on a simulator's training users (never the arena's).
#[pyclass(module = "metarec._metarec", name = "Trainer", unsendable)]
pub struct PyTrainer {
    scenario: Arc<Scenario>,
    trainer: Trainer,
    env: ShopEnv,
    teacher: Option<InformedPolicy>,
    algos: Vec<String>,
}

fn stats_dict<'py>(py: Python<'py>, s: &IterationStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("iteration", s.iteration)?;
    d.set_item("reward_per_user", s.reward_per_user)?;
    d.set_item("return_per_user", s.return_per_user)?;
    d.set_item("slates_per_user", s.slates_per_user)?;
    d.set_item("loss", s.loss)?;
    d.set_item("entropy", s.entropy)?;
    Ok(d)
}

#[pymethods]
impl PyTrainer {
    /// A fresh network for `simulator`'s catalog and objective. `algo`: `reinforce`,
    /// `actor-critic`, `distill` (imitating `teacher`, `informed` or `informed:N`) or
    /// `posterior` (learning every item's value for the hidden user, which the simulator
    /// reveals, so that the network learns each value's posterior mean). The
    /// training users and the environment are the same as `metarec train --scenario ...` with
    /// the same seed; `user_streams` (on by default here, off on the command line, where
    /// `--user-streams` turns it on) samples each user's slates from a stream of their own, so a
    /// batch split over workers trains the same network. `memory` is the recent window of the
    /// network's long-run memory (`metarec train --memory`; 20 by default, 0 for none).
    /// `imitate_depth` (distillation) imitates the teacher's ranking of its best that many items
    /// in each state rather than its slate (`metarec train --imitate-depth`; 0, the slate, by
    /// default). `rollout_temperature` (either distillation) samples the network's own visits at
    /// that temperature instead of the model's (`metarec train --rollout-temperature`; 0.2 is
    /// what `metarec demo --from-scratch` uses for `posterior`).
    #[new]
    #[pyo3(signature = (
        simulator, *, algo = "reinforce", teacher = "informed", seed = 7, batch = 64,
        hidden = None, embed = None, learning_rate = None, entropy = None, user_streams = true,
        memory = None, imitate_depth = 0, rollout_temperature = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        simulator: &Simulator,
        algo: &str,
        teacher: &str,
        seed: u64,
        batch: usize,
        hidden: Option<usize>,
        embed: Option<usize>,
        learning_rate: Option<f64>,
        entropy: Option<f64>,
        user_streams: bool,
        memory: Option<usize>,
        imitate_depth: usize,
        rollout_temperature: Option<f64>,
    ) -> PyResult<Self> {
        let scenario = Arc::clone(&simulator.scenario);
        let algo = Algo::parse(algo).map_err(value_error)?;
        if algo == Algo::Supervised {
            return Err(value_error(
                "algo `supervised` learns from logs: `metarec train --log` or `--shop` trains it",
            ));
        }
        let defaults = TrainConfig::default();
        let model = ModelConfig::default();
        let config = TrainConfig {
            algo,
            model: ModelConfig {
                hidden: hidden.unwrap_or(model.hidden),
                embed: embed.unwrap_or(model.embed),
                memory: memory.unwrap_or(metarec_neural::model::DEFAULT_MEMORY),
                ..model
            },
            batch,
            learning_rate: learning_rate.unwrap_or(defaults.learning_rate),
            entropy: entropy.unwrap_or(defaults.entropy),
            seed,
            user_streams,
            imitate_depth,
            rollout_temperature,
            ..defaults
        };
        let reward = scenario.config.reward;
        let trainer = Trainer::new(&scenario.world.catalog, reward, config).map_err(value_error)?;
        // The command line's training environment, so the same seed meets the same users.
        let env = scenario.env_with_seed(scenario.config.seed ^ 0x7472_6169_6e00 ^ seed);
        let teacher = if algo == Algo::Distill {
            Some(PolicySpec::teacher(teacher, &scenario, &reward, seed).map_err(value_error)?)
        } else {
            None
        };
        Ok(PyTrainer {
            scenario,
            trainer,
            env,
            teacher,
            algos: vec![algo.name().to_owned()],
        })
    }

    /// Iterations done so far.
    #[getter]
    fn iterations_done(&self) -> usize {
        self.trainer.iterations_done
    }

    /// Every iteration's statistics so far, as dicts.
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.trainer
            .history
            .iter()
            .map(|s| stats_dict(py, s))
            .collect()
    }

    /// One whole iteration here: the batch's users played, then one optimiser step. Returns
    /// its statistics.
    fn iteration<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let teacher = self
            .teacher
            .as_mut()
            .map(|t| t as &mut dyn metarec_core::Policy);
        let stats = self
            .trainer
            .rl_iteration_revealed(&mut self.env, teacher)
            .map_err(value_error)?;
        stats_dict(py, &stats)
    }

    /// The user numbers `(first, end)` of the next iteration's batch.
    fn batch_users(&self) -> (u64, u64) {
        let users = self.trainer.batch_users();
        (users.start, users.end)
    }

    /// Plays users `first..end` with the current weights (and the teacher, in distillation)
    /// and returns their episodes as bytes for `learn`.
    fn collect<'py>(
        &mut self,
        py: Python<'py>,
        first: u64,
        end: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if end < first || end - first > MAX_COLLECT {
            return Err(value_error(format!(
                "users {first}..{end}: need first <= end and at most {MAX_COLLECT} users"
            )));
        }
        let teacher = self
            .teacher
            .as_mut()
            .map(|t| t as &mut dyn metarec_core::Policy);
        let episodes = self
            .trainer
            .collect_revealed(&mut self.env, first..end, teacher)
            .map_err(value_error)?;
        Ok(PyBytes::new(py, &episodes_to_bytes(&episodes)))
    }

    /// One optimiser step on the batch's episodes: `parts` are `collect`'s bytes for
    /// consecutive ranges covering `batch_users()`, in order. Returns the statistics.
    fn learn<'py>(
        &mut self,
        py: Python<'py>,
        parts: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut episodes = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            episodes.extend(
                episodes_from_bytes(part.as_bytes())
                    .map_err(|e| value_error(format!("parts[{i}]: {e}")))?,
            );
        }
        let batch = self.trainer.config.batch;
        if episodes.len() != batch {
            return Err(value_error(format!(
                "the parts hold {} episodes; the batch has {batch} users",
                episodes.len()
            )));
        }
        let stats = self.trainer.learn_from(&episodes).map_err(value_error)?;
        stats_dict(py, &stats)
    }

    /// The network's weights as bytes (little-endian float32, variables in name order).
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.trainer.weights_bytes().map_err(value_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Replaces the weights with another trainer's `weights()` of the same network shape.
    fn set_weights(&mut self, weights: &[u8]) -> PyResult<()> {
        self.trainer.set_weights_bytes(weights).map_err(value_error)
    }

    /// Writes the network as a model bundle into `dir`, as `metarec train --out dir` does; play
    /// it as `neural:dir` (or meta-train its adjuster with `metarec meta-train --model dir`).
    fn save(&self, dir: PathBuf) -> PyResult<()> {
        let catalog = &self.scenario.world.catalog;
        let manifest = Manifest::for_trainer(
            &self.trainer,
            catalog,
            metarec_eval::shop::scenario_source(&self.scenario),
            self.algos.clone(),
            self.trainer.history.clone(),
        );
        checkpoint::save(&dir, &self.trainer.varmap, &manifest, catalog).map_err(value_error)
    }
}
