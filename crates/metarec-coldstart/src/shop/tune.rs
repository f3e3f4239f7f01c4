//! The benchmark's settings, and choosing hyperparameters on validation users (and the blend's
//! ceiling on the new users).

use super::score::{BlendParts, candidates};
use super::*;

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
    pub(super) fn check(&self) -> Result<(), ColdStartError> {
        let bad = |m: String| Err(ColdStartError::Config(m));
        if self.ceiling && !self.runs("bayes-knn") {
            return bad(
                "the ceiling is bayes-knn's: include bayes-knn in the methods to measure it".into(),
            );
        }
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

    pub(super) fn runs(&self, method: &str) -> bool {
        method == SHOP_REFERENCE || self.methods.iter().any(|m| m == method)
    }
}

/// Validation NDCG@10 of scores made by `score` for each user.
pub(super) fn mean_ndcg(
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

/// The factorisation of `grid` with the highest validation score `score(als)` (the first on
/// ties), with a progress line for each naming the score as `what`.
pub(crate) fn choose_factorisation(
    grid: &[ImplicitConfig],
    what: &str,
    start: Instant,
    progress: &dyn Fn(&str),
    mut score: impl FnMut(&ImplicitConfig) -> f64,
) -> ImplicitConfig {
    let mut top: Option<(f64, ImplicitConfig)> = None;
    for (j, als) in grid.iter().enumerate() {
        let s = score(als);
        progress(&format!(
            "validation factorisation {}/{} (dim {}, lambda {}, alpha {}): {what} {s:.4} after {:.1}s",
            j + 1,
            grid.len(),
            als.dim,
            als.lambda,
            als.alpha,
            start.elapsed().as_secs_f64()
        ));
        if top.as_ref().is_none_or(|(b, _)| s > *b) {
            top = Some((s, *als));
        }
    }
    top.map_or(grid[0], |(_, c)| c)
}

/// The tuned neighbourhood's settings with the best mean NDCG@10 on `users`.
pub(super) fn best_hood(
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
pub(super) fn blend_grid(config: &ShopBenchConfig) -> Vec<BlendWeights> {
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
pub(super) fn blend_ceiling(
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
pub(super) fn choose_at_k(
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
