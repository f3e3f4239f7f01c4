//! The estimators against closed-form values on a tiny hand-made log, and the unbiasedness of IPW
//! and DR checked by simulation on a synthetic problem whose true value is known.

use metarec_core::{Context, Rng, rng_for};
use metarec_ope::{
    Bootstrap, Dm, Dr, DrOs, Estimate, Estimator, EvaluationPolicy, Ipw, LoggedData, Prepared,
    RawEntry, RewardModel, SnDr, SnIpw, StaticPolicy, SwitchDr, evaluate,
};
use rand::Rng as _;

/// A reward model given as a table `q[position][item]`, the same in every context.
struct Table(Vec<Vec<f64>>);

impl RewardModel for Table {
    fn predict(&self, _: &LoggedData, _: usize, item: u32, position: u32) -> f64 {
        self.0[position as usize][item as usize]
    }
}

fn entry(item: u32, position: u32, propensity: f64, reward: f64) -> RawEntry {
    RawEntry {
        item,
        position,
        propensity: Some(propensity),
        reward,
    }
}

/// Four rounds over two items at one position: (item, propensity, reward).
fn tiny_log() -> LoggedData {
    let mut d = LoggedData::new(2, 1);
    let rows = [(0, 0.5, 1.0), (1, 0.5, 0.0), (0, 0.5, 0.0), (1, 0.25, 1.0)];
    for (i, (item, p, r)) in rows.into_iter().enumerate() {
        d.push_round(i + 1, None, &[entry(item, 0, p, r)]).unwrap();
    }
    d
}

fn no_bootstrap() -> Bootstrap {
    Bootstrap {
        resamples: 0,
        seed: 0,
        threads: 1,
    }
}

fn run(prepared: &Prepared, estimators: &[&dyn Estimator], bootstrap: &Bootstrap) -> Vec<Estimate> {
    evaluate(prepared, estimators, bootstrap).unwrap()
}

#[test]
fn every_estimator_matches_its_closed_form_on_a_tiny_log() {
    let data = tiny_log();
    // Evaluation policy: item 0 with 0.8, item 1 with 0.2. Model: q = 0.6 for item 0, 0.3 for 1.
    let policy = StaticPolicy::new("p", 2, vec![0.8, 0.2]).unwrap();
    let model = Table(vec![vec![0.6, 0.3]]);
    let prepared = Prepared::new(&data, &policy, &model, None).unwrap();
    // Weights 0.8/0.5, 0.2/0.5, 0.8/0.5, 0.2/0.25; rewards 1, 0, 0, 1; residuals r - q.
    let w = [1.6, 0.4, 1.6, 0.8];
    let r = [1.0, 0.0, 0.0, 1.0];
    let res = [0.4, -0.3, -0.6, 0.7];
    let dm = 0.8 * 0.6 + 0.2 * 0.3;
    let sum_w: f64 = w.iter().sum();
    let wres: f64 = w.iter().zip(res).map(|(w, e)| w * e).sum();
    let shrink = |w: f64| w / (w * w + 1.0);
    let expected = [
        ("DM", dm),
        ("IPW", (1.6 + 0.8) / 4.0),
        ("SNIPW", (1.6 + 0.8) / sum_w),
        ("DR", dm + wres / 4.0),
        ("SNDR", dm + wres / sum_w),
        // tau = 1 keeps only the weights 0.4 and 0.8.
        ("switch-DR(1)", dm + (0.4 * -0.3 + 0.8 * 0.7) / 4.0),
        (
            "DR-OS(1)",
            dm + w.iter().zip(res).map(|(&w, e)| shrink(w) * e).sum::<f64>() / 4.0,
        ),
    ];
    let estimators: [&dyn Estimator; 7] = [
        &Dm,
        &Ipw,
        &SnIpw,
        &Dr,
        &SnDr,
        &SwitchDr { tau: 1.0 },
        &DrOs { lambda: 1.0 },
    ];
    let got = run(&prepared, &estimators, &no_bootstrap());
    for ((name, value), e) in expected.iter().zip(&got) {
        assert_eq!(&e.estimator, name);
        assert!(
            (e.value - value).abs() < 1e-12,
            "{name}: {} vs {value}",
            e.value
        );
        // Without resamples the interval collapses onto the estimate.
        assert_eq!((e.low, e.high), (e.value, e.value));
    }
    // Hand check of two of them: IPW 0.6, DR 0.54 + 0.12 / 4 = 0.57.
    assert!((got[1].value - 0.6).abs() < 1e-12);
    assert!((got[3].value - 0.57).abs() < 1e-12);
    // Kish's effective sample size of the plain weights: 4.4^2 / 5.92.
    let ess = got[1].ess.unwrap();
    assert!((ess - sum_w * sum_w / w.iter().map(|w| w * w).sum::<f64>()).abs() < 1e-12);
    assert!((ess - 19.36 / 5.92).abs() < 1e-12);
    assert_eq!(got[0].ess, None);
    let _ = r;
}

#[test]
fn clipping_caps_the_weights_and_reports_how_many() {
    let data = tiny_log();
    let policy = StaticPolicy::new("p", 2, vec![0.8, 0.2]).unwrap();
    let model = Table(vec![vec![0.0, 0.0]]);
    let prepared = Prepared::new(&data, &policy, &model, Some(1.0)).unwrap();
    assert_eq!(prepared.clipping.clipped, 2);
    assert_eq!(prepared.clipping.max_weight, 1.6);
    let got = run(&prepared, &[&Ipw], &no_bootstrap());
    assert!((got[0].value - (1.0 + 0.8) / 4.0).abs() < 1e-12);
    assert!(Prepared::new(&data, &policy, &model, Some(0.0)).is_err());
    assert!(Prepared::new(&data, &policy, &model, Some(f64::NAN)).is_err());
}

#[test]
fn on_policy_weights_give_the_logged_value_on_slates() {
    // Two positions, three items, uniform logging and uniform evaluation: every weight is 1, so
    // IPW and SNIPW equal the mean summed reward per round, and SNIPW's per-entry normalisation
    // keeps the slate's two entries.
    let mut d = LoggedData::new(3, 2);
    let p = 1.0 / 3.0;
    d.push_round(1, None, &[entry(0, 0, p, 1.0), entry(1, 1, p, 1.0)])
        .unwrap();
    d.push_round(2, None, &[entry(2, 0, p, 0.0), entry(0, 1, p, 1.0)])
        .unwrap();
    d.push_round(3, None, &[entry(1, 0, p, 0.0), entry(2, 1, p, 0.0)])
        .unwrap();
    let policy = StaticPolicy::uniform(3, 2).unwrap();
    let prepared = Prepared::new(&d, &policy, &Table(vec![vec![0.0; 3]; 2]), None).unwrap();
    let got = run(&prepared, &[&Ipw, &SnIpw], &no_bootstrap());
    for e in got {
        assert!(
            (e.value - 1.0).abs() < 1e-12,
            "{}: {}",
            e.estimator,
            e.value
        );
    }
    assert!((d.on_policy_value() - 1.0).abs() < 1e-12);
}

#[test]
fn bootstrap_is_seeded_independent_of_threads_and_matches_the_analytic_standard_error() {
    // 20,000 rounds of one item out of four at one position, uniform logging, rewards Bernoulli
    // with item-dependent rates; the evaluation policy prefers item 0.
    let mut rng = rng_for(11, 0);
    let mut d = LoggedData::new(4, 1);
    let rates = [0.3, 0.1, 0.2, 0.05];
    for i in 0..20_000 {
        let item = rng.random_range(0..4u32);
        let r = f64::from(u8::from(rng.random::<f64>() < rates[item as usize]));
        d.push_round(i + 1, None, &[entry(item, 0, 0.25, r)])
            .unwrap();
    }
    let policy = StaticPolicy::new("p", 4, vec![0.7, 0.1, 0.1, 0.1]).unwrap();
    let prepared = Prepared::new(&d, &policy, &Table(vec![vec![0.1; 4]]), None).unwrap();
    let boot = Bootstrap {
        resamples: 1000,
        seed: 3,
        threads: 2,
    };
    let a = run(&prepared, &[&Ipw, &Dr], &boot);
    let b = run(&prepared, &[&Ipw, &Dr], &Bootstrap { threads: 1, ..boot });
    assert_eq!(a, b);
    let c = run(&prepared, &[&Ipw, &Dr], &Bootstrap { seed: 4, ..boot });
    assert_ne!(a[0].low, c[0].low);
    // IPW is a mean of w r over rounds: its standard error is sd(w r) / sqrt(n).
    let terms: Vec<f64> = prepared
        .weights
        .iter()
        .zip(&prepared.rewards)
        .map(|(w, r)| w * r)
        .collect();
    let n = terms.len() as f64;
    let mean = terms.iter().sum::<f64>() / n;
    let sd = (terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let analytic = sd / n.sqrt();
    assert!(
        (a[0].std_error / analytic - 1.0).abs() < 0.15,
        "{} vs {analytic}",
        a[0].std_error
    );
    assert!(a[0].low < a[0].value && a[0].value < a[0].high);
    let width = a[0].high - a[0].low;
    assert!(
        (width / (2.0 * 1.96 * analytic) - 1.0).abs() < 0.2,
        "{width} vs {analytic}"
    );
}

/// An evaluation policy that depends on the context token `x=0` / `x=1`.
struct ByContext([Vec<f64>; 2]);

impl EvaluationPolicy for ByContext {
    fn name(&self) -> String {
        "by-context".into()
    }
    fn distribution(&self, data: &LoggedData, round: usize, position: u32, out: &mut [f64]) {
        let x = usize::from(data.context(round).is_some_and(|c| c.tokens[0] == "x=1"));
        let n = out.len();
        out.copy_from_slice(&self.0[x][position as usize * n..(position as usize + 1) * n]);
    }
}

#[test]
fn ipw_and_dr_are_unbiased_on_a_synthetic_problem_with_known_value() {
    // Five items, two positions, two contexts (x = 1 with probability 0.3). Click probability
    // mu(x, a, k) = base[a] * (1 + x) * (1 if k == 0 else 0.5). Logging: uniform slate of two
    // distinct items (marginal 1/5 everywhere).
    let base = [0.05, 0.1, 0.2, 0.3, 0.15];
    let mu =
        |x: usize, a: usize, k: usize| base[a] * (1.0 + x as f64) * if k == 0 { 1.0 } else { 0.5 };
    let policy = ByContext([
        vec![0.1, 0.1, 0.2, 0.5, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2],
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    ]);
    let mut truth = 0.0;
    for (x, px) in [(0, 0.7), (1, 0.3)] {
        for k in 0..2 {
            for a in 0..5 {
                truth += px * policy.0[x][k * 5 + a] * mu(x, a, k);
            }
        }
    }
    // A deliberately wrong reward model: DR stays unbiased whatever it is.
    let wrong = Table(vec![vec![0.2; 5], vec![0.05; 5]]);
    let reps = 300;
    let mut estimates = vec![Vec::new(); 2];
    for rep in 0..reps {
        let mut rng: Rng = rng_for(99, rep);
        let mut d = LoggedData::new(5, 2);
        for i in 0..400 {
            let x = usize::from(rng.random::<f64>() < 0.3);
            let a = rng.random_range(0..5u32);
            let b = (a + rng.random_range(1..5u32)) % 5;
            let mut entries = Vec::new();
            for (k, item) in [a, b].into_iter().enumerate() {
                let click = rng.random::<f64>() < mu(x, item as usize, k);
                entries.push(entry(item, k as u32, 0.2, f64::from(u8::from(click))));
            }
            let context = Context {
                tokens: vec![format!("x={x}")],
                ..Context::default()
            };
            d.push_round(i + 1, Some(context), &entries).unwrap();
        }
        let prepared = Prepared::new(&d, &policy, &wrong, None).unwrap();
        let got = run(&prepared, &[&Ipw, &Dr], &no_bootstrap());
        estimates[0].push(got[0].value);
        estimates[1].push(got[1].value);
    }
    for (name, values) in ["IPW", "DR"].iter().zip(&estimates) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let se = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
        assert!(
            (mean - truth).abs() < 3.5 * se,
            "{name}: mean {mean} vs truth {truth} (standard error {se})"
        );
    }
    // The direct method with the wrong model is biased, far beyond its (zero) noise.
    let dm_wrong: f64 = [(0, 0.7), (1, 0.3)]
        .iter()
        .map(|&(x, px)| {
            px * (0..2)
                .map(|k| {
                    (0..5)
                        .map(|a| policy.0[x][k * 5 + a] * wrong.0[k][a])
                        .sum::<f64>()
                })
                .sum::<f64>()
        })
        .sum();
    assert!((dm_wrong - truth).abs() > 0.05);
}
