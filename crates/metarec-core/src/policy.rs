//! The seams of the learning loop: [`Environment`] (what a simulator offers every policy),
//! [`Oracle`] (its hidden side, for yardsticks and regret), [`Policy`] (what chooses slates and
//! learns from feedback) and [`Adjuster`] (per-user adaptation).

use crate::catalog::Catalog;
use crate::context::Context;
use crate::decision::{Decision, Feedback, Interaction};
use crate::explore::{Rng, SlateChoice};
use crate::reward::RewardFn;

/// What the environment answers to a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the user did with the slate.
    pub feedback: Feedback,
    /// The next context of the same user, or `None` when the user has left for good (the
    /// episode ends).
    pub next: Option<Context>,
}

/// A simulated shop: users arrive, see slates and react.
///
/// Each user is a task with hidden tastes; the environment keeps them hidden and shows policies
/// only [`Context`]s. Users are numbered: `reset(user)` with the same number gives the same user
/// and the same random reactions, so policies can be compared on common random numbers.
pub trait Environment {
    /// The items on offer (observable attributes only).
    fn catalog(&self) -> &Catalog;

    /// Positions per slate.
    fn slate_size(&self) -> usize;

    /// Starts user number `user` and returns their first context.
    fn reset(&mut self, user: u64) -> Context;

    /// Shows a decision to the current user.
    fn step(&mut self, decision: &Decision) -> Step;
}

/// The environment's hidden side: what only yardsticks and the arena's regret may read, never a
/// policy (policies see an [`Environment`] only through the [`Context`]s it returns).
pub trait Oracle: Environment {
    /// The expected reward of a slate for the current user in their current state (the oracle's
    /// view, for regret). Not available to policies.
    fn expected_reward(&self, slate: &[crate::ItemId], reward: &RewardFn) -> f64;

    /// The slate with the highest expected immediate reward for the current user and state.
    fn oracle_slate(&self, reward: &RewardFn) -> Vec<crate::ItemId>;

    /// Every catalog item's expected reward for the current user and state, were it shown
    /// alone at the first position, in catalog order: the dense truth a network can be taught
    /// to predict from what it sees (`metarec-neural`'s posterior distillation). The default
    /// asks [`Oracle::expected_reward`] item by item; a simulator overrides it where it can
    /// share the work.
    fn item_values(&self, reward: &RewardFn) -> Vec<f64> {
        (0..self.catalog().len())
            .map(|i| self.expected_reward(&[crate::ItemId(i as u32)], reward))
            .collect()
    }
}

/// Something that chooses slates and may learn from their outcomes.
pub trait Policy {
    /// A short stable name, logged as the decision's `policy_id`.
    fn name(&self) -> &str;

    /// The version of the model behind the decisions, logged as `model_version`.
    fn model_version(&self) -> String {
        "0".into()
    }

    /// Chooses a slate of at most `k` items for the context. Candidates are the context's, or the
    /// whole catalog when the context lists none.
    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice;

    /// Learns from one logged interaction (the default ignores it).
    fn observe(&mut self, interaction: &Interaction) {
        let _ = interaction;
    }

    /// Called when a new user starts, for policies that keep per-user state.
    fn start_user(&mut self, context: &Context) {
        let _ = context;
    }
}

/// A boxed policy is a policy, so registries can hand out `Box<dyn Policy>` wherever a policy or
/// an [`crate::Agent`] is expected.
impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn model_version(&self) -> String {
        (**self).model_version()
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        (**self).decide(context, k, rng)
    }

    fn observe(&mut self, interaction: &Interaction) {
        (**self).observe(interaction);
    }

    fn start_user(&mut self, context: &Context) {
        (**self).start_user(context);
    }
}

/// Checks that a policy's choice fits a decision and wraps it; used by every runner so that the
/// same checks apply to simulated and served decisions.
pub fn decision_from_choice(
    choice: SlateChoice,
    event_id: crate::EventId,
    policy: &str,
    model_version: String,
) -> Result<Decision, crate::VocabError> {
    let decision = Decision {
        event_id,
        slate: crate::Slate::new(choice.items)?,
        propensities: choice.propensities,
        slate_propensity: choice.slate_propensity,
        positions: None,
        policy_id: policy.to_owned(),
        model_version,
    };
    decision.validate()?;
    Ok(decision)
}

/// The strategy adjuster: per-user state, initialised to the meta-learned prior and updated by each
/// of the user's interactions, that conditions a policy's user head. What is known of a new user
/// (their context) enters through the network's user tower, whose head the state corrects, so
/// the prior itself takes no context. The state is small and serialisable, so a server can keep
/// one per user.
pub trait Adjuster {
    /// The per-user state.
    type State: Clone;

    /// The state of a user nobody has seen interact yet: the meta-learned prior.
    fn prior(&self) -> Self::State;

    /// Folds one interaction of the user into their state.
    fn update(&self, state: &mut Self::State, interaction: &Interaction);
}
