//! [`World`]: the simulator's fitted ground truth and the population of users it draws from.
//!
//! Built from real Online Retail purchases, or from a shop directory's events (its strongest
//! signal; see [`crate::evidence`]): hidden item and customer vectors from implicit ALS over all
//! customers; the shop's observable item embedding from ALS over a random subset of customers;
//! item popularity, prices and typical quantities from the purchase lines. New users are drawn
//! around fitted customers of a group (the country, or a shop's user field), so they are people
//! the learner never saw. Both sources become one `Evidence` first, so they share one fitting
//! path.

use crate::config::ScenarioConfig;
use crate::error::SimError;
use crate::evidence::Evidence;
use crate::mf::{Factors, MfConfig, fit_implicit};
use metarec_core::linalg::{dot, solve_spd};
use metarec_core::{Catalog, Item, ItemId, Rng, rng_for};
use metarec_data::online_retail::OnlineRetail;
use metarec_data::shop::Shop;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Names of the observable numeric item features, before the embedding columns.
pub const BASE_FEATURES: [&str; 2] = ["log_price_z", "log_popularity_z"];

/// The population of users: fitted customer vectors grouped by country.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Population {
    /// The name of the observable user field users are grouped by (`country` for Online
    /// Retail); a simulated user's context carries the token `ATTRIBUTE=GROUP`.
    #[serde(default = "country")]
    attribute: String,
    dim: usize,
    vectors: Vec<f64>,
    /// Countries with their customers (indices into `vectors`), most customers first.
    countries: Vec<(String, Vec<u32>)>,
    /// Per-dimension standard deviation of the customer vectors.
    spread: Vec<f64>,
}

/// A user drawn from the population: hidden vector and observable group (the country for
/// Online Retail, the value of the shop's grouping field otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnUser {
    /// The hidden taste vector.
    pub vector: Vec<f64>,
    /// The observable group.
    pub country: String,
}

fn country() -> String {
    "country".into()
}

impl Population {
    /// The name of the observable user field the population is grouped by.
    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    /// The context token of a user of `group` (`country=France`).
    pub fn token(&self, group: &str) -> String {
        format!("{}={group}", self.attribute)
    }

    /// Number of fitted customers.
    pub fn customers(&self) -> usize {
        self.vectors.len() / self.dim.max(1)
    }

    /// Countries and their customer counts, most customers first.
    pub fn countries(&self) -> impl Iterator<Item = (&str, usize)> {
        self.countries.iter().map(|(c, v)| (c.as_str(), v.len()))
    }

    /// Draws a user: a country with probability proportional to its customers, a customer of
    /// that country (or of anyone, for small countries), plus Gaussian noise.
    pub fn draw(&self, config: &crate::config::PopulationConfig, rng: &mut Rng) -> DrawnUser {
        let total = self.customers();
        let pick = rng.random_range(0..total.max(1));
        // Walking the countries by cumulative count picks a country proportionally to its size.
        let mut acc = 0;
        let mut chosen = &self.countries[0];
        for entry in &self.countries {
            acc += entry.1.len();
            if pick < acc {
                chosen = entry;
                break;
            }
        }
        DrawnUser {
            vector: self.draw_from(&chosen.1, config, rng),
            country: chosen.0.clone(),
        }
    }

    /// Draws a hidden vector for a user known to come from `country`: the prior that
    /// [`Population::draw`] implies once the country is observed. An unknown country draws from
    /// everyone.
    pub fn draw_in_country(
        &self,
        country: &str,
        config: &crate::config::PopulationConfig,
        rng: &mut Rng,
    ) -> Vec<f64> {
        let (customer, noise) = self.draw_parts_in_country(country, config, rng);
        self.vector_of(customer, &noise, config)
    }

    /// A customer of `members` (or of anyone, when the configuration or the country's size says
    /// so) plus Gaussian noise.
    fn draw_from(
        &self,
        members: &[u32],
        config: &crate::config::PopulationConfig,
        rng: &mut Rng,
    ) -> Vec<f64> {
        let (customer, noise) = self.draw_parts_from(members, config, rng);
        self.vector_of(customer, &noise, config)
    }

    /// The customers a user of `country` is drawn around ([`Population::draw_in_country`]):
    /// the country's, or `None` for every customer.
    pub(crate) fn prior_members(
        &self,
        country: &str,
        config: &crate::config::PopulationConfig,
    ) -> Option<&[u32]> {
        self.countries
            .iter()
            .find(|(c, _)| c == country)
            .map(|(_, m)| m.as_slice())
            .filter(|m| {
                config.by_country && !m.is_empty() && m.len() >= config.min_country_customers
            })
    }

    /// [`Population::draw_in_country`] in parts: the customer drawn and the standard normal
    /// noise, from the same draws ([`Population::vector_of`] puts them together).
    pub(crate) fn draw_parts_in_country(
        &self,
        country: &str,
        config: &crate::config::PopulationConfig,
        rng: &mut Rng,
    ) -> (usize, Vec<f64>) {
        let members = self.prior_members(country, config).unwrap_or(&[]);
        self.draw_parts_from(members, config, rng)
    }

    fn draw_parts_from(
        &self,
        members: &[u32],
        config: &crate::config::PopulationConfig,
        rng: &mut Rng,
    ) -> (usize, Vec<f64>) {
        let total = self.customers();
        let customer = if config.by_country
            && !members.is_empty()
            && members.len() >= config.min_country_customers
        {
            members[rng.random_range(0..members.len())] as usize
        } else {
            rng.random_range(0..total.max(1))
        };
        let noise = (0..self.dim).map(|_| StandardNormal.sample(rng)).collect();
        (customer, noise)
    }

    /// The hidden vector of a user drawn around `customer` with standard normal `noise`.
    pub(crate) fn vector_of(
        &self,
        customer: usize,
        noise: &[f64],
        config: &crate::config::PopulationConfig,
    ) -> Vec<f64> {
        let base = &self.vectors[customer * self.dim..(customer + 1) * self.dim];
        base.iter()
            .zip(&self.spread)
            .zip(noise)
            .map(|((b, s), z)| b + config.bandwidth * s * z)
            .collect()
    }
}

/// Real-data facts the calibration report compares the simulator against.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealFacts {
    /// Purchase lines per catalog item (in catalog order).
    pub purchases_per_item: Vec<f64>,
    /// Unit prices of purchase lines of catalog items.
    pub purchase_prices: Vec<f64>,
    /// Distinct catalog items per customer who bought any.
    pub items_per_customer: Vec<f64>,
    /// Share of customer-item pairs bought on two or more invoices.
    pub repeat_purchase_rate: f64,
    /// Where the facts come from, for the report (`Online Retail`, `shop `NAME``).
    #[serde(default)]
    pub data: String,
    /// What the facts count (`purchases`, or a shop's strongest signal: `add-to-carts`,
    /// `clicks`, or `weighted events`).
    #[serde(default)]
    pub signal: String,
    /// The currency of prices, when known (`GBP` for Online Retail).
    #[serde(default)]
    pub currency: String,
    /// The shop's logged impressions, when it has any (with at least one click).
    #[serde(default)]
    pub impressions: Option<crate::evidence::ImpressionFacts>,
}

/// The fitted ground truth of a scenario.
///
/// Invariants: every per-item vector has one entry per catalog item, in catalog order; hidden
/// vectors have `dim` values per item; the catalog holds only observable attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// The products on offer with their observable features
    /// ([`BASE_FEATURES`] then the shop's embedding).
    pub catalog: Catalog,
    /// Hidden latent dimension.
    pub dim: usize,
    /// Hidden item vectors, row-major.
    pub item_vectors: Vec<f64>,
    /// The hidden item vectors scaled to unit length (for boredom similarity).
    pub item_directions: Vec<f64>,
    /// Standardised log popularity per item.
    pub popularity: Vec<f64>,
    /// Price per item.
    pub prices: Vec<f64>,
    /// Median of the catalog's prices.
    pub median_price: f64,
    /// Typical quantity of one purchase per item (median over its purchase lines).
    pub quantities: Vec<f64>,
    /// The users.
    pub population: Population,
    /// Real facts for calibration.
    pub real: RealFacts,
}

fn standardise(values: &mut [f64]) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt().max(1e-12);
    values.iter_mut().for_each(|v| *v = (*v - mean) / sd);
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Scores of `rows` (row-major, `d` columns) on their first `k` principal components, each
/// standardised to unit variance: subspace iteration on the covariance from a seeded start, with
/// Gram-Schmidt re-orthonormalisation (plenty for a few hundred dimensions).
pub fn principal_scores(rows: &[f64], d: usize, k: usize, seed: u64) -> Vec<f64> {
    let n = rows.len() / d.max(1);
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let mut mean = vec![0.0; d];
    for r in rows.chunks_exact(d) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    let mut centred = vec![0.0; d];
    for r in rows.chunks_exact(d) {
        for (c, (x, m)) in centred.iter_mut().zip(r.iter().zip(&mean)) {
            *c = x - m;
        }
        for a in 0..d {
            let ca = centred[a];
            for (v, cb) in cov[a * d..(a + 1) * d].iter_mut().zip(&centred) {
                *v += ca * cb;
            }
        }
    }
    let mut rng = rng_for(seed, 0x7063);
    let mut basis: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| StandardNormal.sample(&mut rng)).collect())
        .collect();
    for _ in 0..100 {
        let mut next: Vec<Vec<f64>> = basis
            .iter()
            .map(|q| (0..d).map(|a| dot(&cov[a * d..(a + 1) * d], q)).collect())
            .collect();
        for j in 0..k {
            for p in 0..j {
                let proj = dot(&next[j], &next[p]);
                let (head, tail) = next.split_at_mut(j);
                for (x, y) in tail[0].iter_mut().zip(&head[p]) {
                    *x -= proj * y;
                }
            }
            let norm = dot(&next[j], &next[j]).sqrt().max(1e-300);
            next[j].iter_mut().for_each(|x| *x /= norm);
        }
        basis = next;
    }
    let mut scores = vec![0.0; n * k];
    for (r, row) in rows.chunks_exact(d).enumerate() {
        for (c, (x, m)) in centred.iter_mut().zip(row.iter().zip(&mean)) {
            *c = x - m;
        }
        for (j, q) in basis.iter().enumerate() {
            scores[r * k + j] = dot(&centred, q);
        }
    }
    for j in 0..k {
        let var = (0..n).map(|r| scores[r * k + j].powi(2)).sum::<f64>() / n as f64;
        let sd = var.sqrt().max(1e-12);
        for r in 0..n {
            scores[r * k + j] /= sd;
        }
    }
    scores
}

impl World {
    /// Fits the world of a scenario to cleaned Online Retail purchases.
    pub fn build(data: &OnlineRetail, config: &ScenarioConfig) -> Result<World, SimError> {
        World::build_with_text(data, config, None)
    }

    /// Like [`World::build`], with the title embeddings of every item of `data`'s catalog
    /// (row-major, with their dimension) for scenarios with `observed.text_dims > 0`.
    pub fn build_with_text(
        data: &OnlineRetail,
        config: &ScenarioConfig,
        text: Option<(&[f32], usize)>,
    ) -> Result<World, SimError> {
        // `fit` checks the embeddings against the catalog, which is `data`'s.
        World::fit(&Evidence::from_online_retail(data), config, text)
    }

    /// Fits the world of a scenario to a shop directory's events (`[shop]`: the signal, the
    /// grouping field): hidden vectors by implicit ALS on the shop's strongest signal, the
    /// catalog from its items, the population from its users who gave any of that signal. The
    /// title embeddings, when given, are of every item of the shop's catalog. The shop's
    /// impressions, if any, go into [`RealFacts::impressions`]; [`crate::Scenario::build_from_shop`]
    /// calibrates to them.
    pub fn build_from_shop(
        shop: &Shop,
        config: &ScenarioConfig,
        text: Option<(&[f32], usize)>,
    ) -> Result<World, SimError> {
        let evidence = Evidence::from_shop(shop, &config.shop)?;
        World::fit(&evidence, config, text)
    }

    /// Fits the world to evidence of any source: the one fitting path of every data set.
    fn fit(
        data: &Evidence<'_>,
        config: &ScenarioConfig,
        text: Option<(&[f32], usize)>,
    ) -> Result<World, SimError> {
        if config.observed.text_dims > 0 {
            match text {
                None => {
                    return Err(SimError::Text(format!(
                        "observed.text_dims = {} but no embeddings were given (the CLI computes them with `metarec data fetch minilm`)",
                        config.observed.text_dims
                    )));
                }
                Some((values, d)) if d == 0 || values.len() != d * data.catalog.len() => {
                    return Err(SimError::Text(format!(
                        "{} values for {} items of dimension {d}",
                        values.len(),
                        data.catalog.len()
                    )));
                }
                Some((_, d)) if d < config.observed.text_dims => {
                    return Err(SimError::Text(format!(
                        "observed.text_dims = {} exceeds the embedding dimension {d}",
                        config.observed.text_dims
                    )));
                }
                Some(_) => {}
            }
        }
        let n_customers = data.users;
        let n_all_items = data.catalog.len();
        let entries = &data.entries;
        let truth = fit_implicit(n_customers, n_all_items, entries, &config.fit);

        // The shop's embedding: a seeded subset of customers.
        let observed = if config.observed.dim > 0 {
            let mut split = rng_for(config.seed, 0x0b5e);
            let keep: Vec<bool> = (0..n_customers)
                .map(|_| split.random::<f64>() < config.observed.customer_fraction)
                .collect();
            let subset: Vec<(u32, u32, f64)> = entries
                .iter()
                .copied()
                .filter(|e| keep[e.0 as usize])
                .collect();
            let cfg = MfConfig {
                dim: config.observed.dim,
                seed: config.fit.seed.wrapping_add(1),
                ..config.fit.clone()
            };
            Some(fit_implicit(n_customers, n_all_items, &subset, &cfg))
        } else {
            None
        };

        // The catalog subset: best sellers by purchase lines (ties: lower id); items the data
        // marks unavailable are never on offer.
        let lines_per_item = &data.lines_per_item;
        let mut order: Vec<usize> = (0..n_all_items)
            .filter(|&i| !data.unavailable.contains(&(i as u32)))
            .collect();
        order.sort_by(|&a, &b| {
            lines_per_item[b]
                .total_cmp(&lines_per_item[a])
                .then(a.cmp(&b))
        });
        let keep = if config.catalog.items == 0 {
            order.len()
        } else {
            config.catalog.items.min(order.len())
        };
        if keep < config.choice.slate_size {
            return Err(SimError::TooSmall(format!(
                "{keep} items for slates of {}",
                config.choice.slate_size
            )));
        }
        let chosen = &order[..keep];
        World::assemble(
            data,
            config,
            &truth,
            observed.as_ref(),
            chosen,
            text.filter(|_| config.observed.text_dims > 0),
        )
    }

    fn assemble(
        data: &Evidence<'_>,
        config: &ScenarioConfig,
        truth: &Factors,
        observed: Option<&Factors>,
        chosen: &[usize],
        text: Option<(&[f32], usize)>,
    ) -> Result<World, SimError> {
        let lines_per_item = &data.lines_per_item;
        let d = truth.dim;
        let mut position_of = vec![usize::MAX; data.catalog.len()];
        for (pos, &i) in chosen.iter().enumerate() {
            position_of[i] = pos;
        }
        let mut log_price: Vec<f64> = chosen
            .iter()
            .map(|&i| {
                f64::from(data.catalog.price(ItemId(i as u32)).unwrap_or(1.0))
                    .max(1e-3)
                    .ln()
            })
            .collect();
        let prices: Vec<f64> = log_price.iter().map(|l| l.exp()).collect();
        standardise(&mut log_price);
        let mut popularity: Vec<f64> = chosen
            .iter()
            .map(|&i| (1.0 + lines_per_item[i]).ln())
            .collect();
        standardise(&mut popularity);

        let mut quantities_of: Vec<Vec<f64>> = vec![Vec::new(); chosen.len()];
        let mut purchase_prices = Vec::new();
        for line in &data.lines {
            let pos = position_of[line.item as usize];
            if pos != usize::MAX {
                quantities_of[pos].push(line.quantity);
                if let Some(price) = line.unit_price {
                    purchase_prices.push(price);
                }
            }
        }
        let max_q = f64::from(config.choice.max_quantity);
        let quantities: Vec<f64> = quantities_of
            .iter_mut()
            .map(|q| median(q).clamp(1.0, max_q))
            .collect();

        let obs_dim = observed.map_or(0, |f| f.dim);
        let mut names: Vec<String> = BASE_FEATURES.iter().map(|s| s.to_string()).collect();
        names.extend((0..obs_dim).map(|k| format!("embedding_{k}")));
        let text_dims = if text.is_some() {
            config.observed.text_dims
        } else {
            0
        };
        let text_columns = text.map(|(values, d)| {
            let rows: Vec<f64> = chosen
                .iter()
                .flat_map(|&i| values[i * d..(i + 1) * d].iter().map(|&x| f64::from(x)))
                .collect();
            principal_scores(&rows, d, text_dims, config.seed)
        });
        names.extend((0..text_dims).map(|k| format!("text_{k}")));
        let mut catalog = Catalog::new(names);
        let mut item_vectors = Vec::with_capacity(chosen.len() * d);
        let mut item_directions = Vec::with_capacity(chosen.len() * d);
        for (pos, &i) in chosen.iter().enumerate() {
            let src = data
                .catalog
                .item(ItemId(i as u32))
                .expect("chosen ids index the catalog");
            let mut features = vec![log_price[pos] as f32, popularity[pos] as f32];
            if let Some(o) = observed {
                features.extend(o.item(i).iter().map(|&v| v as f32));
            }
            if let Some(t) = &text_columns {
                features.extend(
                    t[pos * text_dims..(pos + 1) * text_dims]
                        .iter()
                        .map(|&v| v as f32),
                );
            }
            catalog
                .push(Item {
                    key: src.key,
                    title: src.title,
                    category: None,
                    price: Some(prices[pos] as f32),
                    features,
                    embedding: None,
                })
                .map_err(|e| SimError::TooSmall(format!("catalog item rejected: {e}")))?;
            let v = truth.item(i);
            item_vectors.extend_from_slice(v);
            let norm = dot(v, v).sqrt().max(1e-12);
            item_directions.extend(v.iter().map(|x| x / norm));
        }

        // Countries, most customers first (ties alphabetical) so draws do not depend on hashing.
        let mut by_country: HashMap<&str, Vec<u32>> = HashMap::new();
        for (c, group) in data.groups.iter().enumerate() {
            by_country.entry(group.as_str()).or_default().push(c as u32);
        }
        let mut countries: Vec<(String, Vec<u32>)> = by_country
            .into_iter()
            .map(|(c, v)| (c.to_owned(), v))
            .collect();
        countries.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let n = data.users.max(1) as f64;
        let spread: Vec<f64> = (0..d)
            .map(|k| {
                let mean = (0..data.users).map(|u| truth.user(u)[k]).sum::<f64>() / n;
                ((0..data.users)
                    .map(|u| (truth.user(u)[k] - mean).powi(2))
                    .sum::<f64>()
                    / n)
                    .sqrt()
            })
            .collect();

        let mut items_per_customer = vec![0.0f64; data.users];
        let mut repeat = 0usize;
        let mut total_pairs = 0usize;
        for &(u, i, occasions) in &data.occasions {
            if position_of[i as usize] != usize::MAX {
                items_per_customer[u as usize] += 1.0;
                total_pairs += 1;
                if occasions >= 2.0 {
                    repeat += 1;
                }
            }
        }
        items_per_customer.retain(|&n| n > 0.0);
        items_per_customer.sort_by(f64::total_cmp);
        let real = RealFacts {
            purchases_per_item: chosen.iter().map(|&i| lines_per_item[i]).collect(),
            purchase_prices,
            items_per_customer,
            repeat_purchase_rate: repeat as f64 / total_pairs.max(1) as f64,
            data: data.label.clone(),
            signal: data.signal.clone(),
            currency: data.currency.clone(),
            impressions: data.impressions.clone(),
        };
        let median_price = median(&mut prices.clone());
        Ok(World {
            catalog,
            dim: d,
            item_vectors,
            item_directions,
            popularity,
            prices,
            median_price,
            quantities,
            population: Population {
                attribute: data.attribute.clone(),
                dim: d,
                vectors: truth.users.clone(),
                countries,
                spread,
            },
            real,
        })
    }

    /// Hidden vector of item `i`.
    #[inline]
    pub fn item_vector(&self, i: usize) -> &[f64] {
        &self.item_vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Unit direction of item `i`.
    #[inline]
    pub fn item_direction(&self, i: usize) -> &[f64] {
        &self.item_directions[i * self.dim..(i + 1) * self.dim]
    }

    /// This world as a shop's observable item features can describe it: every hidden item
    /// vector replaced by its least-squares fit from the item's observable features (the
    /// catalog's feature columns and an intercept), and every direction by the fit's. The fit is
    /// made to the hidden vectors themselves, so no linear function of the observable features
    /// comes closer to them (in squared error): a policy that knows this world instead of the
    /// real one knows the user model and the population, but the items only as far as a shop
    /// sees them ([`crate::InformedConfig::observed`]).
    pub fn observed_view(&self) -> ObservedView {
        self.observed_view_with(&[], 0)
    }

    /// [`World::observed_view`] with `width` more columns per item beside the catalog's
    /// features: `extra[i * width..(i + 1) * width]` for item `i`, such as a trained network's
    /// item vectors, so the view knows the items as far as those columns and the features
    /// carry them. Items past the end of `extra` get zeros in those columns, and a `width` of 0
    /// is the plain observed view.
    pub fn observed_view_with(&self, extra: &[f64], width: usize) -> ObservedView {
        let items = self.prices.len();
        let d = self.dim;
        let features = self.catalog.features();
        let p = features.dim() + 1 + width;
        let row = |i: usize, out: &mut Vec<f64>| {
            out.clear();
            out.push(1.0);
            out.extend(features.row(i).iter().map(|&v| f64::from(v)));
            match extra.get(i * width..(i + 1) * width) {
                Some(columns) => out.extend_from_slice(columns),
                None => out.resize(p, 0.0),
            }
        };
        // The normal equations of all d regressions share one Gram matrix; a ridge far below
        // any feature's scale keeps it definite when two columns coincide.
        let mut gram = vec![0.0; p * p];
        let mut rhs = vec![0.0; p * d];
        let mut x = Vec::with_capacity(p);
        for i in 0..items {
            row(i, &mut x);
            let v = self.item_vector(i);
            for a in 0..p {
                for b in 0..p {
                    gram[a * p + b] += x[a] * x[b];
                }
                for k in 0..d {
                    rhs[k * p + a] += x[a] * v[k];
                }
            }
        }
        let scale = (0..p).map(|a| gram[a * p + a]).fold(1.0, f64::max);
        for a in 0..p {
            gram[a * p + a] += 1e-9 * scale;
        }
        let mut coefficients = vec![0.0; p * d];
        for k in 0..d {
            let mut g = gram.clone();
            let mut b = rhs[k * p..(k + 1) * p].to_vec();
            // A Gram matrix with the ridge is positive definite; if rounding still defeats the
            // factorisation, that coordinate keeps no coefficients and fits as 0.
            if solve_spd(&mut g, p, &mut b) {
                coefficients[k * p..(k + 1) * p].copy_from_slice(&b);
            }
        }
        let mut world = self.clone();
        let (mut residual, mut total) = (0.0, 0.0);
        for i in 0..items {
            row(i, &mut x);
            let fitted: Vec<f64> = (0..d)
                .map(|k| dot(&coefficients[k * p..(k + 1) * p], &x))
                .collect();
            for (f, h) in fitted.iter().zip(self.item_vector(i)) {
                residual += (f - h).powi(2);
                total += h * h;
            }
            let norm = dot(&fitted, &fitted).sqrt().max(1e-12);
            world.item_vectors[i * d..(i + 1) * d].copy_from_slice(&fitted);
            for (out, f) in world.item_directions[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&fitted)
            {
                *out = f / norm;
            }
        }
        ObservedView {
            world,
            explained: if total > 0.0 {
                1.0 - residual / total
            } else {
                1.0
            },
        }
    }
}

/// [`World::observed_view`]: the world with its items as the observable features describe
/// them, and how much of the hidden vectors those features explain.
#[derive(Debug, Clone)]
pub struct ObservedView {
    /// The world with fitted item vectors and directions; everything else unchanged.
    pub world: World,
    /// The share of the hidden item vectors' sum of squares the fit explains (1 when the
    /// vectors are linear in the features).
    pub explained: f64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_known_country_draws_only_its_own_customers() {
        let mut config = crate::shop::tests::tiny_config(false);
        config.population.bandwidth = 0.0;
        let world = World::build(&crate::shop::tests::tiny_data(), &config).unwrap();
        let population = &world.population;
        let dim = population.dim;
        let rows = |members: &[u32]| -> Vec<Vec<f64>> {
            members
                .iter()
                .map(|&c| population.vectors[c as usize * dim..(c as usize + 1) * dim].to_vec())
                .collect()
        };
        let france = rows(
            &population
                .countries
                .iter()
                .find(|(c, _)| c == "France")
                .unwrap()
                .1,
        );
        let mut rng = rng_for(1, 2);
        for _ in 0..50 {
            let v = population.draw_in_country("France", &config.population, &mut rng);
            assert!(france.contains(&v), "{v:?} is no French customer");
        }
        // Too few customers (or an unknown country) means everyone.
        config.population.min_country_customers = 1000;
        let everyone = rows(&(0..population.customers() as u32).collect::<Vec<_>>());
        let mut drawn: Vec<Vec<f64>> = Vec::new();
        for country in ["France"; 200].into_iter().chain(["Atlantis"; 50]) {
            drawn.push(population.draw_in_country(country, &config.population, &mut rng));
        }
        assert!(drawn.iter().all(|v| everyone.contains(v)));
        assert!(drawn.iter().any(|v| !france.contains(v)));
    }

    #[test]
    fn the_observed_view_is_the_least_squares_fit_of_the_hidden_vectors() {
        let config = crate::shop::tests::tiny_config(false);
        let world = World::build(&crate::shop::tests::tiny_data(), &config).unwrap();
        let (d, items) = (world.dim, world.prices.len());
        let features = world.catalog.features();
        let p = features.dim();
        assert!(p >= 2 && items > p + 1, "{p} features of {items} items");
        let x = |i: usize| -> Vec<f64> {
            std::iter::once(1.0)
                .chain(features.row(i).iter().map(|&v| f64::from(v)))
                .collect()
        };
        let view = world.observed_view();
        assert!(
            view.explained > 0.0 && view.explained < 1.0,
            "{}",
            view.explained
        );
        // Least squares leaves residuals orthogonal to the intercept and to every feature.
        for k in 0..d {
            for a in 0..=p {
                let (mut inner, mut scale) = (0.0, 0.0);
                for i in 0..items {
                    let r = world.item_vector(i)[k] - view.world.item_vector(i)[k];
                    inner += x(i)[a] * r;
                    scale += (x(i)[a] * world.item_vector(i)[k]).abs();
                }
                assert!(inner.abs() <= 1e-6 * scale.max(1.0), "{k} {a}: {inner}");
            }
        }
        for i in 0..items {
            let norm = super::dot(view.world.item_direction(i), view.world.item_direction(i));
            assert!((norm - 1.0).abs() < 1e-9, "{norm}");
        }
        // Vectors that are linear in the features are kept as they are.
        let mut linear = world.clone();
        for i in 0..items {
            for k in 0..d {
                linear.item_vectors[i * d + k] = x(i)
                    .iter()
                    .enumerate()
                    .map(|(a, v)| v * (0.3 * (a + k) as f64 - 0.5))
                    .sum();
            }
        }
        let again = linear.observed_view();
        assert!((again.explained - 1.0).abs() < 1e-9, "{}", again.explained);
        for (a, b) in again.world.item_vectors.iter().zip(&linear.item_vectors) {
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} against {b}");
        }
        assert_eq!(again.world.prices, world.prices);
        // More columns can only explain more; the hidden vectors themselves as columns
        // explain everything, and no columns is the plain view.
        let plain = world.observed_view_with(&[], 0);
        assert_eq!(plain.world.item_vectors, view.world.item_vectors);
        // (The fit's ridge, a billionth of the Gram matrix's largest diagonal, keeps it from
        // being exact.)
        let known = world.observed_view_with(&world.item_vectors, d);
        assert!((known.explained - 1.0).abs() < 1e-6, "{}", known.explained);
        for (a, b) in known.world.item_vectors.iter().zip(&world.item_vectors) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} against {b}");
        }
        let first: Vec<f64> = (0..items).map(|i| world.item_vector(i)[0]).collect();
        let partial = world.observed_view_with(&first, 1);
        assert!(
            partial.explained > view.explained && partial.explained < 1.0,
            "{} against {}",
            partial.explained,
            view.explained
        );
    }

    use super::{World, principal_scores, rng_for};

    #[test]
    fn principal_scores_follow_the_directions_of_largest_variance() {
        // The sample of (t, s) is only nearly uncorrelated, so the components are checked to
        // correlation 0.99. Points spread 10x more along (1, 1, 0)/sqrt(2) than along (0, 0, 1), and not at all
        // along (1, -1, 0): the first component's scores are the first coordinate t, the second
        // component's the third coordinate s, each up to sign and scale.
        let mut rows = Vec::new();
        let mut ts = Vec::new();
        let mut ss = Vec::new();
        for j in 0..50 {
            let t = 10.0 * ((j * 7 % 50) as f64 / 50.0 - 0.5);
            let s = (j * 13 % 50) as f64 / 50.0 - 0.5;
            rows.extend([t / 2f64.sqrt(), t / 2f64.sqrt(), s]);
            ts.push(t);
            ss.push(s);
        }
        let scores = principal_scores(&rows, 3, 2, 1);
        let corr = |col: usize, xs: &[f64]| {
            let a: Vec<f64> = (0..50).map(|r| scores[r * 2 + col]).collect();
            let (ma, mx) = (a.iter().sum::<f64>() / 50.0, xs.iter().sum::<f64>() / 50.0);
            let cov: f64 = a.iter().zip(xs).map(|(p, q)| (p - ma) * (q - mx)).sum();
            let va: f64 = a.iter().map(|p| (p - ma).powi(2)).sum();
            let vx: f64 = xs.iter().map(|q| (q - mx).powi(2)).sum();
            cov / (va * vx).sqrt()
        };
        assert!(corr(0, &ts).abs() > 0.99, "{}", corr(0, &ts));
        assert!(corr(1, &ss).abs() > 0.99, "{}", corr(1, &ss));
        // Unit variance per component.
        let var0: f64 = (0..50).map(|r| scores[r * 2].powi(2)).sum::<f64>() / 50.0;
        assert!((var0 - 1.0).abs() < 1e-9);
    }
}
