//! Online Retail imported as a shop through the map `docs/shop.md` documents gives the simulator
//! that the Online Retail loader gives: the same hidden vectors, population and calibrated
//! biases, bit for bit (on the `small` scenario, calibrated on fewer users to stay quick).

use metarec_data::LoadOptions;
use metarec_data::fetch::{DATA_ENV, DataDir, Dataset};
use metarec_data::online_retail::{FILE_NAME, load_online_retail};
use metarec_data::shop::{ImportSpec, Shop, import_shop};
use metarec_sim::{Scenario, ScenarioConfig};
use std::path::{Path, PathBuf};

/// The map of the Online Retail example in `docs/shop.md` (checked there by `metarec-data`'s
/// `shop_real_data` tests).
const ONLINE_RETAIL_MAP: &str = "user_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,type=const:purchase,session_id=InvoiceNo,quantity=Quantity,price=UnitPrice,title=Description";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn online_retail_as_a_shop_fits_the_same_simulator_as_its_loader() {
    let root = std::env::var_os(DATA_ENV).map_or_else(|| workspace().join("data"), PathBuf::from);
    // Online Retail ships with the crate: this unpacks it on first use.
    let csv = DataDir::new(root)
        .require(Dataset::OnlineRetail)
        .unwrap()
        .join(FILE_NAME);
    let doc = std::fs::read_to_string(workspace().join("docs/shop.md")).unwrap();
    assert!(doc.contains(ONLINE_RETAIL_MAP));
    let tmp = tempfile::tempdir().unwrap();
    let spec = ImportSpec {
        events: csv.clone(),
        map: ONLINE_RETAIL_MAP.parse().unwrap(),
        exclude_items: Some(workspace().join("examples/online-retail/non-products.txt")),
        ..ImportSpec::default()
    };
    let dir = tmp.path().join("online-retail");
    import_shop(&spec, &dir, false).unwrap();
    let shop = Shop::load(&dir).unwrap();
    let data = load_online_retail(&csv, &LoadOptions::default()).unwrap();

    let mut config = ScenarioConfig::load("small").unwrap();
    config.calibration.users = 200;
    let loaded = Scenario::build(config.clone(), &data).unwrap();
    let imported = Scenario::build_from_shop(config, &shop, None).unwrap();
    let (a, b) = (&loaded.world, &imported.world);
    assert_eq!(a.catalog.keys(), b.catalog.keys());
    assert_eq!(a.catalog.fingerprint(), b.catalog.fingerprint());
    assert_eq!(a.item_vectors, b.item_vectors);
    assert_eq!(a.population.customers(), b.population.customers());
    assert_eq!(
        a.population.countries().collect::<Vec<_>>(),
        b.population.countries().collect::<Vec<_>>()
    );
    assert_eq!(b.population.attribute(), "Country");
    let (fa, fb) = (
        loaded.calibration.as_ref().unwrap(),
        imported.calibration.as_ref().unwrap(),
    );
    assert_eq!(
        (fa.click_bias, fa.purchase_bias),
        (fb.click_bias, fb.purchase_bias)
    );
    assert_eq!(a.real.purchases_per_item, b.real.purchases_per_item);
    assert_eq!(a.real.repeat_purchase_rate, b.real.repeat_purchase_rate);
}
