//! Policies by name: [`build_policy`] builds any baseline in [`BASELINES`] with its default
//! settings, so the command line and the arena can name policies in plain strings.
//!
//! The oracle is not here: only the environment knows the hidden state it needs, so the arena asks
//! the environment for it.

use crate::baselines::{
    EpsilonGreedy, EpsilonGreedyConfig, PopularityConfig, PopularityPolicy, RandomPolicy,
};
use crate::error::LearnError;
use crate::itemknn::{ItemKnn, ItemKnnConfig};
use crate::linear::{LinTs, LinTsConfig, LinUcb, LinUcbConfig};
use crate::ridge::Scope;
use metarec_core::{Catalog, Policy, RewardFn};

/// The names [`build_policy`] knows, in the order reports list them.
pub const BASELINES: &[&str] = &[
    "random",
    "popularity",
    "egreedy",
    "linucb",
    "linucb-user",
    "lints",
    "lints-user",
    "itemknn",
];

/// Builds the baseline called `name` over `catalog`, learning `reward` where the policy learns a
/// reward model (LinUCB, LinTS), with the defaults of its configuration type.
///
/// `seed` is accepted so that every policy of the arena is built the same way; the baselines draw
/// all their randomness from the generator passed to `decide` and do not use it.
///
/// Fails with [`LearnError::UnknownPolicy`] (listing the valid names) for a name not in
/// [`BASELINES`], or when the catalog does not fit the policy (a non-finite feature).
pub fn build_policy(
    name: &str,
    catalog: &Catalog,
    reward: &RewardFn,
    seed: u64,
) -> Result<Box<dyn Policy>, LearnError> {
    let _ = seed;
    let linucb = |scope| LinUcbConfig {
        scope,
        ..LinUcbConfig::default()
    };
    let lints = |scope| LinTsConfig {
        scope,
        ..LinTsConfig::default()
    };
    Ok(match name {
        "random" => Box::new(RandomPolicy::new(catalog)),
        "popularity" => Box::new(PopularityPolicy::new(catalog, PopularityConfig::default())?),
        "egreedy" => Box::new(EpsilonGreedy::new(catalog, EpsilonGreedyConfig::default())?),
        "linucb" => Box::new(LinUcb::new(catalog, reward, linucb(Scope::Shared))?),
        "linucb-user" => Box::new(LinUcb::new(catalog, reward, linucb(Scope::PerUser))?),
        "lints" => Box::new(LinTs::new(catalog, reward, lints(Scope::Shared))?),
        "lints-user" => Box::new(LinTs::new(catalog, reward, lints(Scope::PerUser))?),
        "itemknn" => Box::new(ItemKnn::new(catalog, ItemKnnConfig::default())?),
        _ => {
            return Err(LearnError::UnknownPolicy {
                name: name.to_owned(),
                valid: BASELINES.join(", "),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{CLICK_P, bandit_catalog, simulate};

    fn build(name: &str) -> Box<dyn Policy> {
        build_policy(name, &bandit_catalog(), &RewardFn::default(), 1).unwrap()
    }

    #[test]
    fn builds_every_baseline_under_its_own_name() {
        for &name in BASELINES {
            assert_eq!(build(name).name(), name);
        }
    }

    #[test]
    fn rejects_an_unknown_name_listing_the_valid_ones() {
        let err = build_policy("linucbb", &bandit_catalog(), &RewardFn::default(), 1)
            .err()
            .expect("unknown names fail");
        assert!(matches!(&err, LearnError::UnknownPolicy { name, .. } if name == "linucbb"));
        let message = err.to_string();
        for name in BASELINES {
            assert!(message.contains(name), "{message}");
        }
    }

    #[test]
    fn every_decision_has_one_propensity_in_0_1_per_position() {
        for &name in BASELINES {
            let mut p = build(name);
            // Three positions of five items, so slates are full.
            for d in simulate(p.as_mut(), 60, 3, 2) {
                assert_eq!(d.slate.len(), 3, "{name}");
                assert_eq!(d.propensities.len(), 3, "{name}");
                for &q in &d.propensities {
                    assert!(q > 0.0 && q <= 1.0, "{name}: {q}");
                }
            }
            // Asking for more positions than items gives a slate of every item.
            let s = crate::testkit::decide_empty(p.as_mut(), 9, &mut metarec_core::rng_for(3, 0));
            assert_eq!(s.items.len(), CLICK_P.len(), "{name}");
            assert_eq!(s.propensities.len(), CLICK_P.len(), "{name}");
            // No candidates at all (a context listing only unknown items) gives an empty choice,
            // not a panic.
            let ctx = metarec_core::Context {
                candidates: vec![metarec_core::ItemId(42)],
                ..Default::default()
            };
            let s = p.decide(&ctx, 3, &mut metarec_core::rng_for(3, 0));
            assert!(s.items.is_empty() && s.propensities.is_empty(), "{name}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        for &name in BASELINES {
            let a = simulate(build(name).as_mut(), 80, 2, 5);
            let b = simulate(build(name).as_mut(), 80, 2, 5);
            assert_eq!(a, b, "{name}");
            if !matches!(name, "popularity" | "linucb" | "linucb-user") {
                // Stochastic policies must actually depend on the seed.
                let c = simulate(build(name).as_mut(), 80, 2, 6);
                assert_ne!(a, c, "{name}");
            }
        }
    }

    #[test]
    fn candidates_restrict_every_policy() {
        for &name in BASELINES {
            let mut p = build(name);
            let ctx = metarec_core::Context {
                candidates: vec![metarec_core::ItemId(4), metarec_core::ItemId(1)],
                ..Default::default()
            };
            let s = p.decide(&ctx, 3, &mut metarec_core::rng_for(4, 0));
            let mut items = s.items.clone();
            items.sort();
            assert_eq!(
                items,
                vec![metarec_core::ItemId(1), metarec_core::ItemId(4)],
                "{name}"
            );
        }
    }
}
