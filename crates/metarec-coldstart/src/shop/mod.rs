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

mod fit;
mod score;
mod tune;

pub use fit::{Fitted, PriorConfig, fit};
pub use score::{BlendWeights, Hood};
use score::{Scorer, blend, blend_parts, measure};
pub(crate) use score::{SparseRow, standardise, title_vectors};
pub use tune::{Ceiling, ShopBenchConfig};
pub(crate) use tune::{best, choose_factorisation};
use tune::{blend_ceiling, choose_at_k, mean_ndcg};

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

/// Each method's metrics as means with 95% intervals over users, and (but for `reference`'s own
/// row) its differences from `reference` paired by user; `per_method[m]` holds method `m`'s
/// metrics for each user, in the same user order for every method.
pub(crate) fn method_results(
    methods: &[&str],
    per_method: &[Vec<TopN>],
    reference: &str,
) -> Vec<MethodResult> {
    let reference = methods.iter().position(|m| *m == reference);
    let column = |m: usize, name: &str| -> Vec<f64> {
        per_method[m]
            .iter()
            .map(|t| t.get(name).unwrap_or(f64::NAN))
            .collect()
    };
    methods
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
        .collect()
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
    let als = choose_factorisation(&config.als_grid, "NDCG@10", start, progress, |als| {
        let fitted = fit(data, pseudo, als, &config.prior, config.seed);
        let scorer = Scorer::new(data, &fitted);
        val_sets
            .iter()
            .map(|users| {
                mean_ndcg(users, data.items, |_, u, out| {
                    scorer.fold_in(&u.support, als.lambda, out)
                })
            })
            .sum::<f64>()
            / val_sets.len() as f64
    });
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
        let results = method_results(&methods, &per_method, SHOP_REFERENCE);
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
