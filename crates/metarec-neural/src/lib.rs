//! metarec's neural recommendation policy and its trainers, on candle.
//!
//! - [`features`]: the towers' inputs, from the observable catalog and contexts only;
//! - [`model`]: [`TwoTower`](model::TwoTower) (candle, for training) and
//!   [`Frozen`](model::Frozen) (plain Rust, for decisions);
//! - [`loss`]: Plackett-Luce log-probability, entropy, binary cross-entropy;
//! - [`train`]: [`Trainer`](train::Trainer): REINFORCE with a baseline, actor-critic, supervised;
//! - [`policy`]: [`NeuralPolicy`](policy::NeuralPolicy), the trained network as a
//!   [`metarec_core::Policy`];
//! - [`checkpoint`]: safetensors weights, the catalog and a JSON manifest, checked for fit when
//!   loaded;
//! - [`bundle`]: [`ModelBundle`](bundle::ModelBundle), a model directory as one verified
//!   artifact (network, catalog, data description, adjuster);
//! - [`adjust`]: the strategy adjuster: a per-user correction of the network's head, one concept
//!   per file under `adjust/`: `gaussian` ([`GaussianPosterior`](adjust::GaussianPosterior),
//!   the learned prior shape), `calibration` (network scores as click log-odds), `bayes`
//!   ([`BayesianAdjuster`](adjust::BayesianAdjuster)), `gradient`
//!   ([`GradientAdjuster`](adjust::GradientAdjuster)), `decide` (the one decision and
//!   explanation path), `policy` ([`AdjustedPolicy`](adjust::AdjustedPolicy)) and `manifest`
//!   (`adjuster.json`); `mod.rs` holds the [`HeadAdjuster`](adjust::HeadAdjuster) trait they
//!   share.
#![deny(missing_docs)]

pub mod adjust;
pub mod bundle;
pub mod checkpoint;
mod error;
pub mod features;
pub mod loss;
pub mod model;
pub mod policy;
pub mod train;

pub use candle_core::Tensor;
/// The variables of a network (a bundle's, a trainer's).
pub use candle_nn::VarMap;
pub use error::NeuralError;

/// The item inputs of a schema as the `N x F` tensor the item tower reads.
pub fn item_tensor(features: &features::Features) -> Result<Tensor, NeuralError> {
    Ok(Tensor::from_vec(
        features.item_inputs().to_vec(),
        (features.items(), features.item_dim()),
        &candle_core::Device::Cpu,
    )?)
}
