//! Every model of the shop benchmark, fitted on the interactions before one cutoff: the
//! neighbourhoods' co-occurrence lists, the implicit factorisation and the Bayesian prior.

use super::*;

/// An interaction's strength from its count: `1 + ln(count)`, so one interaction is 1 and
/// repeats add less and less.
pub(super) fn strength(count: u32) -> f64 {
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
