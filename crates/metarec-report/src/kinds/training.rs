//! Training (a model's `manifest.json` from `metarec train` or `metarec demo`): learning curves
//! of reward per user, loss and entropy over the iterations of every run.

use super::has_keys;
use crate::html::{Block, Cell, Section, Table};
use crate::results::{Kind, ReportError, number, parse};
use crate::svg::{Axis, LinePlot, Series};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const KIND: Kind = Kind {
    name: "training",
    written_by: "manifest.json of a model from metarec train or metarec demo",
    detect: |v| {
        has_keys(v, &["format", "metrics"])
            && v["format"]
                .as_str()
                .is_some_and(|f| f.starts_with("metarec-neural/"))
    },
    render,
};

/// Iterations averaged by the smoothed curves.
const WINDOW: usize = 20;

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    scenario: String,
    /// What the model was trained on; its `kind` is `scenario`, or `shop` for a shop's logs
    /// (`train --shop`, whose name `scenario` then holds).
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    algos: Vec<String>,
    #[serde(default)]
    iterations: usize,
    metrics: Vec<Stats>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    kind: String,
}

impl Manifest {
    /// `scenario `NAME`` or `shop `NAME``.
    fn trained_on(&self) -> String {
        let what = match &self.source {
            Some(s) if s.kind == "shop" => "shop",
            _ => "scenario",
        };
        format!("{what} `{}`", self.scenario)
    }
}

#[derive(Deserialize)]
struct Stats {
    iteration: usize,
    #[serde(deserialize_with = "number")]
    reward_per_user: f64,
    #[serde(deserialize_with = "number")]
    loss: f64,
    #[serde(deserialize_with = "number")]
    entropy: f64,
}

/// The trailing moving average over `WINDOW` values (fewer at the start).
fn moving_average(xs: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(xs.len());
    for i in 0..xs.len() {
        let from = (i + 1).saturating_sub(WINDOW);
        let w = &xs[from..=i];
        out.push(w.iter().sum::<f64>() / w.len() as f64);
    }
    out
}

fn curve(title: &str, y: Axis, iterations: &[f64], values: &[f64]) -> String {
    let smooth = moving_average(values);
    let mut raw = Series::xy(
        "each iteration",
        iterations.iter().copied().zip(values.iter().copied()),
    );
    raw.faint = true;
    let avg = Series::xy(
        format!("mean of the last {WINDOW} iterations"),
        iterations.iter().copied().zip(smooth),
    );
    LinePlot {
        title: title.into(),
        x: Axis::new("training iteration", "optimiser steps").integer(),
        y,
        series: vec![raw, avg],
    }
    .to_svg()
}

fn render(value: &Value, file: &str) -> Result<Section, ReportError> {
    let m: Manifest = parse(value, file, KIND.name)?;
    let its: Vec<f64> = m.metrics.iter().map(|s| s.iteration as f64).collect();
    let reward: Vec<f64> = m.metrics.iter().map(|s| s.reward_per_user).collect();
    let loss: Vec<f64> = m.metrics.iter().map(|s| s.loss).collect();
    let entropy: Vec<f64> = m.metrics.iter().map(|s| s.entropy).collect();
    let mut blocks = vec![Block::Paragraph(format!(
        "Trained on {}, algorithms run in order: {}; {} iterations in total, {} recorded.",
        m.trained_on(),
        if m.algos.is_empty() {
            "(none recorded)".to_string()
        } else {
            m.algos.join(", ")
        },
        m.iterations,
        m.metrics.len()
    ))];
    if m.metrics.is_empty() {
        blocks.push(Block::Paragraph("No iterations recorded.".into()));
    } else {
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let n = WINDOW.min(reward.len());
        blocks.push(Block::Table(Table {
            columns: [
                "",
                "reward / user (reward units)",
                "loss",
                "first-position entropy (nats)",
            ]
            .map(String::from)
            .to_vec(),
            rows: vec![
                vec![
                    Cell::text(format!("first {n} iterations")),
                    Cell::Number(mean(&reward[..n]), 3),
                    Cell::Number(mean(&loss[..n]), 4),
                    Cell::Number(mean(&entropy[..n]), 3),
                ],
                vec![
                    Cell::text(format!("last {n} iterations")),
                    Cell::Number(mean(&reward[reward.len() - n..]), 3),
                    Cell::Number(mean(&loss[loss.len() - n..]), 4),
                    Cell::Number(mean(&entropy[entropy.len() - n..]), 3),
                ],
            ],
            caption: None,
        }));
        // Supervised runs record no reward; a flat zero curve would only mislead.
        if reward.iter().any(|r| *r != 0.0) {
            blocks.push(Block::Svg(curve(
                "Learning curve: reward per simulated user",
                Axis::new("reward per user in the batch", "reward units"),
                &its,
                &reward,
            )));
        }
        blocks.push(Block::Svg(curve(
            "Training loss",
            Axis::new("loss minimised", "dimensionless"),
            &its,
            &loss,
        )));
        if entropy.iter().any(|e| *e != 0.0) {
            blocks.push(Block::Svg(curve(
                "Exploration: entropy of the first slate position",
                Axis::new("entropy", "nats"),
                &its,
                &entropy,
            )));
        }
    }
    Ok(Section {
        title: format!("Training: {}", m.trained_on()),
        source: Some(file.into()),
        blocks,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn moving_average_uses_the_trailing_window() {
        let xs: Vec<f64> = (1..=25).map(f64::from).collect();
        let m = super::moving_average(&xs);
        assert_eq!(m[0], 1.0);
        assert_eq!(m[1], 1.5);
        // Window of 20 ending at 25: mean of 6..=25 = 15.5.
        assert_eq!(m[24], 15.5);
    }
}
