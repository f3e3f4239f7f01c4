//! The benchmark's view of a rating data set: [`RatingData`], users with their ratings and
//! demographic features, items with their content features.
//!
//! [`RatingData::from_movielens`] keeps the users the protocol admits (13 to 100 ratings by
//! default; optionally heavier users as training-only users) and every item of the catalogue, so the full-catalogue ranking covers all movies. The
//! features are fixed encodings chosen here once: a user is `[1, age z-score, its square, female,
//! occupation one-hot]`, an item is `[genre multi-hot, release-year z-score, year unknown]`.

use crate::error::ColdStartError;
use metarec_data::movielens::MovieLens;
use std::collections::BTreeMap;

/// One observed rating of a user: an item index and the rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    /// Index of the item in the catalogue.
    pub item: u32,
    /// The rating.
    pub rating: f64,
}

/// A user of the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The source's user id.
    pub key: String,
    /// The user's ratings, in the source's file order (each item at most once).
    pub ratings: Vec<Obs>,
    /// Demographic features (the first one is a constant 1).
    pub features: Vec<f64>,
}

/// Users, item features and the catalogue size.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingData {
    /// The admitted users; those from `train_only_from` on are training-only users.
    pub users: Vec<User>,
    /// Users at this index and beyond only ever train models (users heavier than the filter,
    /// when [`UserFilter::heavy_users_train`] is set); they are never validation or test users.
    /// Equal to `users.len()` otherwise.
    pub train_only_from: usize,
    /// Number of items (the whole catalogue).
    pub items: usize,
    /// Item content features, `items x item_dim`, row-major.
    pub item_features: Vec<f64>,
    /// Columns of `item_features`.
    pub item_dim: usize,
    /// Names of the user feature columns.
    pub user_feature_names: Vec<String>,
    /// Names of the item feature columns.
    pub item_feature_names: Vec<String>,
}

/// Which users a benchmark admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UserFilter {
    /// Fewest ratings a user must have.
    pub min_ratings: usize,
    /// Most ratings a user may have.
    pub max_ratings: usize,
    /// Keep users with more than `max_ratings` ratings as training-only users (a departure from
    /// MeLU's protocol, which drops them; off by default).
    pub heavy_users_train: bool,
}

impl Default for UserFilter {
    /// The MeLU protocol: 13 to 100 ratings.
    fn default() -> Self {
        UserFilter {
            min_ratings: 13,
            max_ratings: 100,
            heavy_users_train: false,
        }
    }
}

impl RatingData {
    /// Builds the benchmark's data from MovieLens-100k. A user who rated an item twice keeps the
    /// last rating (MovieLens-100k has no such pairs; the rule only makes the input total).
    pub fn from_movielens(ml: &MovieLens, filter: UserFilter) -> Result<Self, ColdStartError> {
        if filter.min_ratings <= crate::split::QUERY_SIZE || filter.min_ratings > filter.max_ratings
        {
            return Err(ColdStartError::Config(format!(
                "user filter {}..={} must admit only users with more than {} ratings",
                filter.min_ratings,
                filter.max_ratings,
                crate::split::QUERY_SIZE
            )));
        }
        let items = ml.catalog.len();
        let mut per_user: Vec<BTreeMap<u32, (usize, f64)>> = vec![BTreeMap::new(); ml.users.len()];
        for (n, r) in ml.ratings.iter().enumerate() {
            let u = r.user as usize;
            if u >= per_user.len() || r.item.index() >= items {
                return Err(ColdStartError::Data(format!(
                    "rating {n} refers to user {} or item {} outside the data set",
                    r.user, r.item.0
                )));
            }
            per_user[u].insert(r.item.0, (n, f64::from(r.rating)));
        }
        let occupations: Vec<String> = {
            let mut o: Vec<String> = ml.users.iter().map(|u| u.occupation.clone()).collect();
            o.sort();
            o.dedup();
            o
        };
        let ages: Vec<f64> = ml.users.iter().map(|u| f64::from(u.age)).collect();
        let (age_mean, age_sd) = mean_sd(&ages);
        let mut users = Vec::new();
        let mut heavy = Vec::new();
        for (u, rated) in ml.users.iter().zip(per_user) {
            let is_heavy = rated.len() > filter.max_ratings;
            if rated.len() < filter.min_ratings || (is_heavy && !filter.heavy_users_train) {
                continue;
            }
            let mut ratings: Vec<(usize, Obs)> = rated
                .into_iter()
                .map(|(item, (n, rating))| (n, Obs { item, rating }))
                .collect();
            ratings.sort_by_key(|(n, _)| *n);
            let z = (f64::from(u.age) - age_mean) / age_sd;
            let mut features = vec![1.0, z, z * z, f64::from(u8::from(u.gender == "F"))];
            features.extend(
                occupations
                    .iter()
                    .map(|o| f64::from(u8::from(*o == u.occupation))),
            );
            let user = User {
                key: u.key.0.clone(),
                ratings: ratings.into_iter().map(|(_, o)| o).collect(),
                features,
            };
            if is_heavy {
                heavy.push(user);
            } else {
                users.push(user);
            }
        }
        let train_only_from = users.len();
        users.extend(heavy);
        let mut user_feature_names: Vec<String> = ["constant", "age_z", "age_z_squared", "female"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        user_feature_names.extend(occupations.iter().map(|o| format!("occupation={o}")));

        let genre_dim = ml.catalog.features().dim();
        let known: Vec<f64> = ml.years.iter().flatten().map(|&y| f64::from(y)).collect();
        let (year_mean, year_sd) = mean_sd(&known);
        let item_dim = genre_dim + 2;
        let mut item_features = Vec::with_capacity(items * item_dim);
        for i in 0..items {
            item_features.extend(ml.catalog.features().row(i).iter().map(|&g| f64::from(g)));
            match ml.years.get(i).copied().flatten() {
                Some(y) => item_features.extend([(f64::from(y) - year_mean) / year_sd, 0.0]),
                None => item_features.extend([0.0, 1.0]),
            }
        }
        let mut item_feature_names: Vec<String> = ml.catalog.features().names().to_vec();
        item_feature_names.extend(["year_z".to_string(), "year_unknown".to_string()]);
        Ok(RatingData {
            users,
            train_only_from,
            items,
            item_features,
            item_dim,
            user_feature_names,
            item_feature_names,
        })
    }

    /// The content features of item `i`.
    pub fn item_row(&self, i: usize) -> &[f64] {
        &self.item_features[i * self.item_dim..(i + 1) * self.item_dim]
    }

    /// Number of user features.
    pub fn user_dim(&self) -> usize {
        self.user_feature_names.len()
    }
}

/// Mean and standard deviation (population); a constant column gets deviation 1 so that it
/// standardises to zeros instead of dividing by zero.
fn mean_sd(x: &[f64]) -> (f64, f64) {
    if x.is_empty() {
        return (0.0, 1.0);
    }
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let v = x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / x.len() as f64;
    let sd = v.sqrt();
    (m, if sd > 1e-9 { sd } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Catalog, Item, ItemId, UserKey};
    use metarec_data::LoadReport;
    use metarec_data::movielens::{MlUser, Rating};

    /// Twenty movies; user `a` rates 11 of them, `b` 13, `c` 15 (a heavy user under a 12-rating
    /// cap).
    fn tiny_movielens() -> MovieLens {
        let mut catalog = Catalog::new(vec!["genre=Comedy".into(), "genre=Drama".into()]);
        for i in 0..20 {
            catalog
                .push(Item {
                    key: format!("m{i}"),
                    title: None,
                    category: None,
                    price: None,
                    features: vec![(i % 2) as f32, ((i + 1) % 2) as f32],
                    embedding: None,
                })
                .unwrap();
        }
        let user = |key: &str, age, gender: &str, occupation: &str| MlUser {
            key: UserKey(key.into()),
            age,
            gender: gender.into(),
            occupation: occupation.into(),
            zip_code: String::new(),
        };
        let mut ratings = Vec::new();
        for (u, n) in [(0u32, 11u32), (1, 13), (2, 15)] {
            for i in 0..n {
                ratings.push(Rating {
                    user: u,
                    item: ItemId(i),
                    rating: (1 + (i + u) % 5) as f32,
                    timestamp_ms: 0,
                });
            }
        }
        MovieLens {
            catalog,
            years: (0..20)
                .map(|i| (i != 3).then_some(1990 + i as u16))
                .collect(),
            genres: vec![Vec::new(); 20],
            users: vec![
                user("a", 20, "M", "writer"),
                user("b", 40, "F", "artist"),
                user("c", 30, "M", "writer"),
            ],
            ratings,
            report: LoadReport::new("memory"),
        }
    }

    #[test]
    fn the_filter_admits_users_by_rating_count_and_encodes_their_features() {
        let ml = tiny_movielens();
        let filter = UserFilter {
            min_ratings: 11,
            max_ratings: 13,
            heavy_users_train: false,
        };
        let data = RatingData::from_movielens(&ml, filter).unwrap();
        let keys: Vec<&str> = data.users.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(data.train_only_from, 2);
        assert_eq!(data.items, 20);
        // Ages 20, 40, 30: mean 30, population sd sqrt(200/3); occupations sorted: artist, writer.
        let z = -10.0 / (200.0f64 / 3.0).sqrt();
        let a = &data.users[0].features;
        assert!((a[1] - z).abs() < 1e-12 && (a[2] - z * z).abs() < 1e-12);
        assert_eq!(&a[3..], &[0.0, 0.0, 1.0]);
        assert_eq!(&data.users[1].features[3..], &[1.0, 1.0, 0.0]);
        // Item 3 has no year: year z-score 0 and the unknown flag set.
        assert_eq!(&data.item_row(3)[2..], &[0.0, 1.0]);
        assert_eq!(data.item_row(4)[..2], [0.0, 1.0]);

        // The heavy user joins as a training-only user at the end.
        let data = RatingData::from_movielens(
            &ml,
            UserFilter {
                heavy_users_train: true,
                ..filter
            },
        )
        .unwrap();
        assert_eq!(data.users.len(), 3);
        assert_eq!((data.train_only_from, data.users[2].key.as_str()), (2, "c"));
    }

    #[test]
    fn a_filter_that_admits_users_without_a_support_set_is_an_error() {
        let filter = UserFilter {
            min_ratings: 10,
            max_ratings: 100,
            heavy_users_train: false,
        };
        let err = RatingData::from_movielens(&tiny_movielens(), filter).unwrap_err();
        assert!(err.to_string().contains("10..=100"), "{err}");
    }
}
