//! The simulator fitted to a shop directory: a made-up shop with logged impressions
//! (`metarec_data::shop::synth`) is imported, its world fitted and calibrated, and the
//! simulator's CTR by position under random slates (the made-up shop's own logging policy) is
//! checked against the shop's; shops with nothing to fit are clear errors.

use metarec_data::shop::synth::{SynthConfig, write_synth_shop};
use metarec_data::shop::{EventKind, ImportSpec, Shop, import_shop};
use metarec_sim::{Scenario, ScenarioConfig, SimError, World};

/// A made-up shop of 60 items and `users` users, imported into a temporary directory.
fn made_up_shop(users: usize) -> (tempfile::TempDir, Shop) {
    let tmp = tempfile::tempdir().unwrap();
    let files = write_synth_shop(
        &SynthConfig {
            items: 60,
            users,
            ..SynthConfig::default()
        },
        &tmp.path().join("files"),
    )
    .unwrap();
    let dir = tmp.path().join("shop");
    let spec = ImportSpec {
        catalog: Some(files.catalog),
        events: files.events,
        users: Some(files.users),
        name: Some("made-up".into()),
        ..ImportSpec::default()
    };
    import_shop(&spec, &dir, false).unwrap();
    let shop = Shop::load(&dir).unwrap();
    (tmp, shop)
}

/// A scenario config of every item, calibrated on `users` simulated users.
fn config(users: usize) -> ScenarioConfig {
    let mut config = ScenarioConfig::default();
    config.catalog.items = 0;
    config.calibration.users = users;
    config
}

#[test]
fn a_shop_simulator_reproduces_the_shops_ctr_by_position_within_ten_percent() {
    let (_tmp, shop) = made_up_shop(1500);
    let scenario = Scenario::build_from_shop(config(1000), &shop, None).unwrap();
    // The made-up shop shows slates of 4, which the simulator takes over, with an examination
    // curve that falls with position as the shop's clicks do.
    assert_eq!(scenario.config.choice.slate_size, 4);
    let e = &scenario.config.choice.examination;
    assert_eq!(e.len(), 4);
    assert!(e[3] < e[0], "{e:?}");
    // The population is grouped by the users file's region.
    assert_eq!(scenario.world.population.attribute(), "region");
    assert_eq!(scenario.world.population.countries().count(), 4);
    // Users the calibration never saw: random slates reproduce the shop's CTR by position.
    let report = metarec_sim::calibrate::report(&scenario, 1000);
    eprintln!("{report}");
    assert_eq!(report.shop.as_deref(), Some("shop `made-up`"));
    assert_eq!(report.impressions.len(), 5, "{report}");
    for c in &report.impressions[..4] {
        let relative = (c.simulated - c.real).abs() / c.real;
        assert!(relative < 0.10, "{}: {c:?}\n{report}", c.what);
    }
    // So do purchases per click, within 15%: fewer clicks make it noisier.
    let cvr = &report.impressions[4];
    assert!(
        (cvr.simulated - cvr.real).abs() / cvr.real < 0.15,
        "{report}"
    );
    assert!(report.to_string().contains("CTR at position 4"));
}

#[test]
fn a_shop_with_nothing_to_fit_is_a_clear_error() {
    let (_tmp, shop) = made_up_shop(40);
    let mut views_only = shop.clone();
    views_only.events.retain(|e| e.kind == EventKind::View);
    let err = World::build_from_shop(&views_only, &config(10), None).unwrap_err();
    assert!(matches!(err, SimError::NoSignal { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("shop `made-up`") && message.contains("0 purchases"),
        "{message}"
    );
    let mut empty = shop.clone();
    empty.events.clear();
    let err = Scenario::build_from_shop(config(10), &empty, None).unwrap_err();
    assert!(err.to_string().contains("no events"), "{err}");
    // A signal the shop lacks, asked for by name.
    let mut carts = config(10);
    carts.shop.signal = "add_to_cart".into();
    let err = World::build_from_shop(&shop, &carts, None).unwrap_err();
    assert!(err.to_string().contains("0 add-to-carts"), "{err}");
    // A grouping field the shop does not have.
    let mut field = config(10);
    field.shop.user_attribute = "planet".into();
    let err = World::build_from_shop(&shop, &field, None).unwrap_err();
    assert!(err.to_string().contains("shop.user_attribute"), "{err}");
    // Clicks alone are enough (the strongest signal left when purchases are dropped).
    let mut clicks = shop.clone();
    clicks.events.retain(|e| e.kind != EventKind::Purchase);
    let world = World::build_from_shop(&clicks, &config(10), None).unwrap();
    assert_eq!(world.real.signal, "clicks");
}
