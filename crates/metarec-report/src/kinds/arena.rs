//! The arena (`metarec arena --json`, `arena.json` of `metarec demo`): a table of every
//! contestant's metrics with 95% intervals, the reward per user as error bars, the cold-start
//! curves with their 95% bands, and the paired differences.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Estimate, Kind, ReportError, number, parse};
use crate::svg::{Axis, IntervalPlot, IntervalRow, LinePlot, Series};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "arena",
    written_by: "metarec arena --json, arena.json of metarec demo",
    detect: |v| has_keys(v, &["contestants", "horizon", "users_per_seed"]),
    render,
};

#[derive(Deserialize)]
struct Arena {
    scenario: String,
    users_per_seed: usize,
    seeds: usize,
    horizon: usize,
    contestants: Vec<Contestant>,
    #[serde(default)]
    paired: Vec<Paired>,
}

#[derive(Deserialize)]
struct Contestant {
    policy: String,
    users: usize,
    reward: Estimate,
    discounted_return: Estimate,
    /// Absent from results written before it existed.
    #[serde(default)]
    early_reward: Option<Estimate>,
    ctr: Estimate,
    cvr: Estimate,
    revenue: Estimate,
    visit_length: Estimate,
    visits: Estimate,
    regret: Estimate,
    curve: Vec<Estimate>,
    /// Absent from results written before it existed.
    #[serde(default)]
    oracle_share: Vec<Estimate>,
    #[serde(deserialize_with = "number")]
    seconds: f64,
}

#[derive(Deserialize)]
struct Paired {
    policy: String,
    against: String,
    reward_difference: Estimate,
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let a: Arena = parse(value, file, KIND.name)?;
    let mut blocks = vec![Block::Paragraph(format!(
        "Scenario `{}`: {} new users per seed x {} seeds per policy, the same users (common \
         random numbers) for every policy. Intervals are 95% confidence intervals over users.",
        a.scenario, a.users_per_seed, a.seeds
    ))];
    blocks.push(Block::Table(Table {
        columns: [
            "policy",
            "users",
            "reward / user",
            &format!("reward over interactions 1-{} / user", a.horizon),
            "discounted return / user",
            "CTR (clicks / shown item)",
            "CVR (purchases / click)",
            "revenue / user (GBP)",
            "visits / user",
            "slates / visit",
            "regret / user",
            "seconds",
        ]
        .map(String::from)
        .to_vec(),
        rows: a
            .contestants
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.policy),
                    Cell::Number(c.users as f64, 0),
                    c.reward.cell(3),
                    c.early_reward
                        .as_ref()
                        .map_or_else(|| Cell::text("-"), |e| e.cell(3)),
                    c.discounted_return.cell(3),
                    c.ctr.cell(4),
                    c.cvr.cell(4),
                    c.revenue.cell(2),
                    c.visits.cell(2),
                    c.visit_length.cell(2),
                    c.regret.cell(3),
                    Cell::Number(c.seconds, 1),
                ]
            })
            .collect(),
        caption: Some("mean [95% interval] per user over every user of every seed".into()),
    }));
    blocks.push(Block::Svg(
        IntervalPlot {
            title: "Reward per new user, with 95% intervals".into(),
            value: Axis::new("total reward per user over all visits", "reward units"),
            rows: a
                .contestants
                .iter()
                .map(|c| IntervalRow {
                    label: c.policy.clone(),
                    series: String::new(),
                    value: c.reward.mean,
                    interval: Some((c.reward.low, c.reward.high)),
                })
                .collect(),
            reference: None,
            marks: Vec::new(),
        }
        .to_svg(),
    ));
    if a.contestants.iter().any(|c| !c.curve.is_empty()) {
        blocks.push(Block::Svg(
            LinePlot {
                title: format!(
                    "Cold-start curves: reward at each of a new user's first {} interactions",
                    a.horizon
                ),
                x: Axis::new("interaction t of a new user", "slate number, 1 = first").integer(),
                y: Axis::new("mean reward at interaction t", "reward units").including(0.0),
                series: a
                    .contestants
                    .iter()
                    .map(|c| {
                        Series::with_band(
                            c.policy.clone(),
                            c.curve
                                .iter()
                                .enumerate()
                                .map(|(t, e)| ((t + 1) as f64, e.mean, e.low, e.high)),
                        )
                    })
                    .collect(),
            }
            .to_svg(),
        ));
        blocks.push(Block::Paragraph(
            "Shaded bands are 95% intervals over users; a user who has left counts as 0 reward."
                .into(),
        ));
    }
    if a.contestants.iter().any(|c| !c.oracle_share.is_empty()) {
        blocks.push(Block::Svg(
            LinePlot {
                title: "How well each policy knows the user: its slate's expected reward as a \
                        share of the oracle's, for the same user at the same moment"
                    .into(),
                x: Axis::new("interaction t of a new user", "slate number, 1 = first").integer(),
                y: Axis::new("share of the oracle's expected reward", "percent")
                    .including(0.0)
                    .including(100.0),
                series: a
                    .contestants
                    .iter()
                    .filter(|c| !c.oracle_share.is_empty())
                    .map(|c| {
                        Series::with_band(
                            c.policy.clone(),
                            c.oracle_share.iter().enumerate().map(|(t, e)| {
                                (
                                    (t + 1) as f64,
                                    100.0 * e.mean,
                                    100.0 * e.low,
                                    100.0 * e.high,
                                )
                            }),
                        )
                    })
                    .collect(),
            }
            .to_svg(),
        ));
        blocks.push(Block::Paragraph(
            "Ratio of sums over the users still there at t, with 95% intervals (delta method); \
             unlike the cold-start curve it does not count users who left."
                .into(),
        ));
    }
    if !a.paired.is_empty() {
        blocks.push(Block::Table(Table {
            columns: ["policy", "against", "reward difference / user"]
                .map(String::from)
                .to_vec(),
            rows: a
                .paired
                .iter()
                .map(|p| {
                    vec![
                        Cell::text(&p.policy),
                        Cell::text(&p.against),
                        p.reward_difference.cell(3),
                    ]
                })
                .collect(),
            caption: Some(
                "paired on the same users: policy minus the one it is compared against".into(),
            ),
        }));
        blocks.push(Block::Svg(
            IntervalPlot {
                title: "Paired reward differences on the same users, with 95% intervals".into(),
                value: Axis::new("reward per user, policy minus comparison", "reward units"),
                rows: a
                    .paired
                    .iter()
                    .map(|p| IntervalRow {
                        label: p.policy.clone(),
                        series: format!("against {}", p.against),
                        value: p.reward_difference.mean,
                        interval: Some((p.reward_difference.low, p.reward_difference.high)),
                    })
                    .collect(),
                reference: Some(0.0),
                marks: Vec::new(),
            }
            .to_svg(),
        ));
    }
    Ok(Section {
        title: format!("Arena: scenario `{}`", a.scenario),
        source: Some(file.into()),
        blocks,
    })
}
