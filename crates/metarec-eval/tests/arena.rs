//! The arena on the real data: reproducibility, and the ordering of policies that theory
//! predicts in the default scenario.

use metarec_data::LoadOptions;
use metarec_data::fetch::{DataDir, Dataset};
use metarec_data::online_retail::{OnlineRetail, load_online_retail};
use metarec_eval::PolicySpec;
use metarec_eval::arena::{ArenaConfig, ArenaReport, ContestantReport, run_arena};
use metarec_sim::{Scenario, ScenarioConfig};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

fn data_dir() -> PathBuf {
    std::env::var_os("METAREC_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

/// Online Retail, loaded once per test binary (it ships with the project, so it is always there).
fn retail() -> &'static OnlineRetail {
    static DATA: OnlineLock = OnlineLock::new();
    DATA.get_or_init(|| {
        static UNPACK: Mutex<()> = Mutex::new(());
        let _guard = UNPACK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = DataDir::new(data_dir());
        dir.require(Dataset::OnlineRetail).unwrap();
        load_online_retail(&dir.online_retail_csv(), &LoadOptions::default()).unwrap()
    })
}

type OnlineLock = OnceLock<OnlineRetail>;

fn scenario(name: &str) -> Scenario {
    Scenario::build(ScenarioConfig::load(name).unwrap(), retail()).unwrap()
}

fn run(s: &Scenario, policies: &str, users: usize, seeds: usize, threads: usize) -> ArenaReport {
    let config = ArenaConfig {
        users,
        seeds,
        threads,
        ..ArenaConfig::default()
    };
    run_arena(
        s,
        &PolicySpec::parse_list(policies).unwrap(),
        &config,
        &|_| {},
    )
    .unwrap()
}

/// One contestant's report.
fn contestant<'a>(report: &'a ArenaReport, name: &str) -> &'a ContestantReport {
    report
        .contestants
        .iter()
        .find(|c| c.policy == name)
        .unwrap()
}

/// The report as JSON without the timing fields, which legitimately differ between runs.
fn fingerprint(report: &ArenaReport) -> String {
    let mut v = serde_json::to_value(report).unwrap();
    for c in v["contestants"].as_array_mut().unwrap() {
        c["seconds"] = serde_json::Value::Null;
    }
    v.to_string()
}

#[test]
fn seeded_runs_are_reproducible_bit_for_bit_whatever_the_thread_count() {
    let s = scenario("small");
    let policies = "random,lints,itemknn,oracle";
    let a = run(&s, policies, 60, 2, 1);
    let b = run(&s, policies, 60, 2, 2);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    // A rebuilt scenario (same seed) gives the same world and the same numbers.
    let c = run(&scenario("small"), policies, 60, 2, 2);
    assert_eq!(fingerprint(&a), fingerprint(&c));
}

#[test]
fn the_oracle_share_is_one_for_the_oracle_and_less_for_random_play() {
    let s = scenario("small");
    let report = run(&s, "random,oracle", 200, 1, 0);
    let share = |name: &str| contestant(&report, name).oracle_share.clone();
    let oracle = share("oracle");
    assert_eq!(oracle.len(), report.horizon);
    // The oracle plays the oracle's slate, so its share is exactly 1 while anyone is left.
    for (t, e) in oracle.iter().enumerate() {
        assert!(e.mean == 1.0 || e.mean == 0.0, "t={}: {e:?}", t + 1);
    }
    assert_eq!(oracle[0].mean, 1.0);
    let random = share("random");
    assert!(
        random[0].high < 1.0 && random[0].mean > 0.0,
        "{:?}",
        random[0]
    );
    // The text report prints the share at the curve's last interaction with its interval.
    let text = report.to_string();
    let heading = format!(
        "share of the oracle's slate at t={}: mean [95% interval]",
        report.horizon
    );
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take(2)
        .collect();
    let last = &random[report.horizon - 1];
    assert_eq!(
        block,
        [
            format!(
                "random  {:>5.1}% [{:.1}, {:.1}]",
                100.0 * last.mean,
                100.0 * last.low,
                100.0 * last.high
            ),
            format!(
                "oracle  {:>5.1}% [{:.1}, {:.1}]",
                100.0 * oracle[report.horizon - 1].mean,
                100.0 * oracle[report.horizon - 1].low,
                100.0 * oracle[report.horizon - 1].high
            ),
        ],
        "{text}"
    );
    assert!(last.low <= last.mean && last.mean <= last.high, "{last:?}");
    // The early reward is the curve summed over the window, user by user.
    for c in &report.contestants {
        let curve: f64 = c.curve.iter().map(|e| e.mean).sum();
        assert!((c.early_reward.mean - curve).abs() < 1e-9, "{}", c.policy);
    }
}

#[test]
fn unknown_policies_are_rejected_with_the_valid_names() {
    let err = PolicySpec::parse_list("random,linucbb")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linucbb") && err.contains("lints") && err.contains("planner"),
        "{err}"
    );
}

#[test]
fn the_default_scenario_orders_policies_as_theory_says() {
    let s = scenario("default");
    let report = run(
        &s,
        "random,popularity,linucb,lints,itemknn,oracle,planner",
        1000,
        2,
        0,
    );
    let get = |name: &str| contestant(&report, name).reward;
    let paired = |name: &str, against: &str| {
        report
            .paired
            .iter()
            .find(|p| p.policy == name && p.against == against)
            .unwrap()
            .reward_difference
    };
    // Oracle above every learner, learners above popularity, popularity above random: separate
    // 95% intervals where the gaps are large, paired intervals (same users) where they are not.
    for learner in ["linucb", "lints", "itemknn"] {
        assert!(get("oracle").above(&get(learner)), "oracle vs {learner}");
        let d = paired(learner, "popularity");
        assert!(d.low > 0.0, "{learner} - popularity: {d:?}");
    }
    assert!(get("popularity").above(&get("random")));
    // Far-sighted play beats myopic play when fatigue is on.
    let d = paired("planner", "oracle");
    assert!(d.low > 0.0, "planner - oracle: {d:?}");
}

#[test]
fn the_informed_yardstick_learns_the_user_but_stays_below_the_oracle() {
    let s = scenario("small");
    let config = ArenaConfig {
        users: 300,
        seeds: 1,
        paired_against: vec!["informed:300".into()],
        ..ArenaConfig::default()
    };
    let report = run_arena(
        &s,
        &PolicySpec::parse_list("random,lints,oracle,informed:300").unwrap(),
        &config,
        &|_| {},
    )
    .unwrap();
    let paired = |name: &str| {
        report
            .paired
            .iter()
            .find(|p| p.policy == name && p.against == "informed:300")
            .unwrap()
            .reward_difference
    };
    // Knowing the user beats learning them; knowing the model beats learning it too.
    assert!(paired("oracle").low > 0.0, "{:?}", paired("oracle"));
    assert!(paired("lints").high < 0.0, "{:?}", paired("lints"));
    let share = |name: &str| contestant(&report, name).oracle_share[0];
    // At the first slate the informed policy knows only the prior, so it cannot match the
    // oracle, but the prior alone already beats random play.
    let first = share("informed:300");
    assert!(
        first.high < 1.0 && first.mean > share("random").high,
        "{first:?}"
    );
}

#[test]
fn informed_particle_counts_are_checked() {
    for bad in [
        "informed:0",
        "informed:x",
        "informed-ts:",
        "informed-xx",
        "informed-move:0",
        "informed-movex",
        "informed-blind:0",
        "informed-blindx",
        "informed-observed:0",
        "informed-observedx",
        "informed-network:",
    ] {
        let err = PolicySpec::parse_list(bad).unwrap_err().to_string();
        assert!(err.contains(bad.trim_end_matches(':')), "{bad}: {err}");
    }
    let ok = PolicySpec::parse_list(
        "informed,informed-ts:50,informed-move:20,informed-blind:30,informed-observed:40",
    )
    .unwrap();
    assert_eq!(ok[1].name(), "informed-ts:50");
    assert_eq!(ok[2].name(), "informed-move:20");
    assert_eq!(ok[3].name(), "informed-blind:30");
    assert_eq!(ok[4].name(), "informed-observed:40");
    match &ok[4] {
        PolicySpec::Informed { settings, .. } => {
            assert!(settings.observed && !settings.blind && !settings.moves);
            assert_eq!(settings.particles, 40);
        }
        other => panic!("{other:?}"),
    }
    match &ok[2] {
        PolicySpec::Informed { settings, .. } => {
            assert!(settings.moves && !settings.thompson && !settings.blind);
            assert_eq!(settings.particles, 20);
        }
        other => panic!("{other:?}"),
    }
    match &ok[3] {
        PolicySpec::Informed { settings, .. } => {
            assert!(settings.blind && !settings.moves && !settings.thompson);
            assert_eq!(settings.particles, 30);
        }
        other => panic!("{other:?}"),
    }
    match &ok[0] {
        PolicySpec::Informed { settings, .. } => assert!(!settings.moves && !settings.blind),
        other => panic!("{other:?}"),
    }
    // The yardstick over a network's item vectors names a model directory.
    let network = PolicySpec::parse("informed-network:runs/model").unwrap();
    assert!(
        matches!(&network, PolicySpec::InformedNetwork { .. }),
        "{network:?}"
    );
    assert_eq!(network.name(), "informed-network:runs/model");
    assert!(network.model().is_some());
}

/// The report as JSON with the seconds (wall time, which differs run to run) left out.
fn without_seconds(report: &ArenaReport) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap();
    for c in v["contestants"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("seconds");
    }
    v
}

#[test]
fn jobs_played_apart_and_carried_as_bytes_give_the_same_report() {
    use metarec_eval::{
        JobResult, arena_jobs, assemble_arena, play_arena_job, prepare_contestants,
    };
    let s = scenario("small");
    let specs = PolicySpec::parse_list("random,lints,oracle").unwrap();
    let config = ArenaConfig {
        users: 30,
        seeds: 2,
        threads: 2,
        ..ArenaConfig::default()
    };
    let whole = run_arena(&s, &specs, &config, &|_| {}).unwrap();
    let prepared = prepare_contestants(&s, &specs, &config).unwrap();
    // Played in reverse order, as another process might finish them, then put back in order.
    let mut results: Vec<(usize, Vec<u8>)> = arena_jobs(prepared.len(), &config)
        .into_iter()
        .enumerate()
        .rev()
        .map(|(j, (c, seed))| {
            let r = play_arena_job(&s, &prepared, c, seed, &config).unwrap();
            (j, r.to_bytes())
        })
        .collect();
    results.sort_by_key(|(j, _)| *j);
    let decoded = results
        .iter()
        .map(|(_, b)| JobResult::from_bytes(b).unwrap())
        .collect();
    let apart = assemble_arena(&s, &prepared, &config, decoded).unwrap();
    assert_eq!(without_seconds(&apart), without_seconds(&whole));
    // What does not fit is refused: a missing job, a job out of range, damaged bytes.
    let one = JobResult::from_bytes(&results[0].1).unwrap();
    let err = assemble_arena(&s, &prepared, &config, vec![one]).unwrap_err();
    assert!(err.to_string().contains("1 results for 6 jobs"), "{err}");
    assert!(play_arena_job(&s, &prepared, 3, 0, &config).is_err());
    assert!(play_arena_job(&s, &prepared, 0, 2, &config).is_err());
    let bytes = &results[0].1;
    for damaged in [
        &bytes[..bytes.len() - 3],
        &bytes[..bytes.len() - 8],
        &bytes[4..],
    ] {
        assert!(JobResult::from_bytes(damaged).is_err());
    }
}
