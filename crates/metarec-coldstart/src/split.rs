//! The episode protocol: [`Split`] divides the admitted users into disjoint training, validation
//! and test users (training-only users, see [`RatingData::train_only_from`], always train); each validation and test user becomes an [`Episode`] with a query set of
//! [`QUERY_SIZE`] random rated items and a shuffled pool of the rest, whose first `K` items are
//! the support set for budget `K` (so support sets are nested as `K` grows).
//!
//! Everything is drawn from `rng_for(seed, ..)` streams: the user permutation from stream 0 and
//! user `u`'s episode from stream `1 + u`, so a split is a pure function of the seed.

use crate::data::{Obs, RatingData};
use crate::error::ColdStartError;
use metarec_core::{Rng, rng_for};
use rand::seq::SliceRandom;
use serde::Serialize;

/// Rated items held out per evaluated user.
pub const QUERY_SIZE: usize = 10;

/// Fractions of users for training and validation (the rest are test users).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitFractions {
    /// Share of users whose ratings train the models.
    pub train: f64,
    /// Share of users that choose hyperparameters.
    pub validation: f64,
}

impl Default for SplitFractions {
    /// 70% training, 10% validation, 20% test.
    fn default() -> Self {
        SplitFractions {
            train: 0.7,
            validation: 0.1,
        }
    }
}

/// A cold-start episode of one held-out user.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Index into [`RatingData::users`].
    pub user: usize,
    /// The query set: the ratings to predict.
    pub query: Vec<Obs>,
    /// The user's other ratings in random order; the support set for budget `K` is its first
    /// `min(K, len)` entries.
    pub pool: Vec<Obs>,
}

impl Episode {
    /// The support set for budget `k` (`None` means all of the pool).
    pub fn support(&self, k: Option<usize>) -> &[Obs] {
        let n = k.map_or(self.pool.len(), |k| k.min(self.pool.len()));
        &self.pool[..n]
    }
}

/// One random user split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Users whose every rating may train models (indices into [`RatingData::users`]).
    pub train: Vec<usize>,
    /// Episodes of the validation users.
    pub validation: Vec<Episode>,
    /// Episodes of the test users.
    pub test: Vec<Episode>,
}

impl Split {
    /// Draws the split of `seed`. Fails when a group would be empty or a user has too few
    /// ratings for a query set plus at least one support item.
    pub fn draw(
        data: &RatingData,
        seed: u64,
        fractions: SplitFractions,
    ) -> Result<Self, ColdStartError> {
        // Only users below `train_only_from` are split; the rest always train.
        let n = data.train_only_from.min(data.users.len());
        let f = fractions;
        if !(f.train > 0.0 && f.validation > 0.0 && f.train + f.validation < 1.0) {
            return Err(ColdStartError::Config(format!(
                "split fractions train {} and validation {} must be positive and leave test users",
                f.train, f.validation
            )));
        }
        let n_train = (f.train * n as f64).round() as usize;
        let n_val = (f.validation * n as f64).round() as usize;
        if n_train == 0 || n_val == 0 || n_train + n_val >= n {
            return Err(ColdStartError::Config(format!(
                "{n} users are too few for a split with non-empty training, validation and test groups"
            )));
        }
        if let Some(u) = data.users[..n]
            .iter()
            .find(|u| u.ratings.len() <= QUERY_SIZE)
        {
            return Err(ColdStartError::Data(format!(
                "user `{}` has {} ratings; an episode needs more than {QUERY_SIZE}",
                u.key,
                u.ratings.len()
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng_for(seed, 0));
        let mut train = order[..n_train].to_vec();
        train.extend(n..data.users.len());
        train.sort_unstable();
        let episodes = |users: &[usize]| -> Vec<Episode> {
            let mut users = users.to_vec();
            users.sort_unstable();
            users
                .into_iter()
                .map(|u| episode(data, u, &mut rng_for(seed, 1 + u as u64)))
                .collect()
        };
        Ok(Split {
            seed,
            train,
            validation: episodes(&order[n_train..n_train + n_val]),
            test: episodes(&order[n_train + n_val..]),
        })
    }
}

fn episode(data: &RatingData, user: usize, rng: &mut Rng) -> Episode {
    let mut ratings = data.users[user].ratings.clone();
    ratings.shuffle(rng);
    let pool = ratings.split_off(QUERY_SIZE);
    Episode {
        user,
        query: ratings,
        pool,
    }
}
