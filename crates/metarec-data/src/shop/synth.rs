//! A made-up shop with known tastes, written as the files a real shop exports (catalog, users
//! and events CSV), for the end-to-end test, the import benchmark and trying metarec without data.
//!
//! The world: items belong to categories; each category has a direction in a small taste space
//! and each item's hidden vector is its category's direction plus noise. A user's hidden taste is
//! the direction of a favourite category (drawn with a bias that depends on the user's region,
//! so the users file carries real signal for a prior) plus noise. Visits are slates chosen by
//! the logging policy with exactly known per-position propensities; the user clicks item `i` at
//! position `p` with probability `sigmoid(bias + strength * taste . v_i - position_decay * p)`
//! and buys a clicked item with a probability that falls with its price. A good policy therefore
//! has much to gain over the logging one, and exactly how much is known to the generator.

use crate::error::DataError;
use metarec_core::explore::{epsilon_greedy, uniform};
use metarec_core::{ItemId, Rng, rng_for};
use rand::Rng as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How the made-up shop chose its slates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Logging {
    /// Uniformly random slates: every item at every position with probability `1 / items`.
    Uniform,
    /// The best sellers with probability `1 - epsilon`, else a uniform slate.
    Popular {
        /// The exploration share.
        epsilon: f64,
    },
}

/// The made-up shop's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Items in the catalog.
    pub items: usize,
    /// Users.
    pub users: usize,
    /// Categories.
    pub categories: usize,
    /// Visits per user (each user gets 1 to this many).
    pub max_visits: usize,
    /// Slates per visit.
    pub slates_per_visit: usize,
    /// Items per slate.
    pub slate_size: usize,
    /// Dimensions of the hidden taste space.
    pub dims: usize,
    /// The logging policy.
    pub logging: Logging,
    /// Seed of everything.
    pub seed: u64,
    /// Time of the first visit (ms since the epoch).
    pub start_ms: i64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            items: 300,
            users: 3000,
            categories: 12,
            max_visits: 3,
            slates_per_visit: 3,
            slate_size: 4,
            dims: 6,
            logging: Logging::Uniform,
            seed: 7,
            // 2026-01-01T00:00:00Z.
            start_ms: 1_767_225_600_000,
        }
    }
}

/// The files written and what they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthFiles {
    /// `catalog.csv`: item_id, title, category, price, brand, rating.
    pub catalog: PathBuf,
    /// `users.csv`: user_id, region, age.
    pub users: PathBuf,
    /// `events.csv`: user_id, item_id, timestamp, type, session_id, ranking_id, position,
    /// propensity, quantity, revenue, device.
    pub events: PathBuf,
    /// Events written.
    pub events_written: u64,
    /// Slates shown.
    pub slates: u64,
}

const ADJECTIVES: [&str; 12] = [
    "classic", "vintage", "modern", "rustic", "elegant", "bright", "cosy", "sturdy", "tiny",
    "grand", "soft", "bold",
];
const CATEGORIES: [(&str, &str); 16] = [
    ("kitchen", "mug"),
    ("garden", "planter"),
    ("toys", "puzzle"),
    ("stationery", "notebook"),
    ("lighting", "lantern"),
    ("textiles", "cushion"),
    ("party", "balloon set"),
    ("bath", "soap dish"),
    ("storage", "tin box"),
    ("jewellery", "bracelet"),
    ("clocks", "wall clock"),
    ("baking", "cake stand"),
    ("travel", "luggage tag"),
    ("pets", "dog bowl"),
    ("art", "picture frame"),
    ("christmas", "bauble"),
];
const BRANDS: [&str; 6] = ["Acme", "Northwind", "Zephyr", "Lumen", "Oakley & Co", "Pip"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

fn normal(rng: &mut Rng) -> f64 {
    // Box-Muller: enough for a generator, and it keeps rand_distr out of this crate.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn unit(rng: &mut Rng, dims: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..dims).map(|_| normal(rng)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The hidden world of a made-up shop: what a perfect policy would know.
#[derive(Debug, Clone)]
pub struct SynthWorld {
    /// Per item: category index.
    pub category: Vec<usize>,
    /// Per item: hidden vector.
    pub item_vectors: Vec<Vec<f64>>,
    /// Per item: price.
    pub prices: Vec<f64>,
    /// Per user: hidden taste.
    pub tastes: Vec<Vec<f64>>,
    /// Per user: region index.
    pub regions: Vec<usize>,
}

impl SynthWorld {
    /// The world of `config` (a function of its seed).
    pub fn new(config: &SynthConfig) -> SynthWorld {
        let cats = config.categories.clamp(1, CATEGORIES.len());
        let mut rng = rng_for(config.seed, 0);
        let centres: Vec<Vec<f64>> = (0..cats).map(|_| unit(&mut rng, config.dims)).collect();
        let mut category = Vec::with_capacity(config.items);
        let mut item_vectors = Vec::with_capacity(config.items);
        let mut prices = Vec::with_capacity(config.items);
        for i in 0..config.items {
            let c = if i < cats {
                i
            } else {
                rng.random_range(0..cats)
            };
            let v: Vec<f64> = centres[c]
                .iter()
                .map(|x| x + 0.35 * normal(&mut rng))
                .collect();
            category.push(c);
            item_vectors.push(v);
            prices.push((1.5 + 3.0 * rng.random::<f64>()).exp().round() / 4.0 + 0.99);
        }
        let mut rng = rng_for(config.seed, 1);
        let mut tastes = Vec::with_capacity(config.users);
        let mut regions = Vec::with_capacity(config.users);
        for _ in 0..config.users {
            let region = rng.random_range(0..REGIONS.len());
            // Each region favours its own quarter of the categories half of the time, so the
            // region is informative but does not decide.
            let favourite = if rng.random::<f64>() < 0.5 {
                (region * cats / REGIONS.len() + rng.random_range(0..cats.div_ceil(4))) % cats
            } else {
                rng.random_range(0..cats)
            };
            let taste: Vec<f64> = centres[favourite]
                .iter()
                .map(|x| x + 0.3 * normal(&mut rng))
                .collect();
            tastes.push(taste);
            regions.push(region);
        }
        SynthWorld {
            category,
            item_vectors,
            prices,
            tastes,
            regions,
        }
    }

    /// The probability that `user` clicks `item` shown at `position`.
    pub fn click_probability(&self, user: usize, item: usize, position: usize) -> f64 {
        sigmoid(
            -2.6 + 3.0 * dot(&self.tastes[user], &self.item_vectors[item]) - 0.25 * position as f64,
        )
    }

    /// The probability that `user` buys `item` after clicking it.
    pub fn purchase_probability(&self, user: usize, item: usize) -> f64 {
        sigmoid(
            -0.2 + dot(&self.tastes[user], &self.item_vectors[item]) - 0.3 * self.prices[item].ln(),
        )
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(path, e)
}

/// Writes a made-up shop's `catalog.csv`, `users.csv` and `events.csv` into `dir` (created if
/// needed); the same config gives the same bytes.
pub fn write_synth_shop(config: &SynthConfig, dir: &Path) -> Result<SynthFiles, DataError> {
    if config.items < config.slate_size.max(1) || config.users == 0 {
        return Err(DataError::Malformed {
            path: dir.to_owned(),
            line: 0,
            field: "config".into(),
            reason: format!(
                "{} items cannot fill slates of {}, or there are no users",
                config.items, config.slate_size
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let world = SynthWorld::new(config);
    let cats = config.categories.clamp(1, CATEGORIES.len());
    let catalog = dir.join("catalog.csv");
    let mut rng = rng_for(config.seed, 2);
    crate::log::atomic_write(&catalog, |out| {
        writeln!(out, "item_id,title,category,price,brand,rating")?;
        for i in 0..config.items {
            let (cat, noun) = CATEGORIES[world.category[i]];
            let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
            let brand = BRANDS[rng.random_range(0..BRANDS.len())];
            let rating = 3.0 + 2.0 * rng.random::<f64>();
            writeln!(
                out,
                "SKU-{i:06},{adjective} {noun} {i},{cat},{:.2},{brand},{rating:.1}",
                world.prices[i]
            )?;
        }
        Ok(())
    })?;
    let users = dir.join("users.csv");
    let mut rng = rng_for(config.seed, 3);
    crate::log::atomic_write(&users, |out| {
        writeln!(out, "user_id,region,age")?;
        for u in 0..config.users {
            let age = 18 + rng.random_range(0..60u32);
            writeln!(out, "U{u:07},{},{age}", REGIONS[world.regions[u]])?;
        }
        Ok(())
    })?;
    // The logging policy's scores for `Popular`: a fixed best-seller order.
    let popularity: Vec<f64> = (0..config.items)
        .map(|i| {
            let mean: f64 = (0..config.users.min(500))
                .map(|u| world.click_probability(u, i, 0))
                .sum();
            mean
        })
        .collect();
    let all: Vec<ItemId> = (0..config.items as u32).map(ItemId).collect();
    let events = dir.join("events.csv");
    let (mut written, mut slates) = (0u64, 0u64);
    crate::log::atomic_write(&events, |out| {
        writeln!(
            out,
            "user_id,item_id,timestamp,type,session_id,ranking_id,position,propensity,quantity,revenue,device"
        )?;
        // Users arrive spread over 90 days; each visit's slates are a minute apart.
        let span_ms: i64 = 90 * 24 * 3600 * 1000;
        let mut visits: Vec<(i64, usize, usize)> = Vec::new();
        let mut rng = rng_for(config.seed, 4);
        for u in 0..config.users {
            let n = 1 + rng.random_range(0..config.max_visits.max(1));
            for v in 0..n {
                let t = config.start_ms + rng.random_range(0..span_ms);
                visits.push((t, u, v));
            }
        }
        visits.sort();
        for (t, u, v) in visits {
            let mut rng = rng_for(config.seed, 1000 + (u as u64) * 64 + v as u64);
            let device = if rng.random::<f64>() < 0.6 {
                "mobile"
            } else {
                "desktop"
            };
            let session = format!("S{u}-{v}");
            for s in 0..config.slates_per_visit {
                let ts = t + (s as i64) * 60_000;
                let choice = match config.logging {
                    Logging::Uniform => uniform(&all, config.slate_size, &mut rng),
                    Logging::Popular { epsilon } => {
                        epsilon_greedy(&all, &popularity, config.slate_size, epsilon, &mut rng)
                    }
                };
                let ranking = format!("R{u}-{v}-{s}");
                slates += 1;
                for (p, (item, prop)) in choice.items.iter().zip(&choice.propensities).enumerate() {
                    let i = item.index();
                    writeln!(
                        out,
                        "U{u:07},SKU-{i:06},{ts},view,{session},{ranking},{p},{prop},,,{device}"
                    )?;
                    written += 1;
                }
                for (p, item) in choice.items.iter().enumerate() {
                    let i = item.index();
                    if rng.random::<f64>() < world.click_probability(u, i, p) {
                        writeln!(
                            out,
                            "U{u:07},SKU-{i:06},{},click,{session},{ranking},{p},,,,{device}",
                            ts + 5_000
                        )?;
                        written += 1;
                        if rng.random::<f64>() < world.purchase_probability(u, i) {
                            let quantity = 1 + rng.random_range(0..3u32);
                            writeln!(
                                out,
                                "U{u:07},SKU-{i:06},{},purchase,{session},{ranking},{p},,{quantity},{:.2},{device}",
                                ts + 30_000,
                                world.prices[i] * f64::from(quantity)
                            )?;
                            written += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    let _ = cats;
    Ok(SynthFiles {
        catalog,
        users,
        events,
        events_written: written,
        slates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_bytes_and_propensities_are_exact() {
        let config = SynthConfig {
            items: 40,
            users: 30,
            ..SynthConfig::default()
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = write_synth_shop(&config, a.path()).unwrap();
        let fb = write_synth_shop(&config, b.path()).unwrap();
        for (x, y) in [(&fa.events, &fb.events), (&fa.catalog, &fb.catalog)] {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        let text = std::fs::read_to_string(&fa.events).unwrap();
        let views: Vec<&str> = text.lines().filter(|l| l.contains(",view,")).collect();
        assert_eq!(views.len() as u64, fa.slates * 4);
        for v in views {
            let prop: f64 = v.split(',').nth(7).unwrap().parse().unwrap();
            assert!((prop - 1.0 / 40.0).abs() < 1e-9, "{v}");
        }
    }

    #[test]
    fn a_user_clicks_their_own_category_more() {
        let config = SynthConfig {
            items: 60,
            users: 200,
            ..SynthConfig::default()
        };
        let world = SynthWorld::new(&config);
        // The best item for each user beats the average item by a wide margin.
        let (mut best, mut mean) = (0.0, 0.0);
        for u in 0..config.users {
            let p: Vec<f64> = (0..config.items)
                .map(|i| world.click_probability(u, i, 0))
                .collect();
            best += p.iter().cloned().fold(0.0, f64::max);
            mean += p.iter().sum::<f64>() / p.len() as f64;
        }
        assert!(best > 3.0 * mean, "best {best} mean {mean}");
    }
}
