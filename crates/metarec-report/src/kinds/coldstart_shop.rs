//! The cold-start benchmark on a shop's own history (`metarec coldstart --shop ... --json F`):
//! per support size K a table of every method's NDCG@10, HR@10, recall@20 and MRR with 95%
//! intervals over the new users and the NDCG@10 difference against item-kNN paired by user; and
//! the K-sweep, NDCG@10 against K per method with 95% bands; with `--ceiling`, the blend's
//! ceiling under each table. The item variant (`--items --json F`, [`ITEMS_KIND`]) is one table
//! of the methods ranking the new items, against title-kNN.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, number, parse};
use crate::svg::{Axis, LinePlot, Series};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "coldstart-shop",
    written_by: "metarec coldstart --shop DIR --cutoff DATE --json",
    detect: |v| has_keys(v, &["budgets", "validation_cutoff_ms", "training_users"]),
    render,
};

/// Metrics shown, in order, with their column labels.
const METRICS: [(&str, &str); 4] = [
    ("ndcg10", "NDCG@10"),
    ("hr10", "HR@10"),
    ("recall20", "recall@20"),
    ("mrr", "MRR"),
];

#[derive(Deserialize)]
struct ShopColdStart {
    items: usize,
    training_users: usize,
    budgets: Vec<Budget>,
}

#[derive(Deserialize)]
struct Budget {
    k: usize,
    users: usize,
    methods: Vec<Method>,
    #[serde(default)]
    ceiling: Option<Ceiling>,
}

/// The blend's ceiling (its settings chosen on the new users themselves).
#[derive(Deserialize)]
struct Ceiling {
    #[serde(deserialize_with = "number")]
    ndcg10: f64,
}

pub(crate) const ITEMS_KIND: Kind = Kind {
    name: "coldstart-shop-items",
    written_by: "metarec coldstart --shop DIR --cutoff DATE --items --json",
    detect: |v| has_keys(v, &["new_items", "validation_new_items", "methods"]),
    render: render_items,
};

#[derive(Deserialize)]
struct ItemColdStart {
    items: usize,
    new_items: usize,
    users: usize,
    #[serde(deserialize_with = "number")]
    mean_profile: f64,
    #[serde(deserialize_with = "number")]
    mean_query: f64,
    methods: Vec<Method>,
}

#[derive(Deserialize)]
struct Method {
    method: String,
    metrics: Vec<(String, Estimate)>,
    #[serde(default)]
    vs_reference: Vec<(String, Estimate)>,
}

#[derive(Deserialize)]
struct Estimate {
    #[serde(deserialize_with = "number")]
    mean: f64,
    #[serde(deserialize_with = "number")]
    low: f64,
    #[serde(deserialize_with = "number")]
    high: f64,
}

fn find<'a>(list: &'a [(String, Estimate)], name: &str) -> Option<&'a Estimate> {
    list.iter().find(|(n, _)| n == name).map(|(_, e)| e)
}

fn interval(e: Option<&Estimate>) -> Cell {
    match e {
        Some(e) => Cell::Interval {
            mean: e.mean,
            low: e.low,
            high: e.high,
            decimals: 4,
        },
        None => Cell::text("-"),
    }
}

/// One table: a row per method, its metrics with intervals and its NDCG@10 difference against
/// the reference paired by user.
fn methods_table(methods: &[Method], reference: &str, caption: String) -> Table {
    Table {
        columns: std::iter::once("method".to_string())
            .chain(METRICS.iter().map(|(_, l)| l.to_string()))
            .chain(std::iter::once(format!("NDCG@10 - {reference}")))
            .collect(),
        rows: methods
            .iter()
            .map(|m| {
                std::iter::once(Cell::text(&m.method))
                    .chain(METRICS.iter().map(|(n, _)| interval(find(&m.metrics, n))))
                    .chain(std::iter::once(interval(find(&m.vs_reference, "ndcg10"))))
                    .collect()
            })
            .collect(),
        caption: Some(caption),
    }
}

fn render_items(value: &Value, file: &str) -> Result<Section, ReportError> {
    let c: ItemColdStart = parse(value, file, ITEMS_KIND.name)?;
    let blocks = vec![
        Block::Paragraph(format!(
            "Item cold start on the shop's own history: the {} of {} items first sold on or after \
             the cutoff, ranked from their titles, categories and prices for the {} users who \
             bought them ({:.1} profile items and {:.1} new items each on average). Every number \
             is a mean over users with its 95% interval; the last column is the NDCG@10 \
             difference against title-kNN paired by user.",
            c.new_items, c.items, c.users, c.mean_profile, c.mean_query
        )),
        Block::Table(methods_table(
            &c.methods,
            "title-kNN",
            format!("{} users, all {} new items ranked", c.users, c.new_items),
        )),
    ];
    Ok(Section {
        title: "Item cold start on a shop's history".into(),
        source: Some(file.into()),
        blocks,
    })
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let c: ShopColdStart = parse(value, file, KIND.name)?;
    let mut blocks = vec![Block::Paragraph(format!(
        "Cold start on the shop's own history: new users after the cutoff, their first K items \
         as support, the rest as query; {} items, models fitted on {} users before the cutoff. \
         Every number is a mean over new users with its 95% interval; the last column is the \
         NDCG@10 difference against item-kNN paired by user.",
        c.items, c.training_users
    ))];
    for b in &c.budgets {
        blocks.push(Block::Table(methods_table(
            &b.methods,
            "item-kNN",
            format!("K = {}: {} new users", b.k, b.users),
        )));
        if let Some(ceiling) = &b.ceiling {
            blocks.push(Block::Paragraph(format!(
                "K = {}: the blend's ceiling, bayes-knn with every setting but its noise chosen on \
                 these new users themselves (a limit of the method's family, not a method): \
                 NDCG@10 {:.4}.",
                b.k, ceiling.ndcg10
            )));
        }
    }
    if c.budgets.len() >= 2 {
        let mut methods: Vec<&str> = Vec::new();
        for m in c.budgets.iter().flat_map(|b| &b.methods) {
            if !methods.contains(&m.method.as_str()) {
                methods.push(&m.method);
            }
        }
        let plot = LinePlot {
            title: "NDCG@10 against the support size K (higher is better), 95% intervals".into(),
            x: Axis::new("support size K", "items revealed per new user").integer(),
            y: Axis::new("NDCG@10", "mean over new users"),
            series: methods
                .iter()
                .map(|name| {
                    let mut s = Series::with_band(
                        *name,
                        c.budgets.iter().filter_map(|b| {
                            let m = b.methods.iter().find(|m| m.method == *name)?;
                            let e = find(&m.metrics, "ndcg10")?;
                            Some((b.k as f64, e.mean, e.low, e.high))
                        }),
                    );
                    s.markers = true;
                    s
                })
                .collect(),
        };
        blocks.push(Block::Svg(plot.to_svg()));
    }
    Ok(Section {
        title: "Cold start on a shop's history".into(),
        source: Some(file.into()),
        blocks,
    })
}
