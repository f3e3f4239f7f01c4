//! The new-item cold-start benchmark (`metarec new-items --out F`): HR@k and NDCG@k of every
//! feature set with 95% intervals and their paired differences against id-only, HR@k as error
//! bars against the chance hit rate, and the paired HR@k differences as error bars around 0.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Estimate, Kind, ReportError, number, parse};
use crate::svg::{Axis, IntervalPlot, IntervalRow};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "new-items",
    written_by: "metarec new-items --out",
    detect: |v| has_keys(v, &["results", "chance_hit_rate"]),
    render,
};

#[derive(Deserialize)]
struct NewItems {
    config: Config,
    new_items: usize,
    test_users: usize,
    targets: usize,
    #[serde(deserialize_with = "number")]
    chance_hit_rate: f64,
    results: Vec<FeatureSet>,
}

#[derive(Deserialize)]
struct Config {
    holdout_days: u32,
    top_k: usize,
}

#[derive(Deserialize)]
struct FeatureSet {
    features: String,
    #[serde(deserialize_with = "number")]
    ridge: f64,
    hit_rate: Estimate,
    ndcg: Estimate,
    hit_rate_vs_id: Estimate,
    ndcg_vs_id: Estimate,
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let r: NewItems = parse(value, file, KIND.name)?;
    let k = r.config.top_k;
    let mut blocks = vec![Block::Paragraph(format!(
        "{} new products (first sold in the last {} days) ranked for {} customers who bought \
         them ({} purchases). Chance HR@{k} (a random ranking of the new products) is {:.4}. \
         Intervals are 95% intervals over customers; differences are paired on the same \
         customers.",
        r.new_items, r.config.holdout_days, r.test_users, r.targets, r.chance_hit_rate
    ))];
    blocks.push(Block::Table(Table {
        columns: vec![
            "features".into(),
            "ridge".into(),
            format!("HR@{k}"),
            format!("NDCG@{k}"),
            format!("HR@{k} minus id-only"),
            format!("NDCG@{k} minus id-only"),
        ],
        rows: r
            .results
            .iter()
            .map(|f| {
                vec![
                    Cell::text(&f.features),
                    Cell::Number(f.ridge, 2),
                    f.hit_rate.cell(4),
                    f.ndcg.cell(4),
                    f.hit_rate_vs_id.cell(4),
                    f.ndcg_vs_id.cell(4),
                ]
            })
            .collect(),
        caption: Some(
            "mean [95% interval] over test customers; ridge: the penalty chosen on validation"
                .into(),
        ),
    }));
    blocks.push(Block::Svg(
        IntervalPlot {
            title: format!("HR@{k} on never-sold products per feature set, with 95% intervals"),
            value: Axis::new(
                format!("hit rate at {k}"),
                "share of customers with a purchase in the top k",
            )
            .including(0.0),
            rows: r
                .results
                .iter()
                .map(|f| IntervalRow {
                    label: f.features.clone(),
                    series: String::new(),
                    value: f.hit_rate.mean,
                    interval: Some((f.hit_rate.low, f.hit_rate.high)),
                })
                .collect(),
            reference: None,
            marks: vec![(format!("chance HR@{k}"), r.chance_hit_rate)],
        }
        .to_svg(),
    ));
    // The writer puts id-only first, and its difference with itself is 0 by construction, so it
    // is left out of the differences.
    let paired: Vec<&FeatureSet> = r.results.iter().skip(1).collect();
    if !paired.is_empty() {
        blocks.push(Block::Svg(
            IntervalPlot {
                title: format!("HR@{k} minus id-only on the same customers, with 95% intervals"),
                value: Axis::new(
                    format!("difference in hit rate at {k}"),
                    "share of customers",
                ),
                rows: paired
                    .iter()
                    .map(|f| IntervalRow {
                        label: f.features.clone(),
                        series: String::new(),
                        value: f.hit_rate_vs_id.mean,
                        interval: Some((f.hit_rate_vs_id.low, f.hit_rate_vs_id.high)),
                    })
                    .collect(),
                reference: Some(0.0),
                marks: Vec::new(),
            }
            .to_svg(),
        ));
    }
    Ok(Section {
        title: "New-item cold start: Online Retail".into(),
        source: Some(file.into()),
        blocks,
    })
}
