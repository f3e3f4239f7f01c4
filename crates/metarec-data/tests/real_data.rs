//! The loaders on the real data sets, checked against numbers computed independently with pandas.
//!
//! Online Retail ships with the crate and is unpacked into the data directory on first use. The
//! Open Bandit Dataset and MovieLens-100k must have been fetched
//! (`cargo run -p metarec -- data fetch obd ml-100k`); without them these tests fail, saying so.

mod common;

use common::require;
use metarec_core::ItemId;
use metarec_data::fetch::Dataset;
use metarec_data::log::{ItemKeys, LogReader};
use metarec_data::movielens::{MovieLens, load_movielens};
use metarec_data::obd::{ObdCampaign, ObdLog, ObdPolicy, load_obd};
use metarec_data::online_retail::{
    FILE_NAME, NON_PRODUCT_CODES, OnlineRetail, SKIP_BAD_DEBT, SKIP_BANK_CHARGES,
    SKIP_CANCELLATION, SKIP_CARRIAGE, SKIP_DISCOUNT, SKIP_FEE, SKIP_FREE_PADS, SKIP_GIFT_VOUCHER,
    SKIP_GUEST, SKIP_IMAGE, SKIP_MANUAL, SKIP_PACKING, SKIP_POSTAGE, SKIP_PRICE, SKIP_SAMPLES,
    load_online_retail, non_product_reason, parse_online_retail,
};
use metarec_data::time::parse_datetime_ms;
use metarec_data::{DataError, LoadOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

// ------------------------------------------------------------------------------------------------
// Online Retail
// ------------------------------------------------------------------------------------------------

fn online_retail_csv() -> PathBuf {
    require(Dataset::OnlineRetail).join(FILE_NAME)
}

/// The full load, shared by the tests that only read it.
fn online_retail() -> &'static OnlineRetail {
    static DATA: OnceLock<OnlineRetail> = OnceLock::new();
    DATA.get_or_init(|| load_online_retail(&online_retail_csv(), &LoadOptions::default()).unwrap())
}

// Reference numbers for Online Retail, computed with pandas 2 on the same file:
//
//   import pandas as pd
//   df = pd.read_csv("online_retail.csv", dtype={"InvoiceNo": str, "StockCode": str,
//                    "CustomerID": str}, keep_default_na=False, na_values=[])
//   len(df)                                                    # 541909 records
//   code = df.StockCode.str.strip()
//   np_codes = {"POST", "DOT", "C2", "23444", "23574", "M", "BANK CHARGES", "AMAZONFEE",
//               "CRUK", "D", "S", "B", "23702", "PADS"}
//   nonprod = code.str.upper().isin(np_codes) | code.str.lower().str.startswith("gift_")
//   nonprod.sum()                                                              # 3052
//   df[nonprod].groupby(code).size()     # POST 1256, DOT 710, C2 144, 23444 81, 23574 17,
//                                        # M 571, m 1, BANK CHARGES 37, AMAZONFEE 34, CRUK 16,
//                                        # D 77, S 63, B 3, 23702 4, PADS 4, gift_0001_* 34
//   canc = ~nonprod & df.InvoiceNo.str.strip().str[0].isin(["C", "c"]); canc.sum()  # 8701
//   guest = ~nonprod & ~canc & (df.CustomerID.str.strip() == ""); guest.sum()      # 133882
//   rest = ~nonprod & ~canc & ~guest; (rest & (df.Quantity <= 0)).sum()            # 0
//   rest &= df.Quantity > 0; (rest & (df.UnitPrice <= 0)).sum()                    # 33
//   k = df[rest & (df.UnitPrice > 0)]
//   len(k), k.CustomerID.nunique(), k.StockCode.str.strip().nunique()  # 396241, 4334, 3656
//   s = k[k.StockCode.str.strip() == "85123A"]
//   d = s.Description.str.strip(); d[d != ""].value_counts().head(1)
//                                  # WHITE HANGING HEART T-LIGHT HOLDER  2028 (of 2035 lines)
//   s.UnitPrice.median()                                                       # 2.95
//   cc = k.groupby(["CustomerID", "Country"]).size().reset_index(name="n")
//   cc = cc.sort_values(["CustomerID", "n", "Country"], ascending=[True, False, True])
//   cc = cc.drop_duplicates("CustomerID")            # each customer's most common country
//   (cc.Country == "United Kingdom").sum(), cc.Country.nunique()               # 3916, 37
//   cc.set_index("CustomerID").Country[["12370.0", "12431.0", "12457.0"]]
//                                                    # Cyprus, Australia, Switzerland
//   k.InvoiceDate.min(), k.InvoiceDate.max()  # 2010-12-01 08:26:00, 2011-12-09 12:50:00
//   k.Quantity.sum(), (k.Quantity * k.UnitPrice).sum()             # 5157257, 8759734.65
//   k.iloc[0][["CustomerID", "StockCode"]], k.iloc[-1][["CustomerID", "StockCode"]]
//                                                    # 17850.0 85123A, 12680.0 22138
//
// and `date -u -d '2010-12-01 08:26:00' +%s` = 1291191960,
//     `date -u -d '2011-12-09 12:50:00' +%s` = 1323435000.

#[test]
fn online_retail_full_load_has_the_reference_counts() {
    let or = online_retail();
    assert_eq!(or.customers.len(), 4_334);
    assert_eq!(or.catalog.len(), 3_656);
    assert_eq!(or.purchases.len(), 396_241);

    let r = &or.report;
    assert_eq!(r.records, 541_909);
    assert_eq!(r.kept, 396_241);
    assert_eq!(r.skipped.get(SKIP_CANCELLATION), Some(&8_701), "{r}");
    assert_eq!(r.skipped.get(SKIP_GUEST), Some(&133_882), "{r}");
    assert_eq!(r.skipped.get(SKIP_PRICE), Some(&33), "{r}");
    // The three standard reasons and the twelve non-product reasons of
    // `non_product_stock_codes_are_dropped_and_counted`.
    assert_eq!(r.skipped.len(), 15, "no other reasons: {r}");
    assert_eq!(r.records, r.kept + r.skipped_total());
    assert_eq!(r.source, online_retail_csv().display().to_string());
}

// Issue 16, item 12: postage (`POST`) was in the catalog and ranked first for a user, with
// carriage, bank charges, manual entries and other non-product codes beside it. The counts are
// those of the pandas reference above (`df[nonprod].groupby(code).size()`).
#[test]
fn non_product_stock_codes_are_dropped_and_counted() {
    let or = online_retail();
    let gone = [
        "POST",
        "DOT",
        "C2",
        "23444",
        "23574",
        "M",
        "m",
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",
        "D",
        "S",
        "B",
        "23702",
        "PADS",
        "gift_0001_10",
        "gift_0001_20",
        "gift_0001_30",
        "gift_0001_40",
        "gift_0001_50",
    ];
    for code in gone {
        assert_eq!(or.catalog.id_of(code), None, "`{code}` is not a product");
        assert!(non_product_reason(code).is_some(), "{code}");
    }
    // The old cleaning kept 1,643 lines of nine of these codes (`POST` 1,099, `M` 284, `C2`
    // 133, `23444` 79, `DOT` 16, `23574` 14, `BANK CHARGES` 12, `23702` 3, `PADS` 3). Their
    // titles must not reach the catalog under any other code either.
    let service_titles = [
        "POSTAGE",
        "DOTCOM POSTAGE",
        "CARRIAGE",
        "Next Day Carriage",
        "PACKING CHARGE",
        "Manual",
        "Bank Charges",
        "AMAZON FEE",
        "High Resolution Image",
        "PADS TO MATCH ALL CUSHIONS",
    ];
    for id in or.catalog.ids() {
        let title = or.catalog.title(id).unwrap_or_default();
        assert!(
            !service_titles.contains(&title),
            "{:?}: {title}",
            or.catalog.key(id)
        );
    }

    let r = &or.report;
    let expected = [
        (SKIP_POSTAGE, 1_966),
        (SKIP_CARRIAGE, 225),
        (SKIP_PACKING, 17),
        (SKIP_MANUAL, 572),
        (SKIP_BANK_CHARGES, 37),
        (SKIP_FEE, 50),
        (SKIP_DISCOUNT, 77),
        (SKIP_SAMPLES, 63),
        (SKIP_GIFT_VOUCHER, 34),
        (SKIP_BAD_DEBT, 3),
        (SKIP_IMAGE, 4),
        (SKIP_FREE_PADS, 4),
    ];
    for (reason, n) in expected {
        assert_eq!(r.skipped.get(reason), Some(&n), "{reason}: {r}");
    }
    let non_product: u64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(non_product, 3_052);
    // Every listed code has lines in the file: the list holds no guesses.
    let mut reasons: Vec<&str> = NON_PRODUCT_CODES.iter().map(|(_, r)| *r).collect();
    reasons.push(SKIP_GIFT_VOUCHER);
    for reason in reasons {
        assert!(expected.iter().any(|(e, _)| *e == reason), "{reason}");
    }

    // The dotcom shop's own codes are products (all guest lines, so none is in the catalog),
    // and so are product codes whose titles merely contain a service word.
    for code in ["DCGS0003", "DCGSSGIRL", "23099", "85168B", "46000S"] {
        assert_eq!(non_product_reason(code), None, "{code}");
    }
    let lantern = or.catalog.id_of("23099").expect("23099 is a product");
    assert_eq!(or.catalog.title(lantern), Some("FRENCH CARRIAGE LANTERN"));
}

#[test]
fn online_retail_catalog_uses_the_most_common_title_and_the_median_price() {
    let or = online_retail();
    let heart = or.catalog.id_of("85123A").expect("stock code 85123A");
    assert_eq!(
        or.catalog.title(heart),
        Some("WHITE HANGING HEART T-LIGHT HOLDER")
    );
    assert_eq!(or.catalog.price(heart), Some(2.95));
    assert_eq!(
        or.purchases.iter().filter(|p| p.item == heart).count(),
        2_035
    );
    // Items are numbered in order of first appearance.
    assert_eq!(heart, ItemId(0));
    assert_eq!(
        or.catalog.key(or.purchases.last().unwrap().item),
        Some("22138")
    );
    assert!(
        or.catalog
            .prices()
            .iter()
            .all(|p| p.is_some_and(|p| p > 0.0))
    );
}

// Titles and prices of the whole catalog (the file is scanned in chunks on several threads and
// merged; these sums cover every item), with pandas:
//
//   k["code"], k["title"] = k.StockCode.str.strip(), k.Description.str.strip()
//   t = k[k.title != ""].groupby(["code", "title"]).size().reset_index(name="n")
//   top = t.sort_values(["code", "n", "title"], ascending=[True, False, True]) \
//          .drop_duplicates("code").set_index("code")
//   len(top), top.title.str.len().sum()                   # 3656 titled items, 98341 characters
//   (t.groupby("code").size() > 1).sum()                  # 210 items have several titles
//   t[t.code == "35817P"]   # the one tie: "ACRYLIC JEWEL SNOWFLAKE,PINK" x1 (line 31,545) and
//                           # "PINK ACRYLIC JEWEL SNOWFLAKE" x1 (line 299,741)
//   med = k.groupby("code").UnitPrice.median(); med.sum(), med["22647"]    # 12286.95, 0.935
//   (22647, CERAMIC LOVE HEART MONEY BANK: 36 lines from line 18,911 to 539,111, so on
//   several threads its prices come from several chunks; the median is the mean of 0.42 and
//   1.45)

#[test]
fn online_retail_catalog_titles_and_prices_match_pandas_for_every_item() {
    let or = online_retail();
    let ids: Vec<ItemId> = or.catalog.ids().collect();
    let titles: Vec<&str> = ids.iter().filter_map(|&i| or.catalog.title(i)).collect();
    assert_eq!(titles.len(), 3_656);
    assert_eq!(
        titles.iter().map(|t| t.chars().count()).sum::<usize>(),
        98_341
    );
    let snowflake = or.catalog.id_of("35817P").unwrap();
    // A tie goes to the alphabetically first title, whichever chunk each was seen in.
    assert_eq!(
        or.catalog.title(snowflake),
        Some("ACRYLIC JEWEL SNOWFLAKE,PINK")
    );
    let medians: f64 = or
        .catalog
        .prices()
        .iter()
        .map(|p| f64::from(p.unwrap()))
        .sum();
    assert!((medians - 12_286.95).abs() < 0.01, "{medians}");
    assert_eq!(
        or.catalog.price(or.catalog.id_of("22647").unwrap()),
        Some(0.935)
    );
}

#[test]
fn online_retail_customers_get_their_most_common_country() {
    let or = online_retail();
    let uk = or
        .customers
        .iter()
        .filter(|c| c.country == "United Kingdom")
        .count();
    assert_eq!(uk, 3_916);
    let mut countries: Vec<&str> = or.customers.iter().map(|c| c.country.as_str()).collect();
    countries.sort_unstable();
    countries.dedup();
    assert_eq!(countries.len(), 37);
    let country: HashMap<&str, &str> = or
        .customers
        .iter()
        .map(|c| (c.key.0.as_str(), c.country.as_str()))
        .collect();
    // Customers who bought from two countries.
    assert_eq!(country["12370"], "Cyprus");
    assert_eq!(country["12431"], "Australia");
    assert_eq!(country["12457"], "Switzerland");
    assert_eq!(or.customers[0].key.0, "17850");
    assert_eq!(
        or.customers[or.purchases.last().unwrap().customer as usize]
            .key
            .0,
        "12680"
    );
}

#[test]
fn online_retail_purchases_are_in_time_order_within_the_reference_range() {
    let or = online_retail();
    let first = parse_datetime_ms("2010-12-01 08:26:00").unwrap();
    let last = parse_datetime_ms("2011-12-09 12:50:00").unwrap();
    assert_eq!(first, 1_291_191_960_000);
    assert_eq!(last, 1_323_435_000_000);
    assert_eq!(or.purchases.first().unwrap().timestamp_ms, first);
    assert_eq!(or.purchases.last().unwrap().timestamp_ms, last);
    assert!(
        or.purchases
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
    );
    let quantity: u64 = or.purchases.iter().map(|p| u64::from(p.quantity)).sum();
    assert_eq!(quantity, 5_157_257);
    let revenue: f64 = or.purchases.iter().map(|p| p.revenue()).sum();
    // Prices are stored as f32: allow their rounding.
    assert!((revenue - 8_759_734.65).abs() < 8.8, "{revenue}");
    for p in &or.purchases {
        assert!((p.customer as usize) < or.customers.len());
        assert!(or.catalog.contains(p.item));
    }
}

/// The real file with the Quantity field of each given line (1-based, header = line 1)
/// replaced by a word.
fn corrupt_quantity(bytes: &[u8], lines: &[u64]) -> Vec<u8> {
    let mut starts = vec![0usize];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let mut out = Vec::with_capacity(bytes.len() + 16 * lines.len());
    let mut copied = 0;
    for &line in lines {
        let start = starts[line as usize - 1];
        let end = starts.get(line as usize).map_or(bytes.len(), |e| e - 1);
        let text = std::str::from_utf8(&bytes[start..end]).unwrap();
        assert!(!text.contains('"'), "line {line} has quoted fields: {text}");
        let mut fields: Vec<&str> = text.split(',').collect();
        assert_eq!(fields.len(), 8, "line {line}: {text}");
        assert!(fields[3].parse::<i64>().is_ok(), "line {line}: {text}");
        fields[3] = "eight";
        out.extend_from_slice(&bytes[copied..start]);
        out.extend_from_slice(fields.join(",").as_bytes());
        copied = end;
    }
    out.extend_from_slice(&bytes[copied..]);
    out
}

fn real_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(online_retail_csv()).unwrap())
}

#[track_caller]
fn assert_bad_quantity_at(err: DataError, line: u64) {
    match &err {
        DataError::Malformed { line: l, field, .. } => {
            assert_eq!((*l, field.as_str()), (line, "Quantity"), "{err}");
        }
        other => panic!("expected Malformed at line {line}, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("line {line}: field `Quantity`")),
        "{msg}"
    );
    assert!(msg.contains("online_retail.csv"), "{msg}");
}

// The 48 MB file is parsed in chunks on several threads; line numbers must still be those of the
// whole file. Line 500,000 is `578703,21918,SET 12 KIDS COLOUR  CHALK STICKS,8,...` (kept) and
// line 100,000 `544795,22024,RAINY LADIES BIRTHDAY CARD,12,...` (kept): `sed -n 500000p`.

#[test]
fn chunked_parse_reports_the_file_line_of_an_error_near_the_end() {
    let path = online_retail_csv();
    let bytes = corrupt_quantity(real_bytes(), &[500_000]);
    let err = parse_online_retail(&bytes, &path, &LoadOptions::default()).unwrap_err();
    assert_bad_quantity_at(err, 500_000);

    let or = parse_online_retail(&bytes, &path, &LoadOptions::skipping()).unwrap();
    let r = &or.report;
    assert_eq!(r.records, 541_909);
    assert_eq!(r.kept, 396_240);
    assert_eq!(r.skipped.get("malformed Quantity"), Some(&1), "{r}");
    assert_eq!(r.skipped.get(SKIP_CANCELLATION), Some(&8_701), "{r}");
    assert_eq!(r.records, r.kept + r.skipped_total());
}

#[test]
fn chunked_parse_reports_the_first_error_in_file_order() {
    let path = online_retail_csv();
    // Line 100,000 is in the first half of the file, 541,910 is its last line.
    let bytes = corrupt_quantity(real_bytes(), &[100_000]);
    let err = parse_online_retail(&bytes, &path, &LoadOptions::default()).unwrap_err();
    assert_bad_quantity_at(err, 100_000);

    let bytes = corrupt_quantity(real_bytes(), &[100_000, 500_000, 541_910]);
    let err = parse_online_retail(&bytes, &path, &LoadOptions::default()).unwrap_err();
    assert_bad_quantity_at(err, 100_000);
    let or = parse_online_retail(&bytes, &path, &LoadOptions::skipping()).unwrap();
    assert_eq!(or.report.skipped.get("malformed Quantity"), Some(&3));
    assert_eq!(or.report.kept, 396_238);
    // The other lines load exactly as before.
    assert_eq!(or.customers.len(), 4_334);
}

#[test]
fn chunked_parse_reports_the_last_line_of_the_file() {
    let path = online_retail_csv();
    let bytes = corrupt_quantity(real_bytes(), &[541_910]);
    let err = parse_online_retail(&bytes, &path, &LoadOptions::default()).unwrap_err();
    assert_bad_quantity_at(err, 541_910);
}

// ------------------------------------------------------------------------------------------------
// Open Bandit
// ------------------------------------------------------------------------------------------------

// Reference numbers for the Open Bandit logs, computed with pandas:
//
//   for pol in ["random", "bts"]:
//       for camp in ["all", "men", "women"]:
//           df = pd.read_csv(f"obd/{pol}/{camp}/{camp}.csv", index_col=0)
//           ic = pd.read_csv(f"obd/{pol}/{camp}/item_context.csv", index_col=0)
//           print(pol, camp, len(df), int(df.click.sum()), len(ic),
//                 sorted(df.position.unique()),
//                 df.propensity_score.min(), df.propensity_score.max(),
//                 [df[f"user_feature_{k}"].nunique() for k in range(4)],
//                 1 + sum(ic[f"item_feature_{k}"].nunique() for k in (1, 2, 3)),
//                 ic.item_feature_1.nunique(), df.timestamp.iloc[0])
//
//   random all   10000 38 80 [1, 2, 3] 0.0125    0.0125    [3, 5, 8, 8] 41 12 2019-11-24 00:00:34.762830+00:00
//   random men   10000 46 34 [1, 2, 3] 1/34      1/34      [3, 5, 9, 8] 28  7 2019-11-24 00:03:13.442536+00:00
//   random women 10000 46 46 [1, 2, 3] 1/46      1/46      [3, 5, 8, 7] 33 10 2019-11-24 00:03:24.688993+00:00
//   bts    all   10000 42 80 [1, 2, 3] 4.5e-05   0.95424   [3, 5, 9, 9] 41 12 2019-11-24 00:00:17.004101+00:00
//   bts    men   10000 69 34 [1, 2, 3] 0.000165  0.72529   [3, 5, 9, 9] 28  7 2019-11-24 00:01:03.979311+00:00
//   bts    women 10000 46 46 [1, 2, 3] 1e-06     0.9628    [3, 5, 8, 7] 33 10 2019-11-24 00:01:29.788335+00:00

struct ObdRef {
    policy: ObdPolicy,
    campaign: ObdCampaign,
    clicks: usize,
    items: usize,
    propensity: (f64, f64),
    user_values: [usize; 4],
    feature_dim: usize,
    categories: usize,
    first: &'static str,
}

const OBD_REF: [ObdRef; 6] = [
    ObdRef {
        policy: ObdPolicy::Random,
        campaign: ObdCampaign::All,
        clicks: 38,
        items: 80,
        propensity: (0.0125, 0.0125),
        user_values: [3, 5, 8, 8],
        feature_dim: 41,
        categories: 12,
        first: "2019-11-24 00:00:34.762830+00:00",
    },
    ObdRef {
        policy: ObdPolicy::Random,
        campaign: ObdCampaign::Men,
        clicks: 46,
        items: 34,
        propensity: (1.0 / 34.0, 1.0 / 34.0),
        user_values: [3, 5, 9, 8],
        feature_dim: 28,
        categories: 7,
        first: "2019-11-24 00:03:13.442536+00:00",
    },
    ObdRef {
        policy: ObdPolicy::Random,
        campaign: ObdCampaign::Women,
        clicks: 46,
        items: 46,
        propensity: (1.0 / 46.0, 1.0 / 46.0),
        user_values: [3, 5, 8, 7],
        feature_dim: 33,
        categories: 10,
        first: "2019-11-24 00:03:24.688993+00:00",
    },
    ObdRef {
        policy: ObdPolicy::Bts,
        campaign: ObdCampaign::All,
        clicks: 42,
        items: 80,
        propensity: (4.5e-05, 0.95424),
        user_values: [3, 5, 9, 9],
        feature_dim: 41,
        categories: 12,
        first: "2019-11-24 00:00:17.004101+00:00",
    },
    ObdRef {
        policy: ObdPolicy::Bts,
        campaign: ObdCampaign::Men,
        clicks: 69,
        items: 34,
        propensity: (0.000165, 0.72529),
        user_values: [3, 5, 9, 9],
        feature_dim: 28,
        categories: 7,
        first: "2019-11-24 00:01:03.979311+00:00",
    },
    ObdRef {
        policy: ObdPolicy::Bts,
        campaign: ObdCampaign::Women,
        clicks: 46,
        items: 46,
        propensity: (1e-06, 0.9628),
        user_values: [3, 5, 8, 7],
        feature_dim: 33,
        categories: 10,
        first: "2019-11-24 00:01:29.788335+00:00",
    },
];

fn obd(policy: ObdPolicy, campaign: ObdCampaign) -> ObdLog {
    load_obd(
        &require(Dataset::Obd),
        policy,
        campaign,
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{policy}/{campaign}: {e}"))
}

#[test]
fn every_open_bandit_log_loads_with_the_reference_shape() {
    for reference in &OBD_REF {
        let (p, c) = (reference.policy, reference.campaign);
        let log = obd(p, c);
        let what = format!("{p}/{c}");
        assert_eq!((log.policy, log.campaign), (p, c));
        assert_eq!(log.rounds.len(), 10_000, "{what}");
        assert_eq!(log.catalog.len(), reference.items, "{what}");
        assert_eq!(log.positions(), 3, "{what}");
        assert!(log.rounds.iter().all(|r| r.position < 3), "{what}");
        assert_eq!(log.affinities.rows(), log.rounds.len(), "{what}");
        assert_eq!(log.affinities.dim(), reference.items, "{what}");
        assert_eq!(
            log.catalog.features().dim(),
            reference.feature_dim,
            "{what}"
        );
        assert_eq!(log.catalog.category_count(), reference.categories, "{what}");
        let values = log.user_feature_values.each_ref().map(Vec::len);
        assert_eq!(values, reference.user_values, "{what}");

        let clicks = log.rounds.iter().filter(|r| r.click).count();
        assert_eq!(clicks, reference.clicks, "{what}");

        let (min, max) = log.rounds.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r.propensity), hi.max(r.propensity))
        });
        assert!(
            (min - reference.propensity.0).abs() < 1e-15,
            "{what}: {min}"
        );
        assert!(
            (max - reference.propensity.1).abs() < 1e-15,
            "{what}: {max}"
        );
        assert!(
            log.rounds
                .iter()
                .all(|r| r.propensity > 0.0 && r.propensity <= 1.0),
            "{what}"
        );
        assert_eq!(
            log.rounds[0].timestamp_ms,
            parse_datetime_ms(reference.first).unwrap(),
            "{what}"
        );

        assert_eq!(
            (log.report.records, log.report.kept),
            (10_000, 10_000),
            "{what}"
        );
        assert!(log.report.skipped.is_empty(), "{what}: {}", log.report);
        let items = reference.items as u64;
        assert_eq!(
            (log.item_report.records, log.item_report.kept),
            (items, items)
        );
    }
}

#[test]
fn open_bandit_rounds_become_valid_interactions() {
    for (p, c) in [
        (ObdPolicy::Random, ObdCampaign::All),
        (ObdPolicy::Bts, ObdCampaign::Women),
    ] {
        let log = obd(p, c);
        let mut jsonl = Vec::new();
        metarec_data::log::write_header(&mut jsonl, &log.catalog).unwrap();
        let sample: Vec<usize> = (0..log.rounds.len())
            .step_by(97)
            .chain([log.rounds.len() - 1])
            // Every clicked round too.
            .chain((0..log.rounds.len()).filter(|&i| log.rounds[i].click))
            .collect();
        for &i in &sample {
            let r = &log.rounds[i];
            let it = log
                .interaction(i)
                .unwrap_or_else(|| panic!("{p}/{c}: round {i} gives no interaction"));
            let d = &it.decision;
            assert_eq!(d.slate.items(), &[r.item], "round {i}");
            assert_eq!(d.propensities, vec![r.propensity], "round {i}");
            assert_eq!(d.positions, Some(vec![u32::from(r.position)]), "round {i}");
            assert_eq!(d.policy_id, format!("obd-{p}"));
            assert_eq!(it.feedback.clicks, vec![r.click], "round {i}");
            assert_eq!(it.feedback.purchase_count(), 0);
            assert_eq!(it.context.timestamp_ms, Some(r.timestamp_ms));
            assert_eq!(it.context.features, log.affinities.row(i));
            assert_eq!(it.context.tokens.len(), 4);
            assert!(it.context.tokens[2].starts_with("user_feature_2="));
            assert!(d.validate().is_ok() && it.feedback.validate().is_ok());
            metarec_data::log::write_record(&mut jsonl, &it, &log.catalog).unwrap();
        }
        assert!(log.interaction(log.rounds.len()).is_none());
        // The records are valid log lines, the items keyed by the data set's item ids.
        let text = String::from_utf8(jsonl.clone()).unwrap();
        let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        let key = log.catalog.key(log.rounds[sample[0]].item).unwrap();
        assert_eq!(second["decision"]["slate"][0], serde_json::json!(key));
        let back: Vec<_> = LogReader::new(
            &jsonl[..],
            std::path::Path::new("obd.jsonl"),
            ItemKeys::Catalog(&log.catalog),
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
        assert_eq!(back.len(), sample.len());
        assert_eq!(back[0], log.interaction(sample[0]).unwrap());
    }
}

// ------------------------------------------------------------------------------------------------
// MovieLens
// ------------------------------------------------------------------------------------------------

// Reference numbers for MovieLens-100k (RecBole atomic files), computed with pandas:
//
//   import csv
//   kw = dict(sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
//   it, us, r = (pd.read_csv(f"ml-100k/ml-100k.{e}", **kw) for e in ("item", "user", "inter"))
//   len(it), len(us), len(r)                                          # 1682, 943, 100000
//   len({g for s in it["class:token_seq"] for g in s.split()})        # 19 genres
//   rt = r["rating:float"].astype(float)
//   rt.min(), rt.max(), rt.mean()                                     # 1.0, 5.0, 3.52986
//   rt.value_counts().sort_index()     # 1: 6110, 2: 11370, 3: 27145, 4: 34174, 5: 21201
//   ts = r["timestamp:float"].astype(float); ts.min(), ts.max()      # 874724710, 893286638
//   y = it["release_year:token"]; y[~y.str.fullmatch(r"\d+")]        # 267 unkonwn, 1412 V
//   us["occupation:token"].nunique(), (us["gender:token"] == "F").sum()        # 21, 273

fn movielens() -> MovieLens {
    load_movielens(&require(Dataset::MovieLens100k), &LoadOptions::default()).unwrap()
}

#[test]
fn movielens_loads_with_the_reference_counts() {
    let ml = movielens();
    assert_eq!(ml.users.len(), 943);
    assert_eq!(ml.catalog.len(), 1_682);
    assert_eq!(ml.ratings.len(), 100_000);
    assert_eq!(ml.catalog.features().dim(), 19);
    assert_eq!(ml.years.len(), 1_682);
    assert_eq!(ml.genres.len(), 1_682);

    let mut counts = [0usize; 6];
    for r in &ml.ratings {
        assert!((1.0..=5.0).contains(&r.rating), "{r:?}");
        assert_eq!(r.rating.fract(), 0.0, "{r:?}");
        counts[r.rating as usize] += 1;
    }
    assert_eq!(counts, [0, 6_110, 11_370, 27_145, 34_174, 21_201]);
    let mean = ml.ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / 100_000.0;
    assert!((mean - 3.52986).abs() < 1e-9, "{mean}");

    let (lo, hi) = ml.ratings.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.timestamp_ms), hi.max(r.timestamp_ms))
    });
    assert_eq!((lo, hi), (874_724_710_000, 893_286_638_000));

    let r = &ml.report;
    assert_eq!(
        (r.records, r.kept),
        (1_682 + 943 + 100_000, 1_682 + 943 + 100_000)
    );
    assert!(r.skipped.is_empty(), "{r}");
    assert_eq!(
        r.missing.get("release_year:token not a year"),
        Some(&2),
        "{r}"
    );
}

#[test]
fn movielens_items_and_users_carry_their_attributes() {
    let ml = movielens();
    let toy = ml.catalog.id_of("1").unwrap();
    assert_eq!(ml.catalog.title(toy), Some("Toy Story"));
    assert_eq!(ml.years[toy.index()], Some(1995));
    assert_eq!(
        ml.genres[toy.index()],
        vec!["Animation", "Children's", "Comedy"]
    );
    assert_eq!(
        ml.catalog.features().row(toy.index()).iter().sum::<f32>(),
        3.0
    );
    for broken in ["267", "1412"] {
        let id = ml.catalog.id_of(broken).unwrap();
        assert_eq!(ml.years[id.index()], None, "item {broken}");
    }
    let mut occupations: Vec<&str> = ml.users.iter().map(|u| u.occupation.as_str()).collect();
    occupations.sort_unstable();
    occupations.dedup();
    assert_eq!(occupations.len(), 21);
    assert_eq!(ml.users.iter().filter(|u| u.gender == "F").count(), 273);
    assert_eq!(ml.users[0].key.0, "1");
    assert_eq!(ml.users[0].age, 24);
    assert!(
        ml.ratings
            .iter()
            .all(|r| (r.user as usize) < ml.users.len())
    );
    assert!(ml.ratings.iter().all(|r| ml.catalog.contains(r.item)));
}
