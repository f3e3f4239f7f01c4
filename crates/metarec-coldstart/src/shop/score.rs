//! How each method scores the catalogue for a new user from the models of one cutoff: the
//! neighbourhoods, titles, popularity, fold-in, the adjusters and the blend; and how a ranking
//! is measured.

use super::*;

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
pub(super) struct Scorer<'a> {
    pub(super) data: &'a ShopData,
    pub(super) fitted: &'a Fitted,
    /// `1 / sqrt(users of item)`, 0 for items nobody had.
    pub(super) inv_sqrt: Vec<f64>,
    /// `1 / sqrt(visits holding item)`, 0 for items in none.
    pub(super) inv_sqrt_baskets: Vec<f64>,
    /// Per item: its title's unit tf-idf vector as (word, weight).
    pub(super) title_vectors: Vec<SparseRow>,
    /// Per word: the items whose titles hold it, with the weight.
    pub(super) title_index: Vec<SparseRow>,
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
pub(super) fn support_obs(support: &[u32]) -> Vec<(u32, f64)> {
    support.iter().map(|&i| (i, 1.0)).collect()
}

/// `2^(-age / half_life)` for an age in milliseconds and a half-life in days.
pub(super) fn decay(age_ms: i64, half_life_days: f64) -> f64 {
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
    pub(super) fn new(data: &'a ShopData, fitted: &'a Fitted) -> Self {
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
    pub(super) fn recent_log_popularity(&self, half_life_days: Option<f64>) -> Vec<f64> {
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
    pub(super) fn neighbourhood(&self, support: &[u32], hood: Hood, out: &mut Vec<f64>) {
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
    pub(super) fn basket_knn(&self, support: &[u32], out: &mut Vec<f64>) {
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
    pub(super) fn title_knn(&self, support: &[u32], out: &mut Vec<f64>) {
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

    pub(super) fn popularity(&self, out: &mut Vec<f64>) {
        out.clear();
        out.extend_from_slice(&self.fitted.popularity);
    }

    /// Item-kNN: `sum_s cos(s, j)`, with `cos(s, j) = co(s, j) / sqrt(n_s n_j)` over the
    /// training users' distinct items.
    pub(super) fn knn(&self, support: &[u32], out: &mut Vec<f64>) {
        self.neighbourhood(support, Hood::COSINE, out);
    }

    pub(super) fn fold_in(&self, support: &[u32], lambda: f64, out: &mut Vec<f64>) {
        let w = self.fitted.als.fold_in(&support_obs(support), lambda);
        self.fitted.als.scores(&w, out);
    }

    /// The Bayesian adjuster's user vector: the posterior mean under the attribute prior with
    /// noise variance `noise`.
    pub(super) fn bayes_vector(&self, user: u32, support: &[u32], noise: f64) -> Vec<f64> {
        let x = self.fitted.attributes(self.data, user);
        let (gram, rhs) = self.fitted.als.support_system(&support_obs(support));
        let prior = HierPrior {
            noise,
            ..self.fitted.prior.clone()
        };
        prior.posterior(&x, &gram, &rhs).mean
    }

    pub(super) fn bayes(&self, user: u32, support: &[u32], noise: f64, out: &mut Vec<f64>) {
        let w = self.bayes_vector(user, support, noise);
        self.fitted.als.scores(&w, out);
    }

    /// The gradient adjuster: from the prior mean `w0 = A x_u`, `steps` preconditioned gradient
    /// steps of relative size `rate` on the support's weighted squared loss plus
    /// `lambda |w - w0|^2`.
    pub(super) fn gradient(
        &self,
        user: u32,
        support: &[u32],
        rate: f64,
        steps: usize,
        out: &mut Vec<f64>,
    ) {
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
pub(super) struct BlendParts {
    pub(super) bayes: Vec<f64>,
    pub(super) knn: Vec<f64>,
    pub(super) basket: Vec<f64>,
    pub(super) title: Vec<f64>,
}

/// A user's standardised component scores: the Bayesian adjuster's, the tuned neighbourhood's,
/// basket-kNN's and title-kNN's.
pub(super) fn blend_parts(scorer: &Scorer, u: &ColdUser, noise: f64, hood: Hood) -> BlendParts {
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
pub(super) fn blend(parts: &BlendParts, log_pop: &[f64], w: BlendWeights, out: &mut Vec<f64>) {
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
pub(super) fn measure(
    scores: &[f64],
    user: &ColdUser,
    mask: &mut [u8],
    cand: &mut Vec<f64>,
) -> TopN {
    let mut relevant = Vec::with_capacity(scores.len());
    candidates(scores, user, mask, cand, &mut relevant);
    top_n(cand, &relevant)
}

/// The catalogue minus the support: each candidate's score into `cand`, and whether it is a query
/// item into `relevant`. `mask` is all zeros on entry and on return.
pub(super) fn candidates(
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
