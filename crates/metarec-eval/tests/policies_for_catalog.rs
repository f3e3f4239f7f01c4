//! `PolicySpec::build_for_catalog`: every kind of policy that can be judged on logged data is built
//! for a catalog without a scenario; a model bundle only for a catalog with its item keys in its
//! order; the yardsticks, which need the simulator, are a typed error.

use metarec_core::{Catalog, Context, Item, Policy, RewardFn, UserKey, rng_for};
use metarec_eval::PolicySpec;
use metarec_eval::policies::PolicyError;
use metarec_neural::adjust::{ADJUSTER_FILE, AdjusterManifest, BayesConfig};
use metarec_neural::checkpoint::{self, Manifest};
use metarec_neural::train::{TrainConfig, Trainer};
use std::path::Path;

/// Thirty items keyed `sku0` to `sku29` with two numeric features scaled by `scale`.
fn catalog(scale: f32) -> Catalog {
    let mut c = Catalog::new(vec!["price_z".into(), "log_popularity_z".into()]);
    for i in 0..30 {
        c.push(Item {
            key: format!("sku{i}"),
            features: vec![scale * (i as f32 * 0.7).sin(), (i as f32 * 0.3).cos()],
            ..Item::default()
        })
        .unwrap();
    }
    c
}

/// A model bundle over a seeded (untrained) network for `catalog`, with a Bayesian adjuster.
fn write_bundle(dir: &Path, catalog: &Catalog) {
    let reward = RewardFn::new(1.0, 0.0, 0.0, 0.0).unwrap();
    let trainer = Trainer::new(
        catalog,
        reward,
        TrainConfig {
            seed: 3,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let source = checkpoint::DataSource::Scenario {
        name: "test".into(),
        toml: String::new(),
    };
    let manifest = Manifest::for_trainer(&trainer, catalog, source, vec![], vec![]);
    checkpoint::save(dir, &trainer.varmap, &manifest, catalog).unwrap();
    let adjuster = AdjusterManifest {
        kind: "bayes".into(),
        config: BayesConfig {
            prior_scale: 1.0,
            thompson: false,
            draws: 16,
            calibration: Default::default(),
            head: Default::default(),
        },
        gradient: None,
        grid: vec![],
        mean_grid: vec![],
        prior_shape: vec![],
        shaped_grid: vec![],
        users: 0,
        held_out: None,
        offline: None,
        weights_sha256: checkpoint::read_manifest(dir).unwrap().weights_sha256,
    };
    std::fs::write(
        dir.join(ADJUSTER_FILE),
        serde_json::to_string(&adjuster).unwrap(),
    )
    .unwrap();
}

/// Builds `name` for `catalog` (loading its model) and asks it for a slate of three.
fn build_and_decide(name: &str, catalog: &Catalog) -> Result<Vec<u32>, Box<PolicyError>> {
    let mut spec = PolicySpec::parse(name)?;
    spec.load(&mut Vec::new())?;
    let mut policy: Box<dyn Policy> =
        spec.build_for_catalog(catalog, "shop test/", &RewardFn::default(), 1)?;
    let context = Context::for_user(UserKey("u".into()));
    let choice = policy.decide(&context, 3, &mut rng_for(1, 1));
    Ok(choice.items.iter().map(|i| i.0).collect())
}

#[test]
fn every_policy_that_needs_no_simulator_is_built_for_a_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_bundle(&model, &catalog(1.0));
    let m = model.to_str().unwrap();
    let shop = catalog(1.0);
    let mut names: Vec<String> = metarec_learn::registry::BASELINES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend([
        format!("neural:{m}"),
        format!("neural-greedy:{m}"),
        format!("adjusted:{m}"),
    ]);
    for name in &names {
        let items = build_and_decide(name, &shop).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(items.len(), 3, "{name}");
        assert!(items.iter().all(|&i| i < 30), "{name}: {items:?}");
    }
    // Only the adjusted policy adapts to each user from their feedback.
    let adapts: Vec<bool> = names
        .iter()
        .map(|n| PolicySpec::parse(n).unwrap().adapts_to_users())
        .collect();
    assert_eq!(adapts.iter().filter(|a| **a).count(), 1);
    assert!(adapts[names.len() - 1]);
    // A catalog with the same keys and other features (as one with extra text columns) fits:
    // the network reads its own catalog's features, and the ids name the same items.
    let greedy = format!("neural-greedy:{m}");
    assert_eq!(
        build_and_decide(&greedy, &catalog(3.0)).unwrap(),
        build_and_decide(&greedy, &shop).unwrap()
    );
}

#[test]
fn a_model_of_other_keys_and_the_yardsticks_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_bundle(&model, &catalog(1.0));
    let m = model.to_str().unwrap();
    // The same items in another order: the ids would name other items.
    let mut reordered = Catalog::new(vec!["price_z".into(), "log_popularity_z".into()]);
    for i in (0..30).rev() {
        reordered
            .push(catalog(1.0).item(metarec_core::ItemId(i)).unwrap())
            .unwrap();
    }
    for name in [format!("neural:{m}"), format!("adjusted:{m}")] {
        let err = build_and_decide(&name, &reordered).unwrap_err();
        assert!(matches!(*err, PolicyError::Keys { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("item 0 is `sku0` in the model's catalog and `sku29` here"),
            "{text}"
        );
        assert!(text.contains("shop test/ (30 items)"), "{text}");
    }
    let smaller = {
        let mut c = Catalog::new(vec!["price_z".into(), "log_popularity_z".into()]);
        c.push(catalog(1.0).item(metarec_core::ItemId(0)).unwrap())
            .unwrap();
        c
    };
    let err = build_and_decide(&format!("neural:{m}"), &smaller).unwrap_err();
    assert!(
        err.to_string()
            .contains("the model's catalog has 30 items, this one 1"),
        "{err}"
    );
    for name in [
        "oracle",
        "planner",
        "browse",
        "bestsellers",
        "informed",
        "informed-ts:5",
    ] {
        let err = build_and_decide(name, &catalog(1.0)).unwrap_err();
        assert!(
            matches!(&*err, PolicyError::NeedsSimulator { name: n } if n == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("needs the simulator"), "{err}");
    }
}
