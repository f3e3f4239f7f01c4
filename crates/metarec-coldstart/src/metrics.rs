//! Query-set and full-catalogue metrics, [`MetricSums`], their accumulator over users, and the
//! summaries both cold-start benchmarks share: [`Stat`] (mean and deviation), [`Interval`] (a
//! mean with its 95% interval) and [`paired_interval`] (differences paired by unit).
//!
//! Ranking metrics treat tied scores fairly: the value is the expectation under a uniformly random
//! order among ties, computed exactly, so a constant predictor earns the average ranking rather
//! than an arbitrary best or worst one. [`top_n`] gives the binary-relevance metrics of one
//! ranking of a whole catalogue (NDCG@10, HR@10, recall@20, MRR) that the shop benchmark reports.

use serde::Serialize;

/// A rating at least this high is relevant (P@5, HR@10, NDCG@10).
pub const RELEVANT: f64 = 4.0;

/// Groups the positions `0..n` of a ranking by descending score into runs of tied scores; returns
/// `(start, end)` position ranges and the item order.
fn tie_groups(scores: &[f64]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut groups = Vec::new();
    let mut start = 0;
    for p in 1..=order.len() {
        if p == order.len() || scores[order[p]] != scores[order[start]] {
            groups.push((start, p));
            start = p;
        }
    }
    (order, groups)
}

/// Expected sum of `gain(item) * weight(position)` over the top `k` positions when items are
/// ranked by descending `scores` with ties in random order: every position of a tie group gets
/// the group's mean gain.
fn expected_top_k(scores: &[f64], gains: &[f64], k: usize, weight: impl Fn(usize) -> f64) -> f64 {
    let (order, groups) = tie_groups(scores);
    expected_top_k_grouped(&order, &groups, gains, k, weight)
}

/// [`expected_top_k`] on an order and tie groups already computed.
fn expected_top_k_grouped(
    order: &[usize],
    groups: &[(usize, usize)],
    gains: &[f64],
    k: usize,
    weight: impl Fn(usize) -> f64,
) -> f64 {
    let mut total = 0.0;
    for &(start, end) in groups {
        if start >= k {
            break;
        }
        let mean_gain =
            order[start..end].iter().map(|&i| gains[i]).sum::<f64>() / (end - start) as f64;
        for p in start..end.min(k) {
            total += mean_gain * weight(p);
        }
    }
    total
}

fn discount(position: usize) -> f64 {
    1.0 / ((position + 2) as f64).log2()
}

/// Graded nDCG@k of the items ranked by `scores`, gain `2^rating - 1`, normalised by the ideal
/// order of the true ratings. Zero when no item has a positive gain.
pub fn ndcg_at(scores: &[f64], ratings: &[f64], k: usize) -> f64 {
    let gains: Vec<f64> = ratings.iter().map(|r| r.exp2() - 1.0).collect();
    let dcg = expected_top_k(scores, &gains, k, discount);
    let mut ideal = gains.clone();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(p, g)| g * discount(p))
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// Precision@k: the share of the top `k` (by `scores`) rated at least [`RELEVANT`]. The
/// denominator is `k` even when fewer items are ranked.
pub fn precision_at(scores: &[f64], ratings: &[f64], k: usize) -> f64 {
    let rel: Vec<f64> = ratings
        .iter()
        .map(|&r| f64::from(u8::from(r >= RELEVANT)))
        .collect();
    expected_top_k(scores, &rel, k, |_| 1.0) / k as f64
}

/// Hit rate and NDCG at `k` of one relevant item with score `score` ranked among `negatives`:
/// with `g` negatives scoring higher and `t` tied, its rank is uniform on `g+1 ..= g+t+1`; the
/// result is the expectation of `[rank <= k]` and of `[rank <= k] / log2(rank + 1)`.
pub fn catalogue_hit(score: f64, negatives: &[f64], k: usize) -> (f64, f64) {
    let greater = negatives.iter().filter(|&&s| s > score).count();
    let tied = negatives.iter().filter(|&&s| s == score).count();
    let mut hit = 0.0;
    let mut gain = 0.0;
    for rank in greater + 1..=(greater + tied + 1).min(k) {
        hit += 1.0;
        gain += 1.0 / ((rank + 1) as f64).log2();
    }
    let n = (tied + 1) as f64;
    (hit / n, gain / n)
}

/// The levels a rating takes (MovieLens: 1 to 5 stars), for the prediction that suits absolute
/// error.
///
/// The point that minimises the expected absolute error under a predictive distribution is its
/// median, and when ratings are whole levels the median is a level: a real-valued prediction
/// between two levels is never the best answer for MAE. The rating models here (MF, the
/// Bayesian adjuster) predict a rating with Gaussian noise around it; read as a rating rounded
/// to the nearest level, the predictive distribution's median is the level nearest the
/// prediction, whatever the noise. So `mae_rounded` measures every method's predictions
/// rounded to the nearest level: a rule with nothing to fit, the same for every method.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingLevels {
    /// The levels, ascending.
    pub levels: Vec<f64>,
}

impl RatingLevels {
    /// The distinct values of `ratings`, ascending (NaN left out).
    pub fn of(ratings: impl IntoIterator<Item = f64>) -> RatingLevels {
        let mut levels: Vec<f64> = ratings.into_iter().filter(|r| !r.is_nan()).collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        RatingLevels { levels }
    }

    /// The level nearest `prediction` (the lower one when it is halfway; the prediction itself
    /// when there are no levels).
    pub fn nearest(&self, prediction: f64) -> f64 {
        let above = self.levels.partition_point(|l| *l < prediction);
        match (
            above.checked_sub(1).map(|i| self.levels[i]),
            self.levels.get(above),
        ) {
            (Some(low), Some(&high)) => {
                if prediction - low <= high - prediction {
                    low
                } else {
                    high
                }
            }
            (Some(low), None) => low,
            (None, Some(&high)) => high,
            (None, None) => prediction,
        }
    }
}

/// Sums of the per-user metrics of one method at one support budget on one split.
///
/// Errors are measured on predictions clipped to the rating scale when one is set (a rating
/// outside it is certainly wrong); rankings use the raw predictions, whose order clipping would
/// only blur.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSums {
    scale: Option<(f64, f64)>,
    levels: Option<RatingLevels>,
    abs_error: f64,
    rounded_abs_error: f64,
    sq_error: f64,
    ratings: usize,
    ndcg3: f64,
    ndcg5: f64,
    p5: f64,
    users: usize,
    hr10: f64,
    ndcg10: f64,
    ranked_users: usize,
    support: usize,
}

/// The metrics of one method at one budget on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Mean absolute error over all query ratings.
    pub mae: f64,
    /// Mean absolute error of the predictions rounded to the nearest rating level
    /// ([`RatingLevels`]; equal to `mae` where no levels are set).
    pub mae_rounded: f64,
    /// Root mean squared error over all query ratings.
    pub rmse: f64,
    /// Mean over users of graded nDCG@3 of the query set.
    pub ndcg3: f64,
    /// Mean over users of graded nDCG@5 of the query set.
    pub ndcg5: f64,
    /// Mean over users of precision@5 of the query set.
    pub p5: f64,
    /// Mean over users (with at least one relevant query item) of the mean hit rate@10 of their
    /// relevant query items against the catalogue items they never rated.
    pub hr10: f64,
    /// As `hr10`, for NDCG@10.
    pub ndcg10: f64,
    /// Mean support size used.
    pub support: f64,
}

/// Names of the [`Metrics`] fields in table order, and whether larger is better.
pub const METRIC_NAMES: [(&str, bool); 8] = [
    ("mae", false),
    ("mae_rounded", false),
    ("rmse", false),
    ("ndcg3", true),
    ("ndcg5", true),
    ("p5", true),
    ("hr10", true),
    ("ndcg10", true),
];

impl Metrics {
    /// The value of a metric by its name in [`METRIC_NAMES`].
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "mae" => self.mae,
            "mae_rounded" => self.mae_rounded,
            "rmse" => self.rmse,
            "ndcg3" => self.ndcg3,
            "ndcg5" => self.ndcg5,
            "p5" => self.p5,
            "hr10" => self.hr10,
            "ndcg10" => self.ndcg10,
            _ => return None,
        })
    }
}

impl MetricSums {
    /// An empty accumulator clipping predictions to `[low, high]` for the error metrics.
    pub fn clipped(low: f64, high: f64) -> Self {
        MetricSums {
            scale: Some((low, high)),
            ..MetricSums::default()
        }
    }

    /// The same accumulator, also measuring the error of predictions rounded to the nearest of
    /// `levels` (`mae_rounded`).
    pub fn with_levels(self, levels: RatingLevels) -> Self {
        MetricSums {
            levels: Some(levels),
            ..self
        }
    }

    /// Adds one user's episode: predictions and true ratings of the query set, the query items'
    /// catalogue ranking scores (`ranked`; a method that ranks by its predictions passes
    /// `predicted` again), the ranking scores of the relevant query items' competitors
    /// (`negatives`: the items the user never rated), and the support size used.
    pub fn add_user(
        &mut self,
        predicted: &[f64],
        truth: &[f64],
        ranked: &[f64],
        negatives: &[f64],
        support: usize,
    ) {
        for (p, t) in predicted.iter().zip(truth) {
            let p = self.scale.map_or(*p, |(lo, hi)| p.clamp(lo, hi));
            let rounded = self.levels.as_ref().map_or(p, |l| l.nearest(p));
            self.rounded_abs_error += (rounded - t).abs();
            self.abs_error += (p - t).abs();
            self.sq_error += (p - t).powi(2);
        }
        self.ratings += truth.len();
        self.ndcg3 += ndcg_at(predicted, truth, 3);
        self.ndcg5 += ndcg_at(predicted, truth, 5);
        self.p5 += precision_at(predicted, truth, 5);
        self.users += 1;
        self.support += support;
        let mut hr = 0.0;
        let mut nd = 0.0;
        let mut relevant = 0;
        for (p, t) in ranked.iter().zip(truth) {
            if *t >= RELEVANT {
                let (h, n) = catalogue_hit(*p, negatives, 10);
                hr += h;
                nd += n;
                relevant += 1;
            }
        }
        if relevant > 0 {
            self.hr10 += hr / f64::from(relevant);
            self.ndcg10 += nd / f64::from(relevant);
            self.ranked_users += 1;
        }
    }

    /// The metrics (zeros for an empty accumulator).
    pub fn finish(&self) -> Metrics {
        let per = |s: f64, n: usize| if n > 0 { s / n as f64 } else { 0.0 };
        Metrics {
            mae: per(self.abs_error, self.ratings),
            mae_rounded: per(self.rounded_abs_error, self.ratings),
            rmse: per(self.sq_error, self.ratings).sqrt(),
            ndcg3: per(self.ndcg3, self.users),
            ndcg5: per(self.ndcg5, self.users),
            p5: per(self.p5, self.users),
            hr10: per(self.hr10, self.ranked_users),
            ndcg10: per(self.ndcg10, self.ranked_users),
            support: per(self.support as f64, self.users),
        }
    }
}

/// A mean and standard deviation (over seeds, users or any other units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (0 for one unit).
    pub sd: f64,
}

impl Stat {
    /// Mean and sample standard deviation of `x` (NaN mean for no units).
    pub fn of(x: &[f64]) -> Stat {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let sd = if x.len() > 1 {
            (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Stat { mean, sd }
    }
}

/// A mean over independent units with its normal-approximation 95% interval
/// `mean +- 1.96 sd / sqrt(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation of the units.
    pub sd: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
    /// Units averaged.
    pub n: usize,
}

impl Interval {
    /// The mean of `x` with its 95% interval (a point interval for one unit; NaN for none).
    pub fn of(x: &[f64]) -> Interval {
        let st = Stat::of(x);
        let half = if x.is_empty() {
            f64::NAN
        } else {
            1.96 * st.sd / (x.len() as f64).sqrt()
        };
        Interval {
            mean: st.mean,
            sd: st.sd,
            low: st.mean - half,
            high: st.mean + half,
            n: x.len(),
        }
    }

    /// Whether the interval lies wholly above or wholly below zero.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The mean of the differences `a[j] - b[j]` of two methods measured on the same units (seeds,
/// users), with its 95% interval: pairing removes the variation between units that both share,
/// which is why it separates methods far more sharply than two marginal intervals. Pairs with a
/// NaN on either side are left out.
pub fn paired_interval(a: &[f64], b: &[f64]) -> Interval {
    let diffs: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x - y)
        .filter(|d| !d.is_nan())
        .collect();
    Interval::of(&diffs)
}

/// Binary-relevance metrics of one ranking of a whole catalogue (the shop benchmark's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TopN {
    /// NDCG@10 with binary gains, normalised by the ideal DCG of `min(10, relevant)` hits.
    pub ndcg10: f64,
    /// Whether any relevant item is in the top 10 (its probability under random tie order).
    pub hr10: f64,
    /// Relevant items in the top 20 over `min(20, relevant)`.
    pub recall20: f64,
    /// The reciprocal rank of the first relevant item.
    pub mrr: f64,
}

/// Names of the [`TopN`] fields in table order (all larger-is-better).
pub const TOP_N_NAMES: [&str; 4] = ["ndcg10", "hr10", "recall20", "mrr"];

impl TopN {
    /// The value of a metric by its name in [`TOP_N_NAMES`].
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "ndcg10" => self.ndcg10,
            "hr10" => self.hr10,
            "recall20" => self.recall20,
            "mrr" => self.mrr,
            _ => return None,
        })
    }
}

/// [`TopN`] of candidates ranked by descending `scores`, `relevant[j]` saying whether candidate
/// `j` is relevant; ties count at their expected value under a uniformly random order, exactly.
/// All zeros when nothing is relevant.
pub fn top_n(scores: &[f64], relevant: &[bool]) -> TopN {
    let count = relevant.iter().filter(|&&r| r).count();
    if count == 0 || scores.len() != relevant.len() {
        return TopN::default();
    }
    let gains: Vec<f64> = relevant.iter().map(|&r| f64::from(u8::from(r))).collect();
    let (order, groups) = tie_groups(scores);
    let dcg = expected_top_k_grouped(&order, &groups, &gains, 10, discount);
    let idcg: f64 = (0..count.min(10)).map(discount).sum();
    let hits20 = expected_top_k_grouped(&order, &groups, &gains, 20, |_| 1.0);
    let mut hr10 = 0.0;
    let mut mrr = 0.0;
    let mut hit_open = true;
    let mut rank_open = true;
    for &(start, end) in &groups {
        let t = end - start;
        let r = order[start..end].iter().filter(|&&i| relevant[i]).count();
        if r == 0 {
            continue;
        }
        if hit_open && start < 10 {
            // The chance that none of the `m` slots of this group inside the top 10 holds a
            // relevant item: drawing `m` of `t` without replacement, all from the `t - r` others.
            let m = (10 - start).min(t);
            let mut none = 1.0;
            for j in 0..m {
                none *= (t - r).saturating_sub(j) as f64 / (t - j) as f64;
            }
            hr10 = 1.0 - none;
            hit_open = false;
        }
        if rank_open {
            // The first relevant item's place `j` in a random order of the group:
            // P(j) = P(the first j are irrelevant) * r / (t - j).
            let mut before = 1.0;
            for j in 0..=(t - r) {
                mrr += before * r as f64 / (t - j) as f64 / (start + j + 1) as f64;
                before *= (t - r - j) as f64 / (t - j) as f64;
            }
            rank_open = false;
        }
        if !hit_open && !rank_open {
            break;
        }
    }
    TopN {
        ndcg10: dcg / idcg,
        hr10,
        recall20: hits20 / count.min(20) as f64,
        mrr,
    }
}

/// [`TopN::ndcg10`] of [`top_n`] alone, in time linear in the candidates instead of a full
/// sort: only the candidates above the tenth score and the tie group at it can reach the top 10,
/// so only they are ordered. Choosing hyperparameters ranks the catalogue for every user at every
/// setting of a grid, and the sort dominated that time. Equal to `top_n(..).ndcg10` bit for bit.
pub fn ndcg10(scores: &[f64], relevant: &[bool]) -> f64 {
    const K: usize = 10;
    let count = relevant.iter().filter(|&&r| r).count();
    if count == 0 || scores.len() != relevant.len() {
        return 0.0;
    }
    if scores.len() <= K {
        return top_n(scores, relevant).ndcg10;
    }
    let mut copy = scores.to_vec();
    let (_, &mut tenth, _) = copy.select_nth_unstable_by(K - 1, |a, b| b.total_cmp(a));
    // The candidates that come before every other one in `tie_groups`' order, kept in index
    // order so that the sort below (stable, like `tie_groups`') orders them as the full sort does.
    let keep: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] == tenth || scores[i].total_cmp(&tenth).is_gt())
        .collect();
    let head: Vec<f64> = keep.iter().map(|&i| scores[i]).collect();
    if head.len() < K {
        // Only possible with NaN scores, which no tie group holds; take the exact long way.
        return top_n(scores, relevant).ndcg10;
    }
    let gains: Vec<f64> = keep
        .iter()
        .map(|&i| f64::from(u8::from(relevant[i])))
        .collect();
    let (order, groups) = tie_groups(&head);
    let dcg = expected_top_k_grouped(&order, &groups, &gains, K, discount);
    let idcg: f64 = (0..count.min(K)).map(discount).sum();
    dcg / idcg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ndcg10_equals_the_full_sorts_bit_for_bit() {
        use rand::Rng as _;
        let mut rng = metarec_core::rng_for(5, 0);
        for case in 0..2000 {
            let n = rng.random_range(1..60usize);
            // Few distinct values make ties at the tenth place common.
            let levels = rng.random_range(1..6u32);
            let scores: Vec<f64> = (0..n)
                .map(|_| match rng.random_range(0..levels + 2) {
                    0 => 0.0,
                    1 => -0.0,
                    l => f64::from(l) * 0.25,
                })
                .collect();
            let relevant: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
            let full = top_n(&scores, &relevant).ndcg10;
            let fast = ndcg10(&scores, &relevant);
            assert_eq!(
                full.to_bits(),
                fast.to_bits(),
                "case {case}: {scores:?} {relevant:?}"
            );
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn ndcg_matches_a_hand_computed_ranking() {
        // Scores rank the items b, c, a; true ratings a=5, b=3, c=4.
        let scores = [0.1, 0.9, 0.5];
        let ratings = [5.0, 3.0, 4.0];
        // Gains 31, 7, 15. DCG@3 = 7/log2(2) + 15/log2(3) + 31/log2(4).
        let dcg = 7.0 + 15.0 / 3f64.log2() + 31.0 / 2.0;
        let idcg = 31.0 + 15.0 / 3f64.log2() + 7.0 / 2.0;
        close(ndcg_at(&scores, &ratings, 3), dcg / idcg);
        // At k = 1 only the top item counts: 7 / 31.
        close(ndcg_at(&scores, &ratings, 1), 7.0 / 31.0);
        // The ideal order gives 1.
        close(ndcg_at(&ratings, &ratings, 3), 1.0);
    }

    #[test]
    fn ties_count_as_the_average_order() {
        // Two items tied at the top, ratings 5 and 1: at k = 1 the expected gain is (31 + 1) / 2.
        close(ndcg_at(&[1.0, 1.0], &[5.0, 1.0], 1), 16.0 / 31.0);
        // Precision@1 of the same: one relevant in a tie of two, half a hit.
        close(precision_at(&[1.0, 1.0], &[5.0, 1.0], 1), 0.5);
    }

    #[test]
    fn precision_counts_relevant_items_in_the_top_k() {
        let scores = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        let ratings = [4.0, 3.0, 5.0, 4.0, 1.0, 5.0];
        // Top 5: ratings 4, 3, 5, 4, 1 -> three relevant.
        close(precision_at(&scores, &ratings, 5), 3.0 / 5.0);
    }

    #[test]
    fn catalogue_hit_rate_follows_the_rank() {
        // Rank 3 (two negatives above): hit, gain 1 / log2(4) = 0.5.
        let (h, n) = catalogue_hit(0.5, &[0.9, 0.8, 0.1, 0.2], 10);
        close(h, 1.0);
        close(n, 0.5);
        // Eleven negatives above: rank 12, a miss.
        let (h, n) = catalogue_hit(0.0, &[1.0; 11], 10);
        close(h, 0.0);
        close(n, 0.0);
        // Tied with 19 negatives and nothing above: rank uniform on 1..=20, hit with chance 1/2.
        let (h, n) = catalogue_hit(1.0, &[1.0; 19], 10);
        close(h, 0.5);
        let expected: f64 = (1..=10).map(|r| 1.0 / ((r + 1) as f64).log2()).sum::<f64>() / 20.0;
        close(n, expected);
    }

    #[test]
    fn sums_pool_errors_over_ratings_and_rankings_over_users() {
        let mut s = MetricSums::default();
        // User 1: errors 1 and 0; user 2: error 2.
        s.add_user(&[4.0, 3.0], &[5.0, 3.0], &[4.0, 3.0], &[0.0], 4);
        s.add_user(&[1.0], &[3.0], &[1.0], &[0.0], 2);
        let m = s.finish();
        close(m.mae, 3.0 / 3.0);
        close(m.rmse, (5.0f64 / 3.0).sqrt());
        close(m.support, 3.0);
        // Only user 1 has a relevant item (rated 5, score 4 above the single negative 0).
        close(m.hr10, 1.0);
        close(m.ndcg10, 1.0);
    }

    #[test]
    fn errors_are_measured_on_clipped_predictions_and_rankings_on_raw_ones() {
        let mut s = MetricSums::clipped(1.0, 5.0);
        // 6.5 clips to 5 (error 0 against 5); 0.2 clips to 1 (error 1 against 2).
        s.add_user(&[6.5, 0.2], &[5.0, 2.0], &[6.5, 0.2], &[5.5], 1);
        let m = s.finish();
        close(m.mae, 0.5);
        // The raw 6.5 outranks the negative at 5.5: rank 1.
        close(m.hr10, 1.0);
        close(m.ndcg10, 1.0);
    }

    #[test]
    fn rounded_errors_round_the_clipped_prediction_to_the_nearest_level() {
        let levels = RatingLevels::of([3.0, 1.0, 5.0, 2.0, 4.0, 3.0, f64::NAN]);
        assert_eq!(levels.levels, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(levels.nearest(3.49), 3.0);
        assert_eq!(levels.nearest(3.51), 4.0);
        // Halfway goes to the lower level, and a prediction beyond the ends to the end.
        assert_eq!(levels.nearest(2.5), 2.0);
        assert_eq!(levels.nearest(-7.0), 1.0);
        assert_eq!(levels.nearest(9.0), 5.0);
        assert_eq!(RatingLevels::of([]).nearest(2.7), 2.7);
        let mut s = MetricSums::clipped(1.0, 5.0).with_levels(levels);
        // 3.6 rounds to 4 (error 0 against 4, 0.4 unrounded); 6.5 clips to 5 (error 1 against
        // 4 either way); 1.4 rounds to 1 (error 0 against 1, 0.4 unrounded).
        s.add_user(&[3.6, 6.5, 1.4], &[4.0, 4.0, 1.0], &[0.0; 3], &[], 1);
        let m = s.finish();
        close(m.mae, 1.8 / 3.0);
        close(m.mae_rounded, 1.0 / 3.0);
        let mut s = MetricSums::clipped(1.0, 5.0).with_levels(RatingLevels::of([1.0, 5.0]));
        s.add_user(&[3.6], &[4.0], &[0.0], &[], 1);
        close(s.finish().mae_rounded, 1.0);
        // Without levels the rounded error is the plain one.
        let mut s = MetricSums::clipped(1.0, 5.0);
        s.add_user(&[3.6], &[4.0], &[0.0], &[], 1);
        let m = s.finish();
        close(m.mae_rounded, m.mae);
    }

    #[test]
    fn the_nearest_level_is_the_median_of_a_rounded_gaussian_rating() {
        // A rating drawn as N(m, sd^2) and rounded to the nearest of 1..5: the level with the
        // lowest expected absolute error is the nearest level to m, whatever the spread, which
        // is why `mae_rounded` rounds (and why a prediction between levels loses).
        let levels = RatingLevels::of([1.0, 2.0, 3.0, 4.0, 5.0]);
        let density = |y: f64, m: f64, sd: f64| {
            (-0.5 * ((y - m) / sd).powi(2)).exp() / (sd * (2.0 * std::f64::consts::PI).sqrt())
        };
        for m in [1.2, 2.45, 2.55, 3.3, 3.8, 4.49, 4.9] {
            for sd in [0.3, 0.9, 1.5] {
                // The probability of each level by the midpoint rule on a fine grid.
                let mut p = [0.0; 5];
                let step = 1e-3;
                let mut y = m - 10.0 * sd;
                while y < m + 10.0 * sd {
                    let level = levels.nearest(y + 0.5 * step);
                    p[level as usize - 1] += density(y + 0.5 * step, m, sd) * step;
                    y += step;
                }
                let expected_error = |x: f64| {
                    (0..5)
                        .map(|k| p[k] * (x - (k + 1) as f64).abs())
                        .sum::<f64>()
                };
                let best = (1..=5)
                    .map(|k| k as f64)
                    .min_by(|a, b| expected_error(*a).total_cmp(&expected_error(*b)))
                    .unwrap();
                assert_eq!(best, levels.nearest(m), "m {m} sd {sd}");
                // No point between the levels does better than the best level.
                for x in [1.5, 2.5, 3.5, 4.5, m] {
                    assert!(
                        expected_error(x) >= expected_error(best) - 1e-9,
                        "m {m} x {x}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_catalogue_metrics_read_the_ranking_scores_not_the_predictions() {
        let mut s = MetricSums::default();
        // Predicted 5 (above the negative at 4.5), but ranked 1 (below it): rank 2.
        s.add_user(&[5.0], &[5.0], &[1.0], &[4.5], 1);
        let m = s.finish();
        close(m.mae, 0.0);
        close(m.hr10, 1.0);
        close(m.ndcg10, 1.0 / 3f64.log2());
        let mut s = MetricSums::default();
        let negatives = vec![4.5; 10];
        s.add_user(&[5.0], &[5.0], &[1.0], &negatives, 1);
        // Below ten negatives: a miss, though the prediction is above them all.
        close(s.finish().hr10, 0.0);
    }

    #[test]
    fn top_n_matches_a_hand_computed_ranking() {
        // Six candidates ranked 0..5 by score; relevant at ranks 2 and 4 (positions 1 and 3).
        let scores = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        let relevant = [false, true, false, true, false, false];
        let m = top_n(&scores, &relevant);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        close(m.ndcg10, dcg / idcg);
        close(m.hr10, 1.0);
        close(m.recall20, 1.0);
        close(m.mrr, 0.5);
        // Nothing relevant: zeros, not NaN.
        assert_eq!(top_n(&scores, &[false; 6]), TopN::default());
    }

    #[test]
    fn top_n_outside_the_cut_is_a_miss_and_ties_average() {
        // Eleven irrelevant items above the one relevant: rank 12.
        let mut scores = vec![2.0; 11];
        scores.push(1.0);
        let mut relevant = vec![false; 11];
        relevant.push(true);
        let m = top_n(&scores, &relevant);
        close(m.ndcg10, 0.0);
        close(m.hr10, 0.0);
        close(m.recall20, 1.0);
        close(m.mrr, 1.0 / 12.0);
        // Twenty tied candidates, one relevant: its rank is uniform on 1..=20.
        let scores = vec![0.0; 20];
        let mut relevant = vec![false; 20];
        relevant[7] = true;
        let m = top_n(&scores, &relevant);
        close(m.hr10, 0.5);
        close(m.recall20, 1.0);
        let mrr: f64 = (1..=20).map(|r| 1.0 / f64::from(r)).sum::<f64>() / 20.0;
        close(m.mrr, mrr);
        let ndcg: f64 = (1..=10).map(|r| 1.0 / ((r + 1) as f64).log2()).sum::<f64>() / 20.0;
        close(m.ndcg10, ndcg);
        // Two relevant among 12 tied: P(neither in the top 10) = (10/12)(9/11)...; by hand
        // C(10, 10) / C(12, 10) = 1 / 66.
        let scores = vec![0.0; 12];
        let mut relevant = vec![false; 12];
        relevant[0] = true;
        relevant[5] = true;
        close(top_n(&scores, &relevant).hr10, 1.0 - 1.0 / 66.0);
    }

    #[test]
    fn paired_intervals_cancel_what_units_share() {
        // Method a is b plus 0.1 on every unit, while units differ widely: the paired
        // difference is exactly 0.1 with no spread, the marginal intervals overlap.
        let b = [0.1, 0.5, 0.9, 0.3];
        let a: Vec<f64> = b.iter().map(|x| x + 0.1).collect();
        let d = paired_interval(&a, &b);
        close(d.mean, 0.1);
        assert!(d.excludes_zero() && (d.high - d.low).abs() < 1e-12);
        let (ia, ib) = (Interval::of(&a), Interval::of(&b));
        assert!(ia.low < ib.high);
        // Sample 1..=5: mean 3, sd sqrt(2.5), half-width 1.96 sqrt(2.5 / 5).
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        close(i.high - i.mean, 1.96 * (0.5f64).sqrt());
    }
}
