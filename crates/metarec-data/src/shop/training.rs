//! What learners read from a shop's log ([`ShopLog`]) besides its rankings: the split of its
//! organic events into a training part and a held-out part that agrees with the rankings'
//! ([`ShopLog::organic_split`], next to [`split_by_time`], the one split of rankings that
//! training, meta-training and off-policy evaluation all use, so a model is never judged on what
//! it was trained on), and the slates built from organic events for shops that log no
//! impressions ([`ShopLog::organic_slates`]).

use super::interactions::{ShopLog, split_by_time, training_count};
use metarec_core::{Decision, EventId, Feedback, Interaction, ItemId, Slate, rng_for};
use rand::Rng as _;
use std::ops::Range;

/// The stream of [`rng_for`] that draws an organic slate's negatives, combined with the event's
/// index so every event has its own.
const NEGATIVES_STREAM: u64 = 0x6e65_6700_0000_0000;

impl ShopLog {
    /// Splits the organic events to agree with [`split_by_time`]: when the shop logged rankings,
    /// at the time the held-out rankings start (organic events before it are training; all of
    /// them when nothing is held out); otherwise by their own count, with the rankings' rule
    /// (the last `holdout` fraction held out). Organic events are in time order, as
    /// [`shop_log`](super::interactions::shop_log) returns them.
    pub fn organic_split(&self, holdout: f64) -> (Range<usize>, Range<usize>) {
        let n = self.organic.len();
        let c = if self.has_impressions() {
            let (_, held) = split_by_time(self, holdout);
            match self.interactions.get(held.start) {
                None => n,
                Some(first) => {
                    let start = first.context.timestamp_ms.unwrap_or(i64::MIN);
                    self.organic
                        .partition_point(|o| o.context.timestamp_ms.unwrap_or(i64::MIN) < start)
                }
            }
        } else {
            training_count(n, holdout)
        };
        (0..c, c..n)
    }

    /// Training slates from organic events (for shops that log no impressions, such as
    /// purchases only): per event of `range`, the item the user bought or clicked, then
    /// `negatives` other items of the catalog (`0..catalog_len`) drawn uniformly without
    /// replacement, with clicks `[true, false, ...]` and the purchase marked on the first entry
    /// for a purchase. The negatives of event `e` come from `rng_for(seed, stream + e)`, so an
    /// event's slate does not depend on `range`. The slates were never shown: their
    /// propensities read 1 and their policy is `organic`, so no off-policy estimator may use
    /// them; the revenue reads 0. One interaction per event of `range` (none for an empty
    /// catalog), in the events' order.
    pub fn organic_slates(
        &self,
        range: Range<usize>,
        catalog_len: usize,
        negatives: usize,
        seed: u64,
    ) -> Vec<Interaction> {
        let Some(events) = self.organic.get(range) else {
            return Vec::new();
        };
        if catalog_len == 0 {
            return Vec::new();
        }
        let others = catalog_len - 1;
        let k = negatives.min(others);
        let mut out = Vec::with_capacity(events.len());
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        for o in events {
            if o.item.index() >= catalog_len {
                continue;
            }
            let mut rng = rng_for(seed, NEGATIVES_STREAM.wrapping_add(o.event as u64));
            // Floyd's algorithm: k distinct draws from the `others` items that are not the
            // positive, numbered 0..others, in O(k^2) whatever the catalog's size.
            picked.clear();
            for j in others - k..others {
                let t = rng.random_range(0..=j);
                picked.push(if picked.contains(&t) { j } else { t });
            }
            let mut items = Vec::with_capacity(k + 1);
            items.push(o.item);
            items.extend(picked.iter().map(|&t| {
                // Skip the positive: numbers at or past its index move up by one.
                let index = if t >= o.item.index() { t + 1 } else { t };
                ItemId(index as u32)
            }));
            let len = items.len();
            let Ok(slate) = Slate::new(items) else {
                continue;
            };
            let decision = Decision {
                event_id: EventId(format!("organic-{}", o.event)),
                slate,
                propensities: vec![1.0; len],
                slate_propensity: None,
                positions: None,
                policy_id: "organic".into(),
                model_version: String::new(),
            };
            let mut clicks = vec![false; len];
            clicks[0] = true;
            let mut purchases = vec![false; len];
            purchases[0] = o.purchase;
            let feedback = Feedback {
                clicks,
                purchases,
                revenue: vec![0.0; len],
            };
            if let Ok(i) = Interaction::new(o.context.clone(), decision, feedback) {
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::interactions::OrganicEvent;
    use metarec_core::{Context, UserKey};

    fn ranking(ms: i64) -> Interaction {
        let mut context = Context::for_user(UserKey::from("u"));
        context.timestamp_ms = Some(ms);
        Interaction::new(
            context,
            Decision {
                event_id: EventId(format!("r{ms}")),
                slate: Slate::new(vec![ItemId(0)]).unwrap(),
                propensities: vec![0.5],
                slate_propensity: None,
                positions: None,
                policy_id: "logged".into(),
                model_version: String::new(),
            },
            Feedback {
                clicks: vec![false],
                purchases: vec![false],
                revenue: vec![0.0],
            },
        )
        .unwrap()
    }

    fn organic(event: usize, ms: i64, item: u32, purchase: bool) -> OrganicEvent {
        let mut context = Context::for_user(UserKey::from("u"));
        context.timestamp_ms = Some(ms);
        OrganicEvent {
            event,
            user: 0,
            item: ItemId(item),
            purchase,
            context,
        }
    }

    fn log(rankings: &[i64], organic_ms: &[i64]) -> ShopLog {
        ShopLog {
            interactions: rankings.iter().map(|&ms| ranking(ms)).collect(),
            users: vec![0; rankings.len()],
            logged_propensities: vec![true; rankings.len()],
            organic: organic_ms
                .iter()
                .enumerate()
                .map(|(e, &ms)| organic(e, ms, 0, false))
                .collect(),
            dropped: Default::default(),
        }
    }

    #[test]
    fn organic_events_split_at_the_held_out_rankings_start_or_by_their_own_count() {
        // Six rankings, the last two (from time 9) held out: organic events before 9 are
        // training.
        let l = log(&[1, 3, 5, 7, 9, 11], &[2, 6, 9, 12]);
        assert_eq!(split_by_time(&l, 0.33), (0..4, 4..6));
        assert_eq!(l.organic_split(0.33), (0..2, 2..4));
        assert_eq!(l.organic_split(0.0), (0..4, 4..4));
        assert_eq!(l.organic_split(1.0), (0..0, 0..4));
        // Purchases only: the organic events are split like rankings.
        let p = log(&[], &[1, 2, 3, 4, 5]);
        assert_eq!(p.organic_split(0.2), (0..4, 4..5));
        assert_eq!(p.organic_split(f64::NAN), (0..5, 5..5));
        assert_eq!(ShopLog::default().organic_split(0.2), (0..0, 0..0));
    }

    #[test]
    fn organic_slates_hold_the_item_and_distinct_seeded_negatives() {
        let mut l = log(&[], &[]);
        l.organic = (0..200)
            .map(|e| organic(e, e as i64, (e % 10) as u32, e % 3 == 0))
            .collect();
        let slates = l.organic_slates(0..200, 10, 4, 5);
        assert_eq!(slates.len(), 200);
        let mut negative_counts = [0usize; 10];
        for (e, s) in slates.iter().enumerate() {
            let items = s.decision.slate.items();
            assert_eq!(items.len(), 5);
            assert_eq!(items[0], ItemId((e % 10) as u32));
            assert!(items[1..].iter().all(|i| i.index() < 10 && *i != items[0]));
            assert_eq!(s.feedback.clicks, vec![true, false, false, false, false]);
            assert_eq!(s.feedback.purchases[0], e % 3 == 0);
            assert!(s.feedback.purchases[1..].iter().all(|p| !p));
            assert_eq!(s.decision.propensities, vec![1.0; 5]);
            assert_eq!(s.decision.policy_id, "organic");
            for i in &items[1..] {
                negative_counts[i.index()] += 1;
            }
        }
        // Negatives are spread over the catalog: each item is a negative of 4/9 of the other
        // items' 180 events, 80 times in expectation.
        assert!(
            negative_counts.iter().all(|&c| (50..=110).contains(&c)),
            "{negative_counts:?}"
        );
        // Same seed, same slates, whatever the range; another seed, other negatives.
        assert_eq!(
            l.organic_slates(150..152, 10, 4, 5),
            slates[150..152].to_vec()
        );
        assert_ne!(l.organic_slates(0..200, 10, 4, 6), slates);
        // Negatives are capped by the catalog; an empty catalog or range gives nothing.
        let all = l.organic_slates(0..1, 3, 10, 5);
        assert_eq!(all[0].decision.slate.len(), 3);
        assert!(l.organic_slates(0..1, 0, 4, 5).is_empty());
        assert!(l.organic_slates(500..600, 10, 4, 5).is_empty());
        assert_eq!(l.organic_slates(0..1, 1, 4, 5)[0].decision.slate.len(), 1);
    }
}
