//! MovieLens-100k in RecBole's atomic format (GroupLens research-use terms: fetched, never
//! shipped; cite Harper & Konstan 2015).
//!
//! Three tab-separated files: `ml-100k.inter` (user, item, rating, timestamp), `ml-100k.item`
//! (title, release year, genres) and `ml-100k.user` (age, gender, occupation, zip code).
//! [`load_movielens`] reads them into [`MovieLens`].

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport};
use crate::table::{Dialect, Table, handle_malformed, read_file};
use metarec_core::{Catalog, Item, ItemId, UserKey};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The data set's name and file stem.
pub const NAME: &str = "ml-100k";

/// One rating.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rating {
    /// Index into [`MovieLens::users`].
    pub user: u32,
    /// The movie.
    pub item: ItemId,
    /// The rating, 0.5 to 5 (MovieLens-100k has whole stars, 1 to 5).
    pub rating: f32,
    /// When, in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// A MovieLens user with their demographics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MlUser {
    /// The user id of the source.
    pub key: UserKey,
    /// Age in years.
    pub age: u8,
    /// `M` or `F`.
    pub gender: String,
    /// One of the data set's 21 occupations.
    pub occupation: String,
    /// US zip code (kept as text: some are Canadian postcodes).
    pub zip_code: String,
}

/// MovieLens-100k.
///
/// Invariants: every rating's user indexes `users` and its item indexes `catalog`; `years` and
/// `genres` have one entry per catalog item.
#[derive(Debug, Clone)]
pub struct MovieLens {
    /// Movies keyed by the source's item id, with their titles; the first genre is the category
    /// and the numeric features are the multi-hot genres (`genre=<name>` columns).
    pub catalog: Catalog,
    /// Release year per movie, when known.
    pub years: Vec<Option<u16>>,
    /// Genres per movie.
    pub genres: Vec<Vec<String>>,
    /// Users in file order.
    pub users: Vec<MlUser>,
    /// Ratings in file order.
    pub ratings: Vec<Rating>,
    /// What was read, kept and skipped (all three files together).
    pub report: LoadReport,
}

/// Loads the three atomic files from a folder holding `ml-100k.{inter,item,user}`.
pub fn load_movielens(dir: &Path, options: &LoadOptions) -> Result<MovieLens, DataError> {
    let read = |ext: &str| {
        let p = dir.join(format!("{NAME}.{ext}"));
        read_file(&p).map(|b| (p, b))
    };
    let (item_path, item_bytes) = read("item")?;
    let (user_path, user_bytes) = read("user")?;
    let (inter_path, inter_bytes) = read("inter")?;
    let mut ml = parse_items(&item_bytes, &item_path, options)?;
    let user_report = parse_users(&user_bytes, &user_path, options, &mut ml)?;
    let inter_report = parse_ratings(&inter_bytes, &inter_path, options, &mut ml)?;
    ml.report.absorb(&user_report);
    ml.report.absorb(&inter_report);
    ml.report.source = dir.display().to_string();
    Ok(ml)
}

fn parse_items(bytes: &[u8], path: &Path, options: &LoadOptions) -> Result<MovieLens, DataError> {
    let mut table = Table::new(path, bytes, Dialect::Tsv)?;
    let c_id = table.column("item_id:token")?;
    let c_title = table.column("movie_title:token_seq")?;
    let c_year = table.column("release_year:token")?;
    let c_genres = table.column("class:token_seq")?;
    let mut report = LoadReport::new(path.display().to_string());
    let mut rows: Vec<(String, String, Option<u16>, Vec<String>)> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Some(row) = table.next_row()? {
        let mut note = None;
        let parsed = (|| -> Result<_, DataError> {
            row.check_width()?;
            let id = row.required_str(c_id)?;
            if seen.contains_key(id) {
                return Err(row.malformed(c_id, format!("item `{id}` appears twice")));
            }
            let title = row.str(c_title)?;
            // The source has a few broken years (item 267 `unkonwn`, item 1412 `V`); a year is
            // optional, so those are kept as unknown and counted rather than dropping the movie.
            let year = match row.str(c_year)? {
                "" => None,
                y => y.parse::<u16>().ok().or_else(|| {
                    note = Some("release_year:token not a year");
                    None
                }),
            };
            let genres: Vec<String> = row
                .str(c_genres)?
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            Ok((id.to_owned(), title.to_owned(), year, genres, row.line()))
        })();
        match parsed {
            Ok((id, title, year, genres, line)) => {
                seen.insert(id.clone(), line);
                rows.push((id, title, year, genres));
                report.keep();
                if let Some(what) = note {
                    report.note_missing(what);
                }
            }
            Err(e) => handle_malformed(e, options, &mut report)?,
        }
    }
    let mut genre_names: Vec<String> = rows.iter().flat_map(|r| r.3.iter().cloned()).collect();
    genre_names.sort();
    genre_names.dedup();
    let genre_col: HashMap<&str, usize> = genre_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut catalog = Catalog::new(genre_names.iter().map(|g| format!("genre={g}")).collect());
    let mut years = Vec::with_capacity(rows.len());
    let mut genres = Vec::with_capacity(rows.len());
    for (id, title, year, gs) in rows {
        let mut features = vec![0.0; genre_names.len()];
        for g in &gs {
            features[genre_col[g.as_str()]] = 1.0;
        }
        let line = seen.get(&id).copied().unwrap_or(0);
        catalog
            .push(Item {
                key: id,
                title: (!title.is_empty()).then_some(title),
                category: gs.first().cloned(),
                price: None,
                features,
                embedding: None,
            })
            .map_err(|source| DataError::Invalid {
                path: path.to_owned(),
                line,
                source,
            })?;
        years.push(year);
        genres.push(gs);
    }
    Ok(MovieLens {
        catalog,
        years,
        genres,
        users: Vec::new(),
        ratings: Vec::new(),
        report,
    })
}

fn parse_users(
    bytes: &[u8],
    path: &Path,
    options: &LoadOptions,
    ml: &mut MovieLens,
) -> Result<LoadReport, DataError> {
    let mut table = Table::new(path, bytes, Dialect::Tsv)?;
    let c_id = table.column("user_id:token")?;
    let c_age = table.column("age:token")?;
    let c_gender = table.column("gender:token")?;
    let c_occ = table.column("occupation:token")?;
    let c_zip = table.column("zip_code:token")?;
    let mut report = LoadReport::new(path.display().to_string());
    let mut seen: HashMap<String, ()> = HashMap::new();
    while let Some(row) = table.next_row()? {
        let parsed = (|| -> Result<_, DataError> {
            row.check_width()?;
            let id = row.required_str(c_id)?;
            if seen.contains_key(id) {
                return Err(row.malformed(c_id, format!("user `{id}` appears twice")));
            }
            Ok(MlUser {
                key: UserKey(id.to_owned()),
                age: row.parse(c_age)?,
                gender: row.required_str(c_gender)?.to_owned(),
                occupation: row.required_str(c_occ)?.to_owned(),
                zip_code: row.str(c_zip)?.to_owned(),
            })
        })();
        match parsed {
            Ok(u) => {
                seen.insert(u.key.0.clone(), ());
                ml.users.push(u);
                report.keep();
            }
            Err(e) => handle_malformed(e, options, &mut report)?,
        }
    }
    Ok(report)
}

fn parse_ratings(
    bytes: &[u8],
    path: &Path,
    options: &LoadOptions,
    ml: &mut MovieLens,
) -> Result<LoadReport, DataError> {
    let mut table = Table::new(path, bytes, Dialect::Tsv)?;
    let c_user = table.column("user_id:token")?;
    let c_item = table.column("item_id:token")?;
    let c_rating = table.column("rating:float")?;
    let c_time = table.column("timestamp:float")?;
    let users: HashMap<&str, u32> = ml
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.key.0.as_str(), i as u32))
        .collect();
    let mut report = LoadReport::new(path.display().to_string());
    let mut ratings = Vec::with_capacity(bytes.len() / 20);
    while let Some(row) = table.next_row()? {
        let parsed = (|| -> Result<_, DataError> {
            row.check_width()?;
            let u = row.required_str(c_user)?;
            let user = *users.get(u).ok_or_else(|| {
                row.malformed(c_user, format!("user `{u}` is not in the .user file"))
            })?;
            let i = row.required_str(c_item)?;
            let item = ml.catalog.id_of(i).ok_or_else(|| {
                row.malformed(c_item, format!("item `{i}` is not in the .item file"))
            })?;
            let rating = row.finite(c_rating)?;
            if !(0.5..=5.0).contains(&rating) {
                return Err(row.malformed(c_rating, format!("{rating} is outside 0.5 to 5")));
            }
            let seconds = row.finite(c_time)?;
            if !(0.0..1e13).contains(&seconds) {
                return Err(
                    row.malformed(c_time, format!("{seconds} is not a Unix time in seconds"))
                );
            }
            Ok(Rating {
                user,
                item,
                rating: rating as f32,
                timestamp_ms: (seconds * 1000.0).round() as i64,
            })
        })();
        match parsed {
            Ok(r) => {
                ratings.push(r);
                report.keep();
            }
            Err(e) => handle_malformed(e, options, &mut report)?,
        }
    }
    ml.ratings = ratings;
    Ok(report)
}
