//! The cold-start benchmark on a shop's own history (`metarec coldstart --shop`): how well each
//! method ranks the catalogue for a customer it has never seen, from their first `K` items.
//!
//! The protocol (`docs/coldstart.md`):
//! - [`ShopData`]: a shop's interactions (every event but a view), users' attributes and the time
//!   of each user's first event, from a loaded [`Shop`];
//! - new users at a cutoff: those whose first event is on or after it and who interacted with at
//!   least `K + 3` distinct items; the first `K` distinct items (in time order) are the support,
//!   the rest the query ([`ColdUser`], [`cold_users`]);
//! - every model is fitted on the interactions before the cutoff only, of all users ([`fit`]
//!   gives a [`Fitted`]); a new user reaches a model only as a support set at scoring time;
//! - every method ranks the whole catalogue minus the support; [`TopN`] per user, mean with 95%
//!   intervals over users and differences paired by user against item-kNN ([`ShopReport`]);
//! - hyperparameters are chosen on validation users from before the cutoff: the new users of a
//!   pseudo-cutoff as far before the cutoff as the test period is long, scored by models fitted
//!   before the pseudo-cutoff, their query cut at the real cutoff. The test users are never used
//!   to choose anything.
//!
//! Methods ([`SHOP_METHODS`]): `popularity` (training users per item), `item-knn` (cosine over
//! users' co-occurrence, the reference), `basket-knn` (the same over visits), `title-knn`
//! (tf-idf cosine of titles), `als-foldin` (implicit ALS, closed-form fold-in), and metarec's
//! adjusters over the same factors: `bayes` (a Gaussian prior over the user's factors whose mean
//! is a linear map of the user's attributes, fitted across training users, updated in closed
//! form by the support), `gradient` (gradient steps on the support's loss from that prior mean),
//! and `bayes-knn` (the Bayesian adjuster's scores blended with the neighbourhoods, title
//! similarity and popularity, weights chosen on validation).
//!
//! A method fitted outside this crate (such as `metarec`'s trained network, conditioned on the
//! support as the user's history) joins the table through an [`ExternalScorer`] passed to
//! [`run_shop_benchmark_with`]: it scores the same users and is measured the same way.

use crate::bayes::{HierPrior, fit_prior};
use crate::error::ColdStartError;
use crate::metrics::{Interval, TOP_N_NAMES, TopN, ndcg10, paired_interval, top_n};
use crate::mf::{ImplicitConfig, ImplicitModel, train_implicit};
use metarec_core::linalg::dot;
use metarec_data::shop::Shop;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The method every other is compared with.
pub const SHOP_REFERENCE: &str = "item-knn";

/// Every method, in table order.
pub const SHOP_METHODS: [&str; 9] = [
    "popularity",
    "item-knn",
    "tuned-knn",
    "basket-knn",
    "title-knn",
    "als-foldin",
    "bayes",
    "gradient",
    "bayes-knn",
];

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// One interaction (any event but a view): who, what, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interaction {
    /// The user's index.
    pub user: u32,
    /// The item's index in the catalogue.
    pub item: u32,
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// The visit (basket, order) it belongs to, when the shop logs visits.
    pub session: Option<u32>,
}

/// What the benchmark reads of a shop.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopData {
    /// Items in the catalogue.
    pub items: usize,
    /// Per user: the time of their first event of any kind (`None`: no events).
    pub first_ms: Vec<Option<i64>>,
    /// Per user: categorical attributes as tokens: the users file's, then the context tokens of
    /// the user's first interaction (such as the country of an order), which is part of any
    /// support set and so known when the user is new.
    pub tokens: Vec<Vec<String>>,
    /// Per user: numeric attributes (standardised by the import).
    pub features: Vec<Vec<f64>>,
    /// Interactions sorted by time.
    pub interactions: Vec<Interaction>,
    /// Per item: its title (empty when the catalogue has none).
    pub titles: Vec<String>,
}

impl ShopData {
    /// The interactions, attributes and first-event times of a loaded shop.
    pub fn from_shop(shop: &Shop) -> ShopData {
        let n = shop.users.len();
        let mut first_ms = vec![None; n];
        let mut tokens: Vec<Vec<String>> = shop.users.iter().map(|u| u.tokens.clone()).collect();
        let mut seen = vec![false; n];
        let mut interactions = Vec::new();
        for e in &shop.events {
            let u = e.user as usize;
            if first_ms[u].is_none() {
                first_ms[u] = Some(e.timestamp_ms);
            }
            if !e.kind.is_feedback() {
                continue;
            }
            if !seen[u] {
                seen[u] = true;
                tokens[u].extend(e.context.iter().cloned());
            }
            interactions.push(Interaction {
                user: e.user,
                item: e.item.0,
                ms: e.timestamp_ms,
                session: e.session,
            });
        }
        ShopData {
            items: shop.catalog.len(),
            first_ms,
            tokens,
            features: shop
                .users
                .iter()
                .map(|u| u.features.iter().map(|&x| f64::from(x)).collect())
                .collect(),
            interactions,
            titles: (0..shop.catalog.len())
                .map(|i| {
                    shop.catalog
                        .title(metarec_core::ItemId(i as u32))
                        .unwrap_or_default()
                        .to_string()
                })
                .collect(),
        }
    }

    /// Users.
    pub fn users(&self) -> usize {
        self.first_ms.len()
    }

    /// Checks indices, order and shapes, so that no later step can index out of range.
    fn check(&self) -> Result<(), ColdStartError> {
        let n = self.users();
        if !self.titles.is_empty() && self.titles.len() != self.items {
            return Err(ColdStartError::Data(
                "titles and catalogue differ in length".into(),
            ));
        }
        if self.tokens.len() != n || self.features.len() != n {
            return Err(ColdStartError::Data(
                "users' tokens, features and first times differ in length".into(),
            ));
        }
        let width = self.features.first().map_or(0, Vec::len);
        if self.features.iter().any(|f| f.len() != width) {
            return Err(ColdStartError::Data(
                "users have numeric attributes of different lengths".into(),
            ));
        }
        let mut last = i64::MIN;
        for (j, e) in self.interactions.iter().enumerate() {
            if e.user as usize >= n || e.item as usize >= self.items {
                return Err(ColdStartError::Data(format!(
                    "interaction {j} names user {} or item {} outside the shop",
                    e.user, e.item
                )));
            }
            if e.ms < last {
                return Err(ColdStartError::Data(format!(
                    "interaction {j} is earlier than the one before it"
                )));
            }
            last = e.ms;
        }
        Ok(())
    }
}

/// A new user's episode: support and query items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdUser {
    /// The user's index.
    pub user: u32,
    /// The first `K` distinct items the user interacted with, in time order.
    pub support: Vec<u32>,
    /// The user's other distinct items (at least 3).
    pub query: Vec<u32>,
}

/// The distinct items, in order of first interaction, of every user whose first event lies in
/// `[start, end)`, counting interactions before `end` only; users in index order.
fn histories(data: &ShopData, start: i64, end: i64) -> Vec<(u32, Vec<u32>)> {
    let mut lists: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for e in &data.interactions {
        if e.ms >= end {
            break;
        }
        let fresh = data.first_ms[e.user as usize].is_some_and(|t| t >= start && t < end);
        if !fresh {
            continue;
        }
        let list = lists.entry(e.user).or_default();
        if !list.contains(&e.item) {
            list.push(e.item);
        }
    }
    lists.into_iter().collect()
}

/// The episodes of budget `k` among `histories`: users with at least `k + 3` distinct items.
fn episodes(histories: &[(u32, Vec<u32>)], k: usize) -> Vec<ColdUser> {
    histories
        .iter()
        .filter(|(_, items)| items.len() >= k + 3)
        .map(|(u, items)| ColdUser {
            user: *u,
            support: items[..k].to_vec(),
            query: items[k..].to_vec(),
        })
        .collect()
}

/// The new users at `cutoff` for budget `k`: first event on or after the cutoff, at least
/// `k + 3` distinct items; support their first `k` items, query the rest.
pub fn cold_users(data: &ShopData, cutoff_ms: i64, k: usize) -> Vec<ColdUser> {
    episodes(&histories(data, cutoff_ms, i64::MAX), k)
}

/// An interaction's strength from its count: `1 + ln(count)`, so one interaction is 1 and
/// repeats add less and less.
fn strength(count: u32) -> f64 {
    1.0 + f64::from(count.max(1)).ln()
}

/// Every model of the benchmark, fitted on the interactions before one cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The cutoff (ms): nothing at or after it was read.
    pub cutoff_ms: i64,
    /// Users with interactions before the cutoff, in index order.
    pub train_users: Vec<u32>,
    /// Per training user: distinct items.
    pub user_items: Vec<Vec<u32>>,
    /// Per item: training users (positions in `train_users`) who interacted with it.
    pub item_users: Vec<Vec<u32>>,
    /// Per item: distinct training users (popularity).
    pub popularity: Vec<f64>,
    /// Per training user: the time of their last interaction before the cutoff.
    pub user_last_ms: Vec<i64>,
    /// Per item, parallel to `item_users`: when that user last interacted with the item.
    pub item_user_last_ms: Vec<Vec<i64>>,
    /// Per training visit (interactions with a session before the cutoff): distinct items.
    pub basket_items: Vec<Vec<u32>>,
    /// Per item: the training visits (positions in `basket_items`) that hold it.
    pub item_baskets: Vec<Vec<u32>>,
    /// The implicit factorisation.
    pub als: ImplicitModel,
    /// The attribute tokens the prior reads (each held by enough training users).
    pub vocabulary: Vec<String>,
    /// The Bayesian adjuster's prior over a user's factors given their attributes.
    pub prior: HierPrior,
}

/// Settings of [`fit`] besides the factorisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PriorConfig {
    /// A token enters the prior's features when at least this many training users hold it.
    pub min_token_users: usize,
    /// At most this many tokens (the most common).
    pub max_tokens: usize,
    /// Only training users with at least this many distinct items shape the prior (fewer leave
    /// the factors mostly shrinkage).
    pub min_items: usize,
    /// Ridge weight of the prior mean's regression on attributes.
    pub feature_ridge: f64,
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig {
            min_token_users: 10,
            max_tokens: 64,
            min_items: 3,
            feature_ridge: 1.0,
        }
    }
}

impl Fitted {
    /// The prior's feature vector of a user: a constant, one-hot vocabulary tokens, numeric
    /// attributes.
    pub fn attributes(&self, data: &ShopData, user: u32) -> Vec<f64> {
        let u = user as usize;
        let mut x = vec![0.0; 1 + self.vocabulary.len()];
        x[0] = 1.0;
        for t in &data.tokens[u] {
            if let Ok(j) = self.vocabulary.binary_search(t) {
                x[1 + j] = 1.0;
            }
        }
        x.extend(data.features[u].iter().copied());
        x
    }
}

/// Fits every model on the interactions strictly before `cutoff_ms`.
pub fn fit(
    data: &ShopData,
    cutoff_ms: i64,
    als: &ImplicitConfig,
    prior: &PriorConfig,
    seed: u64,
) -> Fitted {
    // Per user and item: the count of interactions and the time of the last.
    let mut counts: BTreeMap<u32, BTreeMap<u32, (u32, i64)>> = BTreeMap::new();
    for e in data.interactions.iter().take_while(|e| e.ms < cutoff_ms) {
        let entry = counts.entry(e.user).or_default().entry(e.item).or_default();
        entry.0 += 1;
        entry.1 = e.ms;
    }
    let train_users: Vec<u32> = counts.keys().copied().collect();
    let rows: Vec<Vec<(u32, f64)>> = counts
        .values()
        .map(|m| m.iter().map(|(&i, &(c, _))| (i, strength(c))).collect())
        .collect();
    let user_last_ms: Vec<i64> = counts
        .values()
        .map(|m| m.values().map(|&(_, t)| t).max().unwrap_or(cutoff_ms))
        .collect();
    let user_items: Vec<Vec<u32>> = counts
        .values()
        .map(|m| m.keys().copied().collect())
        .collect();
    let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); data.items];
    let mut item_user_last_ms: Vec<Vec<i64>> = vec![Vec::new(); data.items];
    for (pos, m) in counts.values().enumerate() {
        for (&i, &(_, t)) in m {
            item_users[i as usize].push(pos as u32);
            item_user_last_ms[i as usize].push(t);
        }
    }
    let popularity = item_users.iter().map(|u| u.len() as f64).collect();
    let mut baskets: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for e in data.interactions.iter().take_while(|e| e.ms < cutoff_ms) {
        if let Some(v) = e.session {
            let items = baskets.entry(v).or_default();
            if !items.contains(&e.item) {
                items.push(e.item);
            }
        }
    }
    let basket_items: Vec<Vec<u32>> = baskets.into_values().collect();
    let mut item_baskets: Vec<Vec<u32>> = vec![Vec::new(); data.items];
    for (pos, items) in basket_items.iter().enumerate() {
        for &i in items {
            item_baskets[i as usize].push(pos as u32);
        }
    }
    let model = train_implicit(&rows, data.items, als, seed);

    // Tokens held by enough training users, the most common first, then sorted for lookup.
    let mut token_users: HashMap<&str, usize> = HashMap::new();
    for &u in &train_users {
        let mut own: Vec<&str> = data.tokens[u as usize].iter().map(String::as_str).collect();
        own.sort_unstable();
        own.dedup();
        for t in own {
            *token_users.entry(t).or_default() += 1;
        }
    }
    let mut common: Vec<(&str, usize)> = token_users
        .into_iter()
        .filter(|&(_, c)| c >= prior.min_token_users)
        .collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    common.truncate(prior.max_tokens);
    let mut vocabulary: Vec<String> = common.into_iter().map(|(t, _)| t.to_string()).collect();
    vocabulary.sort();

    let d = als.dim;
    let mut fitted = Fitted {
        cutoff_ms,
        train_users,
        user_items,
        item_users,
        popularity,
        user_last_ms,
        item_user_last_ms,
        basket_items,
        item_baskets,
        als: model,
        vocabulary,
        prior: HierPrior {
            dim: d,
            features: 0,
            map: Vec::new(),
            precision: Vec::new(),
            noise: 1.0,
        },
    };
    let mut means = Vec::new();
    let mut xs = Vec::new();
    let mut shaping = 0;
    for (pos, &u) in fitted.train_users.iter().enumerate() {
        if fitted.user_items[pos].len() < prior.min_items {
            continue;
        }
        means.extend_from_slice(&fitted.als.user_factors[pos * d..(pos + 1) * d]);
        xs.extend(fitted.attributes(data, u));
        shaping += 1;
    }
    let p = 1 + fitted.vocabulary.len() + data.features.first().map_or(0, Vec::len);
    let covs = vec![0.0; shaping * d * d];
    fitted.prior = fit_prior(&means, &covs, &xs, d, p, prior.feature_ridge, 1.0);
    fitted
}

/// The settings of the tuned neighbourhood (`tuned-knn`, and the neighbourhood part of
/// `bayes-knn`): `score(j) = n_j^-b sum_p rho^(K-1-p) n_{s_p}^-1/2 sum_{u holding s_p and j}
/// |items of u|^-d` over the support `s_1..s_K` in time order, `n` the items' training users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hood {
    /// `d`: a co-occurring training user counts `|items of u|^-d`. A wholesaler who bought a
    /// thousand items says little about which two of them go together, a customer who bought
    /// five says much more.
    pub damping: f64,
    /// `b`: the discount of a popular candidate (cosine's is 1/2; less favours items many buy).
    pub popularity_exponent: f64,
    /// `rho`: the weight of a support item per later support item. The latest items say most
    /// about what the customer buys next.
    pub recency: f64,
}

impl Hood {
    /// Plain item-kNN: cosine over co-occurrence, every support item alike.
    pub const COSINE: Hood = Hood {
        damping: 0.0,
        popularity_exponent: 0.5,
        recency: 1.0,
    };
}

/// Scores every item for new users from the models of one cutoff.
struct Scorer<'a> {
    data: &'a ShopData,
    fitted: &'a Fitted,
    /// `1 / sqrt(users of item)`, 0 for items nobody had.
    inv_sqrt: Vec<f64>,
    /// `1 / sqrt(visits holding item)`, 0 for items in none.
    inv_sqrt_baskets: Vec<f64>,
    /// Per item: its title's unit tf-idf vector as (word, weight).
    title_vectors: Vec<SparseRow>,
    /// Per word: the items whose titles hold it, with the weight.
    title_index: Vec<SparseRow>,
}

/// A sparse row: (index, weight) pairs.
pub(crate) type SparseRow = Vec<(u32, f64)>;

/// Unit tf-idf vectors of the titles' words (letters and digits, lower-cased; idf
/// `ln(items / items with the word)`), and the inverted index from word to items.
pub(crate) fn title_vectors(titles: &[String]) -> (Vec<SparseRow>, Vec<SparseRow>) {
    let mut words: HashMap<String, u32> = HashMap::new();
    let mut counts: Vec<BTreeMap<u32, f64>> = Vec::with_capacity(titles.len());
    let mut df: Vec<f64> = Vec::new();
    for t in titles {
        let mut tf: BTreeMap<u32, f64> = BTreeMap::new();
        for w in t
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let next = words.len() as u32;
            let id = *words.entry(w.to_lowercase()).or_insert(next);
            if id as usize == df.len() {
                df.push(0.0);
            }
            *tf.entry(id).or_default() += 1.0;
        }
        for &id in tf.keys() {
            df[id as usize] += 1.0;
        }
        counts.push(tf);
    }
    let n = titles.len().max(1) as f64;
    let mut index: Vec<Vec<(u32, f64)>> = vec![Vec::new(); df.len()];
    let vectors = counts
        .into_iter()
        .enumerate()
        .map(|(i, tf)| {
            let mut v: Vec<(u32, f64)> = tf
                .into_iter()
                .map(|(w, c)| (w, c * (n / df[w as usize]).ln()))
                .collect();
            let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
            v.retain(|(_, x)| *x > 0.0);
            for (w, x) in &mut v {
                *x /= norm;
                index[*w as usize].push((i as u32, *x));
            }
            v
        })
        .collect();
    (vectors, index)
}

/// The support as the factorisation reads it: each item once at strength 1.
fn support_obs(support: &[u32]) -> Vec<(u32, f64)> {
    support.iter().map(|&i| (i, 1.0)).collect()
}

/// `2^(-age / half_life)` for an age in milliseconds and a half-life in days.
fn decay(age_ms: i64, half_life_days: f64) -> f64 {
    (-(age_ms.max(0) as f64) / (half_life_days * DAY_MS as f64)).exp2()
}

/// `(x - mean) / sd` over the items; zeros when all are equal.
pub(crate) fn standardise(x: &mut [f64]) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    for v in x.iter_mut() {
        *v = if sd > 0.0 { (*v - mean) / sd } else { 0.0 };
    }
}

impl<'a> Scorer<'a> {
    fn new(data: &'a ShopData, fitted: &'a Fitted) -> Self {
        let inv_sqrt = fitted
            .popularity
            .iter()
            .map(|&n| if n > 0.0 { 1.0 / n.sqrt() } else { 0.0 })
            .collect();
        let inv_sqrt_baskets = fitted
            .item_baskets
            .iter()
            .map(|b| {
                if b.is_empty() {
                    0.0
                } else {
                    1.0 / (b.len() as f64).sqrt()
                }
            })
            .collect();
        let (title_vectors, title_index) = title_vectors(&data.titles);
        Scorer {
            data,
            fitted,
            inv_sqrt,
            inv_sqrt_baskets,
            title_vectors,
            title_index,
        }
    }

    /// `ln(1 + recent popularity)`, standardised: each training user of an item counts
    /// `2^(-age / half_life)`, age the time from their last interaction with it to the cutoff
    /// (all-time popularity without a half-life).
    fn recent_log_popularity(&self, half_life_days: Option<f64>) -> Vec<f64> {
        let mut out: Vec<f64> = match half_life_days {
            None => self.fitted.popularity.iter().map(|n| n.ln_1p()).collect(),
            Some(h) => self
                .fitted
                .item_user_last_ms
                .iter()
                .map(|times| {
                    times
                        .iter()
                        .map(|&t| decay(self.fitted.cutoff_ms - t, h))
                        .sum::<f64>()
                        .ln_1p()
                })
                .collect(),
        };
        standardise(&mut out);
        out
    }

    /// The tuned neighbourhood ([`Hood`]): item-kNN with a heavy buyer's co-occurrences damped,
    /// a popular item's discount chosen, and the latest support items counting most.
    fn neighbourhood(&self, support: &[u32], hood: Hood, out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.data.items, 0.0);
        let k = support.len();
        for (p, &s) in support.iter().enumerate() {
            let w = self.inv_sqrt[s as usize] * hood.recency.powi((k - 1 - p) as i32);
            if w == 0.0 {
                continue;
            }
            for &pos in &self.fitted.item_users[s as usize] {
                let items = &self.fitted.user_items[pos as usize];
                let wu = if hood.damping == 0.0 {
                    w
                } else {
                    w * (items.len() as f64).powf(-hood.damping)
                };
                for &j in items {
                    out[j as usize] += wu;
                }
            }
        }
        if hood.popularity_exponent == 0.5 {
            // Cosine's own discount, computed once per item in `new`.
            for (o, w) in out.iter_mut().zip(&self.inv_sqrt) {
                *o *= w;
            }
        } else {
            for (o, n) in out.iter_mut().zip(&self.fitted.popularity) {
                if *n > 0.0 {
                    *o *= n.powf(-hood.popularity_exponent);
                }
            }
        }
    }

    /// Basket-kNN: item-kNN over visits instead of users, `sum_s cos(s, j)` with
    /// `cos(s, j) = (visits holding both) / sqrt(n_s n_j)`: what is bought in one order goes
    /// together more tightly than what one customer bought over a year. Zeros for a shop
    /// without visits.
    fn basket_knn(&self, support: &[u32], out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.data.items, 0.0);
        for &s in support {
            let w = self.inv_sqrt_baskets[s as usize];
            for &pos in &self.fitted.item_baskets[s as usize] {
                for &j in &self.fitted.basket_items[pos as usize] {
                    out[j as usize] += w;
                }
            }
        }
        for (o, w) in out.iter_mut().zip(&self.inv_sqrt_baskets) {
            *o *= w;
        }
    }

    /// Title-kNN: `sum_s cos(title_s, title_j)` over tf-idf vectors of the titles' words: the
    /// catalogue's own content, which needs no interaction (colour variants of one product share
    /// most words). Zeros for a catalogue without titles.
    fn title_knn(&self, support: &[u32], out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.data.items, 0.0);
        for &s in support {
            let Some(v) = self.title_vectors.get(s as usize) else {
                continue;
            };
            for &(w, x) in v {
                for &(j, y) in &self.title_index[w as usize] {
                    out[j as usize] += x * y;
                }
            }
        }
    }

    fn popularity(&self, out: &mut Vec<f64>) {
        out.clear();
        out.extend_from_slice(&self.fitted.popularity);
    }

    /// Item-kNN: `sum_s cos(s, j)`, with `cos(s, j) = co(s, j) / sqrt(n_s n_j)` over the
    /// training users' distinct items.
    fn knn(&self, support: &[u32], out: &mut Vec<f64>) {
        self.neighbourhood(support, Hood::COSINE, out);
    }

    fn fold_in(&self, support: &[u32], lambda: f64, out: &mut Vec<f64>) {
        let w = self.fitted.als.fold_in(&support_obs(support), lambda);
        self.fitted.als.scores(&w, out);
    }

    /// The Bayesian adjuster's user vector: the posterior mean under the attribute prior with
    /// noise variance `noise`.
    fn bayes_vector(&self, user: u32, support: &[u32], noise: f64) -> Vec<f64> {
        let x = self.fitted.attributes(self.data, user);
        let (gram, rhs) = self.fitted.als.support_system(&support_obs(support));
        let prior = HierPrior {
            noise,
            ..self.fitted.prior.clone()
        };
        prior.posterior(&x, &gram, &rhs).mean
    }

    fn bayes(&self, user: u32, support: &[u32], noise: f64, out: &mut Vec<f64>) {
        let w = self.bayes_vector(user, support, noise);
        self.fitted.als.scores(&w, out);
    }

    /// The gradient adjuster: from the prior mean `w0 = A x_u`, `steps` preconditioned gradient
    /// steps of relative size `rate` on the support's weighted squared loss plus
    /// `lambda |w - w0|^2`.
    fn gradient(&self, user: u32, support: &[u32], rate: f64, steps: usize, out: &mut Vec<f64>) {
        let x = self.fitted.attributes(self.data, user);
        let w0 = self.fitted.prior.mean(&x);
        let (gram, rhs) = self.fitted.als.support_system(&support_obs(support));
        let d = w0.len();
        let lambda = self.fitted.als.config.lambda;
        // A step of `rate / (trace / d + lambda)` is stable for rates up to about 1 whatever the
        // scale of the factors.
        let trace: f64 = (0..d).map(|a| gram[a * d + a]).sum();
        let step = rate / (trace / d.max(1) as f64 + lambda);
        let mut w = w0.clone();
        for _ in 0..steps {
            let g: Vec<f64> = (0..d)
                .map(|a| dot(&gram[a * d..(a + 1) * d], &w) - rhs[a] + lambda * (w[a] - w0[a]))
                .collect();
            for (wa, ga) in w.iter_mut().zip(g) {
                *wa -= step * ga;
            }
        }
        self.fitted.als.scores(&w, out);
    }
}

/// One user's standardised component scores for the blend.
struct BlendParts {
    bayes: Vec<f64>,
    knn: Vec<f64>,
    basket: Vec<f64>,
    title: Vec<f64>,
}

/// A user's standardised component scores: the Bayesian adjuster's, the tuned neighbourhood's,
/// basket-kNN's and title-kNN's.
fn blend_parts(scorer: &Scorer, u: &ColdUser, noise: f64, hood: Hood) -> BlendParts {
    let (mut bayes, mut knn) = (Vec::new(), Vec::new());
    scorer.bayes(u.user, &u.support, noise, &mut bayes);
    scorer.neighbourhood(&u.support, hood, &mut knn);
    let (mut basket, mut title) = (Vec::new(), Vec::new());
    scorer.basket_knn(&u.support, &mut basket);
    scorer.title_knn(&u.support, &mut title);
    standardise(&mut bayes);
    standardise(&mut knn);
    standardise(&mut basket);
    standardise(&mut title);
    BlendParts {
        bayes,
        knn,
        basket,
        title,
    }
}

/// The blend's weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlendWeights {
    /// The weight of the Bayesian adjuster's scores; the neighbourhoods share `1 - beta`.
    pub beta: f64,
    /// The share of basket-kNN within the neighbourhoods' part (the rest is item-kNN's).
    pub eta: f64,
    /// The weight of log popularity.
    pub gamma: f64,
    /// The weight of title similarity.
    pub tau: f64,
}

/// `beta z(bayes) + (1 - beta) ((1 - eta) z(knn) + eta z(basket)) + gamma z(log popularity)
/// + tau z(title)`.
fn blend(parts: &BlendParts, log_pop: &[f64], w: BlendWeights, out: &mut Vec<f64>) {
    out.clear();
    let hood = 1.0 - w.beta;
    out.extend(
        parts
            .bayes
            .iter()
            .zip(&parts.knn)
            .zip(&parts.basket)
            .zip(&parts.title)
            .zip(log_pop)
            .map(|((((b, k), v), t), p)| {
                w.beta * b + hood * ((1.0 - w.eta) * k + w.eta * v) + w.gamma * p + w.tau * t
            }),
    );
}

/// Ranks the catalogue minus the support by `scores` and measures the query.
fn measure(scores: &[f64], user: &ColdUser, mask: &mut [u8], cand: &mut Vec<f64>) -> TopN {
    let mut relevant = Vec::with_capacity(scores.len());
    candidates(scores, user, mask, cand, &mut relevant);
    top_n(cand, &relevant)
}

/// The catalogue minus the support: each candidate's score into `cand`, and whether it is a query
/// item into `relevant`. `mask` is all zeros on entry and on return.
fn candidates(
    scores: &[f64],
    user: &ColdUser,
    mask: &mut [u8],
    cand: &mut Vec<f64>,
    relevant: &mut Vec<bool>,
) {
    for &i in &user.support {
        mask[i as usize] = 1;
    }
    for &i in &user.query {
        mask[i as usize] = 2;
    }
    cand.clear();
    relevant.clear();
    for (i, &s) in scores.iter().enumerate() {
        match mask[i] {
            1 => {}
            m => {
                cand.push(s);
                relevant.push(m == 2);
            }
        }
    }
    for &i in user.support.iter().chain(&user.query) {
        mask[i as usize] = 0;
    }
}

/// Settings of a shop benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopBenchConfig {
    /// The cutoff (ms since the epoch): new users start on or after it.
    pub cutoff_ms: i64,
    /// Support sizes `K` swept.
    pub budgets: Vec<usize>,
    /// Days between the validation pseudo-cutoff and the cutoff (`None`: as long as the test
    /// period after the cutoff, at most half the time before it).
    pub validation_days: Option<f64>,
    /// Methods to run (names from [`SHOP_METHODS`]; `item-knn` always runs as the reference).
    pub methods: Vec<String>,
    /// Factorisations tried on validation (chosen by the fold-in's validation NDCG@10).
    pub als_grid: Vec<ImplicitConfig>,
    /// Multipliers of the training ridge weight tried for the fold-in.
    pub fold_scales: Vec<f64>,
    /// Noise variances tried for the Bayesian adjuster.
    pub noise_grid: Vec<f64>,
    /// `(rate, steps)` tried for the gradient adjuster.
    pub gradient_grid: Vec<(f64, usize)>,
    /// Weights of the Bayesian scores in the blend tried (the rest is item-kNN's).
    pub blend_betas: Vec<f64>,
    /// Shares of basket-kNN within the blend's neighbourhood part tried.
    pub blend_etas: Vec<f64>,
    /// Weights of log popularity in the blend tried.
    pub blend_gammas: Vec<f64>,
    /// Weights of title similarity in the blend tried.
    pub blend_taus: Vec<f64>,
    /// Recency half-lives in days tried for the blend's popularity (`None`: no decay).
    pub half_lives: Vec<Option<f64>>,
    /// Exponents `d` tried for the tuned neighbourhood's weight of a co-occurring user,
    /// `|items of u|^-d` ([`Hood`]).
    pub knn_dampings: Vec<f64>,
    /// Exponents `b` tried for the tuned neighbourhood's discount of popular candidates.
    pub knn_popularity_exponents: Vec<f64>,
    /// Weights `rho` tried for a support item per later support item.
    pub knn_recencies: Vec<f64>,
    /// Also measure the blend's [`Ceiling`]: its settings chosen on the test users themselves.
    pub ceiling: bool,
    /// The prior's settings.
    pub prior: PriorConfig,
    /// Seed of the factorisation's initialisation.
    pub seed: u64,
}

impl Default for ShopBenchConfig {
    fn default() -> Self {
        let mut als_grid = Vec::new();
        for lambda in [1.0, 10.0, 50.0] {
            for alpha in [5.0, 20.0] {
                als_grid.push(ImplicitConfig {
                    dim: 32,
                    lambda,
                    alpha,
                    sweeps: 10,
                });
            }
        }
        ShopBenchConfig {
            cutoff_ms: 0,
            budgets: vec![1, 3, 5, 10],
            validation_days: None,
            methods: SHOP_METHODS.iter().map(|m| m.to_string()).collect(),
            als_grid,
            fold_scales: vec![0.25, 0.5, 1.0, 2.0, 4.0],
            noise_grid: vec![0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
            gradient_grid: vec![(0.5, 1), (0.5, 3), (1.0, 3), (0.5, 10), (1.0, 30)],
            blend_betas: (0..=5).map(|j| f64::from(j) / 5.0).collect(),
            blend_etas: vec![0.0, 0.25, 0.5, 1.0],
            blend_gammas: vec![0.0, 0.1, 0.2, 0.4],
            blend_taus: vec![0.0, 0.1, 0.2, 0.4],
            half_lives: vec![None, Some(14.0), Some(30.0), Some(90.0), Some(180.0)],
            knn_dampings: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            knn_popularity_exponents: vec![0.1, 0.2, 0.3, 0.4, 0.5],
            knn_recencies: vec![0.4, 0.6, 0.8, 1.0],
            prior: PriorConfig::default(),
            ceiling: false,
            seed: 0,
        }
    }
}

impl ShopBenchConfig {
    fn check(&self) -> Result<(), ColdStartError> {
        let bad = |m: String| Err(ColdStartError::Config(m));
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return bad("support sizes must be non-empty and each at least 1".into());
        }
        if let Some(m) = self
            .methods
            .iter()
            .find(|m| !SHOP_METHODS.contains(&m.as_str()))
        {
            return bad(format!(
                "unknown method `{m}` (known: {})",
                SHOP_METHODS.join(", ")
            ));
        }
        if self
            .validation_days
            .is_some_and(|d| !(d.is_finite() && d > 0.0))
        {
            return bad("validation days must be positive and finite".into());
        }
        let finite =
            |v: &[f64], lo: f64| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x >= lo);
        if self.als_grid.is_empty()
            || self.als_grid.iter().any(|c| {
                c.dim == 0
                    || c.sweeps == 0
                    || !(c.lambda.is_finite() && c.lambda > 0.0)
                    || !(c.alpha.is_finite() && c.alpha >= 0.0)
            })
        {
            return bad("every factorisation needs a dimension, sweeps, a positive ridge weight and a non-negative confidence slope".into());
        }
        if !finite(&self.fold_scales, f64::MIN_POSITIVE)
            || !finite(&self.noise_grid, f64::MIN_POSITIVE)
        {
            return bad("fold-in scales and noise variances must be positive and finite".into());
        }
        if self.gradient_grid.is_empty()
            || self
                .gradient_grid
                .iter()
                .any(|(r, _)| !(r.is_finite() && *r >= 0.0))
        {
            return bad("gradient rates must be non-negative and finite".into());
        }
        if !finite(&self.knn_dampings, 0.0) || !finite(&self.knn_popularity_exponents, 0.0) {
            return bad(
                "item-kNN dampings and popularity exponents must be non-negative and finite".into(),
            );
        }
        if !finite(&self.knn_recencies, f64::MIN_POSITIVE)
            || self.knn_recencies.iter().any(|r| *r > 1.0)
        {
            return bad("support recency weights must be in (0, 1]".into());
        }
        if self.half_lives.is_empty()
            || self
                .half_lives
                .iter()
                .any(|h| h.is_some_and(|h| !(h.is_finite() && h > 0.0)))
        {
            return bad("half-lives must be positive and finite, at least one".into());
        }
        if !finite(&self.blend_betas, 0.0)
            || !finite(&self.blend_etas, 0.0)
            || !finite(&self.blend_gammas, 0.0)
            || !finite(&self.blend_taus, 0.0)
            || self
                .blend_betas
                .iter()
                .chain(&self.blend_etas)
                .any(|b| *b > 1.0)
        {
            return bad(
                "blend weights must be finite, betas and etas in [0, 1], gammas at least 0".into(),
            );
        }
        Ok(())
    }

    fn runs(&self, method: &str) -> bool {
        method == SHOP_REFERENCE || self.methods.iter().any(|m| m == method)
    }
}

/// Hyperparameters chosen on validation for one support size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChosenAtK {
    /// The support size.
    pub k: usize,
    /// Validation users at this size.
    pub validation_users: usize,
    /// The fold-in's ridge weight.
    pub fold_lambda: f64,
    /// The Bayesian adjuster's noise variance.
    pub noise: f64,
    /// The gradient adjuster's `(rate, steps)`.
    pub gradient: (f64, usize),
    /// The blend's weights.
    pub blend: BlendWeights,
    /// The tuned neighbourhood's settings (`tuned-knn`, and the blend's neighbourhood).
    pub neighbourhood: Hood,
    /// The half-life in days of the blend's popularity (`None`: all-time popularity).
    pub popularity_half_life: Option<f64>,
    /// Validation NDCG@10 of each method at its chosen settings.
    pub validation_ndcg10: Vec<(String, f64)>,
}

/// One method at one support size on the new users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodResult {
    /// The method.
    pub method: String,
    /// Metric name ([`TOP_N_NAMES`]) -> mean with 95% interval over users.
    pub metrics: Vec<(String, Interval)>,
    /// Metric name -> (method - item-kNN), paired by user, with 95% interval (empty for the
    /// reference).
    pub vs_reference: Vec<(String, Interval)>,
}

impl MethodResult {
    /// A metric's interval by name.
    pub fn metric(&self, name: &str) -> Option<&Interval> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }

    /// A paired difference's interval by metric name.
    pub fn diff(&self, name: &str) -> Option<&Interval> {
        self.vs_reference
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
    }
}

/// Everything measured at one support size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetResult {
    /// The support size `K`.
    pub k: usize,
    /// New users with at least `K + 3` distinct items.
    pub users: usize,
    /// Mean query size.
    pub mean_query: f64,
    /// Per method.
    pub methods: Vec<MethodResult>,
    /// The hyperparameters chosen on validation.
    pub chosen: ChosenAtK,
    /// The blend's ceiling, with `--ceiling` (and `bayes-knn` run).
    pub ceiling: Option<Ceiling>,
}

/// Everything a shop benchmark run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopReport {
    /// The settings.
    pub config: ShopBenchConfig,
    /// The validation pseudo-cutoff (ms).
    pub validation_cutoff_ms: i64,
    /// Items in the catalogue.
    pub items: usize,
    /// Users with interactions before the cutoff (the models' training users).
    pub training_users: usize,
    /// Interactions before the cutoff.
    pub training_interactions: usize,
    /// The factorisation chosen on validation.
    pub als: ImplicitConfig,
    /// Per support size.
    pub budgets: Vec<BudgetResult>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The component scores every method needs for one user, computed once per user.
struct UserScores {
    knn: Vec<f64>,
    popularity: Vec<f64>,
}

/// Validation NDCG@10 of scores made by `score` for each user.
fn mean_ndcg(
    users: &[ColdUser],
    items: usize,
    mut score: impl FnMut(usize, &ColdUser, &mut Vec<f64>),
) -> f64 {
    let mut mask = vec![0u8; items];
    let (mut out, mut cand) = (Vec::new(), Vec::new());
    let mut total = 0.0;
    let mut relevant = Vec::new();
    for (j, u) in users.iter().enumerate() {
        score(j, u, &mut out);
        candidates(&out, u, &mut mask, &mut cand, &mut relevant);
        total += ndcg10(&cand, &relevant);
    }
    total / users.len().max(1) as f64
}

/// The candidate with the highest score (the first on ties).
pub(crate) fn best<T: Copy>(candidates: &[T], mut score: impl FnMut(T) -> f64) -> (T, f64) {
    let mut top: Option<(T, f64)> = None;
    for &c in candidates {
        let s = score(c);
        if top.as_ref().is_none_or(|(_, b)| s > *b) {
            top = Some((c, s));
        }
    }
    // The grids are checked non-empty, so there is always a candidate.
    top.unwrap_or((candidates[0], f64::NAN))
}

/// The tuned neighbourhood's settings with the best mean NDCG@10 on `users`.
fn best_hood(
    config: &ShopBenchConfig,
    scorer: &Scorer,
    users: &[ColdUser],
    k: usize,
) -> (Hood, f64) {
    let mut grid = Vec::new();
    for &damping in &config.knn_dampings {
        for &popularity_exponent in &config.knn_popularity_exponents {
            for &recency in &config.knn_recencies {
                // Recency changes nothing with one support item; try it once.
                if k == 1 && recency != config.knn_recencies[0] {
                    continue;
                }
                grid.push(Hood {
                    damping,
                    popularity_exponent,
                    recency,
                });
            }
        }
    }
    best(&grid, |h| {
        mean_ndcg(users, scorer.data.items, |_, u, out| {
            scorer.neighbourhood(&u.support, h, out)
        })
    })
}

/// Every combination of the blend's weights on the grid.
fn blend_grid(config: &ShopBenchConfig) -> Vec<BlendWeights> {
    let mut grid = Vec::new();
    for &beta in &config.blend_betas {
        for &eta in &config.blend_etas {
            for &gamma in &config.blend_gammas {
                for &tau in &config.blend_taus {
                    grid.push(BlendWeights {
                        beta,
                        eta,
                        gamma,
                        tau,
                    });
                }
            }
        }
    }
    grid
}

/// The blend's ceiling on the new users (`--ceiling`): every setting of `bayes-knn` but the
/// noise variance chosen on the test users themselves. No method may be chosen this way; it
/// measures how far the blend's family could reach with perfect tuning, so a target beyond it
/// needs another kind of model, not another grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ceiling {
    /// The neighbourhood's best settings on the test users.
    pub neighbourhood: Hood,
    /// The popularity's best half-life on the test users.
    pub popularity_half_life: Option<f64>,
    /// The blend's best weights on the test users.
    pub blend: BlendWeights,
    /// The test users' mean NDCG@10 at those settings.
    pub ndcg10: f64,
}

/// The blend's [`Ceiling`] on `users`, with the validation's noise variance. The neighbourhood
/// is the best on its own on `users` or the one chosen on validation (`chosen`), whichever
/// blends better, so the ceiling is never below the blend as chosen on validation.
fn blend_ceiling(
    config: &ShopBenchConfig,
    scorer: &Scorer,
    users: &[ColdUser],
    chosen: &ChosenAtK,
) -> Ceiling {
    let (own, _) = best_hood(config, scorer, users, chosen.k);
    let mut hoods = vec![own];
    if chosen.neighbourhood != own {
        hoods.push(chosen.neighbourhood);
    }
    let grid = blend_grid(config);
    let mut top = Ceiling {
        neighbourhood: own,
        popularity_half_life: None,
        blend: grid[0],
        ndcg10: f64::NEG_INFINITY,
    };
    for neighbourhood in hoods {
        let parts: Vec<BlendParts> = users
            .iter()
            .map(|u| blend_parts(scorer, u, chosen.noise, neighbourhood))
            .collect();
        for &h in &config.half_lives {
            let log_pop = scorer.recent_log_popularity(h);
            let (blend_weights, ndcg10) = best(&grid, |w| {
                mean_ndcg(users, scorer.data.items, |j, _, out| {
                    blend(&parts[j], &log_pop, w, out)
                })
            });
            if ndcg10 > top.ndcg10 {
                top = Ceiling {
                    neighbourhood,
                    popularity_half_life: h,
                    blend: blend_weights,
                    ndcg10,
                };
            }
        }
    }
    top
}

/// Chooses every cheap hyperparameter at one support size on the validation users, with the
/// models fitted before the pseudo-cutoff.
fn choose_at_k(
    config: &ShopBenchConfig,
    scorer: &Scorer,
    users: &[ColdUser],
    k: usize,
) -> ChosenAtK {
    let items = scorer.data.items;
    let lambda = scorer.fitted.als.config.lambda;
    let (fold_scale, fold_score) = best(&config.fold_scales, |s| {
        mean_ndcg(users, items, |_, u, out| {
            scorer.fold_in(&u.support, lambda * s, out)
        })
    });
    let (noise, bayes_score) = best(&config.noise_grid, |n| {
        mean_ndcg(users, items, |_, u, out| {
            scorer.bayes(u.user, &u.support, n, out)
        })
    });
    let (gradient, gradient_score) = if config.runs("gradient") {
        best(&config.gradient_grid, |(r, s)| {
            mean_ndcg(users, items, |_, u, out| {
                scorer.gradient(u.user, &u.support, r, s, out)
            })
        })
    } else {
        (config.gradient_grid[0], f64::NAN)
    };
    let knn_score = mean_ndcg(users, items, |_, u, out| scorer.knn(&u.support, out));
    let pop_score = mean_ndcg(users, items, |_, _, out| scorer.popularity(out));
    let basket_score = mean_ndcg(users, items, |_, u, out| scorer.basket_knn(&u.support, out));
    let title_score = mean_ndcg(users, items, |_, u, out| scorer.title_knn(&u.support, out));
    let mut blend_choice = (
        BlendWeights {
            beta: 1.0,
            eta: 0.0,
            gamma: 0.0,
            tau: 0.0,
        },
        f64::NAN,
    );
    let mut popularity_half_life = None;
    let (mut neighbourhood, mut hood_score) = (Hood::COSINE, f64::NAN);
    if config.runs("tuned-knn") || config.runs("bayes-knn") {
        (neighbourhood, hood_score) = best_hood(config, scorer, users, k);
    }
    if config.runs("bayes-knn") {
        // The popularity's recency on its own, then the weights on the grid.
        (popularity_half_life, _) = best(&config.half_lives, |h| {
            let p = scorer.recent_log_popularity(h);
            mean_ndcg(users, items, |_, _, out| out.clone_from(&p))
        });
        let log_pop = scorer.recent_log_popularity(popularity_half_life);
        let parts: Vec<BlendParts> = users
            .iter()
            .map(|u| blend_parts(scorer, u, noise, neighbourhood))
            .collect();
        blend_choice = best(&blend_grid(config), |w| {
            mean_ndcg(users, items, |j, _, out| blend(&parts[j], &log_pop, w, out))
        });
    }
    let (blend_weights, blend_score) = blend_choice;
    ChosenAtK {
        k,
        validation_users: users.len(),
        fold_lambda: lambda * fold_scale,
        noise,
        gradient,
        blend: blend_weights,
        neighbourhood,
        popularity_half_life,
        validation_ndcg10: vec![
            ("popularity".into(), pop_score),
            ("item-knn".into(), knn_score),
            ("tuned-knn".into(), hood_score),
            ("basket-knn".into(), basket_score),
            ("title-knn".into(), title_score),
            ("als-foldin".into(), fold_score),
            ("bayes".into(), bayes_score),
            ("gradient".into(), gradient_score),
            ("bayes-knn".into(), blend_score),
        ],
    }
}

/// A method scored outside this crate, measured exactly like the built-in ones: on the same new
/// users, ranking the whole catalogue minus the support, compared with item-kNN paired by user.
/// It has no hyperparameters to choose on validation, so it must have been fitted without any
/// interaction on or after the cutoff; making sure of that is the caller's duty.
pub trait ExternalScorer {
    /// The method's name in the report (neither empty nor one of [`SHOP_METHODS`]).
    fn name(&self) -> &str;

    /// Writes into `out` one finite score per catalogue item (higher ranks first) for a new user
    /// who has interacted with `user.support` only; `user.query` must not be read.
    fn score(&mut self, user: &ColdUser, out: &mut Vec<f64>) -> Result<(), ColdStartError>;
}

/// Checks an external method's scores, so that a wrong length cannot index out of range and a
/// NaN cannot make the ranking depend on the sort's treatment of it.
fn check_external(name: &str, scores: &[f64], items: usize) -> Result<(), ColdStartError> {
    if scores.len() != items {
        return Err(ColdStartError::Scorer(format!(
            "`{name}` gave {} scores for a catalogue of {items} items",
            scores.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(ColdStartError::Scorer(format!(
            "`{name}` gave item {i} a score that is not finite"
        )));
    }
    Ok(())
}

/// Runs the benchmark on `data`. `progress` receives one line per milestone.
pub fn run_shop_benchmark(
    data: &ShopData,
    config: &ShopBenchConfig,
    progress: &dyn Fn(&str),
) -> Result<ShopReport, ColdStartError> {
    run_shop_benchmark_with(data, config, None, progress)
}

/// [`run_shop_benchmark`] with an extra method scored by `external`, whose row follows the
/// built-in methods' in every support size's table.
pub fn run_shop_benchmark_with(
    data: &ShopData,
    config: &ShopBenchConfig,
    mut external: Option<&mut dyn ExternalScorer>,
    progress: &dyn Fn(&str),
) -> Result<ShopReport, ColdStartError> {
    config.check()?;
    data.check()?;
    if let Some(x) = external.as_deref() {
        let name = x.name();
        if name.is_empty() || SHOP_METHODS.contains(&name) {
            return Err(ColdStartError::Config(format!(
                "an external method needs a name of its own, not `{name}`"
            )));
        }
    }
    let start = Instant::now();
    let cutoff = config.cutoff_ms;
    let first = data.interactions.first().map(|e| e.ms);
    let last = data.interactions.last().map(|e| e.ms);
    let (Some(first), Some(last)) = (first, last) else {
        return Err(ColdStartError::Data(
            "the shop has no interactions (events other than views)".into(),
        ));
    };
    if first >= cutoff {
        return Err(ColdStartError::Data(
            "no interaction lies before the cutoff: there is nothing to train on; choose a later cutoff".into(),
        ));
    }
    if last < cutoff {
        return Err(ColdStartError::Data(
            "no interaction lies on or after the cutoff: there are no new users; choose an earlier cutoff".into(),
        ));
    }
    let span = match config.validation_days {
        Some(days) => (days * DAY_MS as f64).round() as i64,
        None => (last + 1 - cutoff).min((cutoff - first) / 2),
    };
    let pseudo = cutoff - span.max(1);
    let test_histories = histories(data, cutoff, i64::MAX);
    let val_histories = histories(data, pseudo, cutoff);
    let mut test_sets = Vec::new();
    let mut val_sets = Vec::new();
    for &k in &config.budgets {
        let test = episodes(&test_histories, k);
        if test.is_empty() {
            return Err(ColdStartError::Data(format!(
                "no new user on or after the cutoff interacted with {} or more distinct items (K = {k} + 3); choose an earlier cutoff or smaller --support",
                k + 3
            )));
        }
        let val = episodes(&val_histories, k);
        if val.is_empty() {
            return Err(ColdStartError::Data(format!(
                "no validation user (first event in the {:.0} days before the cutoff) interacted with {} or more distinct items before it (K = {k} + 3); choose a later cutoff or a longer --validation-days",
                span as f64 / DAY_MS as f64,
                k + 3
            )));
        }
        test_sets.push(test);
        val_sets.push(val);
    }
    progress(&format!(
        "{} new users at the cutoff ({} at K = {}); validation: {} users from the {:.0} days before it",
        test_histories.len(),
        test_sets[0].len(),
        config.budgets[0],
        val_histories.len(),
        span as f64 / DAY_MS as f64
    ));

    // The factorisation, chosen by the fold-in's mean validation NDCG@10 over the support sizes.
    let mut best_als: Option<(f64, ImplicitConfig)> = None;
    for (j, als) in config.als_grid.iter().enumerate() {
        let fitted = fit(data, pseudo, als, &config.prior, config.seed);
        let scorer = Scorer::new(data, &fitted);
        let score = val_sets
            .iter()
            .map(|users| {
                mean_ndcg(users, data.items, |_, u, out| {
                    scorer.fold_in(&u.support, als.lambda, out)
                })
            })
            .sum::<f64>()
            / val_sets.len() as f64;
        progress(&format!(
            "validation factorisation {}/{} (dim {}, lambda {}, alpha {}): NDCG@10 {score:.4} after {:.1}s",
            j + 1,
            config.als_grid.len(),
            als.dim,
            als.lambda,
            als.alpha,
            start.elapsed().as_secs_f64()
        ));
        if best_als.as_ref().is_none_or(|(b, _)| score > *b) {
            best_als = Some((score, *als));
        }
    }
    let als = best_als.map_or(config.als_grid[0], |(_, c)| c);
    let val_fitted = fit(data, pseudo, &als, &config.prior, config.seed);
    let val_scorer = Scorer::new(data, &val_fitted);
    let chosen: Vec<ChosenAtK> = config
        .budgets
        .iter()
        .zip(&val_sets)
        .map(|(&k, users)| {
            let c = choose_at_k(config, &val_scorer, users, k);
            progress(&format!(
                "K = {k}: chosen on {} validation users after {:.1}s",
                users.len(),
                start.elapsed().as_secs_f64()
            ));
            c
        })
        .collect();

    let fitted = fit(data, cutoff, &als, &config.prior, config.seed);
    let scorer = Scorer::new(data, &fitted);
    progress(&format!(
        "models fitted on {} users before the cutoff after {:.1}s",
        fitted.train_users.len(),
        start.elapsed().as_secs_f64()
    ));
    let mut methods: Vec<&str> = SHOP_METHODS
        .iter()
        .copied()
        .filter(|m| config.runs(m))
        .collect();
    // The external method is the last column; the loop below scores the built-in ones.
    let builtin = methods.len();
    let external_name = external.as_deref().map(|x| x.name().to_owned());
    if let Some(name) = &external_name {
        methods.push(name);
    }
    let mut budgets = Vec::new();
    for ((&k, users), chosen) in config.budgets.iter().zip(&test_sets).zip(chosen) {
        let mut per_method: Vec<Vec<TopN>> = vec![Vec::with_capacity(users.len()); methods.len()];
        let log_pop = scorer.recent_log_popularity(chosen.popularity_half_life);
        let mut mask = vec![0u8; data.items];
        let (mut out, mut cand) = (Vec::new(), Vec::new());
        for u in users {
            let mut parts = UserScores {
                knn: Vec::new(),
                popularity: Vec::new(),
            };
            scorer.knn(&u.support, &mut parts.knn);
            scorer.popularity(&mut parts.popularity);
            for (m, name) in methods[..builtin].iter().enumerate() {
                match *name {
                    "popularity" => out.clone_from(&parts.popularity),
                    "item-knn" => out.clone_from(&parts.knn),
                    "tuned-knn" => scorer.neighbourhood(&u.support, chosen.neighbourhood, &mut out),
                    "basket-knn" => scorer.basket_knn(&u.support, &mut out),
                    "title-knn" => scorer.title_knn(&u.support, &mut out),
                    "als-foldin" => scorer.fold_in(&u.support, chosen.fold_lambda, &mut out),
                    "bayes" => scorer.bayes(u.user, &u.support, chosen.noise, &mut out),
                    "gradient" => {
                        let (r, s) = chosen.gradient;
                        scorer.gradient(u.user, &u.support, r, s, &mut out)
                    }
                    _ => {
                        let p = blend_parts(&scorer, u, chosen.noise, chosen.neighbourhood);
                        blend(&p, &log_pop, chosen.blend, &mut out);
                    }
                }
                per_method[m].push(measure(&out, u, &mut mask, &mut cand));
            }
            if let Some(x) = external.as_deref_mut() {
                out.clear();
                x.score(u, &mut out)?;
                check_external(x.name(), &out, data.items)?;
                per_method[builtin].push(measure(&out, u, &mut mask, &mut cand));
            }
        }
        let reference = methods.iter().position(|m| *m == SHOP_REFERENCE);
        let column = |m: usize, name: &str| -> Vec<f64> {
            per_method[m]
                .iter()
                .map(|t| t.get(name).unwrap_or(f64::NAN))
                .collect()
        };
        let results = methods
            .iter()
            .enumerate()
            .map(|(m, name)| MethodResult {
                method: name.to_string(),
                metrics: TOP_N_NAMES
                    .iter()
                    .map(|n| (n.to_string(), Interval::of(&column(m, n))))
                    .collect(),
                vs_reference: match reference {
                    Some(r) if r != m => TOP_N_NAMES
                        .iter()
                        .map(|n| (n.to_string(), paired_interval(&column(m, n), &column(r, n))))
                        .collect(),
                    _ => Vec::new(),
                },
            })
            .collect();
        progress(&format!(
            "K = {k}: {} new users measured after {:.1}s",
            users.len(),
            start.elapsed().as_secs_f64()
        ));
        let ceiling = (config.ceiling && config.runs("bayes-knn"))
            .then(|| blend_ceiling(config, &scorer, users, &chosen));
        budgets.push(BudgetResult {
            ceiling,
            k,
            users: users.len(),
            mean_query: users.iter().map(|u| u.query.len()).sum::<usize>() as f64
                / users.len() as f64,
            methods: results,
            chosen,
        });
    }
    Ok(ShopReport {
        config: config.clone(),
        validation_cutoff_ms: pseudo,
        items: data.items,
        training_users: fitted.train_users.len(),
        training_interactions: data
            .interactions
            .iter()
            .take_while(|e| e.ms < cutoff)
            .count(),
        als,
        budgets,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six items; users 0-1 hold {0, 2}, users 2-3 {1, 3}, user 4 holds {1, 3, 4, 5} and users
    /// 5-7 hold item 5 alone, so item 5 is the most popular.
    fn tiny() -> ShopData {
        let baskets: [&[u32]; 8] = [
            &[0, 2],
            &[0, 2],
            &[1, 3],
            &[1, 3],
            &[1, 3, 4, 5],
            &[5],
            &[5],
            &[5],
        ];
        let mut interactions = Vec::new();
        for (u, items) in baskets.iter().enumerate() {
            for &item in *items {
                interactions.push(Interaction {
                    user: u as u32,
                    item,
                    ms: u as i64,
                    session: None,
                });
            }
        }
        ShopData {
            items: 6,
            first_ms: (0..8).map(Some).collect(),
            tokens: vec![Vec::new(); 8],
            features: vec![Vec::new(); 8],
            interactions,
            titles: Vec::new(),
        }
    }

    fn scores(data: &ShopData, support: &[u32], hood: Hood) -> Vec<f64> {
        let als = ImplicitConfig {
            dim: 2,
            lambda: 1.0,
            alpha: 1.0,
            sweeps: 1,
        };
        let fitted = fit(data, 100, &als, &PriorConfig::default(), 0);
        let scorer = Scorer::new(data, &fitted);
        let mut out = Vec::new();
        scorer.neighbourhood(support, hood, &mut out);
        out
    }

    #[test]
    fn the_plain_neighbourhood_is_cosine_item_knn() {
        let data = tiny();
        let s = scores(&data, &[0, 1], Hood::COSINE);
        // cos(0, 2) = 2 / sqrt(2 * 2); cos(1, 3) = 3 / sqrt(3 * 3); cos(1, 5) = 1 / sqrt(3 * 4).
        assert!((s[2] - 1.0).abs() < 1e-12, "{s:?}");
        assert!((s[3] - 1.0).abs() < 1e-12, "{s:?}");
        assert!((s[5] - 1.0 / 12f64.sqrt()).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn recency_favours_the_latest_support_item_and_the_exponent_popular_items() {
        let data = tiny();
        // With the support 0 then 1, a recency below 1 puts 1's neighbour above 0's.
        let hood = Hood {
            recency: 0.5,
            ..Hood::COSINE
        };
        let s = scores(&data, &[0, 1], hood);
        assert!(s[3] > s[2], "{s:?}");
        let s = scores(&data, &[1, 0], hood);
        assert!(s[2] > s[3], "{s:?}");
        // A smaller popularity exponent discounts the popular item 5 less than item 4.
        let cosine = scores(&data, &[1], Hood::COSINE);
        let flat = scores(
            &data,
            &[1],
            Hood {
                popularity_exponent: 0.0,
                ..Hood::COSINE
            },
        );
        assert!(cosine[4] > cosine[5], "{cosine:?}");
        assert!(flat[4] == flat[5], "{flat:?}");
        // Damping discounts what the heavy user 4 co-bought against what light users did.
        let damped = scores(
            &data,
            &[1],
            Hood {
                damping: 1.0,
                ..Hood::COSINE
            },
        );
        assert!(damped[3] / damped[4] > cosine[3] / cosine[4], "{damped:?}");
    }
}
