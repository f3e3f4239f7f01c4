//! Valid but tiny logging propensities: below the floor they are an error naming the row, or
//! clipped to the floor and counted; and no estimator ever returns NaN or infinity without an
//! error saying why. Every source of logs is checked: rounds pushed one by one, interactions
//! (interaction logs), DSJSON lines, and Open Bandit files.

use metarec_core::{Context, Decision, EventId, Feedback, Interaction, ItemId, RewardFn, Slate};
use metarec_data::obd::{ObdCampaign, ObdPolicy};
use metarec_ope::obd::{Experiment, Target, run_experiment};
use metarec_ope::{
    Bootstrap, LoggedData, MeanModel, MonteCarlo, OpeError, Prepared, PropensityFloor, RawEntry,
    StaticPolicy, all_estimators, dsjson, evaluate,
};
use std::path::Path;

fn interaction(id: usize, item: u32, propensity: f64, click: bool) -> Interaction {
    Interaction::new(
        Context::default(),
        Decision {
            event_id: EventId(format!("e{id}")),
            slate: Slate::new(vec![ItemId(item)]).unwrap(),
            propensities: vec![propensity],
            slate_propensity: None,
            positions: None,
            policy_id: "p".into(),
            model_version: "1".into(),
        },
        Feedback {
            clicks: vec![click],
            purchases: vec![false],
            revenue: vec![0.0],
        },
    )
    .unwrap()
}

/// Four rounds over four items at one position, uniformly logged, with round 3's propensity
/// replaced by `tiny`.
fn log_with(tiny: f64) -> Vec<Interaction> {
    (0..4)
        .map(|i| {
            let p = if i == 2 { tiny } else { 0.25 };
            interaction(i, i as u32, p, i % 2 == 0)
        })
        .collect()
}

fn build(log: &[Interaction], floor: PropensityFloor) -> Result<LoggedData, OpeError> {
    LoggedData::from_interactions(log, 4, 1, &RewardFn::default(), floor)
}

fn clipping() -> PropensityFloor {
    PropensityFloor::new(PropensityFloor::DEFAULT, true).unwrap()
}

fn estimate_all(data: &LoggedData) -> Result<Vec<metarec_ope::Estimate>, OpeError> {
    let policy = StaticPolicy::uniform(4, 1)?;
    let model = MeanModel::fit(data, 10.0, &|_| true)?;
    let prepared = Prepared::new(data, &policy, &model, None)?;
    let estimators = all_estimators(10.0, 100.0);
    let refs: Vec<&dyn metarec_ope::Estimator> = estimators.iter().map(|e| e.as_ref()).collect();
    let bootstrap = Bootstrap {
        resamples: 50,
        seed: 3,
        threads: 1,
    };
    evaluate(&prepared, &refs, &bootstrap)
}

#[test]
fn a_propensity_below_the_floor_is_an_error_naming_the_row() {
    for tiny in [5e-324, 1e-300, 9.9e-7] {
        let err = build(&log_with(tiny), PropensityFloor::default()).unwrap_err();
        assert!(
            matches!(err, OpeError::BelowFloor { row: 3, entry: 0, value, floor }
                if value == tiny && floor == 1e-6),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "row 3: entry 0: logging propensity {tiny:e} is below the floor 1e-6"
            )),
            "{text}"
        );
    }
    // At the floor itself a propensity is accepted.
    assert!(build(&log_with(1e-6), PropensityFloor::default()).is_ok());
    // A floor of the caller's choosing moves the line; rows given by the caller (lines of a
    // file) are the ones named.
    let strict = PropensityFloor::new(0.3, false).unwrap();
    let log = log_with(0.25);
    let lines = [2usize, 5, 6, 9];
    let err = LoggedData::from_rows(
        lines.iter().copied().zip(&log),
        4,
        1,
        &RewardFn::default(),
        strict,
    )
    .unwrap_err();
    assert!(
        matches!(err, OpeError::BelowFloor { row: 2, .. }),
        "{err:?}"
    );
    // Rounds pushed one by one (Open Bandit, benchmarks) are checked in the same place.
    let mut data = LoggedData::new(2, 1);
    let entry = |p| RawEntry {
        item: 0,
        position: 0,
        propensity: Some(p),
        reward: 1.0,
    };
    data.push_round(1, None, &[entry(0.5)]).unwrap();
    let err = data.push_round(2, None, &[entry(1e-300)]).unwrap_err();
    assert!(
        matches!(err, OpeError::BelowFloor { row: 2, .. }),
        "{err:?}"
    );
    assert_eq!(data.rounds(), 1, "a rejected round is not kept");
}

#[test]
fn a_floor_outside_zero_to_one_is_a_config_error() {
    for bad in [0.0, -1e-6, 1.5, f64::NAN, f64::INFINITY] {
        let err = PropensityFloor::new(bad, false).unwrap_err();
        assert!(
            matches!(
                err,
                OpeError::Config {
                    name: "propensity_floor",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(PropensityFloor::new(1.0, true).unwrap().floor(), 1.0);
    assert!(PropensityFloor::new(5e-324, false).is_ok());
}

#[test]
fn clipping_reports_how_many_rows_were_clipped() {
    let mut log = log_with(1e-300);
    log[3] = interaction(3, 3, 5e-324, true);
    let data = build(&log, clipping()).unwrap();
    let report = data.floor_report();
    assert_eq!((report.clipped_rows, report.clipped_entries), (2, 2));
    assert!(report.clip);
    assert_eq!(report.floor, 1e-6);
    assert_eq!(data.propensities(), &[0.25, 0.25, 1e-6, 1e-6]);
    // A slice counts only its own rows.
    assert_eq!(data.slice(0..3).floor_report().clipped_rows, 1);
    assert_eq!(data.slice(0..2).floor_report().clipped_rows, 0);
    // A slate with two tiny entries is one row, two entries.
    let mut data = LoggedData::with_floor(3, 2, clipping());
    let entry = |position, p| RawEntry {
        item: position,
        position,
        propensity: Some(p),
        reward: 0.0,
    };
    data.push_round(1, None, &[entry(0, 1e-9), entry(1, 1e-12)])
        .unwrap();
    data.push_round(2, None, &[entry(0, 0.5), entry(1, 0.5)])
        .unwrap();
    let report = data.floor_report();
    assert_eq!((report.clipped_rows, report.clipped_entries), (1, 2));
    // Zero, negative and above-one propensities are malformed, not tiny: clipping keeps
    // rejecting them.
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = data.push_round(3, None, &[entry(0, bad)]).unwrap_err();
        assert!(
            matches!(err, OpeError::Propensity { row: 3, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn no_estimate_is_nan_for_tiny_propensities() {
    // Clipped to the default floor, the smallest positive double and 1e-300 give finite
    // estimates, intervals, standard errors and effective sample sizes.
    for tiny in [5e-324, 1e-300] {
        let data = build(&log_with(tiny), clipping()).unwrap();
        let estimates = estimate_all(&data).unwrap();
        assert_eq!(estimates.len(), 7);
        for e in &estimates {
            let numbers = [e.value, e.low, e.high, e.std_error, e.ess.unwrap_or(0.0)];
            assert!(numbers.iter().all(|v| v.is_finite()), "{tiny}: {e:?}");
            // Weights are at most 0.25 / 1e-6, so no estimate can reach 1e6 rewards per round.
            assert!(e.value.abs() < 1e6, "{tiny}: {e:?}");
        }
    }
    // A floor lowered to 1e-300 admits weights of 2.5e299: the estimates are finite, and so is
    // the effective sample size, whose sum of squares would overflow if computed directly.
    let low = PropensityFloor::new(1e-300, false).unwrap();
    let data = build(&log_with(1e-300), low).unwrap();
    let estimates = estimate_all(&data).unwrap();
    let ipw = estimates.iter().find(|e| e.estimator == "IPW").unwrap();
    assert!(ipw.value.is_finite() && ipw.value > 1e298, "{ipw:?}");
    let ess = ipw.ess.unwrap();
    assert!((ess - 1.0).abs() < 1e-9, "one weight dominates: {ess}");
    // A floor at the smallest double admits an infinite weight: that is an error naming the
    // estimator and saying why, never a NaN estimate.
    let lowest = PropensityFloor::new(5e-324, false).unwrap();
    let data = build(&log_with(5e-324), lowest).unwrap();
    let err = estimate_all(&data).unwrap_err();
    assert!(matches!(err, OpeError::NonFinite { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("not a finite number") && text.contains("propensity floor"),
        "{text}"
    );
}

/// Four items keyed `a` to `d`.
fn four_items() -> metarec_core::Catalog {
    let mut c = metarec_core::Catalog::new(Vec::new());
    for key in ["a", "b", "c", "d"] {
        c.push(metarec_core::Item {
            key: key.into(),
            title: None,
            category: None,
            price: None,
            features: Vec::new(),
            embedding: None,
        })
        .unwrap();
    }
    c
}

#[test]
fn dsjson_rows_are_the_lines_of_the_file() {
    let log = log_with(1e-300);
    let catalog = four_items();
    let mut text = String::from("\n");
    for i in &log {
        let mut line = Vec::new();
        dsjson::write_line(&mut line, i, &RewardFn::default(), &catalog).unwrap();
        text.push_str(std::str::from_utf8(&line).unwrap());
    }
    let numbered = dsjson::read_lines(text.as_bytes(), "mem", &catalog).unwrap();
    let lines: Vec<usize> = numbered.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    let err = LoggedData::from_rows(
        numbered.iter().map(|(line, i)| (*line, i)),
        4,
        1,
        &RewardFn::default(),
        PropensityFloor::default(),
    )
    .unwrap_err();
    // The third interaction sits on line 4, after the leading blank line.
    assert!(
        matches!(err, OpeError::BelowFloor { row: 4, .. }),
        "{err:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// Open Bandit files
// ------------------------------------------------------------------------------------------------

const ITEMS: &str = ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3
0,0,-0.5,a,x,p
1,1,-0.25,b,x,p
2,2,0.75,b,y,q
";

const ROUNDS_HEADER: &str = ",timestamp,item_id,position,click,propensity_score,\
user_feature_0,user_feature_1,user_feature_2,user_feature_3,\
user-item_affinity_0,user-item_affinity_1,user-item_affinity_2";

/// A small Open Bandit folder (both policies, campaign `all`): 30 uniformly logged rounds over
/// three items and three positions, with round `tiny_round` (1-based) logged at `tiny`.
fn write_obd(root: &Path, tiny_round: usize, tiny: f64) {
    for policy in ["random", "bts"] {
        let dir = root.join(policy).join("all");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("item_context.csv"), ITEMS).unwrap();
        let mut rounds = format!("{ROUNDS_HEADER}\n");
        for i in 0..30 {
            let p = if i + 1 == tiny_round { tiny } else { 1.0 / 3.0 };
            rounds.push_str(&format!(
                "{i},2019-11-24 00:{:02}:00.000000+00:00,{},{},{},{p},u{},v,w,z,{}.0,0.0,1.0\n",
                i % 60,
                i % 3,
                i % 3 + 1,
                u8::from(i % 4 == 0),
                i % 2,
                i % 3,
            ));
        }
        std::fs::write(dir.join("all.csv"), rounds).unwrap();
    }
}

fn experiment(floor: PropensityFloor) -> Experiment {
    Experiment {
        logs: ObdPolicy::Random,
        campaign: ObdCampaign::All,
        target: Target::Uniform,
        monte_carlo: MonteCarlo {
            draws: 100,
            seed: 1,
            threads: 1,
        },
        bootstrap: Bootstrap {
            resamples: 20,
            seed: 1,
            threads: 1,
        },
        clip: None,
        propensity_floor: floor,
        switch_tau: 10.0,
        os_lambda: 100.0,
        folds: 3,
        lambda: Some(1.0),
    }
}

#[test]
fn open_bandit_rounds_below_the_floor_are_errors_or_clipped() {
    let tmp = tempfile::tempdir().unwrap();
    write_obd(tmp.path(), 7, 1e-300);
    let err = run_experiment(tmp.path(), &experiment(PropensityFloor::default())).unwrap_err();
    assert!(
        matches!(
            err,
            OpeError::BelowFloor {
                row: 7,
                entry: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let report = run_experiment(tmp.path(), &experiment(clipping())).unwrap();
    assert_eq!(report.rounds, 30);
    assert_eq!(report.propensity_floor.clipped_rows, 1);
    for e in &report.estimates {
        assert!(
            e.value.is_finite() && e.low.is_finite() && e.high.is_finite(),
            "{e:?}"
        );
    }
    // Without tiny propensities the floor changes nothing and reports nothing.
    write_obd(tmp.path(), 0, 1.0);
    let report = run_experiment(tmp.path(), &experiment(clipping())).unwrap();
    assert_eq!(report.propensity_floor.clipped_rows, 0);
}
