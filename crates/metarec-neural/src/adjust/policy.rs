//! [`AdjustedPolicy`]: any [`HeadAdjuster`] as a `metarec_core::Policy`, keeping each user's
//! state in a map and deciding through [`decide_with`].

use super::{BayesianAdjuster, DecideBuffers, HeadAdjuster, decide_with};
use metarec_core::{Context, Interaction, Policy, Rng, SlateChoice, UserKey};

/// A policy that serves each user with the network's head corrected by their adjuster state.
pub struct AdjustedPolicy<A: HeadAdjuster = BayesianAdjuster> {
    name: String,
    adjuster: A,
    states: std::collections::HashMap<UserKey, A::State>,
    buffers: DecideBuffers,
    /// The user of the last decision, while the greedy correction of their state that it left
    /// in `buffers` is still theirs (until anything else touches the states): the next update
    /// of that user starts from it ([`HeadAdjuster::update_from_correction`]) instead of
    /// computing it again. In the arena and the benchmarks each decision is followed by the
    /// update of its own interaction, so the Bayesian adjuster factorises each precision once
    /// instead of twice.
    last: Option<UserKey>,
}

impl<A: HeadAdjuster> AdjustedPolicy<A> {
    /// A policy over an adjuster.
    pub fn new(name: &str, adjuster: A) -> Self {
        AdjustedPolicy {
            name: name.to_owned(),
            adjuster,
            states: std::collections::HashMap::new(),
            buffers: DecideBuffers::default(),
            last: None,
        }
    }

    /// The adjuster.
    pub fn adjuster(&self) -> &A {
        &self.adjuster
    }

    /// The adjuster, to change its settings between users (meta-training does).
    pub fn adjuster_mut(&mut self) -> &mut A {
        self.last = None;
        &mut self.adjuster
    }

    /// Removes and returns every user's state (meta-training reads each user's adapted state).
    pub fn drain_states(&mut self) -> Vec<(UserKey, A::State)> {
        self.last = None;
        self.states.drain().collect()
    }

    /// A user's current state, if they have been seen.
    pub fn user_state(&self, user: &UserKey) -> Option<&A::State> {
        self.states.get(user)
    }

    /// Starts the user at the prior when unseen. Callers then borrow the state in place: a
    /// state (the Bayesian adjuster's holds a d x d precision) is not copied per call.
    fn ensure_state(&mut self, user: &UserKey) {
        if !self.states.contains_key(user) {
            self.states.insert(user.clone(), self.adjuster.prior());
        }
    }
}

impl<A: HeadAdjuster> Policy for AdjustedPolicy<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_user(&mut self, context: &Context) {
        self.last = None;
        let prior = self.adjuster.prior();
        self.states.insert(context.user.clone(), prior);
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        self.ensure_state(&context.user);
        let state = &self.states[&context.user];
        let choice = decide_with(&self.adjuster, state, context, k, rng, &mut self.buffers).choice;
        self.last = self.buffers.correction().map(|_| context.user.clone());
        choice
    }

    fn observe(&mut self, interaction: &Interaction) {
        let user = &interaction.context.user;
        let last = self.last.take();
        self.ensure_state(user);
        if let Some(state) = self.states.get_mut(user) {
            match self.buffers.correction() {
                Some(correction) if last.as_ref() == Some(user) => self
                    .adjuster
                    .update_from_correction(state, interaction, correction),
                _ => self.adjuster.update(state, interaction),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjust::BayesConfig;
    use crate::adjust::test_support::{interaction, network};
    use crate::features::UserView;
    use metarec_core::explore::top_k;
    use metarec_core::{Adjuster, ItemId};

    #[test]
    fn updates_from_the_last_decisions_correction_give_the_states_plain_updates_give() {
        // Two users' decisions and updates interleaved in every way the cache must get right:
        // an update right after its user's decision (the correction is reused), after another
        // user's decision, twice after one decision, and after a new start.
        let (frozen, features) = network();
        for thompson in [true, false] {
            let adj = BayesianAdjuster::new(
                frozen.clone(),
                features.clone(),
                BayesConfig {
                    thompson,
                    ..BayesConfig::default()
                },
            );
            let mut policy = AdjustedPolicy::new("adjusted", adj.clone());
            let mut plain = std::collections::HashMap::new();
            let mut rng = metarec_core::rng_for(6, 6);
            let steps: [(&str, bool); 10] = [
                ("u", true),
                ("u", false),
                ("u", false),
                ("v", true),
                ("v", false),
                ("v", true),
                ("u", false),
                ("u", true),
                ("u", false),
                ("u", false),
            ];
            for (n, (user, decide)) in steps.into_iter().enumerate() {
                let mut it = interaction(
                    &[[0, 1, 2], [4, 5, 6], [8, 9, 3]][n % 3],
                    &[n % 2 == 0, false, n % 3 == 0],
                );
                it.context.user = UserKey::from(user);
                if decide {
                    policy.decide(&it.context, 3, &mut rng);
                } else {
                    policy.observe(&it);
                    let state = plain
                        .entry(user)
                        .or_insert_with(|| policy.adjuster().prior());
                    policy.adjuster().update(state, &it);
                }
                // After every step, every user's state is the plain updates' to the bit.
                for (user, want) in &plain {
                    let got = policy.user_state(&UserKey::from(*user)).unwrap();
                    assert_eq!(got.observations, want.observations, "step {n}, {user}");
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got.precision), bits(&want.precision), "step {n}");
                    assert_eq!(bits(&got.shift), bits(&want.shift), "step {n}, {user}");
                }
                if n == 7 {
                    // A new start of `u` right after a decision: the decision's correction
                    // belongs to a state that is gone.
                    policy.start_user(&it.context);
                    plain.insert("u", policy.adjuster().prior());
                }
            }
        }
    }

    #[test]
    fn a_greedy_policy_with_a_zero_correction_ranks_by_the_network() {
        let (frozen, features) = network();
        let adj = BayesianAdjuster::new(
            frozen.clone(),
            features.clone(),
            BayesConfig {
                thompson: false,
                ..BayesConfig::default()
            },
        );
        let mut policy = AdjustedPolicy::new("adjusted", adj);
        let ctx = Context::for_user(UserKey::from("u"));
        let mut rng = metarec_core::rng_for(1, 1);
        let choice = policy.decide(&ctx, 3, &mut rng);
        let mut view = UserView::default();
        features.user_view(&ctx, &mut view);
        let (mut scratch, mut g) = (Vec::new(), Vec::new());
        frozen.user(
            &view.input,
            &view.clicked,
            &view.ignored,
            &mut scratch,
            &mut g,
        );
        let scores: Vec<f64> = (0..10)
            .map(|i| f64::from(frozen.score(&g, i, false, false)))
            .collect();
        let best: Vec<ItemId> = top_k(&scores, 3)
            .into_iter()
            .map(|i| ItemId(i as u32))
            .collect();
        assert_eq!(choice.items, best);
        assert_eq!(choice.propensities, vec![1.0; 3]);
        // A click moves the posterior and with it the user's scores.
        policy.observe(&interaction(&[0, 1, 2], &[false, true, false]));
        let state = policy.user_state(&UserKey::from("u")).unwrap();
        assert_eq!(state.observations, 3);
        assert!(
            policy
                .adjuster()
                .correction(state)
                .iter()
                .any(|d| d.abs() > 1e-6)
        );
    }
}
