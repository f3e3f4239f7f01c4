//! The shop benchmark's hook for a method scored outside the crate ([`ExternalScorer`]): its
//! scores are measured exactly like the built-in methods', and unusable scores or names are
//! clear errors rather than panics.

use metarec_coldstart::ColdStartError;
use metarec_coldstart::mf::ImplicitConfig;
use metarec_coldstart::shop::{
    ColdUser, ExternalScorer, Fitted, Interaction, PriorConfig, ShopBenchConfig, ShopData,
    ShopReport, fit, run_shop_benchmark_with,
};
use metarec_core::rng_for;
use rand::Rng as _;

const DAY: i64 = 86_400_000;
const CUTOFF: i64 = 90 * DAY;
const ITEMS: usize = 40;

/// Users who each buy 5 to 9 distinct items of one of four groups of ten, starting uniformly
/// over 120 days, so that about a quarter are new at the cutoff.
fn shop(users: usize, seed: u64) -> ShopData {
    let mut rng = rng_for(seed, 0);
    let mut first_ms = Vec::new();
    let mut events = Vec::new();
    for u in 0..users {
        let g = u % 4;
        let start = rng.random_range(0..120 * DAY);
        first_ms.push(Some(start));
        let n = 5 + rng.random_range(0..5usize);
        let mut items: Vec<usize> = (0..10).collect();
        for j in 0..n {
            let pick = rng.random_range(j..10);
            items.swap(j, pick);
            events.push(Interaction {
                user: u as u32,
                item: (g * 10 + items[j]) as u32,
                ms: start + j as i64 * (DAY / 3),
                session: Some(u as u32),
            });
        }
    }
    events.sort_by_key(|e| e.ms);
    ShopData {
        items: ITEMS,
        first_ms,
        tokens: vec![Vec::new(); users],
        features: vec![Vec::new(); users],
        interactions: events,
        titles: Vec::new(),
    }
}

fn config() -> ShopBenchConfig {
    ShopBenchConfig {
        cutoff_ms: CUTOFF,
        budgets: vec![1, 3],
        als_grid: vec![ALS],
        fold_scales: vec![1.0],
        noise_grid: vec![1.0],
        gradient_grid: vec![(0.5, 3)],
        blend_betas: vec![0.5],
        blend_etas: vec![0.0],
        blend_gammas: vec![0.0],
        blend_taus: vec![0.0],
        half_lives: vec![None],
        knn_dampings: vec![0.0],
        ..ShopBenchConfig::default()
    }
}

const ALS: ImplicitConfig = ImplicitConfig {
    dim: 4,
    lambda: 1.0,
    alpha: 10.0,
    sweeps: 4,
};

/// Item-kNN computed outside the crate from the public fitted model, in the same order of
/// floating-point operations as the built-in method.
struct OutsideKnn {
    fitted: Fitted,
    name: &'static str,
}

impl ExternalScorer for OutsideKnn {
    fn name(&self) -> &str {
        self.name
    }

    fn score(&mut self, user: &ColdUser, out: &mut Vec<f64>) -> Result<(), ColdStartError> {
        let inv_sqrt: Vec<f64> = self
            .fitted
            .popularity
            .iter()
            .map(|&n| if n > 0.0 { 1.0 / n.sqrt() } else { 0.0 })
            .collect();
        out.clear();
        out.resize(ITEMS, 0.0);
        for &s in &user.support {
            let w = inv_sqrt[s as usize];
            for &pos in &self.fitted.item_users[s as usize] {
                for &j in &self.fitted.user_items[pos as usize] {
                    out[j as usize] += w;
                }
            }
        }
        for (o, w) in out.iter_mut().zip(&inv_sqrt) {
            *o *= w;
        }
        Ok(())
    }
}

fn row<'a>(
    report: &'a ShopReport,
    k: usize,
    method: &str,
) -> &'a metarec_coldstart::shop::MethodResult {
    let b = report.budgets.iter().find(|b| b.k == k).unwrap();
    b.methods.iter().find(|m| m.method == method).unwrap()
}

#[test]
fn an_external_method_returning_item_knn_scores_measures_as_item_knn() {
    let data = shop(400, 3);
    let fitted = fit(&data, CUTOFF, &ALS, &PriorConfig::default(), 0);
    let mut outside = OutsideKnn {
        fitted,
        name: "outside-knn",
    };
    let report = run_shop_benchmark_with(&data, &config(), Some(&mut outside), &|_| {}).unwrap();
    for k in [1, 3] {
        let knn = row(&report, k, "item-knn");
        let ext = row(&report, k, "outside-knn");
        // The external row follows the built-in ones.
        let b = report.budgets.iter().find(|b| b.k == k).unwrap();
        assert_eq!(b.methods.last().unwrap().method, "outside-knn");
        assert_eq!(ext.metrics, knn.metrics, "K = {k}");
        assert!(!ext.vs_reference.is_empty());
        for (name, diff) in &ext.vs_reference {
            assert_eq!(diff.mean, 0.0, "{name} at K = {k}");
        }
    }
}

/// Scores of the wrong length or that are not finite.
struct Broken {
    len: usize,
    value: f64,
}

impl ExternalScorer for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    fn score(&mut self, _: &ColdUser, out: &mut Vec<f64>) -> Result<(), ColdStartError> {
        out.clear();
        out.resize(self.len, self.value);
        Ok(())
    }
}

#[test]
fn unusable_external_scores_and_names_are_errors() {
    let data = shop(200, 5);
    let run = |x: &mut dyn ExternalScorer| {
        run_shop_benchmark_with(&data, &config(), Some(x), &|_| {})
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let short = run(&mut Broken {
        len: ITEMS - 1,
        value: 0.0,
    });
    assert!(short.contains("39 scores for a catalogue of 40"), "{short}");
    let nan = run(&mut Broken {
        len: ITEMS,
        value: f64::NAN,
    });
    assert!(nan.contains("not finite"), "{nan}");
    let fitted = fit(&data, CUTOFF, &ALS, &PriorConfig::default(), 0);
    let taken = run(&mut OutsideKnn {
        fitted,
        name: "item-knn",
    });
    assert!(taken.contains("a name of its own"), "{taken}");
}
