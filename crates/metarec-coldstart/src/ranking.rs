//! The Bayesian adjuster's ranking of the whole catalogue in the MovieLens benchmark
//! ([`crate::bench`]): [`RankedBayes`] scores the catalogue by a [`CatalogueRanking`], and
//! [`choose_ranking`] picks its weights on the validation users by full-catalogue HR@10, apart
//! from the rating predictions, which are chosen by MAE and do not change.

use crate::bayes::{BayesModel, CatalogueRanking};
use crate::bench::{Budget, Predict};
use crate::data::{Obs, RatingData};
use crate::metrics::MetricSums;
use crate::split::Episode;

/// The Bayesian adjuster with the catalogue ranking chosen for it; `flat` reads no demographics.
pub(crate) struct RankedBayes {
    pub(crate) model: BayesModel,
    pub(crate) flat: bool,
    pub(crate) ranking: CatalogueRanking,
}

impl RankedBayes {
    fn features<'a>(&self, data: &'a RatingData, user: usize) -> &'a [f64] {
        if self.flat {
            &[1.0]
        } else {
            &data.users[user].features
        }
    }
}

impl Predict for RankedBayes {
    fn predict_all(&self, data: &RatingData, user: usize, support: &[Obs], out: &mut Vec<f64>) {
        self.model
            .predict_all(self.features(data, user), support, out);
    }

    fn catalogue_scores(
        &self,
        data: &RatingData,
        user: usize,
        support: &[Obs],
        out: &mut Vec<f64>,
    ) -> bool {
        self.model
            .rank_all(self.features(data, user), support, self.ranking, out);
        true
    }
}

/// Chooses the adjuster's catalogue ranking on the validation episodes: the weights with the
/// highest full-catalogue HR@10, averaged over budgets (ties broken by NDCG@10, then by the
/// smaller weights, which come first). The rating predictions, chosen by MAE, do not change.
pub(crate) fn choose_ranking(
    data: &RatingData,
    episodes: &[Episode],
    budgets: &[Budget],
    model: BayesModel,
    flat: bool,
    cautions: &[f64],
    popularities: &[f64],
) -> RankedBayes {
    let mut ranked = RankedBayes {
        model,
        flat,
        ranking: CatalogueRanking::default(),
    };
    // The predictions and their deviations do not depend on the weights: compute them once
    // per episode and budget, then score every point of the grid from them.
    let mut rated = vec![false; data.items];
    let mut parts = Vec::new();
    for e in episodes {
        mark_rated(data, e.user, &mut rated);
        let truth: Vec<f64> = e.query.iter().map(|q| q.rating).collect();
        let unrated: Vec<usize> = (0..data.items).filter(|&i| !rated[i]).collect();
        for &k in budgets {
            let (mut mean, mut sd) = (Vec::new(), Vec::new());
            ranked.model.rank_parts(
                ranked.features(data, e.user),
                e.support(k),
                &mut mean,
                &mut sd,
            );
            parts.push((e, truth.clone(), unrated.clone(), mean, sd));
        }
    }
    let log_count = &ranked.model.item_log_count;
    let mut best: Option<((f64, f64), CatalogueRanking)> = None;
    let (mut scores, mut query, mut negatives) = (Vec::new(), Vec::new(), Vec::new());
    for &caution in cautions {
        for &popularity in popularities {
            let ranking = CatalogueRanking {
                caution,
                popularity,
            };
            let mut sums = MetricSums::default();
            for (e, truth, unrated, mean, sd) in &parts {
                scores.clear();
                scores.extend(
                    mean.iter()
                        .zip(sd)
                        .zip(log_count)
                        .map(|((m, s), c)| m + ranking.score(*s, *c)),
                );
                query.clear();
                query.extend(e.query.iter().map(|q| scores[q.item as usize]));
                negatives.clear();
                negatives.extend(unrated.iter().map(|&i| scores[i]));
                sums.add_user(&query, truth, &query, &negatives, 0);
            }
            let m = sums.finish();
            let score = (m.hr10, m.ndcg10);
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, ranking));
            }
        }
    }
    if let Some((_, r)) = best {
        ranked.ranking = r;
    }
    ranked
}

/// Marks in `rated` every item the user rated anywhere in the data.
pub(crate) fn mark_rated(data: &RatingData, user: usize, rated: &mut [bool]) {
    rated.fill(false);
    for o in &data.users[user].ratings {
        rated[o.item as usize] = true;
    }
}
