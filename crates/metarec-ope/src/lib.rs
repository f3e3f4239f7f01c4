//! metarec's off-policy evaluation: how well would a policy have done on traffic that another
//! policy served?
//!
//! - [`data`]: [`LoggedData`], a checked log of slates (per-position propensities and rewards),
//!   built from the project's [`metarec_core::Interaction`] records or the Open Bandit Dataset
//!   ([`obd`]); malformed records are errors naming the row, and so are propensities below a
//!   [`PropensityFloor`] unless it clips them (counted in a [`FloorReport`]);
//! - [`policy`]: the [`EvaluationPolicy`] seam (an action distribution per round and position),
//!   [`StaticPolicy`] (uniform, and Bernoulli Thompson sampling by seeded Monte Carlo),
//!   [`GreedyPolicy`] and [`PlackettLucePolicy`] (rankings by a reward model's scores),
//!   [`MonteCarloPolicy`] (any metarec policy, frozen, by seeded decisions) and [`ReplayPolicy`]
//!   (a policy that adapts to each user, replayed over the log in time order, observing each
//!   logged round after its distribution is counted);
//! - [`arrays`]: [`ArrayPolicy`] and [`ArrayModel`], a policy's action distribution and a reward
//!   model's predictions given as dense `(rounds, actions, positions)` arrays, as Open Bandit
//!   Pipeline passes them (how a policy trained outside metarec is judged);
//! - [`prior`]: [`BtsPrior`], ZOZOTOWN's per-campaign Beta prior read from `prior_bts.yaml`;
//! - [`model`]: the [`RewardModel`]s behind the direct method and the doubly robust estimators,
//!   with cross-fitting;
//! - [`dsjson`]: Vowpal Wabbit's decision-service JSON import and export of the interaction log;
//! - [`estimator`]: the [`Estimator`] seam, DM, IPW, SNIPW, DR, SNDR, switch-DR and DR-OS, and
//!   [`evaluate`] (bootstrap 95% intervals, effective sample sizes, clipping report; a result
//!   that is not a finite number is an error, never a NaN in a table); [`on_policy_estimate`],
//!   the logging policy's own value with the same interval, for the reference row.
//!
//! The crate depends on neither the simulator nor the neural network, so the server can evaluate
//! its logs without compiling candle. Every stochastic step takes a seed.
#![deny(missing_docs)]

pub mod arrays;
pub mod data;
pub mod dsjson;
mod error;
pub mod estimator;
pub mod model;
pub mod obd;
pub mod policy;
pub mod prior;

pub use arrays::{ActionArray, ArrayModel, ArrayPolicy};
pub use data::{FloorReport, LoggedData, PropensityFloor, RawEntry};
pub use error::OpeError;
pub use estimator::{
    Bootstrap, Clipping, Dm, Dr, DrOs, Estimate, Estimator, Ipw, OnPolicy, Prepared, SnDr, SnIpw,
    Sums, SwitchDr, WeightRule, all_estimators, evaluate, on_policy_estimate,
};
pub use model::{CrossFitted, LinearConfig, LinearModel, MeanModel, ModelConfig, RewardModel};
pub use policy::{
    EvaluationPolicy, GreedyPolicy, MonteCarlo, MonteCarloPolicy, PlackettLucePolicy, ReplayPolicy,
    RoundDistribution, StaticPolicy, round_distribution,
};
pub use prior::{BetaPrior, BtsPrior};
