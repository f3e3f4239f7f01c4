//! [`LoggedData`]: a log of slates prepared for off-policy estimators.
//!
//! Each logged round (one [`Interaction`]) is a context and one or more slate entries; each entry
//! is an item shown at a display position with the logging policy's per-position marginal
//! propensity and the entry's reward. The estimators assume per-position (independent) slate
//! rewards: a round's value is the sum of its entries' rewards, and a policy's value is the
//! expected value of a round. For Open Bandit, where a round shows one position, that value is the
//! click-through rate per impression.
//!
//! Every record is checked when the log is built: a missing, zero, negative or above-one
//! propensity, an unknown item, a position outside the evaluated slate or a non-finite reward is an
//! [`OpeError`] naming the 1-based row; nothing is dropped.
//!
//! A propensity that is valid but tiny is checked here too, against a [`PropensityFloor`]
//! (default [`PropensityFloor::DEFAULT`], `1e-6`): its importance weight `pi / p` would reach
//! `1e300` or overflow to infinity, and the estimates become meaningless or NaN. Below the floor
//! a propensity is an [`OpeError::BelowFloor`] naming the row, or, when the floor clips, it is
//! raised to the floor and counted in the [`FloorReport`]. Every source of logs (Open Bandit,
//! interaction logs, DSJSON) goes through [`LoggedData::push_round`], so this is the one place the
//! floor is applied.

use crate::error::OpeError;
use metarec_core::{Context, Interaction, RewardFn};
use serde::Serialize;

/// The smallest logging propensity a log may carry, and what happens to smaller ones.
///
/// Invariant: the floor is finite and in `(0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropensityFloor {
    floor: f64,
    clip: bool,
}

impl PropensityFloor {
    /// The default floor: weights stay below a million times the evaluation probability, far
    /// from overflow even summed over billions of rounds.
    pub const DEFAULT: f64 = 1e-6;

    /// A floor of `floor`; `clip` raises smaller propensities to it instead of rejecting them.
    /// The floor must be finite and in `(0, 1]`.
    pub fn new(floor: f64, clip: bool) -> Result<Self, OpeError> {
        if !(floor.is_finite() && floor > 0.0 && floor <= 1.0) {
            return Err(OpeError::Config {
                name: "propensity_floor",
                reason: format!("{floor} is not a number in (0, 1]"),
            });
        }
        Ok(PropensityFloor { floor, clip })
    }

    /// The floor.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// Whether propensities below the floor are raised to it (else they are errors).
    pub fn clips(&self) -> bool {
        self.clip
    }
}

impl Default for PropensityFloor {
    /// [`PropensityFloor::DEFAULT`], rejecting smaller propensities.
    fn default() -> Self {
        PropensityFloor {
            floor: Self::DEFAULT,
            clip: false,
        }
    }
}

/// What the propensity floor did to a log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FloorReport {
    /// The floor.
    pub floor: f64,
    /// Whether propensities below it were raised to it (else they were errors).
    pub clip: bool,
    /// Rows (rounds) with at least one propensity raised to the floor.
    pub clipped_rows: usize,
    /// Entries whose propensity was raised to the floor.
    pub clipped_entries: usize,
}

/// One entry of a logged round, before checking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEntry {
    /// The item's dense index in the catalog.
    pub item: u32,
    /// The display position, 0-based.
    pub position: u32,
    /// The logging policy's marginal probability of this item at this position; `None` when the
    /// source lacks it.
    pub propensity: Option<f64>,
    /// The entry's reward.
    pub reward: f64,
}

/// A checked log in columns: entries grouped by round.
///
/// Invariants: every propensity is in `[floor, 1]` of its [`PropensityFloor`], every item below
/// `n_items`, every position below `n_positions`, every reward finite; `round_start` is
/// increasing, starts at 0 and ends at the number of entries, and every round has at least one
/// entry; `clipped` holds the round of every entry whose propensity was raised to the floor, in
/// order.
#[derive(Debug, Clone, Default)]
pub struct LoggedData {
    n_items: usize,
    n_positions: usize,
    floor: PropensityFloor,
    round_start: Vec<usize>,
    items: Vec<u32>,
    positions: Vec<u32>,
    propensities: Vec<f64>,
    rewards: Vec<f64>,
    contexts: Vec<Context>,
    clipped: Vec<usize>,
}

impl LoggedData {
    /// An empty log over `n_items` items and `n_positions` display positions, with the default
    /// [`PropensityFloor`] (propensities below `1e-6` are errors).
    pub fn new(n_items: usize, n_positions: usize) -> Self {
        LoggedData::with_floor(n_items, n_positions, PropensityFloor::default())
    }

    /// An empty log whose propensities are checked against `floor`.
    pub fn with_floor(n_items: usize, n_positions: usize, floor: PropensityFloor) -> Self {
        LoggedData {
            n_items,
            n_positions,
            floor,
            round_start: vec![0],
            ..LoggedData::default()
        }
    }

    /// Appends one round, checking every entry; `row` is the 1-based record number used in
    /// errors (the line of a JSON Lines file, the round of Open Bandit). A round with no entries
    /// is rejected as a missing propensity of entry 0. A propensity below the floor is an
    /// [`OpeError::BelowFloor`], or raised to the floor and counted when the floor clips.
    pub fn push_round(
        &mut self,
        row: usize,
        context: Option<Context>,
        entries: &[RawEntry],
    ) -> Result<(), OpeError> {
        if entries.is_empty() {
            return Err(OpeError::MissingPropensity { row, entry: 0 });
        }
        for (entry, e) in entries.iter().enumerate() {
            let p = e
                .propensity
                .ok_or(OpeError::MissingPropensity { row, entry })?;
            if !(p > 0.0 && p <= 1.0) {
                return Err(OpeError::Propensity {
                    row,
                    entry,
                    value: p,
                });
            }
            if p < self.floor.floor && !self.floor.clip {
                return Err(OpeError::BelowFloor {
                    row,
                    entry,
                    value: p,
                    floor: self.floor.floor,
                });
            }
            if e.item as usize >= self.n_items {
                return Err(OpeError::UnknownItem {
                    row,
                    entry,
                    item: e.item.to_string(),
                    items: self.n_items,
                });
            }
            if e.position as usize >= self.n_positions {
                return Err(OpeError::UnknownPosition {
                    row,
                    entry,
                    position: e.position,
                    positions: self.n_positions,
                });
            }
            if !e.reward.is_finite() {
                return Err(OpeError::Reward {
                    row,
                    entry,
                    value: e.reward,
                });
            }
        }
        // Contexts are either kept for every round or for none, so that round `i` always finds
        // its own.
        match context {
            Some(c) if self.contexts.len() == self.rounds() => self.contexts.push(c),
            Some(_) | None => self.contexts.clear(),
        }
        let round = self.rounds();
        for e in entries {
            // Every propensity was checked above, so the default is never used.
            let mut p = e.propensity.unwrap_or(1.0);
            if p < self.floor.floor {
                self.clipped.push(round);
                p = self.floor.floor;
            }
            self.items.push(e.item);
            self.positions.push(e.position);
            self.propensities.push(p);
            self.rewards.push(e.reward);
        }
        self.round_start.push(self.items.len());
        Ok(())
    }

    /// Builds a log from interactions (rows numbered from 1 in order), scoring each entry with
    /// `reward` and checking propensities against `floor`. Every entry's position must be below
    /// `n_positions` and its item below `n_items`.
    pub fn from_interactions<'a>(
        interactions: impl IntoIterator<Item = &'a Interaction>,
        n_items: usize,
        n_positions: usize,
        reward: &RewardFn,
        floor: PropensityFloor,
    ) -> Result<Self, OpeError> {
        let rows = interactions
            .into_iter()
            .enumerate()
            .map(|(i, x)| (i + 1, x));
        LoggedData::from_rows(rows, n_items, n_positions, reward, floor)
    }

    /// [`LoggedData::from_interactions`] with each interaction's row given (for example its line
    /// in the file it was read from, which differs from its rank when the file has blank lines).
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (usize, &'a Interaction)>,
        n_items: usize,
        n_positions: usize,
        reward: &RewardFn,
        floor: PropensityFloor,
    ) -> Result<Self, OpeError> {
        let mut data = LoggedData::with_floor(n_items, n_positions, floor);
        let mut entries = Vec::new();
        for (row, interaction) in rows {
            let d = &interaction.decision;
            let f = &interaction.feedback;
            entries.clear();
            for (k, &item) in d.slate.items().iter().enumerate() {
                let clicked = f.clicks.get(k).copied().unwrap_or(false);
                let bought = f.purchases.get(k).copied().unwrap_or(false);
                let revenue = f.revenue.get(k).copied().unwrap_or(0.0);
                entries.push(RawEntry {
                    item: item.0,
                    position: d.position(k),
                    propensity: d.propensities.get(k).copied(),
                    reward: reward.entry_reward(clicked, bought, revenue),
                });
            }
            data.push_round(row, Some(interaction.context.clone()), &entries)?;
        }
        if data.rounds() == 0 {
            return Err(OpeError::EmptyLog);
        }
        Ok(data)
    }

    /// Number of items in the catalog.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of display positions evaluated.
    pub fn n_positions(&self) -> usize {
        self.n_positions
    }

    /// The floor the propensities were checked against.
    pub fn propensity_floor(&self) -> PropensityFloor {
        self.floor
    }

    /// What the floor did: how many rows and entries had their propensity raised to it.
    pub fn floor_report(&self) -> FloorReport {
        let mut rows = self.clipped.clone();
        rows.dedup();
        FloorReport {
            floor: self.floor.floor,
            clip: self.floor.clip,
            clipped_rows: rows.len(),
            clipped_entries: self.clipped.len(),
        }
    }

    /// Number of rounds.
    pub fn rounds(&self) -> usize {
        self.round_start.len() - 1
    }

    /// Number of entries over all rounds.
    pub fn entries(&self) -> usize {
        self.items.len()
    }

    /// The entry indices of round `i`.
    pub fn round(&self, i: usize) -> std::ops::Range<usize> {
        self.round_start[i]..self.round_start[i + 1]
    }

    /// The context of round `i`, when contexts were kept.
    pub fn context(&self, i: usize) -> Option<&Context> {
        self.contexts.get(i)
    }

    /// Item of every entry.
    pub fn items(&self) -> &[u32] {
        &self.items
    }

    /// Display position of every entry.
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Logging propensity of every entry.
    pub fn propensities(&self) -> &[f64] {
        &self.propensities
    }

    /// Reward of every entry.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// The logging policy's own value: the mean over rounds of the summed entry rewards.
    pub fn on_policy_value(&self) -> f64 {
        if self.rounds() == 0 {
            return 0.0;
        }
        self.rewards.iter().sum::<f64>() / self.rounds() as f64
    }

    /// The rounds `range` as a log of their own (for train / evaluation splits).
    pub fn slice(&self, range: std::ops::Range<usize>) -> LoggedData {
        let (a, b) = (self.round_start[range.start], self.round_start[range.end]);
        LoggedData {
            n_items: self.n_items,
            n_positions: self.n_positions,
            floor: self.floor,
            round_start: self.round_start[range.start..=range.end]
                .iter()
                .map(|s| s - a)
                .collect(),
            items: self.items[a..b].to_vec(),
            positions: self.positions[a..b].to_vec(),
            propensities: self.propensities[a..b].to_vec(),
            rewards: self.rewards[a..b].to_vec(),
            contexts: if self.contexts.is_empty() {
                Vec::new()
            } else {
                self.contexts[range.clone()].to_vec()
            },
            clipped: self
                .clipped
                .iter()
                .filter(|round| range.contains(round))
                .map(|round| round - range.start)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Decision, EventId, Feedback, ItemId, Slate};

    fn interaction(items: &[u32], props: &[f64], clicks: &[bool]) -> Interaction {
        // Built field by field, bypassing the constructors, as a buggy producer could.
        Interaction {
            context: Context::default(),
            decision: Decision {
                event_id: EventId("e".into()),
                slate: Slate::new(items.iter().copied().map(ItemId).collect()).unwrap(),
                propensities: props.to_vec(),
                slate_propensity: None,
                positions: None,
                policy_id: "p".into(),
                model_version: "0".into(),
            },
            feedback: Feedback {
                clicks: clicks.to_vec(),
                purchases: vec![false; clicks.len()],
                revenue: vec![0.0; clicks.len()],
            },
        }
    }

    fn build(log: &[Interaction]) -> Result<LoggedData, OpeError> {
        LoggedData::from_interactions(log, 4, 2, &RewardFn::default(), PropensityFloor::default())
    }

    #[test]
    fn a_valid_log_keeps_every_entry_in_order() {
        let log = vec![
            interaction(&[0, 1], &[0.5, 0.25], &[true, false]),
            interaction(&[3], &[1.0], &[true]),
        ];
        let d = build(&log).unwrap();
        assert_eq!(d.rounds(), 2);
        assert_eq!(d.entries(), 3);
        assert_eq!(d.round(1), 2..3);
        assert_eq!(d.items(), &[0, 1, 3]);
        assert_eq!(d.positions(), &[0, 1, 0]);
        assert_eq!(d.propensities(), &[0.5, 0.25, 1.0]);
        let click = RewardFn::default().entry_reward(true, false, 0.0);
        assert_eq!(d.on_policy_value(), click);
        let tail = d.slice(1..2);
        assert_eq!(tail.rounds(), 1);
        assert_eq!(tail.items(), &[3]);
        assert!(tail.context(0).is_some());
    }

    #[test]
    fn malformed_rows_are_rejected_by_row_and_entry() {
        let good = interaction(&[0], &[0.5], &[false]);
        let cases: Vec<(Interaction, &str)> = vec![
            (
                interaction(&[0, 1], &[0.5], &[false, false]),
                "row 2: entry 1 has no logging propensity",
            ),
            (
                interaction(&[0], &[0.0], &[false]),
                "row 2: entry 0: logging propensity 0 is outside (0, 1]",
            ),
            (
                interaction(&[0], &[1.5], &[false]),
                "row 2: entry 0: logging propensity 1.5 is outside (0, 1]",
            ),
            (
                interaction(&[0], &[f64::NAN], &[false]),
                "row 2: entry 0: logging propensity NaN is outside (0, 1]",
            ),
            (
                interaction(&[1, 7], &[0.5, 0.5], &[false, false]),
                "row 2: entry 1: item 7 is not in the catalog of 4 items",
            ),
            (
                interaction(&[0, 1, 2], &[0.5; 3], &[false; 3]),
                "row 2: entry 2: position 2 is outside the 2 evaluated positions",
            ),
        ];
        for (bad, message) in cases {
            let err = build(&[good.clone(), bad]).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        assert!(matches!(build(&[]), Err(OpeError::EmptyLog)));
    }
}
