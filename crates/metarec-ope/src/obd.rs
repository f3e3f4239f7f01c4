//! Open Bandit Dataset logs as [`LoggedData`]: one round per logged impression (one item at one
//! of three positions), the click as reward, the logged propensity, and the context that
//! [`metarec_data::obd::ObdLog::interaction`] builds (hashed user features as tokens, user-item
//! affinities as features).

use crate::data::{LoggedData, RawEntry};
use crate::error::OpeError;
use metarec_data::obd::ObdLog;

/// Number of display positions in Open Bandit logs.
pub const POSITIONS: usize = 3;

/// Converts a loaded log; `with_contexts` keeps each round's context (needed by context-aware
/// reward models and policies, at the cost of memory).
pub fn logged_data(log: &ObdLog, with_contexts: bool) -> Result<LoggedData, OpeError> {
    let mut data = LoggedData::new(log.catalog.len(), POSITIONS);
    for (i, r) in log.rounds.iter().enumerate() {
        let context = if with_contexts {
            log.interaction(i).map(|x| x.context)
        } else {
            None
        };
        let entry = RawEntry {
            item: r.item.0,
            position: u32::from(r.position),
            propensity: Some(r.propensity),
            reward: if r.click { 1.0 } else { 0.0 },
        };
        data.push_round(i + 1, context, &[entry])?;
    }
    if data.rounds() == 0 {
        return Err(OpeError::EmptyLog);
    }
    Ok(data)
}

/// Each item's group for [`crate::LinearConfig::item_groups`]: its category (Open Bandit's
/// `item_feature_1`), 0 when it has none.
pub fn item_groups(log: &ObdLog) -> Vec<u32> {
    log.catalog
        .ids()
        .map(|id| log.catalog.category(id).map_or(0, |c| c.0))
        .collect()
}
