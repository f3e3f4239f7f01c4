//! [`Summary`]: a mean with its 95% confidence interval.
//!
//! Intervals use the normal approximation to the sampling distribution of the mean (the arena
//! averages over hundreds of users), and the delta method for ratios of sums such as CTR =
//! clicks / impressions, so that heavy users weigh in proportion to their impressions.

use serde::Serialize;

/// The two-sided 95% quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A mean and its 95% confidence interval over `n` units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The estimate.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
    /// Units averaged.
    pub n: usize,
}

impl Summary {
    /// Mean of `xs` with a normal-approximation interval (zero width for fewer than 2 values).
    pub fn of(xs: &[f64]) -> Summary {
        let n = xs.len();
        if n == 0 {
            return Summary {
                mean: 0.0,
                low: 0.0,
                high: 0.0,
                n,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let half = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            Z95 * (var / n as f64).sqrt()
        } else {
            0.0
        };
        Summary {
            mean,
            low: mean - half,
            high: mean + half,
            n,
        }
    }

    /// The ratio `sum(ys) / sum(xs)` with a delta-method interval over units `(y_i, x_i)`.
    pub fn ratio(ys: &[f64], xs: &[f64]) -> Summary {
        let n = ys.len().min(xs.len());
        let (sy, sx): (f64, f64) = (ys[..n].iter().sum(), xs[..n].iter().sum());
        if n == 0 || sx <= 0.0 {
            return Summary {
                mean: 0.0,
                low: 0.0,
                high: 0.0,
                n,
            };
        }
        let r = sy / sx;
        let half = if n > 1 {
            let xbar = sx / n as f64;
            let resid: f64 = ys[..n]
                .iter()
                .zip(&xs[..n])
                .map(|(y, x)| (y - r * x).powi(2))
                .sum::<f64>()
                / (n - 1) as f64;
            Z95 * (resid / n as f64).sqrt() / xbar
        } else {
            0.0
        };
        Summary {
            mean: r,
            low: r - half,
            high: r + half,
            n,
        }
    }

    /// Whether this interval lies entirely above `other`'s.
    pub fn above(&self, other: &Summary) -> bool {
        self.low > other.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_interval_match_the_textbook_formula() {
        // Sample 1..=5: mean 3, sample variance 2.5, half-width 1.96 * sqrt(2.5 / 5).
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let half = Z95 * (2.5f64 / 5.0).sqrt();
        assert_eq!(s.mean, 3.0);
        assert!((s.high - s.mean - half).abs() < 1e-12);
        assert_eq!(Summary::of(&[7.0]).low, 7.0);
        assert_eq!(Summary::of(&[]).n, 0);
    }

    #[test]
    fn ratio_is_the_ratio_of_sums() {
        let s = Summary::ratio(&[1.0, 0.0, 3.0], &[10.0, 10.0, 20.0]);
        assert!((s.mean - 0.1).abs() < 1e-12);
        assert!(s.low < 0.1 && s.high > 0.1);
        // Identical ratios in every unit leave no uncertainty.
        let t = Summary::ratio(&[1.0, 2.0], &[10.0, 20.0]);
        assert!((t.high - t.low).abs() < 1e-12);
    }

    #[test]
    fn intervals_cover_the_true_mean_about_95_percent_of_the_time() {
        // Uniform(0, 1) samples of 200 from a seeded generator: coverage of 0.5 over 400 trials.
        let mut state: u64 = 12345;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let covered = (0..400)
            .filter(|_| {
                let xs: Vec<f64> = (0..200).map(|_| next()).collect();
                let s = Summary::of(&xs);
                s.low <= 0.5 && 0.5 <= s.high
            })
            .count();
        assert!((360..=392).contains(&covered), "{covered}");
    }
}
