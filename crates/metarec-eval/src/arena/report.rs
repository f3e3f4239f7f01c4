//! The arena's printed table: every contestant's metrics with intervals, the cold-start curve,
//! the share of the oracle's expected reward and the paired differences.

use super::ArenaReport;
use crate::summary::Summary;
use std::fmt;

fn interval(s: &Summary, digits: usize) -> String {
    format!("{:.d$} [{:.d$}, {:.d$}]", s.mean, s.low, s.high, d = digits)
}

impl fmt::Display for ArenaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "arena: scenario `{}`, {} new users x {} seeds per policy; reward = {} x click + {} x purchase + {} x revenue, gamma {}",
            self.scenario,
            self.users_per_seed,
            self.seeds,
            self.reward.click_weight(),
            self.reward.purchase_weight(),
            self.reward.revenue_weight(),
            self.reward.gamma()
        )?;
        writeln!(f, "each cell: mean [95% confidence interval]")?;
        let rows: Vec<[String; 10]> = self
            .contestants
            .iter()
            .map(|c| {
                [
                    c.policy.clone(),
                    interval(&c.reward, 2),
                    interval(&c.early_reward, 2),
                    interval(&c.reward_per_visit, 2),
                    interval(&c.discounted_return, 2),
                    interval(&c.ctr, 4),
                    interval(&c.cvr, 3),
                    interval(&c.revenue, 1),
                    interval(&c.visit_length, 2),
                    interval(&c.regret, 2),
                ]
            })
            .collect();
        let early = format!("first {} interactions", self.horizon);
        let header = [
            "policy",
            "reward/user",
            &early,
            "reward/visit",
            "discounted return",
            "CTR",
            "CVR",
            "revenue/user",
            "slates/visit",
            "regret/user",
        ];
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[&str]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        writeln!(f, "{}", line(&header))?;
        for r in &rows {
            writeln!(
                f,
                "{}",
                line(&r.iter().map(String::as_str).collect::<Vec<_>>())
            )?;
        }
        let marks: Vec<usize> = [1, 2, 3, 5, 10, 20, 30, 50]
            .into_iter()
            .filter(|&t| t <= self.horizon)
            .collect();
        writeln!(f)?;
        writeln!(
            f,
            "cold-start curve: mean reward at interaction t of each new user (0 after leaving)"
        )?;
        let name_w = self
            .contestants
            .iter()
            .map(|c| c.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut head = format!("{:<name_w$}", "policy");
        for t in &marks {
            head.push_str(&format!("  {:>8}", format!("t={t}")));
        }
        writeln!(f, "{head}")?;
        for c in &self.contestants {
            let mut row = format!("{:<name_w$}", c.policy);
            for &t in &marks {
                row.push_str(&format!("  {:>8.3}", c.curve[t - 1].mean));
            }
            writeln!(f, "{row}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "expected reward of each slate as a share of the oracle's slate for the same user at the same moment (users still there)"
        )?;
        writeln!(f, "{head}")?;
        for c in &self.contestants {
            let mut row = format!("{:<name_w$}", c.policy);
            for &t in &marks {
                row.push_str(&format!("  {:>7.1}%", 100.0 * c.oracle_share[t - 1].mean));
            }
            writeln!(f, "{row}")?;
        }
        // The share at the curve's last interaction is measured on the users still there,
        // fewer than at t = 1, so its interval is wide: print it, since targets are set on it.
        if let Some(t) = self.horizon.checked_sub(1) {
            writeln!(f)?;
            writeln!(
                f,
                "share of the oracle's slate at t={}: mean [95% interval]",
                self.horizon
            )?;
            for c in &self.contestants {
                let e = &c.oracle_share[t];
                writeln!(
                    f,
                    "{:<name_w$}  {:>5.1}% [{:.1}, {:.1}]",
                    c.policy,
                    100.0 * e.mean,
                    100.0 * e.low,
                    100.0 * e.high
                )?;
            }
        }
        if !self.paired.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "paired differences in reward/user on the same users (mean [95% interval]; `*`: interval excludes 0)"
            )?;
            for p in &self.paired {
                let d = &p.reward_difference;
                let mark = if d.low > 0.0 || d.high < 0.0 { "*" } else { "" };
                writeln!(
                    f,
                    "  {:<name_w$} - {:<10} {:>8.3} [{:.3}, {:.3}] {mark}",
                    p.policy, p.against, d.mean, d.low, d.high
                )?;
            }
        }
        Ok(())
    }
}
