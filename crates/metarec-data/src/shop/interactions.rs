//! From a shop's events to [`Interaction`]s: what was shown together, with what the user did.
//!
//! Events are replayed in time order, one user state per user, so that every context holds only
//! what was known when its slate was chosen:
//! - a `view` with a ranking id is an impression: the first one of a ranking opens its slate and
//!   takes a snapshot of the user's context (attributes, the event's context tokens, the visit,
//!   the slates already shown this visit, and the most recent past events); later views of the
//!   same ranking add entries, ordered by their logged position in the end;
//! - a `click`, `add_to_cart` or `purchase` with a ranking id is feedback on that ranking's entry
//!   for the item; without one it is feedback on the user's latest impression of that item within
//!   [`InteractionOptions::attach_window_ms`] (and in the same visit when visits are logged);
//!   an add to cart counts as a click, a purchase as a click and a purchase, and revenue is the
//!   event's, or price times quantity when the event has none;
//! - everything else (a feedback event that matches no impression, a view without a ranking id)
//!   is organic behaviour: it becomes an [`OrganicEvent`] with its own context snapshot, and
//!   enters the user's history as clicked (and bought, for a purchase).
//!
//! A ranking keeps the logged propensities when every entry has one
//! ([`ShopLog::logged_propensities`]); otherwise its propensities read 1 and it cannot be used
//! for off-policy evaluation.

use super::{EventKind, Shop};
use metarec_core::{
    Context, Decision, EventId, Feedback, Interaction, ItemId, PastEvent, SessionState, Slate,
    UserKey,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

/// How events become interactions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InteractionOptions {
    /// How long after an impression a feedback event without a ranking id may still attach to it.
    pub attach_window_ms: i64,
    /// A pause longer than this starts a new visit, when the shop logs no session ids.
    pub session_gap_ms: i64,
    /// Past events kept in a context's history (the most recent ones).
    pub history_limit: usize,
}

impl Default for InteractionOptions {
    fn default() -> Self {
        InteractionOptions {
            attach_window_ms: 30 * 60 * 1000,
            session_gap_ms: 30 * 60 * 1000,
            history_limit: 30,
        }
    }
}

/// A feedback event that matched no impression, in the context it happened in.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganicEvent {
    /// Index into [`Shop::events`].
    pub event: usize,
    /// Index into [`Shop::users`].
    pub user: u32,
    /// The item.
    pub item: ItemId,
    /// Whether the user bought it.
    pub purchase: bool,
    /// What was known of the user just before.
    pub context: Context,
}

/// A shop's events as interactions.
#[derive(Debug, Clone, Default)]
pub struct ShopLog {
    /// One interaction per ranking, in the order of the rankings' first impressions.
    pub interactions: Vec<Interaction>,
    /// Per interaction, the index of its user in [`Shop::users`].
    pub users: Vec<u32>,
    /// Per interaction, whether every entry carries the logging policy's propensity.
    pub logged_propensities: Vec<bool>,
    /// Feedback that matched no impression, in time order.
    pub organic: Vec<OrganicEvent>,
    /// Events left out of both, by reason.
    pub dropped: BTreeMap<String, u64>,
}

impl ShopLog {
    /// Whether the shop logged impressions at all.
    pub fn has_impressions(&self) -> bool {
        !self.interactions.is_empty()
    }

    /// The interactions whose propensities were logged, with their users.
    pub fn with_propensities(&self) -> impl Iterator<Item = (u32, &Interaction)> + '_ {
        self.interactions
            .iter()
            .zip(&self.users)
            .zip(&self.logged_propensities)
            .filter(|(_, logged)| **logged)
            .map(|((i, &u), _)| (u, i))
    }

    fn drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_owned()).or_insert(0) += 1;
    }
}

/// Splits a shop's rankings by time into a training part and a held-out part: the held-out part
/// is the last `holdout` fraction of [`ShopLog::interactions`] (which are in the order of their
/// rankings' first impressions, that is, by time), rounded to the nearest ranking, so that a
/// policy is judged only on rankings shown after everything it may have learned from. `holdout`
/// is clamped to `[0, 1]` (a NaN reads as 0). Returns (training, held out) as index ranges.
pub fn split_by_time(log: &ShopLog, holdout: f64) -> (Range<usize>, Range<usize>) {
    let n = log.interactions.len();
    let cut = training_count(n, holdout);
    (0..cut, cut..n)
}

/// How many of `n` time-ordered records [`split_by_time`]'s rule keeps for training: all but
/// the last `holdout` fraction, rounded to the nearest record; `holdout` clamped to `[0, 1]`
/// (a NaN reads as 0). Organic events of a shop without impressions are split by the same rule
/// ([`ShopLog::organic_split`]).
pub(crate) fn training_count(n: usize, holdout: f64) -> usize {
    let share = if holdout.is_nan() {
        0.0
    } else {
        holdout.clamp(0.0, 1.0)
    };
    let held = ((n as f64) * share).round() as usize;
    n - held.min(n)
}

/// A ranking being assembled.
struct Building {
    user: u32,
    id: String,
    context: Context,
    items: Vec<ItemId>,
    positions: Vec<u32>,
    propensities: Vec<Option<f64>>,
    clicks: Vec<bool>,
    purchases: Vec<bool>,
    revenue: Vec<f64>,
    /// Per entry, the absolute index of its entry in the user's history.
    history_at: Vec<u64>,
}

/// The latest impression of a user-item pair: the ranking being built, the entry in it, its time
/// and its visit.
type Shown = (usize, usize, i64, Option<u32>);

/// What the replay knows of one user.
#[derive(Default)]
struct UserState {
    history: VecDeque<PastEvent>,
    /// Entries ever appended to the history (the absolute index of the next one).
    appended: u64,
    /// The value of `appended` when the current visit began: the events since are the visit's.
    visit_start: u64,
    visits: u32,
    step: u32,
    session: Option<u32>,
    last_ms: Option<i64>,
}

impl UserState {
    /// Moves to the visit of an event at `ms` in `session`.
    fn enter(&mut self, ms: i64, session: Option<u32>, gap: i64) {
        let new_visit = match (session, self.session, self.last_ms) {
            (_, _, None) => true,
            (Some(s), Some(prev), _) => s != prev,
            (Some(_), None, _) => true,
            (None, _, Some(last)) => ms.saturating_sub(last) > gap,
        };
        if new_visit {
            if self.last_ms.is_some() {
                self.visits += 1;
            }
            self.step = 0;
            self.visit_start = self.appended;
        }
        self.session = session;
        self.last_ms = Some(ms);
    }

    fn push(&mut self, event: PastEvent, limit: usize) -> u64 {
        self.history.push_back(event);
        while self.history.len() > limit {
            self.history.pop_front();
        }
        self.appended += 1;
        self.appended - 1
    }

    fn entry_mut(&mut self, at: u64) -> Option<&mut PastEvent> {
        let first = self.appended - self.history.len() as u64;
        if at < first {
            return None;
        }
        self.history.get_mut((at - first) as usize)
    }
}

/// Replays a shop's events into interactions (see the module documentation for the rules).
pub fn shop_log(shop: &Shop, options: &InteractionOptions) -> ShopLog {
    let mut out = ShopLog::default();
    let mut states: Vec<UserState> = (0..shop.users.len())
        .map(|_| UserState::default())
        .collect();
    let mut building: Vec<Building> = Vec::new();
    let mut by_ranking: HashMap<u32, usize> = HashMap::new();
    // The latest impression of (user, item): (building, entry, time, session).
    let mut shown: HashMap<(u32, ItemId), Shown> = HashMap::new();
    let context_of = |state: &UserState, user: u32, ms: i64, tokens: &[String]| {
        let u = &shop.users[user as usize];
        let mut ctx = Context::for_user(UserKey(u.key.clone()));
        ctx.timestamp_ms = Some(ms);
        ctx.features = u.features.clone();
        ctx.tokens = u.tokens.iter().chain(tokens).cloned().collect();
        ctx.session = SessionState {
            session: state.visits,
            step: state.step,
            history: state.history.iter().copied().collect(),
            visit_events: Some(
                u32::try_from((state.appended - state.visit_start).min(state.history.len() as u64))
                    .unwrap_or(u32::MAX),
            ),
        };
        ctx
    };
    for (index, e) in shop.events.iter().enumerate() {
        let state = &mut states[e.user as usize];
        if e.kind == EventKind::View {
            let Some(ranking) = e.ranking else {
                // A product page seen outside any ranking: organic interest in the item.
                state.enter(e.timestamp_ms, e.session, options.session_gap_ms);
                out.organic.push(OrganicEvent {
                    event: index,
                    user: e.user,
                    item: e.item,
                    purchase: false,
                    context: context_of(state, e.user, e.timestamp_ms, &e.context),
                });
                state.push(
                    PastEvent {
                        item: e.item,
                        click: true,
                        purchase: false,
                    },
                    options.history_limit,
                );
                continue;
            };
            let b = match by_ranking.get(&ranking) {
                Some(&b) => {
                    if building[b].user != e.user {
                        out.drop("ranking shown to another user too");
                        continue;
                    }
                    b
                }
                None => {
                    state.enter(e.timestamp_ms, e.session, options.session_gap_ms);
                    let context = context_of(state, e.user, e.timestamp_ms, &e.context);
                    state.step += 1;
                    building.push(Building {
                        user: e.user,
                        id: shop.rankings[ranking as usize].clone(),
                        context,
                        items: Vec::new(),
                        positions: Vec::new(),
                        propensities: Vec::new(),
                        clicks: Vec::new(),
                        purchases: Vec::new(),
                        revenue: Vec::new(),
                        history_at: Vec::new(),
                    });
                    by_ranking.insert(ranking, building.len() - 1);
                    building.len() - 1
                }
            };
            let slate = &mut building[b];
            let position = e.position.unwrap_or(slate.items.len() as u32);
            if slate.items.contains(&e.item) {
                out.drop("item shown twice in one ranking");
                continue;
            }
            if slate.positions.contains(&position) {
                out.drop("two items at one position of a ranking");
                continue;
            }
            slate.items.push(e.item);
            slate.positions.push(position);
            slate.propensities.push(e.propensity);
            slate.clicks.push(false);
            slate.purchases.push(false);
            slate.revenue.push(0.0);
            let at = state.push(
                PastEvent {
                    item: e.item,
                    click: false,
                    purchase: false,
                },
                options.history_limit,
            );
            slate.history_at.push(at);
            shown.insert(
                (e.user, e.item),
                (b, slate.items.len() - 1, e.timestamp_ms, e.session),
            );
            continue;
        }
        // Feedback: find the impression it answers.
        let target = match e.ranking {
            Some(ranking) => by_ranking.get(&ranking).and_then(|&b| {
                let slate = &building[b];
                let k = slate.items.iter().position(|&i| i == e.item)?;
                (slate.user == e.user).then_some((b, k))
            }),
            None => shown
                .get(&(e.user, e.item))
                .and_then(|&(b, k, ms, session)| {
                    let in_window = e.timestamp_ms.saturating_sub(ms) <= options.attach_window_ms;
                    let same_visit = match (session, e.session) {
                        (Some(a), Some(c)) => a == c,
                        _ => true,
                    };
                    (in_window && same_visit).then_some((b, k))
                }),
        };
        let purchase = e.kind == EventKind::Purchase;
        match target {
            Some((b, k)) => {
                let slate = &mut building[b];
                slate.clicks[k] = true;
                if purchase {
                    slate.purchases[k] = true;
                    slate.revenue[k] += revenue_of(shop, e);
                }
                let at = slate.history_at[k];
                if let Some(past) = state.entry_mut(at) {
                    past.click = true;
                    past.purchase |= purchase;
                }
            }
            None => {
                if e.ranking.is_some() {
                    out.drop("feedback on an item its ranking did not show");
                }
                state.enter(e.timestamp_ms, e.session, options.session_gap_ms);
                out.organic.push(OrganicEvent {
                    event: index,
                    user: e.user,
                    item: e.item,
                    purchase,
                    context: context_of(state, e.user, e.timestamp_ms, &e.context),
                });
                state.push(
                    PastEvent {
                        item: e.item,
                        click: true,
                        purchase,
                    },
                    options.history_limit,
                );
            }
        }
    }
    for slate in building {
        let mut order: Vec<usize> = (0..slate.items.len()).collect();
        order.sort_by_key(|&k| slate.positions[k]);
        let positions: Vec<u32> = order.iter().map(|&k| slate.positions[k]).collect();
        let logged = slate.propensities.iter().all(Option::is_some);
        let propensities: Vec<f64> = order
            .iter()
            .map(|&k| slate.propensities[k].unwrap_or(1.0))
            .collect();
        let from_top = positions.iter().enumerate().all(|(k, &p)| p == k as u32);
        let Ok(items) = Slate::new(reorder(&slate.items, &order)) else {
            continue;
        };
        let decision = Decision {
            event_id: EventId(slate.id),
            slate: items,
            propensities,
            slate_propensity: None,
            positions: (!from_top).then_some(positions),
            policy_id: "logged".into(),
            model_version: String::new(),
        };
        let feedback = Feedback {
            clicks: reorder(&slate.clicks, &order),
            purchases: reorder(&slate.purchases, &order),
            revenue: reorder(&slate.revenue, &order),
        };
        match Interaction::new(slate.context, decision, feedback) {
            Ok(i) => {
                out.interactions.push(i);
                out.users.push(slate.user);
                out.logged_propensities.push(logged);
            }
            Err(_) => out.drop("ranking that breaks an invariant"),
        }
    }
    out
}

/// The revenue of a purchase: the event's, or the catalog price times the quantity (one unit
/// when none is logged), or zero when the price is unknown too.
pub(crate) fn revenue_of(shop: &Shop, e: &super::ShopEvent) -> f64 {
    e.revenue.unwrap_or_else(|| {
        let price = shop.catalog.price(e.item).unwrap_or(0.0);
        f64::from(price) * f64::from(e.quantity.unwrap_or(1))
    })
}

fn reorder<T: Copy>(values: &[T], order: &[usize]) -> Vec<T> {
    order.iter().map(|&k| values[k]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::{ShopEvent, ShopManifest, ShopUser};
    use metarec_core::{Catalog, Item};

    fn shop(events: Vec<ShopEvent>) -> Shop {
        let mut catalog = Catalog::new(vec!["x".into()]);
        for i in 0..5 {
            catalog
                .push(Item {
                    key: format!("k{i}"),
                    price: Some(2.0),
                    features: vec![i as f32],
                    ..Item::default()
                })
                .unwrap();
        }
        Shop {
            dir: Default::default(),
            manifest: ShopManifest {
                format: crate::shop::SHOP_FORMAT.into(),
                name: "t".into(),
                metarec_version: String::new(),
                items: 5,
                users: 1,
                events: events.len() as u64,
                events_by_type: Default::default(),
                first_ms: None,
                last_ms: None,
                user_features: vec![],
                unavailable: vec![],
                sources: vec![],
                map: Default::default(),
                reports: vec![],
                catalog_sha256: String::new(),
                users_sha256: String::new(),
                events_sha256: String::new(),
            },
            catalog,
            users: vec![ShopUser {
                key: "u".into(),
                tokens: vec!["region=north".into()],
                features: vec![],
            }],
            sessions: vec![],
            rankings: vec!["r0".into(), "r1".into()],
            events,
        }
    }

    fn event(
        kind: EventKind,
        item: u32,
        ms: i64,
        ranking: Option<u32>,
        position: Option<u32>,
    ) -> ShopEvent {
        ShopEvent {
            user: 0,
            item: ItemId(item),
            timestamp_ms: ms,
            kind,
            session: None,
            ranking,
            position,
            propensity: ranking.map(|_| 0.2),
            quantity: None,
            revenue: None,
            context: vec![],
        }
    }

    #[test]
    fn rankings_collect_their_feedback_and_contexts_see_only_the_past() {
        use EventKind::*;
        let s = shop(vec![
            // Ranking r0 shows k1 at position 1 and k0 at position 0 (logged out of order).
            event(View, 1, 1000, Some(0), Some(1)),
            event(View, 0, 1000, Some(0), Some(0)),
            // A click with the ranking id, and a purchase without one (attached by the window).
            event(Click, 1, 2000, Some(0), None),
            event(Purchase, 1, 3000, None, None),
            // An organic purchase of an item no ranking showed.
            event(Purchase, 4, 4000, None, None),
            // Ranking r1, a day later: a new visit that remembers everything above.
            event(View, 2, 86_400_000, Some(1), Some(0)),
        ]);
        let log = shop_log(&s, &InteractionOptions::default());
        assert_eq!(log.interactions.len(), 2);
        let r0 = &log.interactions[0];
        assert_eq!(r0.decision.slate.items(), &[ItemId(0), ItemId(1)]);
        assert_eq!(r0.decision.positions, None);
        assert_eq!(r0.feedback.clicks, vec![false, true]);
        assert_eq!(r0.feedback.purchases, vec![false, true]);
        assert_eq!(r0.feedback.revenue, vec![0.0, 2.0]);
        assert!(r0.context.session.history.is_empty());
        assert_eq!(r0.context.tokens, vec!["region=north".to_string()]);
        assert_eq!(log.logged_propensities, vec![true, true]);
        assert_eq!(log.organic.len(), 1);
        assert_eq!(log.organic[0].item, ItemId(4));
        // The organic purchase's context saw r0 with its click and purchase.
        let h = &log.organic[0].context.session.history;
        assert_eq!(h.len(), 2);
        assert!(
            h.iter()
                .any(|p| p.item == ItemId(1) && p.click && p.purchase)
        );
        let r1 = &log.interactions[1];
        assert_eq!(r1.context.session.session, 1);
        assert_eq!(r1.context.session.step, 0);
        assert_eq!(r1.context.session.history.len(), 3);
        // The visit's own events: r0's two when the organic purchase came, none yet for r1.
        assert_eq!(r0.context.session.visit_events, Some(0));
        assert_eq!(log.organic[0].context.session.visit_events, Some(2));
        assert_eq!(r1.context.session.visit_events, Some(0));
        assert!(log.dropped.is_empty());
    }

    #[test]
    fn feedback_on_an_unshown_item_is_organic_and_counted() {
        use EventKind::*;
        let s = shop(vec![
            event(View, 0, 1000, Some(0), Some(0)),
            event(Click, 3, 2000, Some(0), None),
            // Too late for the window: organic, not counted as an error.
            event(Click, 0, 1000 + 31 * 60 * 1000, None, None),
        ]);
        let log = shop_log(&s, &InteractionOptions::default());
        assert_eq!(log.interactions[0].feedback.clicks, vec![false]);
        assert_eq!(log.organic.len(), 2);
        assert_eq!(
            log.dropped
                .get("feedback on an item its ranking did not show"),
            Some(&1)
        );
    }

    fn log_of(n: usize) -> ShopLog {
        let one = Interaction::new(
            Context::for_user(UserKey("u".into())),
            Decision {
                event_id: EventId("r".into()),
                slate: Slate::new(vec![ItemId(0)]).unwrap(),
                propensities: vec![1.0],
                slate_propensity: None,
                positions: None,
                policy_id: "logged".into(),
                model_version: String::new(),
            },
            Feedback::none(1),
        )
        .unwrap();
        ShopLog {
            interactions: vec![one; n],
            users: vec![0; n],
            logged_propensities: vec![true; n],
            ..ShopLog::default()
        }
    }

    #[test]
    fn the_held_out_part_is_the_last_share_of_rankings() {
        assert_eq!(split_by_time(&log_of(10), 0.2), (0..8, 8..10));
        assert_eq!(split_by_time(&log_of(10), 0.25), (0..7, 7..10));
        assert_eq!(split_by_time(&log_of(10), 0.0), (0..10, 10..10));
        assert_eq!(split_by_time(&log_of(10), 1.0), (0..0, 0..10));
        assert_eq!(split_by_time(&log_of(10), 7.0), (0..0, 0..10));
        assert_eq!(split_by_time(&log_of(10), f64::NAN), (0..10, 10..10));
        assert_eq!(split_by_time(&log_of(0), 0.5), (0..0, 0..0));
    }
}
