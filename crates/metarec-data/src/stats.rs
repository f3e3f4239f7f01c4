//! The first numbers a practitioner checks on a data set: sizes, date range, density,
//! popularity skew (Gini), prices and rates, as a printable and serialisable [`Stats`] table.
//!
//! One function per source: [`online_retail_stats`], [`obd_stats`], [`movielens_stats`], and
//! [`shop_stats`] for an imported shop directory (`metarec shop stats`). Rows that measure the
//! same thing carry the same name where the concept is the same (`items`, `date range`,
//! `density`, `repeat-purchase rate`), so an imported data set can be compared with its loader.

use crate::movielens::MovieLens;
use crate::obd::ObdLog;
use crate::online_retail::OnlineRetail;
use crate::report::LoadReport;
use crate::shop::interactions::{InteractionOptions, revenue_of, shop_log};
use crate::shop::{EventKind, Shop};
use crate::time::format_ms;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One statistic's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatValue {
    /// A count.
    Count(u64),
    /// A real number.
    Number(f64),
    /// Text (a date range, a list of reasons).
    Text(String),
    /// Quantiles as `(probability, value)` pairs.
    Quantiles(Vec<(f64, f64)>),
}

/// One row of a [`Stats`] table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatRow {
    /// What is measured.
    pub name: String,
    /// The value.
    pub value: StatValue,
}

/// A titled table of statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Which data set (and slice of it).
    pub title: String,
    /// The rows, in display order.
    pub rows: Vec<StatRow>,
}

impl Stats {
    fn new(title: impl Into<String>) -> Self {
        Stats {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, value: StatValue) {
        self.rows.push(StatRow {
            name: name.to_owned(),
            value,
        });
    }

    fn count(&mut self, name: &str, n: usize) {
        self.push(name, StatValue::Count(n as u64));
    }

    fn number(&mut self, name: &str, x: f64) {
        self.push(name, StatValue::Number(x));
    }

    fn text(&mut self, name: &str, s: impl Into<String>) {
        self.push(name, StatValue::Text(s.into()));
    }

    /// The value of a named row.
    pub fn get(&self, name: &str) -> Option<&StatValue> {
        self.rows.iter().find(|r| r.name == name).map(|r| &r.value)
    }

    fn load_report(&mut self, report: &LoadReport) {
        self.count("records read", report.records as usize);
        self.count("records kept", report.kept as usize);
        for (reason, n) in &report.skipped {
            self.count(&format!("skipped: {reason}"), *n as usize);
        }
        for (what, n) in &report.missing {
            self.count(&format!("treated as missing: {what}"), *n as usize);
        }
    }
}

/// Formats a count with thousands separators: `397884` -> `397,884`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn format_number(x: f64) -> String {
    if x == 0.0 || (x.abs() >= 0.01 && x.abs() < 1e6) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_owned()
    } else {
        format!("{x:.4e}")
    }
}

impl fmt::Display for StatValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatValue::Count(n) => f.write_str(&thousands(*n)),
            StatValue::Number(x) => f.write_str(&format_number(*x)),
            StatValue::Text(s) => f.write_str(s),
            StatValue::Quantiles(q) => {
                let parts: Vec<String> = q
                    .iter()
                    .map(|(p, v)| format!("p{}={}", format_number(p * 100.0), format_number(*v)))
                    .collect();
                f.write_str(&parts.join("  "))
            }
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &self.rows {
            writeln!(f, "  {:<width$}  {}", r.name, r.value)?;
        }
        Ok(())
    }
}

/// The Gini coefficient of a non-negative distribution (0: all equal; towards 1: all mass on
/// one entry). Used for popularity skew over items. Returns 0 for an empty or all-zero input.
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len();
    let total: f64 = values.iter().sum();
    if n == 0 || total <= 0.0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    let n = n as f64;
    2.0 * weighted / (n * total) - (n + 1.0) / n
}

/// Quantiles by linear interpolation between order statistics (numpy's default method).
pub fn quantiles(values: &[f64], probabilities: &[f64]) -> Vec<(f64, f64)> {
    if values.is_empty() {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = (sorted.len() - 1) as f64;
    probabilities
        .iter()
        .map(|&p| {
            let h = p.clamp(0.0, 1.0) * last;
            let lo = h.floor() as usize;
            let hi = h.ceil() as usize;
            (p, sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
        })
        .collect()
}

/// The Wilson score interval for a proportion at 95% confidence.
pub fn wilson_interval(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = trials as f64;
    let p = successes as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

const PRICE_QUANTILES: [f64; 7] = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];

fn date_range(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("{} .. {}", format_ms(a), format_ms(b)),
        _ => "empty".into(),
    }
}

fn percent(x: f64) -> String {
    format!("{:.3}%", 100.0 * x)
}

/// Statistics of cleaned Online Retail purchases.
pub fn online_retail_stats(d: &OnlineRetail) -> Stats {
    let mut s = Stats::new("online-retail (UCI Online Retail, cleaned purchases)");
    let n_customers = d.customers.len();
    let n_items = d.catalog.len();
    s.count("customers", n_customers);
    s.count("items", n_items);
    s.count("purchase lines", d.purchases.len());
    let invoices: HashSet<u32> = d.purchases.iter().map(|p| p.invoice).collect();
    s.count("invoices", invoices.len());
    let countries: HashSet<&str> = d.customers.iter().map(|c| c.country.as_str()).collect();
    s.count("countries", countries.len());
    let times = d.purchases.iter().map(|p| p.timestamp_ms);
    s.text("date range", date_range(times.clone().min(), times.max()));
    // Customer-item pairs and the invoices each pair appears in, for density and repeats.
    let mut pairs: HashMap<(u32, u32), (u32, u32)> = HashMap::with_capacity(d.purchases.len());
    for p in &d.purchases {
        let e = pairs
            .entry((p.customer, p.item.0))
            .or_insert((p.invoice, 1));
        if e.0 != p.invoice {
            e.0 = p.invoice;
            e.1 += 1;
        }
    }
    let density = pairs.len() as f64 / (n_customers as f64 * n_items as f64).max(1.0);
    s.count("customer-item pairs", pairs.len());
    s.number("density", density);
    let repeat = pairs.values().filter(|(_, n)| *n >= 2).count();
    s.text(
        "repeat-purchase rate",
        percent(repeat as f64 / pairs.len().max(1) as f64),
    );
    let mut per_customer = vec![0.0f64; n_customers];
    for &(c, _) in pairs.keys() {
        per_customer[c as usize] += 1.0;
    }
    s.push(
        "distinct items per customer",
        StatValue::Quantiles(quantiles(&per_customer, &[0.1, 0.5, 0.9])),
    );
    let mut per_item = vec![0.0f64; n_items];
    for p in &d.purchases {
        per_item[p.item.index()] += 1.0;
    }
    s.number("popularity Gini (lines per item)", gini(&per_item));
    let prices: Vec<f64> = d
        .purchases
        .iter()
        .map(|p| f64::from(p.unit_price))
        .collect();
    s.push(
        "unit price quantiles (GBP, per line)",
        StatValue::Quantiles(quantiles(&prices, &PRICE_QUANTILES)),
    );
    let revenue: f64 = d.purchases.iter().map(|p| p.revenue()).sum();
    s.number("revenue (GBP)", revenue.round());
    s.load_report(&d.report);
    s
}

/// Statistics of one Open Bandit log.
pub fn obd_stats(log: &ObdLog) -> Stats {
    let mut s = Stats::new(format!(
        "obd (Open Bandit Dataset, policy {}, campaign {})",
        log.policy, log.campaign
    ));
    let rounds = log.rounds.len();
    let clicks = log.rounds.iter().filter(|r| r.click).count();
    s.count("rounds", rounds);
    s.count("items", log.catalog.len());
    s.count("positions", log.positions());
    s.count("impressions", rounds);
    s.count("clicks", clicks);
    let (lo, hi) = wilson_interval(clicks as u64, rounds as u64);
    s.text(
        "CTR (95% Wilson interval)",
        format!(
            "{} [{}, {}]",
            percent(clicks as f64 / rounds.max(1) as f64),
            percent(lo),
            percent(hi)
        ),
    );
    let max_pos = log.rounds.iter().map(|r| r.position).max().unwrap_or(0);
    for pos in 0..=max_pos {
        let shown = log.rounds.iter().filter(|r| r.position == pos).count();
        let clicked = log
            .rounds
            .iter()
            .filter(|r| r.position == pos && r.click)
            .count();
        s.text(
            &format!("CTR at position {}", pos + 1),
            format!(
                "{} ({} clicks / {} rounds)",
                percent(clicked as f64 / shown.max(1) as f64),
                clicked,
                thousands(shown as u64)
            ),
        );
    }
    let times = log.rounds.iter().map(|r| r.timestamp_ms);
    s.text("date range", date_range(times.clone().min(), times.max()));
    let users: HashSet<[u32; 4]> = log.rounds.iter().map(|r| r.user_features).collect();
    s.count("distinct user feature vectors", users.len());
    let mut per_item = vec![0.0f64; log.catalog.len()];
    for r in &log.rounds {
        per_item[r.item.index()] += 1.0;
    }
    s.number("popularity Gini (impressions per item)", gini(&per_item));
    let props: Vec<f64> = log.rounds.iter().map(|r| r.propensity).collect();
    s.push(
        "propensity quantiles",
        StatValue::Quantiles(quantiles(&props, &[0.0, 0.5, 1.0])),
    );
    s.load_report(&log.report);
    s
}

/// Statistics of MovieLens-100k.
pub fn movielens_stats(ml: &MovieLens) -> Stats {
    let mut s = Stats::new("ml-100k (MovieLens 100K, RecBole atomic files)");
    let (nu, ni, nr) = (ml.users.len(), ml.catalog.len(), ml.ratings.len());
    s.count("users", nu);
    s.count("items", ni);
    s.count("ratings", nr);
    let times = ml.ratings.iter().map(|r| r.timestamp_ms);
    s.text("date range", date_range(times.clone().min(), times.max()));
    s.number("density", nr as f64 / (nu as f64 * ni as f64).max(1.0));
    let mean = ml.ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / nr.max(1) as f64;
    s.number("mean rating", mean);
    let mut hist = [0usize; 6];
    for r in &ml.ratings {
        hist[(r.rating.round() as usize).min(5)] += 1;
    }
    s.text(
        "ratings 1/2/3/4/5",
        hist[1..]
            .iter()
            .map(|n| thousands(*n as u64))
            .collect::<Vec<_>>()
            .join(" / "),
    );
    let mut per_user = vec![0.0f64; nu];
    let mut per_item = vec![0.0f64; ni];
    for r in &ml.ratings {
        per_user[r.user as usize] += 1.0;
        per_item[r.item.index()] += 1.0;
    }
    s.push(
        "ratings per user",
        StatValue::Quantiles(quantiles(&per_user, &[0.0, 0.5, 1.0])),
    );
    s.number("popularity Gini (ratings per item)", gini(&per_item));
    s.count("genres", ml.catalog.features().dim());
    s.count(
        "female users",
        ml.users.iter().filter(|u| u.gender == "F").count(),
    );
    s.load_report(&ml.report);
    s
}

/// Statistics of an imported shop: sizes, events by type, visits, dates, density, repeat
/// purchases, popularity skew, prices, revenue, and where the shop logged impressions the CTR
/// overall and by position (95% Wilson intervals), then what each file's import kept and
/// skipped.
///
/// Revenue counts purchases: an event's own revenue, or the catalog price times the quantity
/// (as the replay into interactions does). The repeat-purchase rate is the share of user-item
/// pairs bought in at least two visits (two session ids, or two times when the shop logs no
/// sessions), counted as `online_retail_stats` counts invoices.
pub fn shop_stats(shop: &Shop) -> Stats {
    let m = &shop.manifest;
    let mut s = Stats::new(format!("shop {} ({})", m.name, shop.dir.display()));
    let (n_users, n_items) = (shop.users.len(), shop.catalog.len());
    s.count("users", n_users);
    s.count("items", n_items);
    s.count("events", shop.events.len());
    let mut by_kind = [0usize; 4];
    for e in &shop.events {
        by_kind[kind_index(e.kind)] += 1;
    }
    for kind in EventKind::ALL {
        let n = by_kind[kind_index(kind)];
        if n > 0 {
            s.count(&format!("events: {}", kind.as_str()), n);
        }
    }
    if !shop.sessions.is_empty() {
        s.count("sessions", shop.sessions.len());
    }
    if !shop.rankings.is_empty() {
        s.count("rankings", shop.rankings.len());
    }
    let times = shop.events.iter().map(|e| e.timestamp_ms);
    s.text("date range", date_range(times.clone().min(), times.max()));

    let mut pairs: HashSet<(u32, u32)> = HashSet::with_capacity(shop.events.len());
    for e in &shop.events {
        pairs.insert((e.user, e.item.0));
    }
    s.count("user-item pairs", pairs.len());
    let density = pairs.len() as f64 / (n_users as f64 * n_items as f64).max(1.0);
    s.number("density", density);
    let purchases = by_kind[kind_index(EventKind::Purchase)];
    if purchases > 0 {
        // Per bought pair: the visit of its latest purchase and the visits counted so far. A
        // purchase without a session id is its own visit when its time differs.
        let mut bought: HashMap<(u32, u32), (VisitKey, u32)> = HashMap::new();
        for e in shop.events.iter().filter(|e| e.kind == EventKind::Purchase) {
            let visit = match e.session {
                Some(v) => VisitKey::Session(v),
                None => VisitKey::Time(e.timestamp_ms),
            };
            let entry = bought.entry((e.user, e.item.0)).or_insert((visit, 1));
            if entry.0 != visit {
                entry.0 = visit;
                entry.1 += 1;
            }
        }
        let repeat = bought.values().filter(|(_, n)| *n >= 2).count();
        s.text(
            "repeat-purchase rate",
            percent(repeat as f64 / bought.len().max(1) as f64),
        );
    }
    let mut per_user = vec![0.0f64; n_users];
    for &(u, _) in &pairs {
        if let Some(x) = per_user.get_mut(u as usize) {
            *x += 1.0;
        }
    }
    s.push(
        "distinct items per user",
        StatValue::Quantiles(quantiles(&per_user, &[0.1, 0.5, 0.9])),
    );
    let mut per_item = vec![0.0f64; n_items];
    for e in &shop.events {
        per_item[e.item.index()] += 1.0;
    }
    s.number("popularity Gini (events per item)", gini(&per_item));
    let prices: Vec<f64> = shop
        .catalog
        .prices()
        .iter()
        .flatten()
        .map(|&p| f64::from(p))
        .collect();
    if !prices.is_empty() {
        s.push(
            "price quantiles (catalog)",
            StatValue::Quantiles(quantiles(&prices, &PRICE_QUANTILES)),
        );
    }
    if purchases > 0 {
        let revenue: f64 = shop
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Purchase)
            .map(|e| revenue_of(shop, e))
            .sum();
        s.number("revenue", revenue.round());
    }
    if !m.unavailable.is_empty() {
        s.count("unavailable items", m.unavailable.len());
    }
    if !m.user_features.is_empty() {
        s.text("user features", m.user_features.join(", "));
    }

    let log = shop_log(shop, &InteractionOptions::default());
    if log.has_impressions() {
        let mut shown: Vec<u64> = Vec::new();
        let mut clicked: Vec<u64> = Vec::new();
        for i in &log.interactions {
            for k in 0..i.decision.slate.len() {
                let p = i.decision.position(k) as usize;
                if p >= shown.len() {
                    shown.resize(p + 1, 0);
                    clicked.resize(p + 1, 0);
                }
                shown[p] += 1;
                clicked[p] += u64::from(i.feedback.clicks[k]);
            }
        }
        let (impressions, clicks): (u64, u64) = (shown.iter().sum(), clicked.iter().sum());
        s.count("impressions", impressions as usize);
        s.count("clicks on impressions", clicks as usize);
        let logged = log.logged_propensities.iter().filter(|l| **l).count();
        s.count("rankings with logged propensities", logged);
        s.text("CTR (95% Wilson interval)", ctr_text(clicks, impressions));
        for (p, (&n, &c)) in shown.iter().zip(&clicked).enumerate() {
            if n > 0 {
                s.text(&format!("CTR at position {}", p + 1), ctr_text(c, n));
            }
        }
    }
    if !log.organic.is_empty() {
        s.count("feedback outside impressions", log.organic.len());
    }
    for (i, report) in m.reports.iter().enumerate() {
        let role = m
            .sources
            .iter()
            .filter(|f| f.role != "exclude_items")
            .nth(i)
            .filter(|f| f.path == report.source)
            .map_or(report.source.as_str(), |f| f.role.as_str());
        s.count(&format!("{role}: records read"), report.records as usize);
        s.count(&format!("{role}: records kept"), report.kept as usize);
        for (reason, n) in &report.skipped {
            s.count(&format!("{role}: skipped: {reason}"), *n as usize);
        }
        for (what, n) in &report.missing {
            s.count(&format!("{role}: treated as missing: {what}"), *n as usize);
        }
    }
    s
}

/// What separates two purchases of a pair into two visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VisitKey {
    Session(u32),
    Time(i64),
}

fn kind_index(kind: EventKind) -> usize {
    match kind {
        EventKind::View => 0,
        EventKind::Click => 1,
        EventKind::AddToCart => 2,
        EventKind::Purchase => 3,
    }
}

/// `3.80% [2.77%, 5.20%] (38 clicks / 1,000 impressions)`.
fn ctr_text(clicks: u64, shown: u64) -> String {
    let (lo, hi) = wilson_interval(clicks, shown);
    format!(
        "{} [{}, {}] ({} clicks / {} impressions)",
        percent(clicks as f64 / shown.max(1) as f64),
        percent(lo),
        percent(hi),
        thousands(clicks),
        thousands(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_matches_hand_computed_values() {
        assert_eq!(gini(&[1.0, 1.0, 1.0, 1.0]), 0.0);
        // One of four holds everything: (n - 1) / n = 0.75.
        assert!((gini(&[0.0, 0.0, 0.0, 5.0]) - 0.75).abs() < 1e-12);
        // [1, 2, 3]: 2 * (1 + 4 + 9) / (3 * 6) - 4 / 3 = 2/9.
        assert!((gini(&[3.0, 1.0, 2.0]) - 2.0 / 9.0).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0, .25, .5, 1]) = [1, 1.75, 2.5, 4].
        let q = quantiles(&[4.0, 1.0, 3.0, 2.0], &[0.0, 0.25, 0.5, 1.0]);
        assert_eq!(q, vec![(0.0, 1.0), (0.25, 1.75), (0.5, 2.5), (1.0, 4.0)]);
        assert!(quantiles(&[], &[0.5]).is_empty());
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        // Reference computed in Python with the textbook formula:
        // z = NormalDist().inv_cdf(0.975); n = 10000; p = 35 / n
        // c = (p + z*z/(2*n)) / (1 + z*z/n); h = z*sqrt(p*(1-p)/n + z*z/(4*n*n)) / (1 + z*z/n)
        // c - h = 0.0025177785, c + h = 0.0048635319.
        let (lo, hi) = wilson_interval(35, 10_000);
        assert!((lo - 0.002_517_778_5).abs() < 1e-9, "{lo}");
        assert!((hi - 0.004_863_531_9).abs() < 1e-9, "{hi}");
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(397_884), "397,884");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
