//! Exploration: pure functions from item scores to a slate with its propensities.
//!
//! Learners produce scores; these functions turn scores into a [`SlateChoice`] (greedy,
//! epsilon-greedy, uniform, Plackett-Luce) and say with which probability each item was put at
//! its position, so every decision can be logged for off-policy evaluation. They are kept apart
//! from learners, as Vowpal Wabbit keeps its `explore` library, so each is tested once.
//!
//! Propensities are per-position marginals: `propensities[j]` is the probability that the item
//! shown at position `j` would be shown at position `j`. Greedy, uniform and epsilon-greedy give
//! them in closed form. For Plackett-Luce only position 0 and the whole slate have a closed form;
//! the other positions are estimated from seeded Monte Carlo draws ([`monte_carlo_marginals`]),
//! as Open Bandit Pipeline does for Thompson sampling.

use crate::ids::ItemId;
use rand::{Rng as _, SeedableRng};

/// The random number generator used everywhere in metarec: small, fast, and reproducible across
/// platforms for a given seed.
pub type Rng = rand_pcg::Pcg64Mcg;

/// FNV-1a of a string: a hash that is the same in every process and on every platform (std's
/// hasher is randomised per process), for seeding streams by name and hashing tokens.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A generator for `(seed, stream)`: independent streams from one seed, so that, for example,
/// the same simulated user sees the same random draws under every policy (common random numbers).
pub fn rng_for(seed: u64, stream: u64) -> Rng {
    // SplitMix64 spreads nearby (seed, stream) pairs over the whole state space.
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let hi = splitmix(seed ^ splitmix(stream));
    let lo = splitmix(hi ^ stream.rotate_left(17));
    Rng::from_seed(((u128::from(hi) << 64) | u128::from(lo)).to_le_bytes())
}

/// A chosen slate with its propensities, before it becomes a [`crate::Decision`].
#[derive(Debug, Clone, PartialEq)]
pub struct SlateChoice {
    /// The items, position 0 first.
    pub items: Vec<ItemId>,
    /// Per position: the marginal probability of this item at this position.
    pub propensities: Vec<f64>,
    /// The probability of the whole ordered slate, when known.
    pub slate_propensity: Option<f64>,
}

/// Indices of the `k` highest scores, best first. Ties go to the lower index; NaN ranks last.
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut best = Vec::with_capacity(k.min(scores.len()));
    top_k_into(scores, k, &mut best);
    best
}

/// [`top_k`] into `best` (cleared first), so that a caller ranking many times, such as a Monte
/// Carlo loop, reuses one buffer instead of allocating a result per ranking.
pub fn top_k_into(scores: &[f64], k: usize, best: &mut Vec<usize>) {
    best.clear();
    let k = k.min(scores.len());
    if k == 0 {
        return;
    }
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    if k <= SMALL_K {
        top_small_k(scores, k, best);
        return;
    }
    // A bounded insertion list: slates are short, catalogs long, so this is O(n k) with a tiny
    // constant and no allocation. Indices come in increasing order, so a newcomer never wins a tie against an
    // index already listed: it beats one exactly when its key is strictly greater. Once the
    // list is full, the last listed key is the bar a newcomer must clear, kept in `bar` so the
    // common case (a score below the bar) costs one comparison.
    let mut bar = f64::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        let x = key(s);
        if best.len() == k {
            if x <= bar {
                continue;
            }
            best.pop();
        }
        // The list is sorted by falling key, so the entries `x` beats are a suffix: shift them
        // down one by one from the end (a few moves, where `Vec::insert` would call memmove).
        best.push(i);
        let mut pos = best.len() - 1;
        while pos > 0 && x > key(scores[best[pos - 1]]) {
            best[pos] = best[pos - 1];
            pos -= 1;
        }
        best[pos] = i;
        if best.len() == k {
            bar = key(scores[best[k - 1]]);
        }
    }
}

/// The largest `k` that [`top_k_into`] ranks in fixed-size arrays on the stack.
const SMALL_K: usize = 16;

/// [`top_k_into`] for `k <= SMALL_K` (and `k >= 1`): the same insertion list, with the indices
/// and their keys in arrays on the stack, so that the scan, which for a long catalog is nearly
/// all of the work, is one comparison per score and an insertion never reads `scores` again.
fn top_small_k(scores: &[f64], k: usize, best: &mut Vec<usize>) {
    let mut index = [0usize; SMALL_K];
    let mut keys = [f64::NEG_INFINITY; SMALL_K];
    let mut len = 0;
    let mut bar = f64::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if len == k {
            // `s > bar` is false for NaN, whose key (-inf) never clears the bar either.
            if s > bar {
                len -= 1;
            } else {
                continue;
            }
        }
        let x = if s.is_nan() { f64::NEG_INFINITY } else { s };
        let mut pos = len;
        while pos > 0 && x > keys[pos - 1] {
            keys[pos] = keys[pos - 1];
            index[pos] = index[pos - 1];
            pos -= 1;
        }
        keys[pos] = x;
        index[pos] = i;
        len += 1;
        if len == k {
            bar = keys[k - 1];
        }
    }
    best.extend_from_slice(&index[..len]);
}

/// The `k` best-scored candidates, deterministically (every propensity is 1).
pub fn greedy(candidates: &[ItemId], scores: &[f64], k: usize) -> SlateChoice {
    debug_assert_eq!(candidates.len(), scores.len());
    let items: Vec<ItemId> = top_k(scores, k)
        .into_iter()
        .map(|i| candidates[i])
        .collect();
    let n = items.len();
    SlateChoice {
        items,
        propensities: vec![1.0; n],
        slate_propensity: Some(1.0),
    }
}

/// Probability of one ordered slate of `k` items drawn uniformly from `n`: `1 / (n (n-1) ... (n-k+1))`.
fn uniform_slate_probability(n: usize, k: usize) -> f64 {
    (0..k).map(|j| 1.0 / (n - j) as f64).product()
}

/// `k` distinct candidates in uniformly random order. Each item is at each position with
/// probability `1 / n`.
pub fn uniform(candidates: &[ItemId], k: usize, rng: &mut Rng) -> SlateChoice {
    let n = candidates.len();
    let k = k.min(n);
    let items = sample_distinct(candidates, k, rng);
    SlateChoice {
        items,
        propensities: vec![1.0 / n as f64; k],
        slate_propensity: Some(uniform_slate_probability(n, k)),
    }
}

/// `k` distinct candidates by a partial Fisher-Yates shuffle over indices (no copy of the
/// candidate list for small `k`).
fn sample_distinct(candidates: &[ItemId], k: usize, rng: &mut Rng) -> Vec<ItemId> {
    let n = candidates.len();
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    for j in 0..k {
        // Floyd's algorithm would avoid the rejection loop, but it does not give a uniformly
        // random order; rejection is cheap while k is much smaller than n.
        if k * 4 <= n {
            loop {
                let c = rng.random_range(0..n);
                if !chosen.contains(&c) {
                    chosen.push(c);
                    break;
                }
            }
        } else {
            if j == 0 {
                chosen = (0..n).collect();
            }
            let r = rng.random_range(j..n);
            chosen.swap(j, r);
        }
    }
    chosen.truncate(k);
    chosen.into_iter().map(|i| candidates[i]).collect()
}

/// With probability `1 - epsilon` the greedy slate, otherwise a uniform random one. The
/// marginal of item `i` at position `j` is `(1 - epsilon) [greedy_j = i] + epsilon / n`.
pub fn epsilon_greedy(
    candidates: &[ItemId],
    scores: &[f64],
    k: usize,
    epsilon: f64,
    rng: &mut Rng,
) -> SlateChoice {
    let n = candidates.len();
    let greedy_slate = greedy(candidates, scores, k);
    let explore = rng.random::<f64>() < epsilon;
    let items = if explore {
        sample_distinct(candidates, greedy_slate.items.len(), rng)
    } else {
        greedy_slate.items.clone()
    };
    let propensities = items
        .iter()
        .zip(&greedy_slate.items)
        .map(|(i, g)| (1.0 - epsilon) * f64::from(u8::from(i == g)) + epsilon / n as f64)
        .collect();
    let same = items == greedy_slate.items;
    let slate_propensity = (1.0 - epsilon) * f64::from(u8::from(same))
        + epsilon * uniform_slate_probability(n, items.len());
    SlateChoice {
        items,
        propensities,
        slate_propensity: Some(slate_propensity),
    }
}

/// Softmax weights `exp(s / temperature)`, shifted by the maximum for numerical safety.
pub fn softmax(scores: &[f64], temperature: f64) -> Vec<f64> {
    let t = temperature.max(1e-12);
    let max = scores
        .iter()
        .copied()
        .filter(|s| !s.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let mut w: Vec<f64> = scores
        .iter()
        .map(|&s| {
            if s.is_nan() {
                0.0
            } else {
                ((s - max) / t).exp()
            }
        })
        .collect();
    let sum: f64 = w.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        w.iter_mut().for_each(|x| *x /= sum);
    } else {
        let u = 1.0 / w.len().max(1) as f64;
        w.iter_mut().for_each(|x| *x = u);
    }
    w
}

/// Draws a Plackett-Luce ranking of `k` candidates by the Gumbel-top-k trick; returns candidate
/// indices, best first.
fn gumbel_top_k(log_weights: &[f64], k: usize, rng: &mut Rng, buf: &mut Vec<f64>) -> Vec<usize> {
    buf.clear();
    buf.extend(log_weights.iter().map(|&lw| {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        lw - (-u.ln()).ln()
    }));
    top_k(buf, k)
}

/// Largest catalog for which position 2's marginal is computed exactly (`O(n^2)` per item).
pub const EXACT_POSITION_2_MAX: usize = 256;

/// The exact marginal probability that item `c` lands at position `j` of a Plackett-Luce
/// ranking with probabilities `p` (summing to 1), where a closed sum is affordable: position 0
/// (`p_c`), position 1 (`sum_a p_a p_c / (1 - p_a)`, `O(n)`) and, for catalogs of at most
/// [`EXACT_POSITION_2_MAX`] items, position 2 (`O(n^2)`). `None` elsewhere.
pub fn plackett_luce_marginal(p: &[f64], c: usize, j: usize) -> Option<f64> {
    let rest = |x: f64| (1.0 - x).max(1e-300);
    match j {
        0 => Some(p[c]),
        1 => Some(
            p.iter()
                .enumerate()
                .filter(|&(a, _)| a != c)
                .map(|(_, &pa)| pa * p[c] / rest(pa))
                .sum(),
        ),
        2 if p.len() <= EXACT_POSITION_2_MAX => {
            let mut total = 0.0;
            for (a, &pa) in p.iter().enumerate() {
                if a == c {
                    continue;
                }
                for (b, &pb) in p.iter().enumerate() {
                    if b == c || b == a {
                        continue;
                    }
                    total += pa * (pb / rest(pa)) * (p[c] / rest(pa + pb));
                }
            }
            Some(total)
        }
        _ => None,
    }
}

/// A Plackett-Luce slate: position by position, a softmax (at `temperature`) over the items not
/// yet placed. The slate propensity is exact, and so are the marginals of positions 0 and 1
/// (and 2 for catalogs of at most [`EXACT_POSITION_2_MAX`] items, see
/// [`plackett_luce_marginal`]); later positions' marginals are estimated from `draws` further
/// rankings (the realised one counted as well, so an estimate is never 0; with `draws = 0` they
/// are not estimated and read 1, for callers that do not log them).
pub fn plackett_luce(
    candidates: &[ItemId],
    scores: &[f64],
    k: usize,
    temperature: f64,
    draws: usize,
    rng: &mut Rng,
) -> SlateChoice {
    let probs = softmax(scores, temperature);
    let log_w: Vec<f64> = probs.iter().map(|p| p.max(1e-300).ln()).collect();
    let mut buf = Vec::with_capacity(scores.len());
    let chosen = gumbel_top_k(&log_w, k, rng, &mut buf);
    let mut remaining: f64 = 1.0;
    let mut slate_p: f64 = 1.0;
    for &c in &chosen {
        slate_p *= probs[c] / remaining.max(1e-300);
        remaining -= probs[c];
    }
    let exact: Vec<Option<f64>> = chosen
        .iter()
        .enumerate()
        .map(|(j, &c)| plackett_luce_marginal(&probs, c, j))
        .collect();
    let mut propensities = if exact.iter().all(Option::is_some) {
        vec![1.0; chosen.len()]
    } else {
        monte_carlo_marginals(&chosen, draws, rng, |rng| {
            gumbel_top_k(&log_w, k, rng, &mut buf)
        })
    };
    for (p, e) in propensities.iter_mut().zip(&exact) {
        if let Some(e) = e {
            *p = e.clamp(f64::MIN_POSITIVE, 1.0);
        }
    }
    SlateChoice {
        items: chosen.iter().map(|&i| candidates[i]).collect(),
        propensities,
        slate_propensity: Some(slate_p.clamp(f64::MIN_POSITIVE, 1.0)),
    }
}

/// Estimates per-position marginals of a realised ranking `chosen` for a stochastic ranker:
/// `(1 + #draws placing chosen[j] at j) / (1 + draws)`. The realised ranking is itself a draw
/// from the ranker, which keeps every estimate in `(0, 1]`.
pub fn monte_carlo_marginals(
    chosen: &[usize],
    draws: usize,
    rng: &mut Rng,
    mut sample: impl FnMut(&mut Rng) -> Vec<usize>,
) -> Vec<f64> {
    monte_carlo_marginals_into(chosen, draws, rng, &mut Vec::new(), |rng, ranking| {
        *ranking = sample(rng);
    })
}

/// [`monte_carlo_marginals`] for a ranker that writes each ranking into `ranking` (a buffer
/// the caller keeps), so the draws allocate nothing.
pub fn monte_carlo_marginals_into(
    chosen: &[usize],
    draws: usize,
    rng: &mut Rng,
    ranking: &mut Vec<usize>,
    mut sample: impl FnMut(&mut Rng, &mut Vec<usize>),
) -> Vec<f64> {
    estimate(chosen.len(), draws, |hits| {
        sample(rng, ranking);
        count_matches(chosen, ranking, hits);
    })
}

/// `(1 + hits_j) / (1 + draws)` per position, where `draw` adds one draw's hits.
fn estimate(positions: usize, draws: usize, mut draw: impl FnMut(&mut [u64])) -> Vec<f64> {
    let mut hits = vec![1u64; positions];
    for _ in 0..draws {
        draw(&mut hits);
    }
    hits.into_iter()
        .map(|h| h as f64 / (draws + 1) as f64)
        .collect()
}

/// Adds 1 to `hits[j]` for each position where `ranking` has `chosen[j]`.
fn count_matches(chosen: &[usize], ranking: &[usize], hits: &mut [u64]) {
    for (h, (&c, r)) in hits.iter_mut().zip(chosen.iter().zip(ranking)) {
        *h += u64::from(c == *r);
    }
}

/// [`monte_carlo_marginals`] for a stochastic ranker that ranks by scores: each draw writes
/// the candidates' scores into `scores` (a buffer the caller keeps), and a draw places
/// `chosen[j]` at `j` when [`top_k`] of those scores would.
///
/// The draws are not ranked, though: only whether each chosen index holds its position
/// matters, and that is its rank, `#{i < c : s_i >= s_c} + #{i > c : s_i > s_c}` (ties go to
/// the lower index, as in [`top_k`]), counted in branch-free passes the compiler vectorises.
/// Ranking a draw branches on every insertion into the slate, and those branches, which depend
/// on random scores, were most of the cost of Thompson sampling's propensities. A draw with a
/// NaN score is ranked by [`top_k_into`] instead, so the estimates are those of
/// [`monte_carlo_marginals_into`] over [`top_k_into`] exactly, for every input.
pub fn monte_carlo_marginals_scored(
    chosen: &[usize],
    draws: usize,
    rng: &mut Rng,
    scores: &mut Vec<f64>,
    mut sample: impl FnMut(&mut Rng, &mut Vec<f64>),
) -> Vec<f64> {
    let mut ranking = Vec::new();
    estimate(chosen.len(), draws, |hits| {
        sample(rng, scores);
        if scores.iter().fold(false, |nan, s| nan | s.is_nan()) {
            top_k_into(scores, chosen.len(), &mut ranking);
            count_matches(chosen, &ranking, hits);
        } else {
            count_held(scores, chosen, hits);
        }
    })
}

/// Adds 1 to `hits[j]` for each `chosen[j]` whose rank among `scores` (none NaN) is `j`.
///
/// On x86-64 processors with AVX2 the passes run compiled for it: four scores per comparison
/// instead of SSE2's two, for the same counts.
fn count_held(scores: &[f64], chosen: &[usize], hits: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        unsafe { count_held_avx2(scores, chosen, hits) };
        return;
    }
    count_held_portable(scores, chosen, hits);
}

/// [`count_held`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_held_avx2(scores: &[f64], chosen: &[usize], hits: &mut [u64]) {
    count_held_portable(scores, chosen, hits);
}

/// [`count_held`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn count_held_portable(scores: &[f64], chosen: &[usize], hits: &mut [u64]) {
    for (j, (h, &c)) in hits.iter_mut().zip(chosen).enumerate() {
        let Some(&x) = scores.get(c) else { continue };
        *h += u64::from(rank_of(scores, c, x) == j);
    }
}

/// The position [`top_k`] gives index `c` (score `x`, not NaN) among `scores` (none NaN).
#[inline(always)]
fn rank_of(scores: &[f64], c: usize, x: f64) -> usize {
    // Summed as integers of the lanes' width so that a compare's mask becomes a count without
    // leaving the vector registers.
    let before: u64 = scores[..c].iter().map(|&s| u64::from(s >= x)).sum();
    let after: u64 = scores[c + 1..].iter().map(|&s| u64::from(s > x)).sum();
    (before + after) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn ids(n: u32) -> Vec<ItemId> {
        (0..n).map(ItemId).collect()
    }

    #[test]
    fn the_stable_hash_is_fnv_1a() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn marginals_counted_by_rank_equal_those_of_ranking_every_draw() {
        // Scores from a few values, so ties are common, with infinities and NaN among them.
        let values = [
            0.5,
            -1.0,
            2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            0.5,
            3.0,
        ];
        let mut rng = rng_for(7, 1);
        for case in 0..400 {
            let n = 1 + (rng.next_u32() % 24) as usize;
            let k = 1 + (rng.next_u32() as usize % n.min(7));
            let nan_allowed = case % 3 == 0;
            let score = |rng: &mut Rng| -> Vec<f64> {
                (0..n)
                    .map(|_| {
                        let v = values[rng.next_u32() as usize % values.len()];
                        if v.is_nan() && !nan_allowed { 1.5 } else { v }
                    })
                    .collect()
            };
            let first = score(&mut rng);
            let chosen = top_k(&first, k);
            let (mut a, mut b) = (rng.clone(), rng.clone());
            let want = monte_carlo_marginals_into(&chosen, 9, &mut a, &mut Vec::new(), |rng, r| {
                top_k_into(&score(rng), k, r)
            });
            let got =
                monte_carlo_marginals_scored(&chosen, 9, &mut b, &mut Vec::new(), |rng, s| {
                    *s = score(rng)
                });
            assert_eq!(got, want, "case {case}: n {n}, k {k}");
            assert_eq!(a.next_u64(), b.next_u64());
            rng = a;
        }
        // A chosen index at the top of every draw holds its position in all of them.
        let p = monte_carlo_marginals_scored(&[2, 0], 4, &mut rng, &mut Vec::new(), |_, s| {
            *s = vec![1.0, 0.0, 2.0]
        });
        assert_eq!(p, vec![1.0, 1.0]);
    }

    #[test]
    fn top_k_breaks_ties_by_index_and_ranks_nan_last() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[f64::NAN, 0.0, -1.0], 2), vec![1, 2]);
        assert_eq!(top_k(&[1.0], 5), vec![0]);
        assert!(top_k(&[], 3).is_empty());
    }

    #[test]
    fn top_k_agrees_with_a_full_sort_on_ties_and_nans() {
        // The reference: a stable sort by descending key (NaN as -inf), ties by index.
        let mut rng = rng_for(11, 11);
        let mut buf = Vec::new();
        for round in 0..500 {
            let n = (rng.next_u32() % 40) as usize;
            let scores: Vec<f64> = (0..n)
                .map(|_| match rng.next_u32() % 7 {
                    0 => f64::NAN,
                    1 => f64::NEG_INFINITY,
                    2 => 1.0,
                    _ => f64::from(rng.next_u32() % 1000) / 100.0 - 5.0,
                })
                .collect();
            let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| key(scores[b]).total_cmp(&key(scores[a])));
            let k = round % 45;
            order.truncate(k);
            assert_eq!(top_k(&scores, k), order, "{scores:?}, k = {k}");
            top_k_into(&scores, k, &mut buf);
            assert_eq!(buf, order);
        }
    }

    #[test]
    fn same_seed_same_stream_gives_the_same_numbers() {
        let a: Vec<u64> = (0..4).map(|_| rng_for(7, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(rng_for(7, 3).next_u64(), rng_for(7, 4).next_u64());
        assert_ne!(rng_for(7, 3).next_u64(), rng_for(8, 3).next_u64());
    }

    /// Empirical frequency of each (position, item) over many draws.
    fn frequencies(
        n: u32,
        k: usize,
        draws: usize,
        mut f: impl FnMut(&mut Rng) -> SlateChoice,
    ) -> Vec<Vec<f64>> {
        let mut rng = rng_for(1, 1);
        let mut freq = vec![vec![0.0; n as usize]; k];
        for _ in 0..draws {
            let s = f(&mut rng);
            for (j, item) in s.items.iter().enumerate() {
                freq[j][item.index()] += 1.0 / draws as f64;
            }
        }
        freq
    }

    #[test]
    fn uniform_propensities_match_empirical_frequencies() {
        let c = ids(6);
        let freq = frequencies(6, 3, 60_000, |rng| uniform(&c, 3, rng));
        for row in &freq {
            for &f in row {
                assert!((f - 1.0 / 6.0).abs() < 0.01, "{f}");
            }
        }
        let s = uniform(&c, 3, &mut rng_for(0, 0));
        assert_eq!(s.propensities, vec![1.0 / 6.0; 3]);
        assert!((s.slate_propensity.unwrap() - 1.0 / 120.0).abs() < 1e-15);
        let mut seen = s.items.clone();
        seen.dedup();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn epsilon_greedy_propensities_match_empirical_frequencies() {
        let c = ids(5);
        let scores = [0.1, 0.9, 0.5, 0.3, 0.7];
        let eps = 0.3;
        let freq = frequencies(5, 2, 100_000, |rng| {
            epsilon_greedy(&c, &scores, 2, eps, rng)
        });
        let mut rng = rng_for(2, 2);
        for _ in 0..200 {
            let s = epsilon_greedy(&c, &scores, 2, eps, &mut rng);
            for (j, (item, p)) in s.items.iter().zip(&s.propensities).enumerate() {
                assert!((freq[j][item.index()] - p).abs() < 0.01, "{j} {item} {p}");
            }
        }
        // Greedy slate is [1, 4]: its probability is 0.7 + 0.3 / 20.
        let g = epsilon_greedy(&c, &scores, 2, 0.0, &mut rng);
        assert_eq!(g.items, vec![ItemId(1), ItemId(4)]);
        assert_eq!(g.slate_propensity, Some(1.0));
    }

    #[test]
    fn exact_plackett_luce_marginals_match_enumeration() {
        // Five items: enumerate every ordered triple and sum probabilities by (position, item).
        let p = softmax(&[1.0, 0.2, -0.5, 0.7, 0.0], 1.0);
        let n = p.len();
        let mut m = vec![vec![0.0; n]; 3];
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                for c in (0..n).filter(|&c| c != a && c != b) {
                    let pr = p[a] * p[b] / (1.0 - p[a]) * p[c] / (1.0 - p[a] - p[b]);
                    m[0][a] += pr;
                    m[1][b] += pr;
                    m[2][c] += pr;
                }
            }
        }
        for (j, row) in m.iter().enumerate() {
            for (i, &v) in row.iter().enumerate() {
                let e = plackett_luce_marginal(&p, i, j).unwrap();
                assert!((e - v).abs() < 1e-12, "position {j} item {i}: {e} vs {v}");
            }
        }
        assert_eq!(plackett_luce_marginal(&p, 0, 3), None);
        assert_eq!(plackett_luce_marginal(&[1.0 / 300.0; 300], 0, 2), None);
    }

    #[test]
    fn plackett_luce_slate_propensity_is_exact_and_marginals_are_close() {
        let c = ids(4);
        let scores = [2.0, 1.0, 0.0, -1.0];
        let probs = softmax(&scores, 1.0);
        let mut rng = rng_for(3, 3);
        let s = plackett_luce(&c, &scores, 2, 1.0, 4000, &mut rng);
        let (a, b) = (s.items[0].index(), s.items[1].index());
        let exact = probs[a] * probs[b] / (1.0 - probs[a]);
        assert!((s.slate_propensity.unwrap() - exact).abs() < 1e-12);
        assert_eq!(s.propensities[0], probs[a]);
        // Exact marginal of b at position 1: sum over first items f != b of p_f p_b / (1 - p_f).
        let m1: f64 = (0..4)
            .filter(|&f| f != b)
            .map(|f| probs[f] * probs[b] / (1.0 - probs[f]))
            .sum();
        assert!(
            (s.propensities[1] - m1).abs() < 0.03,
            "{} vs {m1}",
            s.propensities[1]
        );
    }

    #[test]
    fn softmax_is_a_distribution_even_for_extreme_scores() {
        for scores in [vec![1e308, -1e308, 0.0], vec![f64::NAN, 1.0], vec![0.0; 3]] {
            let p = softmax(&scores, 0.5);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
            assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }
}
