//! `Evidence`: what a world is fitted on, whatever the data set: who gave which signal on
//! which item how often, per-item counts, purchase lines (quantities and prices) and each user's
//! observable group. Online Retail (`Evidence::from_online_retail`) and any shop directory
//! (`Evidence::from_shop`) become one, so [`crate::World`] has a single fitting path.
//!
//! A shop's strongest signal is its purchases, else its add-to-carts, else its clicks
//! (`[shop] signal = "auto"`), or a weighted mix of all three. Users who gave none of it are
//! left out of the population: implicit ALS would give them a zero vector, a user who likes
//! nothing. [`ImpressionFacts`] holds a shop's real click-through rate by position and its
//! purchases per click, which the scenario calibrates to.

use crate::config::ShopConfig;
use crate::error::SimError;
use metarec_core::{Catalog, Interaction};
use metarec_data::online_retail::OnlineRetail;
use metarec_data::shop::interactions::{InteractionOptions, shop_log};
use metarec_data::shop::{EventKind, Shop};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One purchase line (or one event of a shop's signal): its item, units and unit price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line {
    /// The item (an index of the data's catalog).
    pub item: u32,
    /// Units.
    pub quantity: f64,
    /// The unit price, when known.
    pub unit_price: Option<f64>,
}

/// What a world is fitted on. Users are dense indices `0..users` (only those with evidence);
/// items are the data's catalog ids.
#[derive(Debug, Clone)]
pub(crate) struct Evidence<'a> {
    /// Every item of the data, in id order.
    pub catalog: &'a Catalog,
    /// Catalog ids that are never on offer.
    pub unavailable: HashSet<u32>,
    /// Users with evidence.
    pub users: usize,
    /// Per user, the observable group (a country, a region...).
    pub groups: Vec<String>,
    /// The name of the grouping field (`country`).
    pub attribute: String,
    /// The factorisation's counts: `(user, item, occasions)`, sorted by user then item.
    pub entries: Vec<(u32, u32, f64)>,
    /// Per (user, item) pair, the occasions of the signal (for the repeat rate and the items
    /// per user the report compares), in any order.
    pub occasions: Vec<(u32, u32, f64)>,
    /// Lines (events) of the signal per catalog item: the popularity and the best-seller order.
    pub lines_per_item: Vec<f64>,
    /// The purchase lines, in the data's order.
    pub lines: Vec<Line>,
    /// Where the evidence comes from, for the report.
    pub label: String,
    /// What it counts (`purchases`...).
    pub signal: String,
    /// The currency of prices, when known.
    pub currency: String,
    /// The shop's logged impressions, when it has some with a click.
    pub impressions: Option<ImpressionFacts>,
}

/// A shop's logged impressions: the real behaviour a simulator of it is calibrated to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpressionFacts {
    /// Rankings (slates) logged.
    pub rankings: u64,
    /// Items shown, per display position (0-based).
    pub impressions_by_position: Vec<u64>,
    /// Clicks (an add-to-cart or a purchase counts as a click), per display position.
    pub clicks_by_position: Vec<u64>,
    /// Purchases on the shown items.
    pub purchases: u64,
    /// The most common number of items in a ranking.
    pub slate_size: usize,
}

impl ImpressionFacts {
    /// The shop's impressions in a replayed log; `None` when it has no impression or no click
    /// on one (nothing to calibrate a click model to).
    pub fn of(log: &[Interaction]) -> Option<ImpressionFacts> {
        let mut facts = ImpressionFacts {
            rankings: 0,
            impressions_by_position: Vec::new(),
            clicks_by_position: Vec::new(),
            purchases: 0,
            slate_size: 0,
        };
        let mut lengths: HashMap<usize, u64> = HashMap::new();
        for interaction in log {
            let (decision, feedback) = (&interaction.decision, &interaction.feedback);
            facts.rankings += 1;
            *lengths.entry(decision.slate.len()).or_default() += 1;
            for k in 0..decision.slate.len() {
                let p = decision.position(k) as usize;
                if facts.impressions_by_position.len() <= p {
                    facts.impressions_by_position.resize(p + 1, 0);
                    facts.clicks_by_position.resize(p + 1, 0);
                }
                facts.impressions_by_position[p] += 1;
                facts.clicks_by_position[p] += u64::from(feedback.clicks[k]);
                facts.purchases += u64::from(feedback.purchases[k]);
            }
        }
        // The most common length; ties go to the longer slate, so no logged position is lost.
        facts.slate_size = lengths
            .into_iter()
            .max_by_key(|&(len, n)| (n, len))
            .map_or(0, |(len, _)| len);
        (facts.clicks() > 0).then_some(facts)
    }

    /// Clicks on shown items.
    pub fn clicks(&self) -> u64 {
        self.clicks_by_position.iter().sum()
    }

    /// Clicks per impression at each position.
    pub fn ctr_by_position(&self) -> Vec<f64> {
        self.clicks_by_position
            .iter()
            .zip(&self.impressions_by_position)
            .map(|(&c, &n)| c as f64 / n.max(1) as f64)
            .collect()
    }

    /// Purchases per click.
    pub fn cvr(&self) -> f64 {
        self.purchases as f64 / self.clicks().max(1) as f64
    }

    /// The examination curve of the first `slate_size` positions: each position's CTR over the
    /// highest of them, so that users who examine every position of the best one reproduce the
    /// shop's CTR by position under random slates (a position-based model: the click
    /// probability is examination times attraction, and random slates give every position the
    /// same mean attraction). A position without a click gets a small floor, since an
    /// examination probability of 0 would never let the simulator learn anything there.
    pub fn examination(&self) -> Vec<f64> {
        let ctr = self.slate_ctr();
        let top = ctr.iter().copied().fold(0.0, f64::max);
        ctr.iter()
            .map(|c| (c / top.max(1e-12)).clamp(1e-3, 1.0))
            .collect()
    }

    /// The mean CTR over the first `slate_size` positions: the overall CTR random slates of that
    /// size must reach for [`ImpressionFacts::examination`] to give each position its own.
    pub fn target_ctr(&self) -> f64 {
        let ctr = self.slate_ctr();
        ctr.iter().sum::<f64>() / ctr.len().max(1) as f64
    }

    /// The CTR of the first `slate_size` positions; a position no ranking showed anything at
    /// (logged positions may skip some) takes the CTR of the position before it, since nothing
    /// was learnt of it and a rate of 0 would read as never examined.
    fn slate_ctr(&self) -> Vec<f64> {
        let mut ctr: Vec<f64> = Vec::with_capacity(self.slate_size);
        for (k, rate) in self.ctr_by_position().into_iter().enumerate() {
            if ctr.len() == self.slate_size {
                break;
            }
            let shown = self.impressions_by_position[k] > 0;
            ctr.push(match ctr.last() {
                Some(&before) if !shown => before,
                _ => rate,
            });
        }
        ctr
    }
}

impl<'a> Evidence<'a> {
    /// Online Retail's purchases: occasions are distinct invoices, so one large order of an
    /// item counts once; the group is the customer's country.
    pub fn from_online_retail(data: &'a OnlineRetail) -> Evidence<'a> {
        // Purchase occasions per (customer, item): distinct invoices.
        let mut pairs: HashMap<(u32, u32), (u32, f64)> = HashMap::new();
        for p in &data.purchases {
            let e = pairs
                .entry((p.customer, p.item.0))
                .or_insert((p.invoice, 0.0));
            if e.1 == 0.0 || e.0 != p.invoice {
                e.0 = p.invoice;
                e.1 += 1.0;
            }
        }
        let mut entries: Vec<(u32, u32, f64)> =
            pairs.iter().map(|(&(u, i), &(_, n))| (u, i, n)).collect();
        // HashMap order is random; the fit must not depend on it.
        entries.sort_unstable_by_key(|e| (e.0, e.1));
        let mut lines_per_item = vec![0.0f64; data.catalog.len()];
        for p in &data.purchases {
            lines_per_item[p.item.index()] += 1.0;
        }
        Evidence {
            catalog: &data.catalog,
            unavailable: HashSet::new(),
            users: data.customers.len(),
            groups: data.customers.iter().map(|c| c.country.clone()).collect(),
            attribute: "country".into(),
            occasions: entries.clone(),
            entries,
            lines_per_item,
            lines: data
                .purchases
                .iter()
                .map(|p| Line {
                    item: p.item.0,
                    quantity: f64::from(p.quantity),
                    unit_price: Some(f64::from(p.unit_price)),
                })
                .collect(),
            label: "Online Retail".into(),
            signal: "purchases".into(),
            currency: "GBP".into(),
            impressions: None,
        }
    }

    /// A shop's events under `[shop]`'s settings. An empty shop, or one without any event of
    /// the signal asked for, is a [`SimError::NoSignal`] saying what the shop has.
    pub fn from_shop(shop: &'a Shop, config: &ShopConfig) -> Result<Evidence<'a>, SimError> {
        let name = &shop.manifest.name;
        let count = |kind: EventKind| shop.events.iter().filter(|e| e.kind == kind).count();
        let (purchases, carts, clicks) = (
            count(EventKind::Purchase),
            count(EventKind::AddToCart),
            count(EventKind::Click),
        );
        let none = |why: String| SimError::NoSignal {
            shop: name.clone(),
            reason: why,
        };
        if shop.events.is_empty() {
            return Err(none("it has no events".into()));
        }
        if shop.catalog.is_empty() {
            return Err(none("its catalog is empty".into()));
        }
        // The weight of each kind in the counts; the strongest signal alone unless mixed.
        let (weights, signal): ([f64; 3], &str) = match config.signal.as_str() {
            "purchase" => ([1.0, 0.0, 0.0], "purchases"),
            "add_to_cart" => ([0.0, 1.0, 0.0], "add-to-carts"),
            "click" => ([0.0, 0.0, 1.0], "clicks"),
            "mix" => (
                [
                    config.purchase_weight,
                    config.add_to_cart_weight,
                    config.click_weight,
                ],
                "weighted events",
            ),
            _ if purchases > 0 => ([1.0, 0.0, 0.0], "purchases"),
            _ if carts > 0 => ([0.0, 1.0, 0.0], "add-to-carts"),
            _ => ([0.0, 0.0, 1.0], "clicks"),
        };
        let weight = |kind: EventKind| match kind {
            EventKind::Purchase => weights[0],
            EventKind::AddToCart => weights[1],
            EventKind::Click => weights[2],
            EventKind::View => 0.0,
        };
        let signal_events = shop.events.iter().filter(|e| weight(e.kind) > 0.0).count();
        if signal_events == 0 {
            return Err(none(format!(
                "it has {purchases} purchases, {carts} add-to-carts and {clicks} clicks, so no {signal} to fit hidden tastes to (shop.signal = \"{}\"{})",
                config.signal,
                if config.signal == "mix" {
                    ", with these weights"
                } else {
                    ""
                }
            )));
        }

        // Users with evidence get dense indices in the shop's order.
        let mut index = vec![u32::MAX; shop.users.len()];
        for e in &shop.events {
            if weight(e.kind) > 0.0 {
                index[e.user as usize] = 0;
            }
        }
        let mut users = 0u32;
        for slot in index.iter_mut().filter(|s| **s == 0) {
            *slot = users;
            users += 1;
        }

        // Occasions per (user, item) and kind: distinct visits when the shop logs visits (an
        // order of several units, or several lines of one item in one visit, counts once), else
        // each event.
        let mut seen: HashSet<(u32, u32, EventKind, u32)> = HashSet::new();
        let mut pair_kind: HashMap<(u32, u32), [f64; 3]> = HashMap::new();
        let mut lines_per_item = vec![0.0f64; shop.catalog.len()];
        let mut lines = Vec::new();
        let strongest = weights.iter().position(|w| *w > 0.0).unwrap_or(0);
        for e in &shop.events {
            let w = weight(e.kind);
            if w <= 0.0 {
                continue;
            }
            let u = index[e.user as usize];
            let k = match e.kind {
                EventKind::Purchase => 0,
                EventKind::AddToCart => 1,
                _ => 2,
            };
            let fresh = match e.session {
                Some(visit) => seen.insert((u, e.item.0, e.kind, visit)),
                None => true,
            };
            if fresh {
                pair_kind.entry((u, e.item.0)).or_insert([0.0; 3])[k] += 1.0;
            }
            lines_per_item[e.item.index()] += w;
            if k == strongest {
                let quantity = f64::from(e.quantity.unwrap_or(1).max(1));
                let unit_price = match e.revenue {
                    Some(r) if e.kind == EventKind::Purchase => Some(r / quantity),
                    _ => shop.catalog.price(e.item).map(f64::from),
                };
                lines.push(Line {
                    item: e.item.0,
                    quantity,
                    unit_price,
                });
            }
        }
        let mut entries: Vec<(u32, u32, f64)> = pair_kind
            .iter()
            .map(|(&(u, i), n)| {
                (
                    u,
                    i,
                    n[0] * weights[0] + n[1] * weights[1] + n[2] * weights[2],
                )
            })
            .filter(|e| e.2 > 0.0)
            .collect();
        // HashMap order is random; the fit must not depend on it.
        entries.sort_unstable_by_key(|e| (e.0, e.1));
        let occasions: Vec<(u32, u32, f64)> = pair_kind
            .iter()
            .filter(|(_, n)| n[strongest] > 0.0)
            .map(|(&(u, i), n)| (u, i, n[strongest]))
            .collect();

        let attribute = grouping_field(shop, &config.user_attribute, &index)?;
        let mut groups = vec![String::new(); users as usize];
        let prefix = format!("{attribute}=");
        for (s, user) in shop.users.iter().enumerate() {
            if index[s] != u32::MAX {
                if let Some(v) = user.tokens.iter().find_map(|t| t.strip_prefix(&prefix)) {
                    groups[index[s] as usize] = v.to_owned();
                }
            }
        }
        // Users without the field as a user attribute take its most common value over their
        // events (ties: alphabetically first), as the Online Retail loader picks a customer's
        // country, so the same file gives the same groups through either path.
        let mut seen_values: HashMap<(u32, &str), u64> = HashMap::new();
        for e in &shop.events {
            let u = index[e.user as usize];
            if u != u32::MAX && groups[u as usize].is_empty() {
                if let Some(v) = e.context.iter().find_map(|t| t.strip_prefix(&prefix)) {
                    *seen_values.entry((u, v)).or_default() += 1;
                }
            }
        }
        let mut best: HashMap<u32, (u64, &str)> = HashMap::new();
        for (&(u, v), &n) in &seen_values {
            let slot = best.entry(u).or_insert((n, v));
            if n > slot.0 || (n == slot.0 && v < slot.1) {
                *slot = (n, v);
            }
        }
        for (u, (_, v)) in best {
            if groups[u as usize].is_empty() {
                groups[u as usize] = v.to_owned();
            }
        }
        for g in groups.iter_mut().filter(|g| g.is_empty()) {
            *g = "unknown".into();
        }
        let log = shop_log(shop, &InteractionOptions::default());
        let unavailable = shop
            .manifest
            .unavailable
            .iter()
            .filter_map(|k| shop.catalog.id_of(k).map(|i| i.0))
            .collect();
        Ok(Evidence {
            catalog: &shop.catalog,
            unavailable,
            users: users as usize,
            groups,
            attribute,
            entries,
            occasions,
            lines_per_item,
            lines,
            label: format!("shop `{name}`"),
            signal: signal.into(),
            currency: String::new(),
            impressions: ImpressionFacts::of(&log.interactions),
        })
    }
}

/// The grouping field: the one asked for, else the first categorical user field with two or
/// more values among the users with evidence, else the first such field of events' context.
/// An empty shop field (no such field anywhere) groups everyone together under `segment`.
fn grouping_field(shop: &Shop, asked: &str, index: &[u32]) -> Result<String, SimError> {
    let field = |token: &str| {
        token
            .split_once('=')
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
    };
    if !asked.is_empty() {
        let prefix = format!("{asked}=");
        let present = shop
            .users
            .iter()
            .any(|u| u.tokens.iter().any(|t| t.starts_with(&prefix)))
            || shop
                .events
                .iter()
                .any(|e| e.context.iter().any(|t| t.starts_with(&prefix)));
        if !present {
            return Err(SimError::Invalid {
                parameter: "shop.user_attribute",
                value: asked.to_owned(),
                rule: "must name a categorical field of the shop's users or events",
            });
        }
        return Ok(asked.to_owned());
    }
    // Fields in order of first appearance, with their distinct values.
    let mut fields: Vec<(String, HashSet<String>)> = Vec::new();
    let note = |token: &str, fields: &mut Vec<(String, HashSet<String>)>| {
        if let Some((n, v)) = field(token) {
            match fields.iter_mut().find(|(f, _)| *f == n) {
                Some((_, values)) => {
                    values.insert(v);
                }
                None => fields.push((n, HashSet::from([v]))),
            }
        }
    };
    for (s, user) in shop.users.iter().enumerate() {
        if index[s] != u32::MAX {
            for t in &user.tokens {
                note(t, &mut fields);
            }
        }
    }
    if let Some((name, _)) = fields.iter().find(|(_, v)| v.len() >= 2) {
        return Ok(name.clone());
    }
    let mut fields = Vec::new();
    let mut first_seen = vec![false; shop.users.len()];
    for e in &shop.events {
        if index[e.user as usize] != u32::MAX && !first_seen[e.user as usize] {
            first_seen[e.user as usize] = true;
            for t in &e.context {
                note(t, &mut fields);
            }
        }
    }
    Ok(fields
        .iter()
        .find(|(_, v)| v.len() >= 2)
        .map_or_else(|| "segment".into(), |(name, _)| name.clone()))
}

#[cfg(test)]
mod tests {
    use super::ImpressionFacts;

    #[test]
    fn examination_follows_ctr_by_position_and_skips_positions_never_shown() {
        let facts = ImpressionFacts {
            rankings: 100,
            impressions_by_position: vec![100, 100, 0, 100, 50],
            clicks_by_position: vec![20, 10, 0, 5, 1],
            purchases: 7,
            slate_size: 4,
        };
        // Position 2 was never shown: it takes position 1's rate, not 0.
        assert_eq!(facts.examination(), vec![1.0, 0.5, 0.5, 0.25]);
        assert!((facts.target_ctr() - (0.2 + 0.1 + 0.1 + 0.05) / 4.0).abs() < 1e-12);
        assert!((facts.cvr() - 7.0 / 36.0).abs() < 1e-12);
    }
}
