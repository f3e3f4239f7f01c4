//! Metarec policies judged on logged slates: a policy that knows the users' tastes is estimated
//! above the logging policy with an interval that excludes the logging value, and a policy that
//! learns each user's tastes from feedback is worth that only when replayed over the log (it
//! observes each user's logged rounds in time order), not frozen.

use metarec_core::{
    Context, Decision, EventId, Feedback, Interaction, ItemId, Policy, Rng, Slate, SlateChoice,
    UserKey, rng_for,
};
use metarec_ope::{
    Bootstrap, Estimate, Ipw, LoggedData, MeanModel, MonteCarloPolicy, Prepared, PropensityFloor,
    ReplayPolicy, evaluate, on_policy_estimate,
};
use rand::Rng as _;
use std::collections::HashMap;

const ITEMS: u32 = 10;
const SLATE: usize = 2;
const USERS: u32 = 50;

/// User `u` likes items `2g` and `2g + 1` of group `g = u % 5`, and says so in a `taste=g`
/// token.
fn group(user: u32) -> u32 {
    user % 5
}

/// 4,000 uniformly logged slates of two distinct items (propensity 1/10 at each position) for
/// users drawn at random, in time order; a liked item is clicked with probability 0.6, any other
/// with 0.05. Expected value per round: logging 2 (0.2 * 0.6 + 0.8 * 0.05) = 0.32, a policy that
/// shows both liked items 1.2.
fn log() -> Vec<Interaction> {
    let mut rng = rng_for(11, 0);
    (0..4000)
        .map(|n| {
            let user = rng.random_range(0..USERS);
            let first = rng.random_range(0..ITEMS);
            let second = (first + rng.random_range(1..ITEMS)) % ITEMS;
            let clicks: Vec<bool> = [first, second]
                .iter()
                .map(|&i| {
                    let p = if i / 2 == group(user) { 0.6 } else { 0.05 };
                    rng.random::<f64>() < p
                })
                .collect();
            let mut context = Context::for_user(UserKey(format!("u{user}")));
            context.timestamp_ms = Some(1_000 * n as i64);
            context.tokens = vec![format!("taste={}", group(user))];
            Interaction::new(
                context,
                Decision {
                    event_id: EventId(format!("e{n}")),
                    slate: Slate::new(vec![ItemId(first), ItemId(second)]).unwrap(),
                    propensities: vec![0.1, 0.1],
                    slate_propensity: None,
                    positions: None,
                    policy_id: "uniform".into(),
                    model_version: String::new(),
                },
                Feedback {
                    clicks,
                    purchases: vec![false; SLATE],
                    revenue: vec![0.0; SLATE],
                },
            )
            .unwrap()
        })
        .collect()
}

/// Shows the user's two liked items, read from the `taste` token, with certainty.
struct KnowsTastes;

impl Policy for KnowsTastes {
    fn name(&self) -> &str {
        "knows-tastes"
    }
    fn decide(&mut self, context: &Context, _: usize, _: &mut Rng) -> SlateChoice {
        let g: u32 = context
            .tokens
            .iter()
            .find_map(|t| t.strip_prefix("taste=")?.parse().ok())
            .unwrap_or(0);
        SlateChoice {
            items: vec![ItemId(2 * g), ItemId(2 * g + 1)],
            propensities: vec![1.0, 1.0],
            slate_propensity: Some(1.0),
        }
    }
}

/// Learns each user's tastes from their clicks: shows the two items that user clicked most
/// (ties to the lower id), with certainty; it ignores the token.
#[derive(Default)]
struct LearnsTastes {
    clicks: HashMap<UserKey, Vec<u32>>,
}

impl Policy for LearnsTastes {
    fn name(&self) -> &str {
        "learns-tastes"
    }
    fn decide(&mut self, context: &Context, _: usize, _: &mut Rng) -> SlateChoice {
        let counts = self
            .clicks
            .get(&context.user)
            .cloned()
            .unwrap_or_else(|| vec![0; ITEMS as usize]);
        let mut order: Vec<u32> = (0..ITEMS).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        SlateChoice {
            items: order[..SLATE].iter().map(|&i| ItemId(i)).collect(),
            propensities: vec![1.0; SLATE],
            slate_propensity: Some(1.0),
        }
    }
    fn observe(&mut self, interaction: &Interaction) {
        let counts = self
            .clicks
            .entry(interaction.context.user.clone())
            .or_insert_with(|| vec![0; ITEMS as usize]);
        for (k, item) in interaction.decision.slate.items().iter().enumerate() {
            if interaction.feedback.clicks[k] {
                counts[item.index()] += 1;
            }
        }
    }
}

fn bootstrap() -> Bootstrap {
    Bootstrap {
        resamples: 400,
        seed: 3,
        threads: 2,
    }
}

fn ipw(data: &LoggedData, policy: &dyn metarec_ope::EvaluationPolicy) -> Estimate {
    let model = MeanModel::fit(data, 10.0, &|_| true).unwrap();
    let prepared = Prepared::new(data, policy, &model, None).unwrap();
    evaluate(&prepared, &[&Ipw], &bootstrap())
        .unwrap()
        .remove(0)
}

#[test]
fn a_policy_that_knows_the_tastes_beats_the_logging_policy_with_an_interval_excluding_it() {
    let log = log();
    let reward = metarec_core::RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap();
    let data = LoggedData::from_interactions(
        &log,
        ITEMS as usize,
        SLATE,
        &reward,
        PropensityFloor::default(),
    )
    .unwrap();
    let logging = on_policy_estimate(&data, &bootstrap()).unwrap();
    assert_eq!(logging.estimator, "logging (on-policy)");
    assert!((logging.value - data.on_policy_value()).abs() < 1e-12);
    assert!((logging.value - 0.32).abs() < 0.03, "{logging:?}");
    assert!(logging.low < logging.value && logging.value < logging.high);

    let knows = MonteCarloPolicy::new(KnowsTastes, SLATE, 50, 5).unwrap();
    let estimate = ipw(&data, &knows);
    // One decision per round: the policy's choice is certain.
    assert_eq!(knows.decisions(), data.rounds());
    assert!(
        estimate.low > logging.value && estimate.low > logging.high,
        "{estimate:?} vs {logging:?}"
    );
    // The truth is 1.2 per round; IPW is unbiased, so it lands near it.
    assert!((estimate.value - 1.2).abs() < 0.15, "{estimate:?}");
}

#[test]
fn a_policy_that_learns_each_user_is_judged_by_replaying_the_log() {
    let log = log();
    let reward = metarec_core::RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap();
    let data = LoggedData::from_interactions(
        &log,
        ITEMS as usize,
        SLATE,
        &reward,
        PropensityFloor::default(),
    )
    .unwrap();
    let logging = on_policy_estimate(&data, &bootstrap()).unwrap();
    // Frozen, it never observes anyone and shows items 0 and 1 to everyone: a fifth of the users
    // like them, 0.2 * 1.2 + 0.8 * 0.1 = 0.32, no better than logging.
    let frozen = ipw(
        &data,
        &MonteCarloPolicy::new(LearnsTastes::default(), SLATE, 50, 5).unwrap(),
    );
    assert!(frozen.low < logging.value, "{frozen:?} vs {logging:?}");
    // Replayed over each user's rounds, it finds the liked items within a few rounds and is
    // estimated well above the logging policy, though below the policy that knows from the
    // start.
    let refs: Vec<&Interaction> = log.iter().collect();
    let replay = ReplayPolicy::replay(LearnsTastes::default(), &data, &refs, SLATE, 50, 5).unwrap();
    let replayed = ipw(&data, &replay);
    assert!(replayed.low > logging.high, "{replayed:?} vs {logging:?}");
    assert!(
        replayed.value > frozen.value + 0.3,
        "{replayed:?} vs {frozen:?}"
    );
    assert!(replayed.value < 1.2 + 0.15, "{replayed:?}");
    // Seeded: the same replay gives the same estimate.
    let again = ReplayPolicy::replay(LearnsTastes::default(), &data, &refs, SLATE, 50, 5).unwrap();
    assert_eq!(ipw(&data, &again), replayed);
}
