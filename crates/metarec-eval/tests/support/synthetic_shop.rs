//! A small made-up shop with known tastes, written straight as a shop directory
//! (`metarec_data::shop::ShopFiles`), for the tests of training and meta-training on a shop's
//! logs. Unlike `metarec_data::shop::synth` (the files a shop exports, for `shop import`), its
//! item features show the hidden item vectors (so a network can learn the click model from
//! features, and the tests can say how well it did), its users' tastes spread as widely as a
//! test asks, and it can log purchases only.
//!
//! The world: item `i` has a hidden vector `v_i` in a few dimensions, which its catalog features
//! show with a little noise; user `u` has a taste `t_u`: one of a few cluster centres (the
//! cluster also decides the user's `region` token most of the time) plus noise, so users differ
//! in taste. Shown at position `p`, an item is clicked with probability
//! `sigmoid(BIAS + STRENGTH * t_u . v_i - DECAY * p)`, and a click becomes a purchase with
//! probability 0.3. Users take turns: round `r` shows every user one slate, so the time split
//! holds out every user's latest slates. The logging policy's per-position propensities are
//! exact: `1 / items` for uniform slates; `(1 - epsilon) [i = popular_p] + epsilon / items` for
//! the best sellers with uniform exploration.

// Each test binary uses only some of the helpers.
#![allow(dead_code)]

use metarec_core::{Catalog, Item, rng_for};
use metarec_data::shop::{
    EventKind, EventRecord, SHOP_FORMAT, ShopFiles, ShopManifest, UserRecord,
};
use rand::Rng as _;
use std::path::Path;

/// Click log-odds of an item with no affinity at the top position.
pub const BIAS: f64 = -1.5;
/// Click log-odds per unit of affinity `t_u . v_i`.
pub const STRENGTH: f64 = 2.0;
/// Click log-odds lost per position down the slate.
pub const DECAY: f64 = 0.2;

/// How the made-up shop chose its slates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Logging {
    /// Uniformly random slates.
    Uniform,
    /// The best sellers (items 0, 1, ... in order) with probability `1 - epsilon`, else a
    /// uniform slate.
    Popular {
        /// The exploration share.
        epsilon: f64,
    },
    /// No impressions: each round, each user buys one item drawn by taste (a purchases-only
    /// shop).
    PurchasesOnly,
}

/// The shop's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthShop {
    /// Items.
    pub items: usize,
    /// Users.
    pub users: usize,
    /// Slates (or purchases) per user.
    pub rounds: usize,
    /// Items per slate.
    pub slate: usize,
    /// Taste dimensions.
    pub dims: usize,
    /// Taste clusters.
    pub clusters: usize,
    /// Spread of a user's taste around the cluster centre.
    pub taste_noise: f64,
    /// The logging policy.
    pub logging: Logging,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SynthShop {
    fn default() -> Self {
        SynthShop {
            items: 60,
            users: 300,
            rounds: 8,
            slate: 4,
            dims: 4,
            clusters: 4,
            taste_noise: 0.5,
            logging: Logging::Uniform,
            seed: 3,
        }
    }
}

/// The hidden truth behind a made-up shop.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Item vectors, `items x dims`.
    pub items: Vec<Vec<f64>>,
    /// User tastes, `users x dims`, by user index (`user_{u}`).
    pub tastes: Vec<Vec<f64>>,
}

impl Truth {
    /// The click probability of item `i` at position `p` for user `u`.
    pub fn click(&self, u: usize, i: usize, p: usize) -> f64 {
        let a: f64 = self.tastes[u]
            .iter()
            .zip(&self.items[i])
            .map(|(x, y)| x * y)
            .sum();
        sigmoid(BIAS + STRENGTH * a - DECAY * p as f64)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn normal(rng: &mut metarec_core::Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Writes the shop into `dir` (which must not exist) and returns its hidden truth.
pub fn write_shop(dir: &Path, config: &SynthShop) -> Truth {
    let mut rng = rng_for(config.seed, 1);
    let d = config.dims;
    let items: Vec<Vec<f64>> = (0..config.items)
        .map(|_| (0..d).map(|_| normal(&mut rng) * 0.7).collect())
        .collect();
    let centres: Vec<Vec<f64>> = (0..config.clusters)
        .map(|_| (0..d).map(|_| normal(&mut rng)).collect())
        .collect();
    let mut names: Vec<String> = (0..d).map(|k| format!("f{k}")).collect();
    names.push("price_z".into());
    let mut catalog = Catalog::new(names);
    for (i, v) in items.iter().enumerate() {
        let mut features: Vec<f32> = v
            .iter()
            .map(|x| (x + 0.1 * normal(&mut rng)) as f32)
            .collect();
        features.push(normal(&mut rng) as f32);
        catalog
            .push(Item {
                key: format!("sku-{i:03}"),
                title: Some(format!("made-up product {i}")),
                category: Some(format!("cat{}", i % 5)),
                price: Some(5.0 + (i % 7) as f32),
                features,
                embedding: None,
            })
            .expect("a valid item");
    }
    let mut tastes = Vec::with_capacity(config.users);
    let mut users = Vec::with_capacity(config.users);
    for u in 0..config.users {
        let c = rng.random_range(0..config.clusters);
        tastes.push(
            centres[c]
                .iter()
                .map(|x| x + config.taste_noise * normal(&mut rng))
                .collect::<Vec<f64>>(),
        );
        // The region tells the cluster four times out of five.
        let region = if rng.random::<f64>() < 0.8 {
            c
        } else {
            rng.random_range(0..config.clusters)
        };
        users.push(UserRecord {
            user: format!("user_{u}"),
            tokens: vec![format!("region={region}")],
            features: Vec::new(),
        });
    }
    let truth = Truth { items, tastes };
    let n = config.items;
    let k = config.slate.min(n);
    let mut events = Vec::new();
    let start_ms: i64 = 1_767_225_600_000;
    let mut slates = 0u64;
    for round in 0..config.rounds {
        for u in 0..config.users {
            let ms = start_ms + (round * config.users + u) as i64 * 60_000;
            let user = format!("user_{u}");
            if config.logging == Logging::PurchasesOnly {
                // A purchase drawn by taste: softmax over STRENGTH * t . v.
                let weights: Vec<f64> = (0..n)
                    .map(|i| {
                        let a: f64 = truth.tastes[u]
                            .iter()
                            .zip(&truth.items[i])
                            .map(|(x, y)| x * y)
                            .sum();
                        (STRENGTH * a).exp()
                    })
                    .collect();
                let total: f64 = weights.iter().sum();
                let mut draw = rng.random::<f64>() * total;
                let mut item = n - 1;
                for (i, w) in weights.iter().enumerate() {
                    if draw < *w {
                        item = i;
                        break;
                    }
                    draw -= w;
                }
                events.push(EventRecord {
                    user: user.clone(),
                    item: format!("sku-{item:03}"),
                    timestamp_ms: ms,
                    kind: EventKind::Purchase,
                    session: None,
                    ranking: None,
                    position: None,
                    propensity: None,
                    quantity: Some(1),
                    revenue: None,
                    context: Vec::new(),
                });
                continue;
            }
            let explore = match config.logging {
                Logging::Popular { epsilon } => rng.random::<f64>() < epsilon,
                _ => true,
            };
            let shown: Vec<usize> = if explore {
                let mut pool: Vec<usize> = (0..n).collect();
                for j in 0..k {
                    let pick = rng.random_range(j..n);
                    pool.swap(j, pick);
                }
                pool[..k].to_vec()
            } else {
                (0..k).collect()
            };
            let ranking = format!("r{slates}");
            slates += 1;
            let mut clicks = Vec::new();
            for (p, &i) in shown.iter().enumerate() {
                let propensity = match config.logging {
                    Logging::Popular { epsilon } => {
                        (1.0 - epsilon) * f64::from(u8::from(i == p)) + epsilon / n as f64
                    }
                    _ => 1.0 / n as f64,
                };
                events.push(EventRecord {
                    user: user.clone(),
                    item: format!("sku-{i:03}"),
                    timestamp_ms: ms,
                    kind: EventKind::View,
                    session: None,
                    ranking: Some(ranking.clone()),
                    position: Some(p as u32),
                    propensity: Some(propensity),
                    quantity: None,
                    revenue: None,
                    context: Vec::new(),
                });
                if rng.random::<f64>() < truth.click(u, i, p) {
                    clicks.push(i);
                }
            }
            for i in clicks {
                for kind in [EventKind::Click, EventKind::Purchase] {
                    if kind == EventKind::Purchase && rng.random::<f64>() >= 0.3 {
                        continue;
                    }
                    events.push(EventRecord {
                        user: user.clone(),
                        item: format!("sku-{i:03}"),
                        timestamp_ms: ms + 1000,
                        kind,
                        session: None,
                        ranking: Some(ranking.clone()),
                        position: None,
                        propensity: None,
                        quantity: (kind == EventKind::Purchase).then_some(1),
                        revenue: None,
                        context: Vec::new(),
                    });
                }
            }
        }
    }
    let mut by_type = std::collections::BTreeMap::new();
    for e in &events {
        *by_type.entry(e.kind.as_str().to_owned()).or_insert(0u64) += 1;
    }
    let manifest = ShopManifest {
        format: SHOP_FORMAT.into(),
        name: "made-up".into(),
        metarec_version: "test".into(),
        items: n,
        users: config.users,
        events: events.len() as u64,
        events_by_type: by_type,
        first_ms: events.first().map(|e| e.timestamp_ms),
        last_ms: events.last().map(|e| e.timestamp_ms),
        user_features: Vec::new(),
        unavailable: Vec::new(),
        sources: Vec::new(),
        map: Default::default(),
        reports: Vec::new(),
        catalog_sha256: String::new(),
        users_sha256: String::new(),
        events_sha256: String::new(),
    };
    ShopFiles {
        manifest,
        catalog: &catalog,
        users: &users,
        events: &events,
    }
    .save(dir, false)
    .expect("the shop is written");
    truth
}
