//! The objective: [`RewardFn`] turns raw [`Feedback`] into a scalar reward and discounts rewards
//! over time.
//!
//! Environments return raw feedback and never a reward, so the same logs can be re-scored under
//! another objective (clicks only, revenue only, a mix) without re-running anything.

use crate::decision::Feedback;
use crate::error::VocabError;
use serde::{Deserialize, Serialize};

/// Weights of clicks, purchases and revenue in the reward, and the discount factor.
///
/// Invariant: weights are finite; `gamma` lies in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RewardRepr", into = "RewardRepr")]
pub struct RewardFn {
    click: f64,
    purchase: f64,
    revenue: f64,
    gamma: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardRepr {
    click: f64,
    purchase: f64,
    revenue: f64,
    gamma: f64,
}

impl TryFrom<RewardRepr> for RewardFn {
    type Error = VocabError;
    fn try_from(r: RewardRepr) -> Result<Self, VocabError> {
        RewardFn::new(r.click, r.purchase, r.revenue, r.gamma)
    }
}

impl From<RewardFn> for RewardRepr {
    fn from(r: RewardFn) -> Self {
        RewardRepr {
            click: r.click,
            purchase: r.purchase,
            revenue: r.revenue,
            gamma: r.gamma,
        }
    }
}

impl Default for RewardFn {
    /// One point per click, five per purchase, no revenue term, `gamma = 0.9`: a shop that values
    /// engagement and conversions and looks about ten slates ahead.
    fn default() -> Self {
        RewardFn {
            click: 1.0,
            purchase: 5.0,
            revenue: 0.0,
            gamma: 0.9,
        }
    }
}

impl RewardFn {
    /// A reward function, checked for finite weights and `gamma` in `[0, 1]`.
    pub fn new(click: f64, purchase: f64, revenue: f64, gamma: f64) -> Result<Self, VocabError> {
        for (field, w) in [
            ("click", click),
            ("purchase", purchase),
            ("revenue", revenue),
        ] {
            if !w.is_finite() {
                return Err(VocabError::OutOfRange {
                    field,
                    value: w,
                    allowed: "finite",
                });
            }
        }
        if !(0.0..=1.0).contains(&gamma) {
            return Err(VocabError::OutOfRange {
                field: "gamma",
                value: gamma,
                allowed: "[0, 1]",
            });
        }
        Ok(RewardFn {
            click,
            purchase,
            revenue,
            gamma,
        })
    }

    /// Weight of one click.
    pub fn click_weight(&self) -> f64 {
        self.click
    }

    /// Weight of one purchase.
    pub fn purchase_weight(&self) -> f64 {
        self.purchase
    }

    /// Weight of one unit of revenue.
    pub fn revenue_weight(&self) -> f64 {
        self.revenue
    }

    /// The discount factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The reward of one slate entry.
    #[inline]
    pub fn entry_reward(&self, click: bool, purchase: bool, revenue: f64) -> f64 {
        self.click * f64::from(u8::from(click))
            + self.purchase * f64::from(u8::from(purchase))
            + self.revenue * revenue
    }

    /// The reward of one step: the sum over the slate's entries.
    pub fn reward(&self, feedback: &Feedback) -> f64 {
        (0..feedback.len())
            .map(|k| {
                self.entry_reward(
                    feedback.clicks[k],
                    feedback.purchases[k],
                    feedback.revenue[k],
                )
            })
            .sum()
    }

    /// The discounted return `sum_t gamma^t r_t` of a sequence of step rewards.
    pub fn discounted_return(&self, rewards: &[f64]) -> f64 {
        // Horner's scheme from the end needs no powers and is exact for gamma = 0 and 1.
        rewards
            .iter()
            .rev()
            .fold(0.0, |acc, r| r + self.gamma * acc)
    }

    /// The return-to-go `G_t = r_t + gamma G_{t+1}` at every step, as policy-gradient methods use.
    pub fn returns_to_go(&self, rewards: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; rewards.len()];
        let mut acc = 0.0;
        for (t, r) in rewards.iter().enumerate().rev() {
            acc = r + self.gamma * acc;
            out[t] = acc;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reward_weights_each_kind_of_feedback() {
        let r = RewardFn::new(1.0, 10.0, 0.5, 0.9).unwrap();
        let f = Feedback {
            clicks: vec![true, true, false],
            purchases: vec![false, true, false],
            revenue: vec![0.0, 8.0, 0.0],
        };
        // 2 clicks + 1 purchase * 10 + 8 revenue * 0.5.
        assert_eq!(r.reward(&f), 16.0);
    }

    #[test]
    fn discounting_matches_the_definition() {
        let r = RewardFn::new(1.0, 0.0, 0.0, 0.5).unwrap();
        // 1 + 0.5 * 2 + 0.25 * 4 = 3.
        assert_eq!(r.discounted_return(&[1.0, 2.0, 4.0]), 3.0);
        assert_eq!(r.returns_to_go(&[1.0, 2.0, 4.0]), vec![3.0, 4.0, 4.0]);
        let myopic = RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap();
        assert_eq!(myopic.discounted_return(&[1.0, 2.0, 4.0]), 1.0);
        assert_eq!(r.discounted_return(&[]), 0.0);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(RewardFn::new(1.0, 0.0, 0.0, 1.01).is_err());
        assert!(RewardFn::new(1.0, 0.0, 0.0, -0.1).is_err());
        assert!(RewardFn::new(f64::INFINITY, 0.0, 0.0, 0.5).is_err());
        assert!(
            serde_json::from_str::<RewardFn>(r#"{"click":1,"purchase":0,"revenue":0,"gamma":2}"#)
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn returns_to_go_start_with_the_discounted_return(
            rewards in proptest::collection::vec(-10.0f64..10.0, 0..50),
            gamma in 0.0f64..=1.0,
        ) {
            let r = RewardFn::new(1.0, 0.0, 0.0, gamma).unwrap();
            let g = r.returns_to_go(&rewards);
            let direct: f64 = rewards.iter().enumerate().map(|(t, x)| gamma.powi(t as i32) * x).sum();
            let first = g.first().copied().unwrap_or(0.0);
            prop_assert!((first - direct).abs() < 1e-9 * (1.0 + direct.abs()));
            prop_assert!((r.discounted_return(&rewards) - direct).abs() < 1e-9 * (1.0 + direct.abs()));
        }
    }
}
