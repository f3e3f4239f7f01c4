//! The item cold-start variant of the shop benchmark (`metarec coldstart --shop --items`): how
//! well each method ranks items nobody has touched yet, from their catalogue features alone.
//!
//! The protocol (`docs/coldstart.md`, "Item cold start"):
//! - new items at a cutoff: items whose first interaction is on or after it;
//! - evaluation users ([`ItemColdUser`], [`item_cold_users`]): users who interacted with a new
//!   item on or after the cutoff and with at least one old item strictly before their first
//!   new-item interaction; their profile is those old items in time order (what a live shop
//!   knows of them), their query the new items they interacted with;
//! - every method ranks all new items; [`TopN`] per user, means with 95% intervals and
//!   differences paired by user against `title-knn`;
//! - every model is fitted on the interactions before the cutoff only ([`fit_items`]); a new
//!   item is described only by its title, category and price;
//! - hyperparameters are chosen on the new items and users of a pseudo-cutoff before the
//!   cutoff, with models fitted before the pseudo-cutoff and queries cut at the cutoff.
//!
//! Methods ([`ITEM_METHODS`]): `random` (every new item tied: the exact expectation of a random
//! order), `attribute-match` (shared category and nearby log price), `title-knn` (tf-idf cosine
//! of titles to the profile's, the reference), `content-als` (a ridge map from item features to
//! the implicit-ALS item factors, scored with the profile's folded-in user factors) and
//! `content-blend` (the three content scores standardised and blended, weights chosen on
//! validation).

use crate::error::ColdStartError;
use crate::metrics::{TopN, top_n};
use crate::mf::{ImplicitConfig, ImplicitModel};
use crate::shop::{
    DAY_MS, MethodResult, PriorConfig, ShopBenchConfig, ShopData, SparseRow, best,
    choose_factorisation, fit, standardise, title_vectors,
};
use metarec_core::linalg::{cholesky_in_place, cholesky_solve, dot};
use metarec_data::shop::Shop;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The method every other is compared with: the simplest content method that every catalogue
/// with titles supports, with nothing to fit.
pub const ITEM_REFERENCE: &str = "title-knn";

/// Every method, in table order.
pub const ITEM_METHODS: [&str; 5] = [
    "random",
    "attribute-match",
    "title-knn",
    "content-als",
    "content-blend",
];

/// Per item: the catalogue features besides the title ([`ShopData::titles`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ItemFeatures {
    /// Per item: its category's name, if any.
    pub categories: Vec<Option<String>>,
    /// Per item: its price, if known and positive.
    pub prices: Vec<Option<f64>>,
}

impl ItemFeatures {
    /// The categories and prices of a loaded shop's catalogue.
    pub fn from_shop(shop: &Shop) -> ItemFeatures {
        let c = &shop.catalog;
        ItemFeatures {
            categories: c
                .ids()
                .map(|i| {
                    c.category(i)
                        .and_then(|k| c.category_name(k))
                        .map(str::to_string)
                })
                .collect(),
            prices: c
                .ids()
                .map(|i| {
                    c.price(i)
                        .map(f64::from)
                        .filter(|p| p.is_finite() && *p > 0.0)
                })
                .collect(),
        }
    }

    /// Log price (`None` when unknown).
    fn log_price(&self, i: u32) -> Option<f64> {
        self.prices.get(i as usize).copied().flatten().map(f64::ln)
    }

    /// The category (`None` when unknown).
    fn category(&self, i: u32) -> Option<&str> {
        self.categories.get(i as usize).and_then(|c| c.as_deref())
    }
}

/// An evaluation user of the item variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemColdUser {
    /// The user's index.
    pub user: u32,
    /// The distinct old items the user interacted with strictly before their first new-item
    /// interaction, in time order.
    pub profile: Vec<u32>,
    /// The distinct new items the user interacted with.
    pub query: Vec<u32>,
}

/// The new items of a window and its evaluation users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemEpisodes {
    /// Items whose first interaction lies in the window, in index order.
    pub new_items: Vec<u32>,
    /// Evaluation users, in index order.
    pub users: Vec<ItemColdUser>,
}

/// The new items whose first interaction lies in `[start, end)` and their evaluation users,
/// reading interactions before `end` only.
pub fn item_cold_users(data: &ShopData, start: i64, end: i64) -> ItemEpisodes {
    // Interactions naming an item outside the catalogue are skipped, so that no input can
    // index out of range.
    let window = || {
        data.interactions
            .iter()
            .take_while(move |e| e.ms < end)
            .filter(|e| (e.item as usize) < data.items)
    };
    let mut first = vec![i64::MAX; data.items];
    for e in window() {
        if first[e.item as usize] == i64::MAX {
            first[e.item as usize] = e.ms;
        }
    }
    let is_new = |i: u32| first[i as usize] >= start && first[i as usize] < end;
    let mut first_new: HashMap<u32, i64> = HashMap::new();
    for e in window() {
        if is_new(e.item) {
            first_new.entry(e.user).or_insert(e.ms);
        }
    }
    let mut lists: BTreeMap<u32, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for e in window() {
        let Some(&t) = first_new.get(&e.user) else {
            continue;
        };
        let (profile, query) = lists.entry(e.user).or_default();
        // An item interacted with before the user's first new item is old: its first
        // interaction is earlier still, so before `start`.
        let list = if is_new(e.item) {
            query
        } else if e.ms < t {
            profile
        } else {
            continue;
        };
        if !list.contains(&e.item) {
            list.push(e.item);
        }
    }
    ItemEpisodes {
        new_items: (0..data.items as u32).filter(|&i| is_new(i)).collect(),
        users: lists
            .into_iter()
            .filter(|(_, (p, q))| !p.is_empty() && !q.is_empty())
            .map(|(user, (profile, query))| ItemColdUser {
                user,
                profile,
                query,
            })
            .collect(),
    }
}

/// The content-to-factor map's normal equations, fitted before one cutoff, solved per ridge
/// weight on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFitted {
    /// The cutoff (ms): nothing at or after it was read.
    pub cutoff_ms: i64,
    /// The implicit factorisation of the interactions before the cutoff.
    pub als: ImplicitModel,
    /// Title words (ids of the tf-idf vocabulary) that are features, in feature order.
    pub words: Vec<u32>,
    /// Categories that are features, sorted.
    pub categories: Vec<String>,
    /// Mean and standard deviation of the training items' log prices.
    pub price_scale: (f64, f64),
    /// Items whose factors the map was fitted to (old items with training interactions).
    pub training_items: usize,
    /// `X^T X` over the training items, `features x features`.
    pub gram: Vec<f64>,
    /// `X^T Y` over the training items, `features x dim`.
    pub cross: Vec<f64>,
}

/// Settings of an item cold-start run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemBenchConfig {
    /// The cutoff (ms since the epoch): new items are first seen on or after it.
    pub cutoff_ms: i64,
    /// Days between the validation pseudo-cutoff and the cutoff (`None`: as long as the test
    /// period, at most half the time before the cutoff).
    pub validation_days: Option<f64>,
    /// Methods to run (names from [`ITEM_METHODS`]; `title-knn` always runs as the reference).
    pub methods: Vec<String>,
    /// Factorisations tried on validation (chosen by `content-als`'s validation NDCG@10).
    pub als_grid: Vec<ImplicitConfig>,
    /// Ridge weights of the content-to-factor map tried.
    pub ridge_grid: Vec<f64>,
    /// Multipliers of the factorisation's ridge weight tried for folding in the profile.
    pub fold_scales: Vec<f64>,
    /// Bandwidths (in log price) of `attribute-match`'s price kernel tried.
    pub bandwidths: Vec<f64>,
    /// Weights of `content-als` in the blend tried (title-kNN gets the rest).
    pub blend_content: Vec<f64>,
    /// Weights of `attribute-match` in the blend tried.
    pub blend_attribute: Vec<f64>,
    /// At most this many title words (the most common among training items) are features.
    pub max_words: usize,
    /// Seed of the factorisation's initialisation.
    pub seed: u64,
}

impl Default for ItemBenchConfig {
    fn default() -> Self {
        ItemBenchConfig {
            cutoff_ms: 0,
            validation_days: None,
            methods: ITEM_METHODS.iter().map(|m| m.to_string()).collect(),
            als_grid: ShopBenchConfig::default().als_grid,
            ridge_grid: vec![0.1, 1.0, 10.0, 100.0],
            fold_scales: vec![0.25, 1.0, 4.0],
            bandwidths: vec![0.1, 0.25, 0.5, 1.0],
            blend_content: (0..=4).map(|j| f64::from(j) / 4.0).collect(),
            blend_attribute: vec![0.0, 0.25, 0.5, 1.0],
            max_words: 400,
            seed: 0,
        }
    }
}

impl ItemBenchConfig {
    fn check(&self) -> Result<(), ColdStartError> {
        let bad = |m: String| Err(ColdStartError::Config(m));
        if let Some(m) = self
            .methods
            .iter()
            .find(|m| !ITEM_METHODS.contains(&m.as_str()))
        {
            return bad(format!(
                "unknown method `{m}` (known: {})",
                ITEM_METHODS.join(", ")
            ));
        }
        if self
            .validation_days
            .is_some_and(|d| !(d.is_finite() && d > 0.0))
        {
            return bad("validation days must be positive and finite".into());
        }
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
        let positive = |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x > 0.0);
        let unit =
            |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x));
        if !positive(&self.ridge_grid)
            || !positive(&self.fold_scales)
            || !positive(&self.bandwidths)
        {
            return bad(
                "ridge weights, fold-in scales and bandwidths must be positive and finite".into(),
            );
        }
        if !unit(&self.blend_content) || !unit(&self.blend_attribute) {
            return bad("blend weights must lie in [0, 1]".into());
        }
        if self.max_words == 0 {
            return bad("the content map needs at least one title word".into());
        }
        Ok(())
    }

    fn runs(&self, method: &str) -> bool {
        method == ITEM_REFERENCE || self.methods.iter().any(|m| m == method)
    }
}

/// Features of an item as sparse (index, value) pairs: a constant, tf-idf weights of the
/// vocabulary's title words, a one-hot category, standardised log price and a flag for an
/// unknown price.
fn item_row(
    fitted: &ItemFitted,
    word_pos: &HashMap<u32, usize>,
    titles: &[SparseRow],
    features: &ItemFeatures,
    i: u32,
) -> SparseRow {
    let mut row: SparseRow = vec![(0, 1.0)];
    if let Some(v) = titles.get(i as usize) {
        for &(w, x) in v {
            if let Some(&p) = word_pos.get(&w) {
                row.push(((1 + p) as u32, x));
            }
        }
    }
    let base = 1 + fitted.words.len();
    if let Some(c) = features.category(i) {
        if let Ok(j) = fitted.categories.binary_search_by(|x| x.as_str().cmp(c)) {
            row.push(((base + j) as u32, 1.0));
        }
    }
    let price = base + fitted.categories.len();
    match features.log_price(i) {
        Some(lp) => {
            let (m, s) = fitted.price_scale;
            row.push((price as u32, if s > 0.0 { (lp - m) / s } else { 0.0 }));
        }
        None => row.push(((price + 1) as u32, 1.0)),
    }
    row
}

/// Fits the factorisation and the content map's normal equations on the interactions strictly
/// before `cutoff_ms`; titles, categories and prices are catalogue features, known for every
/// item.
pub fn fit_items(
    data: &ShopData,
    features: &ItemFeatures,
    cutoff_ms: i64,
    als: &ImplicitConfig,
    max_words: usize,
    seed: u64,
) -> ItemFitted {
    let shop_fit = fit(data, cutoff_ms, als, &PriorConfig::default(), seed);
    let (titles, _) = title_vectors(&data.titles);
    let train: Vec<u32> = (0..data.items as u32)
        .filter(|&i| shop_fit.popularity[i as usize] > 0.0)
        .collect();
    // Title words and categories held by at least two training items, the commonest words
    // first: a word seen on one item cannot carry anything to another.
    let mut word_df: HashMap<u32, usize> = HashMap::new();
    let mut cat_df: HashMap<&str, usize> = HashMap::new();
    for &i in &train {
        for &(w, _) in titles.get(i as usize).map_or(&[][..], |v| &v[..]) {
            *word_df.entry(w).or_default() += 1;
        }
        if let Some(c) = features.category(i) {
            *cat_df.entry(c).or_default() += 1;
        }
    }
    let mut words: Vec<(u32, usize)> = word_df.into_iter().filter(|&(_, n)| n >= 2).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    words.truncate(max_words);
    let words: Vec<u32> = words.into_iter().map(|(w, _)| w).collect();
    let mut categories: Vec<String> = cat_df
        .into_iter()
        .filter(|&(_, n)| n >= 2)
        .map(|(c, _)| c.to_string())
        .collect();
    categories.sort();
    let prices: Vec<f64> = train
        .iter()
        .filter_map(|&i| features.log_price(i))
        .collect();
    let n = prices.len().max(1) as f64;
    let mean = prices.iter().sum::<f64>() / n;
    let sd = (prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n).sqrt();
    let d = als.dim;
    let mut fitted = ItemFitted {
        cutoff_ms,
        als: shop_fit.als,
        words,
        categories,
        price_scale: (mean, sd),
        training_items: train.len(),
        gram: Vec::new(),
        cross: Vec::new(),
    };
    let p = fitted.features();
    let word_pos = fitted.word_positions();
    let (mut gram, mut cross) = (vec![0.0; p * p], vec![0.0; p * d]);
    for &i in &train {
        let row = item_row(&fitted, &word_pos, &titles, features, i);
        let y = fitted.als.item(i as usize);
        for &(a, xa) in &row {
            let a = a as usize;
            for &(b, xb) in &row {
                gram[a * p + b as usize] += xa * xb;
            }
            for (c, &yc) in cross[a * d..(a + 1) * d].iter_mut().zip(y) {
                *c += xa * yc;
            }
        }
    }
    fitted.gram = gram;
    fitted.cross = cross;
    fitted
}

impl ItemFitted {
    /// Features per item: constant, words, categories, log price, unknown-price flag.
    pub fn features(&self) -> usize {
        1 + self.words.len() + self.categories.len() + 2
    }

    fn word_positions(&self) -> HashMap<u32, usize> {
        self.words
            .iter()
            .enumerate()
            .map(|(p, &w)| (w, p))
            .collect()
    }

    /// The ridge map `(X^T X + ridge I)^{-1} X^T Y`, `features x dim` (zeros if the system is
    /// singular, which a positive ridge weight rules out).
    fn map(&self, ridge: f64) -> Vec<f64> {
        let (p, d) = (self.features(), self.als.config.dim);
        let mut a = self.gram.clone();
        for k in 0..p {
            a[k * p + k] += ridge;
        }
        let mut map = vec![0.0; p * d];
        if !cholesky_in_place(&mut a, p) {
            return map;
        }
        let mut col = vec![0.0; p];
        for c in 0..d {
            for (k, x) in col.iter_mut().enumerate() {
                *x = self.cross[k * d + c];
            }
            cholesky_solve(&a, p, &mut col);
            for (k, &x) in col.iter().enumerate() {
                map[k * d + c] = x;
            }
        }
        map
    }
}

/// Scores the new items of one window for evaluation users.
struct ItemScorer<'a> {
    fitted: &'a ItemFitted,
    features: &'a ItemFeatures,
    /// Per item: its title's unit tf-idf vector.
    titles: Vec<SparseRow>,
    /// The candidates: the window's new items.
    candidates: &'a [u32],
    /// Per candidate: its predicted factors at the chosen ridge weight, `dim` each.
    predicted: Vec<f64>,
}

impl<'a> ItemScorer<'a> {
    fn new(
        data: &ShopData,
        fitted: &'a ItemFitted,
        features: &'a ItemFeatures,
        candidates: &'a [u32],
    ) -> Self {
        let (titles, _) = title_vectors(&data.titles);
        ItemScorer {
            fitted,
            features,
            titles,
            candidates,
            predicted: Vec::new(),
        }
    }

    /// Predicts the candidates' factors with the map of ridge weight `ridge`.
    fn set_ridge(&mut self, ridge: f64) {
        let map = self.fitted.map(ridge);
        let d = self.fitted.als.config.dim;
        let word_pos = self.fitted.word_positions();
        self.predicted = vec![0.0; self.candidates.len() * d];
        for (j, &i) in self.candidates.iter().enumerate() {
            let row = item_row(self.fitted, &word_pos, &self.titles, self.features, i);
            let out = &mut self.predicted[j * d..(j + 1) * d];
            for (a, x) in row {
                let a = a as usize;
                for (o, &m) in out.iter_mut().zip(&map[a * d..(a + 1) * d]) {
                    *o += x * m;
                }
            }
        }
    }

    /// `sum_s cos(title_s, title_j)` over the profile.
    fn title_knn(&self, profile: &[u32], out: &mut Vec<f64>) {
        let mut agg: HashMap<u32, f64> = HashMap::new();
        for &s in profile {
            for &(w, x) in self.titles.get(s as usize).map_or(&[][..], |v| &v[..]) {
                *agg.entry(w).or_default() += x;
            }
        }
        out.clear();
        out.extend(self.candidates.iter().map(|&j| {
            self.titles.get(j as usize).map_or(0.0, |v| {
                v.iter()
                    .map(|(w, x)| x * agg.get(w).copied().unwrap_or(0.0))
                    .sum()
            })
        }));
    }

    /// The mean over the profile of a shared category plus `exp(-|log price difference| /
    /// bandwidth)` (each part 0 where unknown).
    fn attribute_match(&self, profile: &[u32], bandwidth: f64, out: &mut Vec<f64>) {
        let n = profile.len().max(1) as f64;
        out.clear();
        out.extend(self.candidates.iter().map(|&j| {
            let (cj, pj) = (self.features.category(j), self.features.log_price(j));
            profile
                .iter()
                .map(|&s| {
                    let cat = match (cj, self.features.category(s)) {
                        (Some(a), Some(b)) if a == b => 1.0,
                        _ => 0.0,
                    };
                    let price = match (pj, self.features.log_price(s)) {
                        (Some(a), Some(b)) => (-(a - b).abs() / bandwidth).exp(),
                        _ => 0.0,
                    };
                    cat + price
                })
                .sum::<f64>()
                / n
        }));
    }

    /// `<w_u, M^T x_j>`: the profile folded into the factorisation with ridge weight `lambda`,
    /// against each candidate's predicted factors.
    fn content_als(&self, profile: &[u32], lambda: f64, out: &mut Vec<f64>) {
        let obs: Vec<(u32, f64)> = profile.iter().map(|&i| (i, 1.0)).collect();
        let w = self.fitted.als.fold_in(&obs, lambda);
        out.clear();
        out.extend(
            self.predicted
                .chunks_exact(w.len().max(1))
                .map(|y| dot(&w, y)),
        );
    }

    fn blend(&self, profile: &[u32], chosen: &ItemChoices, out: &mut Vec<f64>) {
        let (mut t, mut c, mut a) = (Vec::new(), Vec::new(), Vec::new());
        self.title_knn(profile, &mut t);
        self.content_als(profile, chosen.fold_lambda, &mut c);
        self.attribute_match(profile, chosen.bandwidth, &mut a);
        standardise(&mut t);
        standardise(&mut c);
        standardise(&mut a);
        let (wc, wa) = chosen.blend;
        out.clear();
        out.extend(
            t.iter()
                .zip(&c)
                .zip(&a)
                .map(|((t, c), a)| (1.0 - wc) * t + wc * c + wa * a),
        );
    }

    /// The user's metrics for `scores` over the candidates.
    fn measure(&self, user: &ItemColdUser, scores: &[f64]) -> TopN {
        let relevant: Vec<bool> = self
            .candidates
            .iter()
            .map(|i| user.query.contains(i))
            .collect();
        top_n(scores, &relevant)
    }

    fn mean_ndcg(
        &self,
        users: &[ItemColdUser],
        mut score: impl FnMut(&ItemColdUser, &mut Vec<f64>),
    ) -> f64 {
        let mut out = Vec::new();
        let total: f64 = users
            .iter()
            .map(|u| {
                score(u, &mut out);
                self.measure(u, &out).ndcg10
            })
            .sum();
        total / users.len().max(1) as f64
    }
}

/// Hyperparameters chosen on validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemChoices {
    /// The content map's ridge weight.
    pub ridge: f64,
    /// The ridge weight of the profile's fold-in.
    pub fold_lambda: f64,
    /// `attribute-match`'s price bandwidth.
    pub bandwidth: f64,
    /// The blend's `(content-als, attribute-match)` weights.
    pub blend: (f64, f64),
    /// Validation NDCG@10 of each method at its chosen settings.
    pub validation_ndcg10: Vec<(String, f64)>,
}

/// Everything an item cold-start run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemReport {
    /// The settings.
    pub config: ItemBenchConfig,
    /// The validation pseudo-cutoff (ms).
    pub validation_cutoff_ms: i64,
    /// Items in the catalogue.
    pub items: usize,
    /// New items at the cutoff (the candidates).
    pub new_items: usize,
    /// New items at the pseudo-cutoff.
    pub validation_new_items: usize,
    /// Validation users.
    pub validation_users: usize,
    /// Users with interactions before the cutoff.
    pub training_users: usize,
    /// Old items the content map was fitted to.
    pub training_items: usize,
    /// Evaluation users.
    pub users: usize,
    /// Mean profile size.
    pub mean_profile: f64,
    /// Mean query size.
    pub mean_query: f64,
    /// The factorisation chosen on validation.
    pub als: ImplicitConfig,
    /// The other hyperparameters chosen on validation.
    pub chosen: ItemChoices,
    /// Per method; `vs_reference` is against `title-knn`.
    pub methods: Vec<MethodResult>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Chooses every hyperparameter but the factorisation on the validation users.
fn choose(
    config: &ItemBenchConfig,
    scorer: &mut ItemScorer,
    users: &[ItemColdUser],
) -> ItemChoices {
    let lambda = scorer.fitted.als.config.lambda;
    let (ridge, _) = best(&config.ridge_grid, |r| {
        scorer.set_ridge(r);
        scorer.mean_ndcg(users, |u, out| scorer.content_als(&u.profile, lambda, out))
    });
    scorer.set_ridge(ridge);
    let (scale, content_score) = best(&config.fold_scales, |s| {
        scorer.mean_ndcg(users, |u, out| {
            scorer.content_als(&u.profile, lambda * s, out)
        })
    });
    let (bandwidth, attribute_score) = best(&config.bandwidths, |h| {
        scorer.mean_ndcg(users, |u, out| scorer.attribute_match(&u.profile, h, out))
    });
    let title_score = scorer.mean_ndcg(users, |u, out| scorer.title_knn(&u.profile, out));
    let random_score = scorer.mean_ndcg(users, |_, out| {
        out.clear();
        out.resize(scorer.candidates.len(), 0.0)
    });
    let mut chosen = ItemChoices {
        ridge,
        fold_lambda: lambda * scale,
        bandwidth,
        blend: (0.0, 0.0),
        validation_ndcg10: Vec::new(),
    };
    let mut grid = Vec::new();
    for &c in &config.blend_content {
        for &a in &config.blend_attribute {
            grid.push((c, a));
        }
    }
    let blend_score = if config.runs("content-blend") {
        let (w, s) = best(&grid, |w| {
            let probe = ItemChoices {
                blend: w,
                ..chosen.clone()
            };
            scorer.mean_ndcg(users, |u, out| scorer.blend(&u.profile, &probe, out))
        });
        chosen.blend = w;
        s
    } else {
        f64::NAN
    };
    chosen.validation_ndcg10 = vec![
        ("random".into(), random_score),
        ("attribute-match".into(), attribute_score),
        ("title-knn".into(), title_score),
        ("content-als".into(), content_score),
        ("content-blend".into(), blend_score),
    ];
    chosen
}

/// Runs the item cold-start benchmark. `progress` receives one line per milestone.
pub fn run_item_benchmark(
    data: &ShopData,
    features: &ItemFeatures,
    config: &ItemBenchConfig,
    progress: &dyn Fn(&str),
) -> Result<ItemReport, ColdStartError> {
    config.check()?;
    let start = Instant::now();
    let cutoff = config.cutoff_ms;
    if features.categories.len() != data.items || features.prices.len() != data.items {
        return Err(ColdStartError::Data(
            "item categories and prices differ in length from the catalogue".into(),
        ));
    }
    if data.titles.iter().all(|t| t.trim().is_empty())
        && features.categories.iter().all(Option::is_none)
        && features.prices.iter().all(Option::is_none)
    {
        return Err(ColdStartError::Data(
            "the catalogue has no titles, categories or prices: new items cannot be described"
                .into(),
        ));
    }
    // The user benchmark's own check is private to it; the item variant checks what it
    // indexes, so that no later step can index out of range.
    let mut last = i64::MIN;
    for (j, e) in data.interactions.iter().enumerate() {
        if e.user as usize >= data.users() || e.item as usize >= data.items || e.ms < last {
            return Err(ColdStartError::Data(format!(
                "interaction {j} names a user or item outside the shop or is out of time order"
            )));
        }
        last = e.ms;
    }
    if !data.titles.is_empty() && data.titles.len() != data.items {
        return Err(ColdStartError::Data(
            "titles and catalogue differ in length".into(),
        ));
    }
    let (Some(first), Some(last)) = (
        data.interactions.first().map(|e| e.ms),
        data.interactions.last().map(|e| e.ms),
    ) else {
        return Err(ColdStartError::Data(
            "the shop has no interactions (events other than views)".into(),
        ));
    };
    if first >= cutoff {
        return Err(ColdStartError::Data(
            "no interaction lies before the cutoff: there is nothing to train on; choose a later cutoff".into(),
        ));
    }
    let test = item_cold_users(data, cutoff, i64::MAX);
    if test.new_items.is_empty() {
        return Err(ColdStartError::Data(
            "no item is first seen on or after the cutoff: there are no new items; choose an earlier cutoff".into(),
        ));
    }
    if test.users.is_empty() {
        return Err(ColdStartError::Data(format!(
            "{} new items, but no user interacted with one after interacting with an old item; choose an earlier cutoff",
            test.new_items.len()
        )));
    }
    let span = match config.validation_days {
        Some(days) => (days * DAY_MS as f64).round() as i64,
        None => last
            .saturating_add(1)
            .saturating_sub(cutoff)
            .min(cutoff.saturating_sub(first) / 2),
    };
    let pseudo = cutoff.saturating_sub(span.max(1));
    let val = item_cold_users(data, pseudo, cutoff);
    if val.users.is_empty() {
        return Err(ColdStartError::Data(format!(
            "no validation user: nobody interacted with an item first seen in the {:.0} days before the cutoff after an older one; choose a later cutoff or a longer --validation-days",
            span as f64 / DAY_MS as f64
        )));
    }
    progress(&format!(
        "{} new items and {} users at the cutoff; validation: {} new items and {} users from the {:.0} days before it",
        test.new_items.len(),
        test.users.len(),
        val.new_items.len(),
        val.users.len(),
        span as f64 / DAY_MS as f64
    ));

    // The factorisation, chosen by content-als's validation NDCG@10 at its best ridge weight.
    let als = choose_factorisation(
        &config.als_grid,
        "content-als NDCG@10",
        start,
        progress,
        |als| {
            let fitted = fit_items(data, features, pseudo, als, config.max_words, config.seed);
            let mut scorer = ItemScorer::new(data, &fitted, features, &val.new_items);
            best(&config.ridge_grid, |r| {
                scorer.set_ridge(r);
                scorer.mean_ndcg(&val.users, |u, out| {
                    scorer.content_als(&u.profile, als.lambda, out)
                })
            })
            .1
        },
    );
    let val_fitted = fit_items(data, features, pseudo, &als, config.max_words, config.seed);
    let mut val_scorer = ItemScorer::new(data, &val_fitted, features, &val.new_items);
    let chosen = choose(config, &mut val_scorer, &val.users);

    let fitted = fit_items(data, features, cutoff, &als, config.max_words, config.seed);
    let mut scorer = ItemScorer::new(data, &fitted, features, &test.new_items);
    scorer.set_ridge(chosen.ridge);
    let methods: Vec<&str> = ITEM_METHODS
        .iter()
        .copied()
        .filter(|m| config.runs(m))
        .collect();
    let mut per_method: Vec<Vec<TopN>> = vec![Vec::with_capacity(test.users.len()); methods.len()];
    let mut out = Vec::new();
    for u in &test.users {
        for (m, name) in methods.iter().enumerate() {
            match *name {
                "random" => {
                    out.clear();
                    out.resize(test.new_items.len(), 0.0);
                }
                "attribute-match" => scorer.attribute_match(&u.profile, chosen.bandwidth, &mut out),
                "title-knn" => scorer.title_knn(&u.profile, &mut out),
                "content-als" => scorer.content_als(&u.profile, chosen.fold_lambda, &mut out),
                _ => scorer.blend(&u.profile, &chosen, &mut out),
            }
            per_method[m].push(scorer.measure(u, &out));
        }
    }
    let results = crate::shop::method_results(&methods, &per_method, ITEM_REFERENCE);
    let users = test.users.len() as f64;
    Ok(ItemReport {
        config: config.clone(),
        validation_cutoff_ms: pseudo,
        items: data.items,
        new_items: test.new_items.len(),
        validation_new_items: val.new_items.len(),
        validation_users: val.users.len(),
        training_users: data
            .interactions
            .iter()
            .take_while(|e| e.ms < cutoff)
            .map(|e| e.user)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        training_items: fitted.training_items,
        users: test.users.len(),
        mean_profile: test.users.iter().map(|u| u.profile.len()).sum::<usize>() as f64 / users,
        mean_query: test.users.iter().map(|u| u.query.len()).sum::<usize>() as f64 / users,
        als,
        chosen,
        methods: results,
        seconds: start.elapsed().as_secs_f64(),
    })
}
