//! Test fixtures: a five-item bandit with a known best item and a small simulation loop.
//!
//! Item `i` is clicked with probability [`CLICK_P`]`[i]` wherever it is shown, independently of
//! the user, so item 2 is the best and the expected click count of any slate is known. The
//! features make the five items linearly independent in the head of the feature map, so a linear
//! model can represent every item's click rate exactly; item 2 has the lowest popularity prior,
//! so a policy that puts it first has learnt it.

use metarec_core::{
    Catalog, Context, Decision, EventId, Feedback, Interaction, Item, PastEvent, Policy, Rng,
    SlateChoice, UserKey, decision_from_choice, rng_for,
};
use rand::Rng as _;

/// Click probability of each item of [`bandit_catalog`].
pub(crate) const CLICK_P: [f64; 5] = [0.1, 0.2, 0.7, 0.3, 0.15];

/// Five items with columns `log_price_z`, `log_popularity_z`, `embedding_0`, `embedding_1`.
pub(crate) fn bandit_catalog() -> Catalog {
    let names = [
        "log_price_z",
        "log_popularity_z",
        "embedding_0",
        "embedding_1",
    ];
    let rows = [
        [0.5, 1.0, 1.0, 0.0],
        [-0.5, 0.0, 0.0, 1.0],
        [0.0, -1.0, 1.0, 1.0],
        [1.0, 0.5, -1.0, 0.0],
        [-1.0, -0.5, 0.0, -1.0],
    ];
    let mut c = Catalog::new(names.iter().map(|s| s.to_string()).collect());
    for (k, f) in rows.iter().enumerate() {
        c.push(Item {
            key: format!("item-{k}"),
            features: f.to_vec(),
            ..Item::default()
        })
        .expect("fixture items are valid");
    }
    c
}

/// A decision for user `u` with an empty history.
pub(crate) fn decide_empty(policy: &mut dyn Policy, k: usize, rng: &mut Rng) -> SlateChoice {
    policy.decide(&Context::for_user(UserKey::from("u")), k, rng)
}

/// Runs `steps` slates of `k` items: a new user every 20 slates, clicks drawn from [`CLICK_P`],
/// every interaction observed. Returns the decisions.
pub(crate) fn simulate(
    policy: &mut dyn Policy,
    steps: usize,
    k: usize,
    seed: u64,
) -> Vec<Decision> {
    simulate_users(policy, steps, k, seed, 20)
}

/// [`simulate`] with a new user every `per_user` slates. The context carries the user's last ten
/// events, so history-based policies see their own feedback.
pub(crate) fn simulate_users(
    policy: &mut dyn Policy,
    steps: usize,
    k: usize,
    seed: u64,
    per_user: usize,
) -> Vec<Decision> {
    let mut policy_rng = rng_for(seed, 0);
    let mut click_rng = rng_for(seed, 1);
    let mut decisions = Vec::with_capacity(steps);
    let mut context = Context::default();
    for t in 0..steps {
        if t % per_user == 0 {
            context = Context::for_user(UserKey(format!("u{}", t / per_user)));
            policy.start_user(&context);
        }
        let choice = policy.decide(&context, k, &mut policy_rng);
        let decision = decision_from_choice(
            choice,
            EventId(t.to_string()),
            policy.name(),
            policy.model_version(),
        )
        .expect("policies return valid choices");
        let mut feedback = Feedback::none(decision.slate.len());
        for (j, item) in decision.slate.items().iter().enumerate() {
            feedback.clicks[j] = click_rng.random::<f64>() < CLICK_P[item.index()];
        }
        let history: Vec<PastEvent> = decision
            .slate
            .items()
            .iter()
            .zip(&feedback.clicks)
            .map(|(&item, &click)| PastEvent {
                item,
                click,
                purchase: false,
            })
            .collect();
        let interaction = Interaction::new(context.clone(), decision.clone(), feedback)
            .expect("feedback covers the slate");
        policy.observe(&interaction);
        decisions.push(decision);
        let h = &mut context.session.history;
        h.extend(history);
        let excess = h.len().saturating_sub(10);
        h.drain(..excess);
        context.session.step += 1;
    }
    decisions
}
