//! [`AdjustedPolicy`]: any [`HeadAdjuster`] as a `metarec_core::Policy`, keeping each user's
//! state in a map and deciding through [`decide_with`].

use super::{BayesianAdjuster, DecideBuffers, HeadAdjuster, decide_with};
use metarec_core::{Context, Interaction, Policy, Rng, SlateChoice, UserKey};

/// A policy that serves each user with the network's head corrected by their adjuster state.
pub struct AdjustedPolicy<A: HeadAdjuster = BayesianAdjuster> {
    name: String,
    adjuster: A,
    users: std::collections::HashMap<UserKey, UserEntry<A::State>>,
    buffers: DecideBuffers,
}

/// A user's state, with the greedy correction of that state as it is when the last decision
/// computed one: the next update of the user starts from it
/// ([`HeadAdjuster::update_buffered`]) instead of computing it again. The Bayesian adjuster's
/// correction is its posterior mean, a factorisation and a solve; kept per user (a vector of
/// the head's width beside a state that holds a square matrix of it), it serves users whose
/// decisions and updates interleave in one policy, and not only a decision followed by its own
/// update. (The server keeps its users' states elsewhere and does not go through this policy.)
struct UserEntry<S> {
    state: S,
    /// The correction's buffer, reused between decisions; `has_correction` says whether it
    /// holds the correction of `state` as it is.
    correction: Vec<f64>,
    has_correction: bool,
}

impl<S> UserEntry<S> {
    fn new(state: S) -> Self {
        UserEntry {
            state,
            correction: Vec::new(),
            has_correction: false,
        }
    }
}

/// The user's entry, started at the prior when unseen. Callers borrow the state in place: a
/// state (the Bayesian adjuster's holds a d x d precision) is not copied per call. A function
/// of the map and the adjuster, not a method, so the policy's buffers can be borrowed beside
/// the entry.
fn entry_of<'a, A: HeadAdjuster>(
    users: &'a mut std::collections::HashMap<UserKey, UserEntry<A::State>>,
    adjuster: &A,
    user: &UserKey,
) -> &'a mut UserEntry<A::State> {
    if !users.contains_key(user) {
        users.insert(user.clone(), UserEntry::new(adjuster.prior()));
    }
    users.get_mut(user).expect("inserted above")
}

impl<A: HeadAdjuster> AdjustedPolicy<A> {
    /// A policy over an adjuster.
    pub fn new(name: &str, adjuster: A) -> Self {
        AdjustedPolicy {
            name: name.to_owned(),
            adjuster,
            users: std::collections::HashMap::new(),
            buffers: DecideBuffers::default(),
        }
    }

    /// The adjuster.
    pub fn adjuster(&self) -> &A {
        &self.adjuster
    }

    /// The adjuster, to change its settings between users (meta-training does). The kept
    /// corrections and the user tower's kept output are dropped: either may depend on what
    /// changes.
    pub fn adjuster_mut(&mut self) -> &mut A {
        for entry in self.users.values_mut() {
            entry.has_correction = false;
        }
        self.buffers.forget_network();
        &mut self.adjuster
    }

    /// Removes and returns every user's state (meta-training reads each user's adapted state).
    pub fn drain_states(&mut self) -> Vec<(UserKey, A::State)> {
        self.users
            .drain()
            .map(|(user, entry)| (user, entry.state))
            .collect()
    }

    /// A user's current state, if they have been seen.
    pub fn user_state(&self, user: &UserKey) -> Option<&A::State> {
        self.users.get(user).map(|entry| &entry.state)
    }
}

impl<A: HeadAdjuster> Policy for AdjustedPolicy<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_user(&mut self, context: &Context) {
        let prior = self.adjuster.prior();
        self.users
            .insert(context.user.clone(), UserEntry::new(prior));
    }

    fn decide(&mut self, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let entry = entry_of(&mut self.users, &self.adjuster, &context.user);
        let choice = decide_with(
            &self.adjuster,
            &entry.state,
            context,
            k,
            rng,
            &mut self.buffers,
        )
        .choice;
        entry.correction.clear();
        match self.buffers.correction() {
            Some(correction) => {
                entry.correction.extend_from_slice(correction);
                entry.has_correction = true;
            }
            None => entry.has_correction = false,
        }
        choice
    }

    fn observe(&mut self, interaction: &Interaction) {
        let entry = entry_of(&mut self.users, &self.adjuster, &interaction.context.user);
        let correction = entry.has_correction.then_some(&entry.correction[..]);
        self.adjuster
            .update_buffered(&mut entry.state, interaction, correction, &mut self.buffers);
        entry.has_correction = false;
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
    use std::sync::Arc;

    /// Step `n` of a run that interleaves users: an interaction of `user` whose context's
    /// history is the first `n % 4` events of a fixed list, so some steps read the same view
    /// as the step before and some do not.
    fn step_interaction(n: usize, user: &str) -> Interaction {
        let mut it = interaction(
            &[[0, 1, 2], [4, 5, 6], [8, 9, 3]][n % 3],
            &[n % 2 == 0, false, n % 3 == 0],
        );
        it.context.user = UserKey::from(user);
        let events = [(3, true), (7, false), (1, false), (9, true)];
        for &(item, click) in &events[..n % 4] {
            it.context.session.history.push(metarec_core::PastEvent {
                item: ItemId(item),
                click,
                purchase: false,
            });
        }
        it
    }

    /// The steps the tests below take: which user, and whether to decide or to update.
    const STEPS: [(&str, bool); 14] = [
        ("u", true),
        ("u", false),
        ("u", false),
        ("v", true),
        ("u", true),
        ("v", false),
        ("u", false),
        ("v", true),
        ("u", false),
        ("u", true),
        ("u", false),
        ("v", false),
        ("v", true),
        ("u", false),
    ];

    #[test]
    fn updates_from_the_last_decisions_correction_give_the_states_plain_updates_give() {
        // Two users' decisions and updates interleaved in every way the kept corrections and
        // the kept tower output must get right: an update right after its user's decision, after
        // another user's decision, twice after one decision, and after a new start; contexts
        // that read as the view read last, and contexts that do not. Every state and every
        // decision must be the bits of plain updates and of decisions on fresh buffers.
        let (frozen, features) = network();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
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
            let (mut rng, mut fresh_rng) =
                (metarec_core::rng_for(6, 6), metarec_core::rng_for(6, 6));
            for (n, (user, decide)) in STEPS.into_iter().enumerate() {
                let it = step_interaction(n, user);
                let state = plain.entry(user).or_insert_with(|| adj.prior());
                if decide {
                    let got = policy.decide(&it.context, 3, &mut rng);
                    let want = decide_with(
                        &adj,
                        state,
                        &it.context,
                        3,
                        &mut fresh_rng,
                        &mut DecideBuffers::default(),
                    )
                    .choice;
                    assert_eq!(got.items, want.items, "step {n}");
                    assert_eq!(
                        bits(&got.propensities),
                        bits(&want.propensities),
                        "step {n}"
                    );
                } else {
                    policy.observe(&it);
                    adj.update(state, &it);
                }
                // After every step, every user's state is the plain updates' to the bit.
                for (user, want) in &plain {
                    let got = policy.user_state(&UserKey::from(*user)).unwrap();
                    assert_eq!(got.observations, want.observations, "step {n}, {user}");
                    assert_eq!(bits(&got.precision), bits(&want.precision), "step {n}");
                    assert_eq!(bits(&got.shift), bits(&want.shift), "step {n}, {user}");
                }
                if n == 9 {
                    // A new start of `u` right after a decision: the decision's correction
                    // belongs to a state that is gone.
                    policy.start_user(&it.context);
                    plain.insert("u", adj.prior());
                }
            }
        }
    }

    #[test]
    fn the_gradient_adjusters_policy_updates_as_its_plain_updates_do() {
        use crate::adjust::{GradientAdjuster, GradientConfig};
        let (frozen, features) = network();
        let adj = GradientAdjuster::new(frozen, features, GradientConfig::default());
        let mut policy = AdjustedPolicy::new("gradient", adj.clone());
        let mut plain = std::collections::HashMap::new();
        let mut rng = metarec_core::rng_for(6, 6);
        for (n, (user, decide)) in STEPS.into_iter().enumerate() {
            let it = step_interaction(n, user);
            if decide {
                policy.decide(&it.context, 3, &mut rng);
            } else {
                policy.observe(&it);
                let state = plain.entry(user).or_insert_with(|| adj.prior());
                adj.update(state, &it);
            }
            for (user, want) in &plain {
                let got = policy.user_state(&UserKey::from(*user)).unwrap();
                assert_eq!(got, want, "step {n}, {user}");
            }
        }
    }

    #[test]
    fn a_network_changed_under_the_policy_is_not_served_from_the_old_ones_tower() {
        // Two networks of the same shape; the same context decided before and after the swap
        // reads as the same view, so only forgetting the kept head makes the second decision
        // the new network's.
        let (frozen, features) = network();
        let other = {
            use crate::train::{TrainConfig, Trainer};
            let cat = crate::train::tests::catalog(10);
            let config = TrainConfig {
                seed: 99,
                ..TrainConfig::default()
            };
            let trainer = Trainer::new(&cat, metarec_core::RewardFn::default(), config).unwrap();
            Arc::new(trainer.frozen().clone())
        };
        let greedy = BayesConfig {
            thompson: false,
            ..BayesConfig::default()
        };
        let first = BayesianAdjuster::new(frozen, features.clone(), greedy);
        let second = first.with_network(other, features).unwrap();
        let ctx = step_interaction(3, "u").context;
        let mut rng = metarec_core::rng_for(1, 1);
        let mut policy = AdjustedPolicy::new("adjusted", first);
        let before = policy.decide(&ctx, 10, &mut rng);
        *policy.adjuster_mut() = second.clone();
        let after = policy.decide(&ctx, 10, &mut rng);
        let fresh = AdjustedPolicy::new("fresh", second).decide(&ctx, 10, &mut rng);
        assert_eq!(after, fresh);
        assert_ne!(before.items, after.items, "the two networks rank alike");
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
