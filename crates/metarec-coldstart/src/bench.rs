//! The benchmark: [`run_benchmark`] draws a [`Split`] per seed, fits every method on the
//! training users, chooses hyperparameters on the validation users, evaluates the test episodes
//! at every support budget and aggregates into a [`Report`] (mean and standard deviation over
//! seeds, and differences against MF fold-in paired by seed).
//!
//! Seeds run in parallel on scoped threads; each seed's work depends only on its seed, so the
//! numbers do not depend on the thread count.

use crate::bayes::{BayesConfig, BayesModel, CatalogueRanking, fit_bayes};
use crate::data::{Obs, RatingData};
use crate::error::ColdStartError;
use crate::melu::{Melu, MeluConfig, train_melu};
pub use crate::metrics::Stat;
use crate::metrics::{METRIC_NAMES, MetricSums, Metrics, RatingLevels, paired_interval};
use crate::mf::{MfConfig, MfModel, fold_in, train_mf};
use crate::ranking::{choose_ranking, mark_rated};
use crate::split::{Episode, Split, SplitFractions};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The method every other is compared with.
pub const REFERENCE: &str = "mf-foldin";

/// Every method, in table order.
pub const METHODS: [&str; 7] = [
    "global-mean",
    "item-mean",
    "popularity",
    "mf-foldin",
    "bayes-flat",
    "bayes",
    "melu",
];

/// A support budget: `Some(k)` items, or `None` for all of the pool.
pub type Budget = Option<usize>;

/// The label of a budget in tables and JSON (`"5"`, `"all"`).
pub fn budget_label(k: Budget) -> String {
    k.map_or_else(|| "all".to_string(), |k| k.to_string())
}

/// Settings of a benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchConfig {
    /// One split per seed.
    pub seeds: Vec<u64>,
    /// Support budgets swept.
    pub budgets: Vec<Budget>,
    /// Shares of training and validation users.
    pub fractions: SplitFractions,
    /// Methods to run (names from [`METHODS`]; `mf-foldin` always runs as the reference).
    pub methods: Vec<String>,
    /// Factorisation settings (the ridge weights are chosen on validation from `mf_lambdas`).
    pub mf: MfConfig,
    /// Ridge weights tried for ALS training.
    pub mf_lambdas: Vec<f64>,
    /// Ridge weights tried for the fold-in.
    pub fold_lambdas: Vec<f64>,
    /// Item-mean damping (pseudo-ratings at the global mean) tried.
    pub item_mean_dampings: Vec<f64>,
    /// Bayesian adjuster settings.
    pub bayes: BayesConfig,
    /// Multipliers of the learned noise variance tried on validation (the posterior mean
    /// depends on the ratio of prior covariance to noise, which training users' in-sample
    /// residuals understate).
    pub bayes_noise_scales: Vec<f64>,
    /// [`CatalogueRanking::caution`] values tried on validation for the adjusters' catalogue
    /// ranking.
    pub bayes_cautions: Vec<f64>,
    /// [`CatalogueRanking::popularity`] values tried on validation.
    pub bayes_popularities: Vec<f64>,
    /// MeLU settings (its local step size and step count are chosen on validation from
    /// `melu_local_grid`).
    pub melu: MeluConfig,
    /// `(local step size, local steps)` tried for MeLU at evaluation.
    pub melu_local_grid: Vec<(f64, usize)>,
    /// Worker threads (seeds run in parallel).
    pub threads: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            seeds: (0..10).collect(),
            budgets: vec![Some(1), Some(3), Some(5), Some(10), Some(20), None],
            fractions: SplitFractions::default(),
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            mf: MfConfig::default(),
            mf_lambdas: vec![2.0, 5.0, 10.0],
            fold_lambdas: vec![1.0, 2.0, 5.0, 10.0, 20.0],
            item_mean_dampings: vec![0.0, 2.0, 5.0, 10.0, 25.0],
            bayes: BayesConfig::default(),
            bayes_noise_scales: vec![1.0, 1.5, 2.0, 3.0, 4.0],
            bayes_cautions: vec![0.0, 0.5, 1.0, 2.0, 3.0],
            bayes_popularities: vec![0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
            melu: MeluConfig::default(),
            melu_local_grid: vec![(0.0, 0), (0.01, 5), (0.03, 5), (0.05, 5), (0.1, 5)],
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl BenchConfig {
    fn check(&self) -> Result<(), ColdStartError> {
        let bad = |m: String| Err(ColdStartError::Config(m));
        if self.seeds.is_empty() {
            return bad("at least one seed is needed".into());
        }
        if self.budgets.is_empty() || self.budgets.contains(&Some(0)) {
            return bad("support budgets must be non-empty and each at least 1".into());
        }
        if let Some(m) = self.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return bad(format!(
                "unknown method `{m}` (known: {})",
                METHODS.join(", ")
            ));
        }
        if self.mf.dim == 0 || self.mf.sweeps == 0 {
            return bad("the factorisation needs a dimension and at least one sweep".into());
        }
        let positive = |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !positive(&self.mf_lambdas) || !positive(&self.fold_lambdas) {
            return bad("ridge weights must be positive and finite, at least one each".into());
        }
        if !positive(&self.bayes_noise_scales) {
            return bad("noise scales must be positive and finite, at least one".into());
        }
        let non_negative =
            |v: &[f64]| !v.is_empty() && v.iter().all(|x| x.is_finite() && *x >= 0.0);
        if !non_negative(&self.bayes_cautions) || !non_negative(&self.bayes_popularities) {
            return bad(
                "catalogue ranking weights must be non-negative and finite, at least one each"
                    .into(),
            );
        }
        if self.item_mean_dampings.is_empty()
            || self
                .item_mean_dampings
                .iter()
                .any(|x| !x.is_finite() || *x < 0.0)
        {
            return bad("item-mean dampings must be non-negative and finite".into());
        }
        if self.melu_local_grid.is_empty()
            || self
                .melu_local_grid
                .iter()
                .any(|(a, _)| !a.is_finite() || *a < 0.0)
        {
            return bad("MeLU's local step sizes must be non-negative and finite".into());
        }
        self.melu.check()?;
        if self.threads == 0 {
            return bad("at least one thread is needed".into());
        }
        Ok(())
    }

    fn runs(&self, method: &str) -> bool {
        method == REFERENCE || self.methods.iter().any(|m| m == method)
    }
}

/// One method at one budget: every metric's mean and deviation over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The method.
    pub method: String,
    /// The support budget.
    pub budget: String,
    /// Metric name -> statistic over seeds (names as in [`METRIC_NAMES`], plus `support`).
    pub metrics: Vec<(String, Stat)>,
}

/// A method against MF fold-in on one metric at one budget, paired by seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    /// The method.
    pub method: String,
    /// The support budget.
    pub budget: String,
    /// The metric.
    pub metric: String,
    /// Mean over seeds of (method - MF fold-in).
    pub mean_diff: f64,
    /// Standard deviation over seeds of the difference.
    pub sd_diff: f64,
    /// Seeds on which the method is strictly better (lower error, higher ranking metric).
    pub wins: usize,
    /// Seeds compared.
    pub seeds: usize,
}

/// Hyperparameters chosen on one seed's validation users.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chosen {
    /// The seed.
    pub seed: u64,
    /// Item-mean damping.
    pub item_mean_damping: f64,
    /// ALS ridge weight.
    pub mf_lambda: f64,
    /// Fold-in ridge weight.
    pub fold_lambda: f64,
    /// MeLU local step size.
    pub melu_local_lr: f64,
    /// MeLU local steps.
    pub melu_local_steps: usize,
    /// The Bayesian adjuster's noise standard deviation (learned, then scaled).
    pub bayes_noise_sd: f64,
    /// The noise variance multiplier chosen on validation.
    pub bayes_noise_scale: f64,
    /// The Bayesian adjuster's catalogue ranking chosen on validation.
    pub bayes_ranking: CatalogueRanking,
    /// The same for the adjuster without demographics.
    pub bayes_flat_ranking: CatalogueRanking,
}

/// One seed's metrics for every method and budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Training / validation / test user counts.
    pub users: [usize; 3],
    /// `(method, budget, metrics)`.
    pub results: Vec<(String, String, Metrics)>,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The settings.
    pub config: BenchConfig,
    /// Users split into training, validation and test users.
    pub users: usize,
    /// Users who only ever train (heavier than the protocol admits; 0 under MeLU's protocol).
    pub train_only_users: usize,
    /// Catalogue size.
    pub items: usize,
    /// Per method and budget, over seeds.
    pub table: Vec<Row>,
    /// Against MF fold-in, paired by seed.
    pub paired: Vec<Paired>,
    /// Per seed: the chosen hyperparameters.
    pub chosen: Vec<Chosen>,
    /// Per seed: the raw metrics.
    pub per_seed: Vec<SeedResult>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Something that predicts every item's rating for a user from their features and support set.
pub(crate) trait Predict: Sync {
    fn predict_all(&self, data: &RatingData, user: usize, support: &[Obs], out: &mut Vec<f64>);

    /// Writes scores that rank the whole catalogue into `out` and returns true, or returns
    /// false for a method that ranks by its predicted ratings.
    fn catalogue_scores(
        &self,
        _data: &RatingData,
        _user: usize,
        _support: &[Obs],
        _out: &mut Vec<f64>,
    ) -> bool {
        false
    }
}

struct GlobalMean(f64);

impl Predict for GlobalMean {
    fn predict_all(&self, data: &RatingData, _: usize, _: &[Obs], out: &mut Vec<f64>) {
        out.clear();
        out.resize(data.items, self.0);
    }
}

/// Damped item means: `(sum + damping * mu) / (count + damping)`; the global mean for items no
/// training user rated.
struct ItemMean {
    means: Vec<f64>,
}

impl ItemMean {
    fn fit(data: &RatingData, train: &[usize], damping: f64, mu: f64) -> Self {
        let mut sum = vec![0.0; data.items];
        let mut count = vec![0.0; data.items];
        for &u in train {
            for o in &data.users[u].ratings {
                sum[o.item as usize] += o.rating;
                count[o.item as usize] += 1.0;
            }
        }
        let means = sum
            .iter()
            .zip(&count)
            .map(|(s, c)| {
                if c + damping > 0.0 {
                    (s + damping * mu) / (c + damping)
                } else {
                    mu
                }
            })
            .collect();
        ItemMean { means }
    }
}

impl Predict for ItemMean {
    fn predict_all(&self, _: &RatingData, _: usize, _: &[Obs], out: &mut Vec<f64>) {
        out.clear();
        out.extend_from_slice(&self.means);
    }
}

/// Ranks the catalogue by how many training users rated each item (`log(1 + n_i)`, ties at
/// their expectation) and predicts ratings as [`ItemMean`] does: the ranking reference that
/// shows how much of a method's full-catalogue hit rate popularity alone gives.
struct Popularity {
    means: ItemMean,
    log_count: Vec<f64>,
}

impl Popularity {
    fn fit(data: &RatingData, train: &[usize], means: ItemMean) -> Self {
        let mut count = vec![0.0f64; data.items];
        for &u in train {
            for o in &data.users[u].ratings {
                count[o.item as usize] += 1.0;
            }
        }
        Popularity {
            means,
            log_count: count.iter().map(|c| c.ln_1p()).collect(),
        }
    }
}

impl Predict for Popularity {
    fn predict_all(&self, data: &RatingData, user: usize, support: &[Obs], out: &mut Vec<f64>) {
        self.means.predict_all(data, user, support, out);
    }

    fn catalogue_scores(&self, _: &RatingData, _: usize, _: &[Obs], out: &mut Vec<f64>) -> bool {
        out.clear();
        out.extend_from_slice(&self.log_count);
        true
    }
}

struct FoldIn {
    model: MfModel,
    lambda: f64,
}

impl Predict for FoldIn {
    fn predict_all(&self, _: &RatingData, _: usize, support: &[Obs], out: &mut Vec<f64>) {
        let w = fold_in(&self.model, support, self.lambda);
        self.model.predict_all(&w, out);
    }
}

impl Predict for BayesModel {
    fn predict_all(&self, data: &RatingData, user: usize, support: &[Obs], out: &mut Vec<f64>) {
        BayesModel::predict_all(self, &data.users[user].features, support, out);
    }
}

struct MeluAt<'a> {
    melu: &'a Melu,
    lr: f64,
    steps: usize,
}

impl Predict for MeluAt<'_> {
    fn predict_all(&self, data: &RatingData, user: usize, support: &[Obs], out: &mut Vec<f64>) {
        self.melu
            .predict_all(data, user, support, self.lr, self.steps, out);
    }
}

/// Mean over budgets of the validation MAE of `p` (the selection criterion).
fn validation_mae(
    data: &RatingData,
    scale: (f64, f64),
    episodes: &[Episode],
    budgets: &[Budget],
    p: &dyn Predict,
) -> f64 {
    let mut out = Vec::new();
    let mut total = 0.0;
    let mut n = 0usize;
    for e in episodes {
        for &k in budgets {
            p.predict_all(data, e.user, e.support(k), &mut out);
            for q in &e.query {
                total += (out[q.item as usize].clamp(scale.0, scale.1) - q.rating).abs();
                n += 1;
            }
        }
    }
    total / n.max(1) as f64
}

/// Picks the candidate with the lowest validation MAE (the first on ties).
fn choose<T>(candidates: Vec<T>, score: impl Fn(&T) -> f64) -> T {
    let mut best: Option<(f64, T)> = None;
    for c in candidates {
        let s = score(&c);
        if best.as_ref().is_none_or(|(b, _)| s < *b) {
            best = Some((s, c));
        }
    }
    best.expect("at least one candidate").1
}

/// What one seed's run gives.
type SeedOutcome = Result<(SeedResult, Chosen), ColdStartError>;

/// Runs one seed: fit, choose on validation, evaluate on test.
fn run_seed(
    data: &RatingData,
    config: &BenchConfig,
    seed: u64,
    progress: &(dyn Fn(&str) + Sync),
) -> SeedOutcome {
    let start = Instant::now();
    let split = Split::draw(data, seed, config.fractions)?;
    let val = &split.validation;
    let budgets = &config.budgets;
    // The rating scale seen in training: predictions are clipped to it for the error metrics.
    let scale = split
        .train
        .iter()
        .flat_map(|&u| &data.users[u].ratings)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), o| {
            (lo.min(o.rating), hi.max(o.rating))
        });

    // Matrix factorisation: the ALS ridge weight and the fold-in weight on validation.
    let fits: Vec<(f64, MfModel)> = config
        .mf_lambdas
        .iter()
        .map(|&l| {
            let cfg = MfConfig {
                lambda_user: l,
                lambda_item: l,
                ..config.mf
            };
            (l, train_mf(data, &split.train, &cfg, seed))
        })
        .collect();
    let mut candidates = Vec::new();
    for (l, m) in &fits {
        for &f in &config.fold_lambdas {
            candidates.push((*l, f, m));
        }
    }
    let (mf_lambda, fold_lambda, mf_model) = choose(candidates, |(_, f, m)| {
        let p = FoldIn {
            model: (*m).clone(),
            lambda: *f,
        };
        validation_mae(data, scale, val, budgets, &p)
    });
    let mf_model = mf_model.clone();
    let mu = mf_model.mu;
    progress(&format!(
        "seed {seed}: MF fitted (lambda {mf_lambda}, fold-in {fold_lambda}) after {:.1}s",
        start.elapsed().as_secs_f64()
    ));

    let damping = choose(config.item_mean_dampings.clone(), |&b| {
        validation_mae(
            data,
            scale,
            val,
            budgets,
            &ItemMean::fit(data, &split.train, b, mu),
        )
    });

    let melu_model: Option<Melu> = config
        .runs("melu")
        .then(|| train_melu(data, &split.train, &mf_model, &config.melu, seed));
    let mut methods: Vec<(&str, Box<dyn Predict + '_>)> = Vec::new();
    methods.push(("global-mean", Box::new(GlobalMean(mu))));
    methods.push((
        "item-mean",
        Box::new(ItemMean::fit(data, &split.train, damping, mu)),
    ));
    methods.push((
        "popularity",
        Box::new(Popularity::fit(
            data,
            &split.train,
            ItemMean::fit(data, &split.train, damping, mu),
        )),
    ));
    let mut bayes_noise_sd = f64::NAN;
    let mut bayes_noise_scale = f64::NAN;
    let mut bayes_ranking = CatalogueRanking::default();
    let mut bayes_flat_ranking = CatalogueRanking::default();
    if config.runs("bayes-flat") {
        // The ablation: the same empirical Bayes without demographics in the prior mean.
        let flat = RatingData {
            users: data
                .users
                .iter()
                .map(|u| crate::data::User {
                    features: vec![1.0],
                    ..u.clone()
                })
                .collect(),
            user_feature_names: vec!["constant".into()],
            ..data.clone()
        };
        let model = choose(
            fits.iter()
                .map(|(_, mf)| {
                    let model = fit_bayes(&flat, &split.train, mf, &config.bayes);
                    scale_noise(&model, &config.bayes_noise_scales, |m| {
                        validation_mae(data, scale, val, budgets, &FlatBayes(m.clone()))
                    })
                })
                .collect(),
            |m| validation_mae(data, scale, val, budgets, &FlatBayes(m.clone())),
        );
        let ranked = choose_ranking(
            data,
            val,
            budgets,
            model,
            true,
            &config.bayes_cautions,
            &config.bayes_popularities,
        );
        bayes_flat_ranking = ranked.ranking;
        methods.push(("bayes-flat", Box::new(ranked)));
    }
    if config.runs("bayes") {
        let (model, scale) = choose(
            fits.iter()
                .map(|(_, mf)| {
                    let model = fit_bayes(data, &split.train, mf, &config.bayes);
                    let learned = model.prior.noise;
                    let model = scale_noise(&model, &config.bayes_noise_scales, |m| {
                        validation_mae(data, scale, val, budgets, m)
                    });
                    let scale = model.prior.noise / learned;
                    (model, scale)
                })
                .collect(),
            |(m, _)| validation_mae(data, scale, val, budgets, m),
        );
        bayes_noise_scale = scale;
        bayes_noise_sd = model.prior.noise.sqrt();
        let ranked = choose_ranking(
            data,
            val,
            budgets,
            model,
            false,
            &config.bayes_cautions,
            &config.bayes_popularities,
        );
        bayes_ranking = ranked.ranking;
        methods.push(("bayes", Box::new(ranked)));
        progress(&format!(
            "seed {seed}: Bayesian adjuster fitted after {:.1}s",
            start.elapsed().as_secs_f64()
        ));
    }
    let (mut melu_lr, mut melu_steps) = (f64::NAN, 0);
    if let Some(melu) = &melu_model {
        let (lr, steps) = choose(config.melu_local_grid.clone(), |&(lr, steps)| {
            let p = MeluAt { melu, lr, steps };
            validation_mae(data, scale, val, budgets, &p)
        });
        (melu_lr, melu_steps) = (lr, steps);
        methods.push(("melu", Box::new(MeluAt { melu, lr, steps })));
        progress(&format!(
            "seed {seed}: MeLU meta-trained after {:.1}s",
            start.elapsed().as_secs_f64()
        ));
    }
    methods.push((
        REFERENCE,
        Box::new(FoldIn {
            model: mf_model,
            lambda: fold_lambda,
        }),
    ));
    methods.retain(|(name, _)| config.runs(name));
    methods.sort_by_key(|(name, _)| METHODS.iter().position(|m| m == name));

    // Evaluation on the test episodes. The rating levels are those of the training ratings.
    let levels = RatingLevels::of(
        split
            .train
            .iter()
            .flat_map(|&u| data.users[u].ratings.iter().map(|o| o.rating)),
    );
    let mut results = Vec::new();
    let mut out = Vec::new();
    let mut rated = vec![false; data.items];
    let mut sums: Vec<Vec<MetricSums>> =
        vec![
            vec![MetricSums::clipped(scale.0, scale.1).with_levels(levels); budgets.len()];
            methods.len()
        ];
    for e in &split.test {
        mark_rated(data, e.user, &mut rated);
        let truth: Vec<f64> = e.query.iter().map(|q| q.rating).collect();
        for (m, (_, p)) in methods.iter().enumerate() {
            for (b, &k) in budgets.iter().enumerate() {
                let support = e.support(k);
                p.predict_all(data, e.user, support, &mut out);
                let predicted: Vec<f64> = e.query.iter().map(|q| out[q.item as usize]).collect();
                // A method with its own catalogue ranking scores the query items and their
                // competitors by it; the others rank by their predictions.
                let ranked: Vec<f64> = if p.catalogue_scores(data, e.user, support, &mut out) {
                    e.query.iter().map(|q| out[q.item as usize]).collect()
                } else {
                    predicted.clone()
                };
                let negatives: Vec<f64> = (0..data.items)
                    .filter(|&i| !rated[i])
                    .map(|i| out[i])
                    .collect();
                sums[m][b].add_user(&predicted, &truth, &ranked, &negatives, support.len());
            }
        }
    }
    for (m, (name, _)) in methods.iter().enumerate() {
        for (b, &k) in budgets.iter().enumerate() {
            results.push((name.to_string(), budget_label(k), sums[m][b].finish()));
        }
    }
    progress(&format!(
        "seed {seed}: done in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    Ok((
        SeedResult {
            seed,
            users: [split.train.len(), split.validation.len(), split.test.len()],
            results,
        },
        Chosen {
            seed,
            item_mean_damping: damping,
            mf_lambda,
            fold_lambda,
            melu_local_lr: melu_lr,
            melu_local_steps: melu_steps,
            bayes_noise_sd,
            bayes_noise_scale,
            bayes_ranking,
            bayes_flat_ranking,
        },
    ))
}

/// The model whose noise variance, scaled by one of `scales`, has the lowest validation score.
fn scale_noise(
    model: &BayesModel,
    scales: &[f64],
    score: impl Fn(&BayesModel) -> f64,
) -> BayesModel {
    let candidates: Vec<BayesModel> = scales
        .iter()
        .map(|s| {
            let mut m = model.clone();
            m.prior.noise *= s;
            m
        })
        .collect();
    choose(candidates, score)
}

/// The Bayesian adjuster fitted with a constant-only prior mean (it ignores demographics).
struct FlatBayes(BayesModel);

impl Predict for FlatBayes {
    fn predict_all(&self, _: &RatingData, _: usize, support: &[Obs], out: &mut Vec<f64>) {
        self.0.predict_all(&[1.0], support, out);
    }
}

/// Runs the whole benchmark. `progress` receives one line per milestone.
pub fn run_benchmark(
    data: &RatingData,
    config: &BenchConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, ColdStartError> {
    config.check()?;
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<SeedOutcome>>> =
        Mutex::new((0..config.seeds.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..config.threads.min(config.seeds.len()) {
            s.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = config.seeds.get(j) else {
                        break;
                    };
                    let r = run_seed(data, config, seed, progress);
                    if let Ok(mut slots) = slots.lock() {
                        slots[j] = Some(r);
                    }
                }
            });
        }
    });
    let slots = slots
        .into_inner()
        .map_err(|_| ColdStartError::Config("a worker thread panicked".into()))?;
    let mut per_seed = Vec::new();
    let mut chosen = Vec::new();
    for slot in slots {
        let (r, c) =
            slot.ok_or_else(|| ColdStartError::Config("a seed did not finish".into()))??;
        per_seed.push(r);
        chosen.push(c);
    }
    let (table, paired) = aggregate(&per_seed);
    Ok(Report {
        config: config.clone(),
        users: data.train_only_from,
        train_only_users: data.users.len() - data.train_only_from,
        items: data.items,
        table,
        paired,
        chosen,
        per_seed,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean and deviation per (method, budget, metric), and the paired comparison with
/// [`REFERENCE`].
fn aggregate(per_seed: &[SeedResult]) -> (Vec<Row>, Vec<Paired>) {
    let Some(first) = per_seed.first() else {
        return (Vec::new(), Vec::new());
    };
    let value = |s: &SeedResult, method: &str, budget: &str, metric: &str| -> f64 {
        s.results
            .iter()
            .find(|(m, b, _)| m == method && b == budget)
            .and_then(|(_, _, x)| {
                if metric == "support" {
                    Some(x.support)
                } else {
                    x.get(metric)
                }
            })
            .unwrap_or(f64::NAN)
    };
    let mut table = Vec::new();
    let mut paired = Vec::new();
    for (method, budget, _) in &first.results {
        let mut metrics = Vec::new();
        for name in METRIC_NAMES.iter().map(|(n, _)| *n).chain(["support"]) {
            let xs: Vec<f64> = per_seed
                .iter()
                .map(|s| value(s, method, budget, name))
                .collect();
            metrics.push((name.to_string(), Stat::of(&xs)));
        }
        table.push(Row {
            method: method.clone(),
            budget: budget.clone(),
            metrics,
        });
        if method == REFERENCE {
            continue;
        }
        for (name, higher_better) in METRIC_NAMES {
            let ours: Vec<f64> = per_seed
                .iter()
                .map(|s| value(s, method, budget, name))
                .collect();
            let reference: Vec<f64> = per_seed
                .iter()
                .map(|s| value(s, REFERENCE, budget, name))
                .collect();
            let wins = ours
                .iter()
                .zip(&reference)
                .filter(|(a, b)| if higher_better { a > b } else { a < b })
                .count();
            let d = paired_interval(&ours, &reference);
            paired.push(Paired {
                method: method.clone(),
                budget: budget.clone(),
                metric: name.to_string(),
                mean_diff: d.mean,
                sd_diff: d.sd,
                wins,
                seeds: d.n,
            });
        }
    }
    (table, paired)
}
