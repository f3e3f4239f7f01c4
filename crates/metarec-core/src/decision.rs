//! The policy's answer ([`Slate`], [`Decision`]), the user's answer ([`Feedback`]) and the one
//! log record that joins them with the [`crate::Context`]: the [`Interaction`].
//!
//! Every decision carries the probability with which the logging policy put each item at its
//! position, so that any log can be used for off-policy evaluation later.

use crate::context::Context;
use crate::error::VocabError;
use crate::ids::{EventId, ItemId};
use serde::{Deserialize, Serialize};

/// An ordered list of distinct items shown together, position 0 first.
///
/// Invariant: not empty, no item twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ItemId>", into = "Vec<ItemId>")]
pub struct Slate(Vec<ItemId>);

impl Slate {
    /// A slate from its items, checked for emptiness and duplicates.
    pub fn new(items: Vec<ItemId>) -> Result<Self, VocabError> {
        if items.is_empty() {
            return Err(VocabError::Empty { field: "slate" });
        }
        // Slates are short (a handful of positions), so a quadratic scan beats hashing.
        for (i, a) in items.iter().enumerate() {
            if items[..i].contains(a) {
                return Err(VocabError::Duplicate {
                    field: "slate",
                    item: a.0,
                });
            }
        }
        Ok(Slate(items))
    }

    /// The items, position 0 first.
    pub fn items(&self) -> &[ItemId] {
        &self.0
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a slate has at least one item. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<ItemId>> for Slate {
    type Error = VocabError;
    fn try_from(items: Vec<ItemId>) -> Result<Self, VocabError> {
        Slate::new(items)
    }
}

impl From<Slate> for Vec<ItemId> {
    fn from(s: Slate) -> Self {
        s.0
    }
}

/// A policy's decision: which items to show where, and with what probability.
///
/// Invariants: one propensity per slate entry, each in `(0, 1]`; `positions`, when present,
/// has one distinct display position per slate entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DecisionRepr", into = "DecisionRepr")]
pub struct Decision {
    /// Joins later feedback to this decision.
    pub event_id: EventId,
    /// The items shown.
    pub slate: Slate,
    /// For each slate entry, the probability that the policy shows that item at that position
    /// given the context (the per-position marginal used by off-policy estimators).
    pub propensities: Vec<f64>,
    /// The probability of the whole ordered slate, when the policy can compute it.
    pub slate_propensity: Option<f64>,
    /// The display position (0-based) of each slate entry, when the slate is not shown from the
    /// top (Open Bandit logs one position per record). `None` means positions `0..len`.
    pub positions: Option<Vec<u32>>,
    /// Which policy decided.
    pub policy_id: String,
    /// Which version of the policy's model decided.
    pub model_version: String,
}

#[derive(Serialize, Deserialize)]
struct DecisionRepr {
    event_id: EventId,
    slate: Slate,
    propensities: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slate_propensity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    positions: Option<Vec<u32>>,
    policy_id: String,
    #[serde(default)]
    model_version: String,
}

impl TryFrom<DecisionRepr> for Decision {
    type Error = VocabError;
    fn try_from(r: DecisionRepr) -> Result<Self, VocabError> {
        let d = Decision {
            event_id: r.event_id,
            slate: r.slate,
            propensities: r.propensities,
            slate_propensity: r.slate_propensity,
            positions: r.positions,
            policy_id: r.policy_id,
            model_version: r.model_version,
        };
        d.validate()?;
        Ok(d)
    }
}

impl From<Decision> for DecisionRepr {
    fn from(d: Decision) -> Self {
        DecisionRepr {
            event_id: d.event_id,
            slate: d.slate,
            propensities: d.propensities,
            slate_propensity: d.slate_propensity,
            positions: d.positions,
            policy_id: d.policy_id,
            model_version: d.model_version,
        }
    }
}

fn check_probability(field: &'static str, p: f64) -> Result<(), VocabError> {
    if p > 0.0 && p <= 1.0 {
        Ok(())
    } else {
        Err(VocabError::OutOfRange {
            field,
            value: p,
            allowed: "(0, 1]",
        })
    }
}

impl Decision {
    /// Checks the invariants stated on the type.
    pub fn validate(&self) -> Result<(), VocabError> {
        let n = self.slate.len();
        if self.propensities.len() != n {
            return Err(VocabError::LengthMismatch {
                field: "propensities",
                expected: n,
                actual: self.propensities.len(),
            });
        }
        for &p in &self.propensities {
            check_probability("propensities", p)?;
        }
        if let Some(p) = self.slate_propensity {
            check_probability("slate_propensity", p)?;
        }
        if let Some(pos) = &self.positions {
            if pos.len() != n {
                return Err(VocabError::LengthMismatch {
                    field: "positions",
                    expected: n,
                    actual: pos.len(),
                });
            }
            for (i, a) in pos.iter().enumerate() {
                if pos[..i].contains(a) {
                    return Err(VocabError::Duplicate {
                        field: "positions",
                        item: *a,
                    });
                }
            }
        }
        Ok(())
    }

    /// The display position of slate entry `k`.
    pub fn position(&self, k: usize) -> u32 {
        match &self.positions {
            Some(p) => p[k],
            None => k as u32,
        }
    }

    /// `(position, item, propensity)` for every slate entry.
    pub fn entries(&self) -> impl Iterator<Item = (u32, ItemId, f64)> + '_ {
        self.slate
            .items()
            .iter()
            .zip(&self.propensities)
            .enumerate()
            .map(|(k, (&item, &p))| (self.position(k), item, p))
    }
}

/// What the user did with each slate entry.
///
/// Invariant: `clicks`, `purchases` and `revenue` have equal lengths; revenue is finite and
/// non-negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FeedbackRepr", into = "FeedbackRepr")]
pub struct Feedback {
    /// Per slate entry: clicked or not.
    pub clicks: Vec<bool>,
    /// Per slate entry: bought or not.
    pub purchases: Vec<bool>,
    /// Per slate entry: revenue from the purchase (price times quantity), 0 when none.
    pub revenue: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct FeedbackRepr {
    clicks: Vec<bool>,
    #[serde(default)]
    purchases: Vec<bool>,
    #[serde(default)]
    revenue: Vec<f64>,
}

impl TryFrom<FeedbackRepr> for Feedback {
    type Error = VocabError;
    fn try_from(r: FeedbackRepr) -> Result<Self, VocabError> {
        // Logs without purchases (click-only sources such as Open Bandit) may omit the purchase
        // and revenue columns; they then mean "none".
        let n = r.clicks.len();
        let purchases = if r.purchases.is_empty() {
            vec![false; n]
        } else {
            r.purchases
        };
        let revenue = if r.revenue.is_empty() {
            vec![0.0; n]
        } else {
            r.revenue
        };
        let f = Feedback {
            clicks: r.clicks,
            purchases,
            revenue,
        };
        f.validate()?;
        Ok(f)
    }
}

impl From<Feedback> for FeedbackRepr {
    fn from(f: Feedback) -> Self {
        FeedbackRepr {
            clicks: f.clicks,
            purchases: f.purchases,
            revenue: f.revenue,
        }
    }
}

impl Feedback {
    /// Feedback with nothing clicked or bought on a slate of `len` entries.
    pub fn none(len: usize) -> Self {
        Feedback {
            clicks: vec![false; len],
            purchases: vec![false; len],
            revenue: vec![0.0; len],
        }
    }

    /// Number of slate entries this feedback covers.
    pub fn len(&self) -> usize {
        self.clicks.len()
    }

    /// Whether it covers no entries.
    pub fn is_empty(&self) -> bool {
        self.clicks.is_empty()
    }

    /// Checks the invariants stated on the type.
    pub fn validate(&self) -> Result<(), VocabError> {
        let n = self.clicks.len();
        for (field, len) in [
            ("purchases", self.purchases.len()),
            ("revenue", self.revenue.len()),
        ] {
            if len != n {
                return Err(VocabError::LengthMismatch {
                    field,
                    expected: n,
                    actual: len,
                });
            }
        }
        for &r in &self.revenue {
            if !(r.is_finite() && r >= 0.0) {
                return Err(VocabError::OutOfRange {
                    field: "revenue",
                    value: r,
                    allowed: "finite and non-negative",
                });
            }
        }
        Ok(())
    }

    /// Number of clicks.
    pub fn click_count(&self) -> usize {
        self.clicks.iter().filter(|&&c| c).count()
    }

    /// Number of purchases.
    pub fn purchase_count(&self) -> usize {
        self.purchases.iter().filter(|&&c| c).count()
    }

    /// Total revenue.
    pub fn total_revenue(&self) -> f64 {
        self.revenue.iter().sum()
    }
}

/// The one log record of metarec: a context, the decision taken in it and the feedback it got.
///
/// The simulator writes it, the server stores it, learners and off-policy estimators read it.
/// Invariant: the feedback covers exactly the decision's slate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "InteractionRepr", into = "InteractionRepr")]
pub struct Interaction {
    /// What the policy knew.
    pub context: Context,
    /// What it decided.
    pub decision: Decision,
    /// What the user did.
    pub feedback: Feedback,
}

#[derive(Serialize, Deserialize)]
struct InteractionRepr {
    context: Context,
    decision: Decision,
    feedback: Feedback,
}

impl TryFrom<InteractionRepr> for Interaction {
    type Error = VocabError;
    fn try_from(r: InteractionRepr) -> Result<Self, VocabError> {
        Interaction::new(r.context, r.decision, r.feedback)
    }
}

impl From<Interaction> for InteractionRepr {
    fn from(i: Interaction) -> Self {
        InteractionRepr {
            context: i.context,
            decision: i.decision,
            feedback: i.feedback,
        }
    }
}

impl Interaction {
    /// Joins the three parts, checking that they fit together.
    pub fn new(
        context: Context,
        decision: Decision,
        feedback: Feedback,
    ) -> Result<Self, VocabError> {
        decision.validate()?;
        feedback.validate()?;
        if feedback.len() != decision.slate.len() {
            return Err(VocabError::LengthMismatch {
                field: "feedback.clicks",
                expected: decision.slate.len(),
                actual: feedback.len(),
            });
        }
        Ok(Interaction {
            context,
            decision,
            feedback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserKey;

    fn decision(items: &[u32], props: &[f64]) -> Decision {
        Decision {
            event_id: "e1".into(),
            slate: Slate::new(items.iter().copied().map(ItemId).collect()).unwrap(),
            propensities: props.to_vec(),
            slate_propensity: None,
            positions: None,
            policy_id: "uniform".into(),
            model_version: "1".into(),
        }
    }

    #[test]
    fn slate_rejects_empty_and_duplicates() {
        assert!(matches!(Slate::new(vec![]), Err(VocabError::Empty { .. })));
        assert!(matches!(
            Slate::new(vec![ItemId(1), ItemId(2), ItemId(1)]),
            Err(VocabError::Duplicate { item: 1, .. })
        ));
        assert_eq!(Slate::new(vec![ItemId(3)]).unwrap().len(), 1);
    }

    #[test]
    fn decision_checks_propensities() {
        assert!(decision(&[1, 2], &[0.5, 0.25]).validate().is_ok());
        assert!(decision(&[1, 2], &[0.5]).validate().is_err());
        assert!(decision(&[1, 2], &[0.5, 0.0]).validate().is_err());
        assert!(decision(&[1, 2], &[0.5, 1.5]).validate().is_err());
        assert!(decision(&[1, 2], &[0.5, f64::NAN]).validate().is_err());
        let mut d = decision(&[1, 2], &[0.5, 0.5]);
        d.positions = Some(vec![2, 2]);
        assert!(d.validate().is_err());
        d.positions = Some(vec![2, 0]);
        assert_eq!(
            d.entries().collect::<Vec<_>>(),
            vec![(2, ItemId(1), 0.5), (0, ItemId(2), 0.5)]
        );
    }

    #[test]
    fn interaction_round_trips_through_json() {
        let i = Interaction::new(
            Context::for_user(UserKey::from("u1")),
            decision(&[4, 7, 9], &[0.2, 0.3, 0.4]),
            Feedback {
                clicks: vec![false, true, true],
                purchases: vec![false, true, false],
                revenue: vec![0.0, 12.5, 0.0],
            },
        )
        .unwrap();
        let json = serde_json::to_string(&i).unwrap();
        let back: Interaction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn interaction_rejects_feedback_of_the_wrong_length() {
        let err = Interaction::new(
            Context::default(),
            decision(&[4, 7], &[0.5, 0.5]),
            Feedback::none(3),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            VocabError::LengthMismatch {
                expected: 2,
                actual: 3,
                ..
            }
        ));
    }

    #[test]
    fn click_only_feedback_fills_purchases_and_revenue() {
        let f: Feedback = serde_json::from_str(r#"{"clicks":[true,false]}"#).unwrap();
        assert_eq!(f.purchases, vec![false, false]);
        assert_eq!(f.revenue, vec![0.0, 0.0]);
        assert!(serde_json::from_str::<Feedback>(r#"{"clicks":[true],"revenue":[-1.0]}"#).is_err());
    }
}
