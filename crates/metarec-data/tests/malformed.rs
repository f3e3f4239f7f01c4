//! Every loader on broken input: Fail mode names file, line and field; Skip mode loads the rest
//! and counts each skipped record by reason. Small hand-written inputs built from the real files'
//! headers (see `common`).

mod common;

use common::*;
use metarec_data::movielens::{MovieLens, load_movielens};
use metarec_data::obd::{ObdCampaign, ObdLog, ObdPolicy, load_obd, parse_item_context};
use metarec_data::online_retail::{OnlineRetail, parse_online_retail};
use metarec_data::{DataError, LoadOptions, LoadReport};
use std::path::{Path, PathBuf};

const FAIL: LoadOptions = LoadOptions {
    on_malformed: metarec_data::OnMalformed::Fail,
};

fn skip() -> LoadOptions {
    LoadOptions::skipping()
}

#[track_caller]
fn assert_report(report: &LoadReport, records: u64, kept: u64, skipped: &[(&str, u64)]) {
    let expected: std::collections::BTreeMap<String, u64> =
        skipped.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(
        (report.records, report.kept, &report.skipped),
        (records, kept, &expected),
        "{report}"
    );
    assert_eq!(report.kept + report.skipped_total(), report.records);
}

// ------------------------------------------------------------------------------------------------
// Online Retail
// ------------------------------------------------------------------------------------------------

mod online_retail {
    use super::*;
    use metarec_data::online_retail::{SKIP_CANCELLATION, SKIP_GUEST};

    fn path() -> PathBuf {
        PathBuf::from("in-memory/online_retail.csv")
    }

    fn parse(text: impl AsRef<[u8]>, options: &LoadOptions) -> Result<OnlineRetail, DataError> {
        parse_online_retail(text.as_ref(), &path(), options)
    }

    /// The small file with data row `k` (0-based; line `k + 2`) replaced.
    fn with_row(k: usize, row: &str) -> String {
        let mut rows = OR_ROWS.to_vec();
        rows[k] = row;
        lines(OR_HEADER, &rows)
    }

    #[test]
    fn small_valid_file_loads() {
        let or = parse(online_retail_small(), &FAIL).unwrap();
        assert_report(&or.report, 6, 4, &[(SKIP_CANCELLATION, 1), (SKIP_GUEST, 1)]);
        assert_eq!(or.customers.len(), 2);
        assert_eq!(or.customers[0].key.0, "17850");
        assert_eq!(or.customers[1].key.0, "15311");
        assert_eq!(or.catalog.len(), 4);
        let sign = or.catalog.id_of("82567").unwrap();
        assert_eq!(or.catalog.title(sign), Some("AIRLINE LOUNGE,METAL SIGN"));
        assert_eq!(or.purchases.len(), 4);
        assert_eq!(or.purchases[3].quantity, 2);
        assert_eq!(or.purchases[3].unit_price, 2.1);
    }

    #[test]
    fn truncated_last_line_is_a_record_error_on_its_line() {
        // The file is cut in the middle of line 8 (no final newline).
        let text = online_retail_small() + "536367,84879,ASSORTED COLOUR BIRD ORN";
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 8, "<record>");
        assert!(
            err.to_string().contains("expected 8 fields, found 3"),
            "{err}"
        );

        let or = parse(&text, &skip()).unwrap();
        assert_report(
            &or.report,
            7,
            4,
            &[
                (SKIP_CANCELLATION, 1),
                (SKIP_GUEST, 1),
                ("malformed <record>", 1),
            ],
        );
    }

    #[test]
    fn last_line_cut_inside_a_quoted_field_is_a_record_error() {
        let text = online_retail_small() + "536367,84879,\"ASSORTED COLOUR, BIRD";
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 8, "<record>");
        assert_eq!(parse(&text, &skip()).unwrap().report.kept, 4);
    }

    #[test]
    fn last_line_cut_inside_the_last_field_is_read_as_it_stands() {
        // "United Kin" is still a valid country: nothing to detect, but nothing lost either.
        let text = online_retail_small()
            + "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2010-12-01 08:34:00,1.69,13047.0,United Kin";
        let or = parse(&text, &FAIL).unwrap();
        assert_eq!(or.report.kept, 5);
        assert_eq!(or.customers[2].country, "United Kin");
    }

    #[test]
    fn wrong_column_count_is_reported_with_its_line() {
        let long = format!("{},extra", OR_ROWS[1]);
        let text = with_row(1, &long);
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 3, "<record>");
        assert!(
            err.to_string().contains("expected 8 fields, found 9"),
            "{err}"
        );

        // A short row that the cleaning rules would drop anyway (a cancellation) is still
        // reported as malformed: fields are checked before the rules.
        let text = with_row(
            3,
            "C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,2010-12-01 09:49:00,4.65,15311.0",
        );
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 5, "<record>");

        let or = parse(&text, &skip()).unwrap();
        assert_report(
            &or.report,
            6,
            4,
            &[(SKIP_GUEST, 1), ("malformed <record>", 1)],
        );
    }

    #[test]
    fn non_numeric_fields_name_their_column() {
        let cases = [
            (
                2,
                "536366,22633,HAND WARMER UNION JACK,six,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
                "Quantity",
            ),
            (
                0,
                "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55p,17850.0,United Kingdom",
                "UnitPrice",
            ),
            (
                0,
                "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,NaN,17850.0,United Kingdom",
                "UnitPrice",
            ),
            (
                0,
                "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,inf,17850.0,United Kingdom",
                "UnitPrice",
            ),
            (
                1,
                "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom",
                "InvoiceDate",
            ),
            (
                1,
                "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.5,United Kingdom",
                "CustomerID",
            ),
            (
                1,
                "53636X,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
                "InvoiceNo",
            ),
            (
                1,
                "C,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
                "InvoiceNo",
            ),
            (
                1,
                "536365,,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
                "StockCode",
            ),
            (
                1,
                "536365,71053,WHITE METAL LANTERN,99999999999,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
                "Quantity",
            ),
        ];
        for (k, row, field) in cases {
            let text = with_row(k, row);
            let err = parse(&text, &FAIL).unwrap_err();
            assert_malformed(&err, &path(), k as u64 + 2, field);

            let or = parse(&text, &skip()).unwrap();
            assert_eq!(or.report.records, 6, "{row}");
            assert_eq!(or.report.kept, 3, "{row}");
            assert_eq!(
                or.report.skipped.get(&format!("malformed {field}")),
                Some(&1),
                "{}",
                or.report
            );
        }
    }

    #[test]
    fn invalid_utf8_in_a_field_names_the_field() {
        let mut text = lines(OR_HEADER, &OR_ROWS[..2]).into_bytes();
        text.extend_from_slice(b"536366,22633,HAND WARMER \xFF\xFE JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n");
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 4, "Description");
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");

        let or = parse(&text, &skip()).unwrap();
        assert_report(&or.report, 3, 2, &[("malformed Description", 1)]);
    }

    #[test]
    fn invalid_utf8_in_the_header_is_a_line_1_error() {
        let mut bytes = online_retail_small().into_bytes();
        let at = bytes.windows(11).position(|w| w == b"Description").unwrap();
        bytes[at + 5] = 0xFF;
        for options in [FAIL, skip()] {
            let err = parse(&bytes, &options).unwrap_err();
            assert_malformed(&err, &path(), 1, "header column 3");
        }
    }

    #[test]
    fn empty_file_is_an_empty_error() {
        for text in ["", "\n", "  \r\n\n"] {
            for options in [FAIL, skip()] {
                let err = parse(text, &options).unwrap_err();
                assert!(
                    matches!(&err, DataError::Empty { path: p } if p == &path()),
                    "{err:?}"
                );
                assert!(err.to_string().contains("online_retail.csv"), "{err}");
            }
        }
    }

    #[test]
    fn header_only_file_loads_nothing() {
        let or = parse(format!("{OR_HEADER}\n"), &FAIL).unwrap();
        assert_report(&or.report, 0, 0, &[]);
        assert!(or.catalog.is_empty() && or.customers.is_empty());
    }

    #[test]
    fn missing_header_column_is_named() {
        let header = OR_HEADER.replace(",UnitPrice", "");
        let rows: Vec<String> = OR_ROWS
            .iter()
            .map(|r| r.replace(",2.55,", ",").replace(",3.39,", ","))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let text = lines(&header, &rows);
        for options in [FAIL, skip()] {
            let err = parse(&text, &options).unwrap_err();
            match &err {
                DataError::MissingColumn {
                    path: p,
                    column,
                    found,
                } => {
                    assert_eq!(p, &path());
                    assert_eq!(column, "UnitPrice");
                    assert!(found.contains("InvoiceDate, CustomerID"), "{found}");
                }
                other => panic!("expected MissingColumn, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains("online_retail.csv: line 1:"), "{msg}");
            assert!(msg.contains("`UnitPrice`"), "{msg}");
        }
    }

    #[test]
    fn byte_order_mark_and_reordered_columns_are_accepted() {
        // Columns are found by name, so their order does not matter.
        let header = "\u{FEFF}Country,CustomerID,UnitPrice,InvoiceDate,Quantity,Description,StockCode,InvoiceNo";
        let row = "United Kingdom,17850.0,2.55,2010-12-01 08:26:00,6,WHITE HANGING HEART T-LIGHT HOLDER,85123A,536365";
        let or = parse(lines(header, &[row]), &FAIL).unwrap();
        assert_eq!(or.report.kept, 1);
        assert_eq!(or.purchases[0].quantity, 6);
        assert_eq!(or.catalog.key(or.purchases[0].item), Some("85123A"));
    }

    #[test]
    fn skip_mode_counts_each_reason_separately() {
        let mut text = online_retail_small();
        text.push_str("536367,84879,X,1,2010-12-01 08:34:00,1.69,13047.0\n"); // line 8: short
        text.push_str("536367,84879,X,one,2010-12-01 08:34:00,1.69,13047.0,UK\n"); // 9
        text.push_str("536367,84879,X,two,2010-12-01 08:34:00,1.69,13047.0,UK\n"); // 10
        text.push_str("536367,84879,X,1,2010-12-01 08:34:00,free,13047.0,UK\n"); // 11
        text.push_str("536367,84879,X,1,2010-12-01 08:34:00,1.69,13047.0,UK\n"); // 12: fine
        let err = parse(&text, &FAIL).unwrap_err();
        assert_malformed(&err, &path(), 8, "<record>");
        let or = parse(&text, &skip()).unwrap();
        assert_report(
            &or.report,
            11,
            5,
            &[
                (SKIP_CANCELLATION, 1),
                (SKIP_GUEST, 1),
                ("malformed <record>", 1),
                ("malformed Quantity", 2),
                ("malformed UnitPrice", 1),
            ],
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Open Bandit
// ------------------------------------------------------------------------------------------------

mod obd {
    use super::*;

    struct Obd {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        items: PathBuf,
        rounds: PathBuf,
    }

    fn setup(items: impl AsRef<[u8]>, rounds: impl AsRef<[u8]>) -> Obd {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("obd");
        let (items, rounds) = write_obd(&root, items.as_ref(), rounds.as_ref());
        Obd {
            _tmp: tmp,
            root,
            items,
            rounds,
        }
    }

    impl Obd {
        fn load(&self, options: &LoadOptions) -> Result<ObdLog, DataError> {
            load_obd(&self.root, ObdPolicy::Random, ObdCampaign::All, options)
        }
    }

    fn items_ok() -> String {
        lines(OBD_ITEMS_HEADER, &OBD_ITEM_ROWS)
    }

    fn rounds_ok() -> String {
        lines(OBD_ROUNDS_HEADER, &OBD_ROUND_ROWS)
    }

    fn items_with(k: usize, row: &str) -> String {
        let mut rows = OBD_ITEM_ROWS.to_vec();
        rows[k] = row;
        lines(OBD_ITEMS_HEADER, &rows)
    }

    fn rounds_with(k: usize, row: &str) -> String {
        let mut rows = OBD_ROUND_ROWS.to_vec();
        rows[k] = row;
        lines(OBD_ROUNDS_HEADER, &rows)
    }

    /// Round row `k` with field `i` (0-based, counting the unnamed index column) replaced.
    fn round_field(k: usize, i: usize, value: &str) -> String {
        let mut fields: Vec<&str> = OBD_ROUND_ROWS[k].split(',').collect();
        fields[i] = value;
        fields.join(",")
    }

    #[test]
    fn small_valid_log_loads() {
        let o = setup(items_ok(), rounds_ok());
        let log = o.load(&FAIL).unwrap();
        assert_eq!(log.catalog.len(), 3);
        assert_eq!(log.rounds.len(), 3);
        assert_eq!(log.positions(), 3);
        assert_eq!(log.affinities.rows(), 3);
        assert_eq!(log.affinities.dim(), 3);
        assert_eq!(log.affinities.row(1), &[0.0, 1.0, 0.0]);
        // item_feature_0 plus one-hot columns: 2 + 2 + 2 distinct values.
        assert_eq!(log.catalog.features().dim(), 7);
        assert_eq!(log.rounds.iter().filter(|r| r.click).count(), 1);
        assert_eq!(log.rounds[2].position, 0);
        assert_eq!(log.rounds[0].item, log.catalog.id_of("1").unwrap());
        assert_report(&log.report, 3, 3, &[]);
        assert_report(&log.item_report, 3, 3, &[]);
        assert_eq!(log.report.source, o.rounds.display().to_string());
        assert_eq!(log.item_report.source, o.items.display().to_string());
    }

    #[test]
    fn truncated_last_line_is_a_record_error_on_its_line() {
        let items = items_ok() + "3,3,-0.5,aed790911d0344f149";
        let o = setup(&items, rounds_ok());
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.items, 5, "<record>");
        let log = o.load(&skip()).unwrap();
        assert_eq!(log.catalog.len(), 3);
        assert_report(&log.item_report, 4, 3, &[("malformed <record>", 1)]);
        assert_report(&log.report, 3, 3, &[]);

        let rounds = rounds_ok() + "3,2019-11-24 00:01:00.000000+00:00,1,2,0,0.01";
        let o = setup(items_ok(), &rounds);
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.rounds, 5, "<record>");
        let log = o.load(&skip()).unwrap();
        assert_eq!(log.rounds.len(), 3);
        assert_eq!(log.affinities.rows(), 3);
        assert_report(&log.report, 4, 3, &[("malformed <record>", 1)]);
        assert_report(&log.item_report, 3, 3, &[]);
    }

    #[test]
    fn wrong_column_count_is_reported_with_its_line() {
        let long = format!("{},0.0", OBD_ROUND_ROWS[1]);
        let o = setup(items_ok(), rounds_with(1, &long));
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.rounds, 3, "<record>");
        assert!(
            err.to_string().contains("expected 13 fields, found 14"),
            "{err}"
        );
        let log = o.load(&skip()).unwrap();
        assert_eq!(log.rounds.len(), 2);
        assert_eq!(log.affinities.rows(), 2);
        // Affinity rows stay aligned with the rounds kept.
        assert_eq!(log.affinities.row(1), &[2.0, 0.0, 0.0]);

        let short = OBD_ITEM_ROWS[0].rsplit_once(',').unwrap().0;
        let o = setup(items_with(0, short), rounds_ok());
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.items, 2, "<record>");
    }

    #[test]
    fn non_numeric_fields_name_their_column() {
        let cases = [
            (1, 5, "abc", "propensity_score"),
            (1, 5, "0", "propensity_score"),
            (1, 5, "1.5", "propensity_score"),
            (1, 5, "NaN", "propensity_score"),
            (1, 3, "second", "position"),
            (1, 3, "0", "position"),
            (1, 3, "256", "position"),
            (1, 4, "2", "click"),
            (1, 2, "7", "item_id"),
            (1, 1, "yesterday", "timestamp"),
            (1, 8, "", "user_feature_2"),
            (1, 11, "high", "user-item_affinity_1"),
        ];
        for (k, i, value, field) in cases {
            let o = setup(items_ok(), rounds_with(k, &round_field(k, i, value)));
            let err = o.load(&FAIL).unwrap_err();
            assert_malformed(&err, &o.rounds, k as u64 + 2, field);
            let log = o.load(&skip()).unwrap();
            assert_eq!(log.rounds.len(), 2, "{field}={value}");
            assert_eq!(log.affinities.rows(), 2);
            assert_report(&log.report, 3, 2, &[(&format!("malformed {field}"), 1)]);
        }

        let o = setup(items_with(2, "2,2,heavy,a,b,c"), rounds_ok());
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.items, 4, "item_feature_0");
        // Skipping item 2 leaves the round that shows it pointing at an unknown item.
        let log = o.load(&skip()).unwrap();
        assert_eq!(log.catalog.len(), 2);
        assert_eq!(log.rounds.len(), 2);
        assert_report(&log.item_report, 3, 2, &[("malformed item_feature_0", 1)]);
        assert_report(&log.report, 3, 2, &[("malformed item_id", 1)]);

        let o = setup(items_with(1, "1,one,-0.5,a,b,c"), rounds_ok());
        assert_malformed(&o.load(&FAIL).unwrap_err(), &o.items, 3, "item_id");
    }

    #[test]
    fn duplicate_item_is_reported_on_its_second_line() {
        let o = setup(
            items_with(2, &OBD_ITEM_ROWS[1].replacen("1,", "2,", 1)),
            rounds_ok(),
        );
        // Row `2,1,...`: the unnamed index column says 2 but item_id 1 repeats line 3.
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.items, 4, "item_id");
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn invalid_utf8_in_a_field_names_the_field() {
        let mut rounds = lines(OBD_ROUNDS_HEADER, &OBD_ROUND_ROWS[..1]).into_bytes();
        rounds.extend_from_slice(
            OBD_ROUND_ROWS[1]
                .replace("2723d2eb8bba04e0362098011fa3997b", "27\u{1}3d2")
                .as_bytes(),
        );
        let at = rounds.iter().position(|&b| b == 1).unwrap();
        rounds[at] = 0xC3; // a lead byte without its continuation
        rounds.push(b'\n');
        let o = setup(items_ok(), &rounds);
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.rounds, 3, "user_feature_2");
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");
        let log = o.load(&skip()).unwrap();
        assert_report(&log.report, 2, 1, &[("malformed user_feature_2", 1)]);

        let mut items = items_ok().into_bytes();
        let at = items.iter().rposition(|&b| b == b'a').unwrap();
        items[at] = 0xFF;
        let o = setup(&items, rounds_ok());
        let err = o.load(&FAIL).unwrap_err();
        assert_malformed(&err, &o.items, 4, "item_feature_3");
    }

    #[test]
    fn empty_files_are_empty_errors() {
        for (items, rounds, empty) in [("", rounds_ok(), 0), (&items_ok()[..], String::new(), 1)] {
            let o = setup(items, &rounds);
            for options in [FAIL, skip()] {
                let err = o.load(&options).unwrap_err();
                let expected = if empty == 0 { &o.items } else { &o.rounds };
                assert!(
                    matches!(&err, DataError::Empty { path } if path == expected),
                    "{err:?}"
                );
            }
        }
    }

    #[test]
    fn missing_header_columns_are_named() {
        let header = OBD_ITEMS_HEADER.replace(",item_feature_2", "");
        let rows: Vec<String> = OBD_ITEM_ROWS
            .iter()
            .map(|r| {
                let mut f: Vec<&str> = r.split(',').collect();
                f.remove(4);
                f.join(",")
            })
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let o = setup(lines(&header, &rows), rounds_ok());
        let err = o.load(&skip()).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { path, column, .. }
                if path == &o.items && column == "item_feature_2"),
            "{err:?}"
        );

        let header = OBD_ROUNDS_HEADER.replace(",propensity_score", "");
        let o = setup(items_ok(), lines(&header, &[]));
        let err = o.load(&FAIL).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { path, column, .. }
                if path == &o.rounds && column == "propensity_score"),
            "{err:?}"
        );

        // Every catalog item needs its affinity column.
        let header = OBD_ROUNDS_HEADER.replace(",user-item_affinity_2", "");
        let o = setup(items_ok(), lines(&header, &[]));
        let err = o.load(&skip()).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingColumn { path, column, .. }
                if path == &o.rounds && column == "user-item_affinity_2"),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn missing_files_are_io_errors_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load_obd(tmp.path(), ObdPolicy::Bts, ObdCampaign::Men, &FAIL).unwrap_err();
        match &err {
            DataError::Io { path, .. } => {
                assert_eq!(path, &tmp.path().join("bts/men/item_context.csv"));
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn item_context_parses_from_bytes() {
        let path = Path::new("mem/item_context.csv");
        let (catalog, report) = parse_item_context(items_ok().as_bytes(), path, &FAIL).unwrap();
        assert_eq!(catalog.len(), 3);
        assert_eq!(catalog.category_count(), 2);
        assert_report(&report, 3, 3, &[]);
        let item = catalog.item(catalog.id_of("2").unwrap()).unwrap();
        assert_eq!(item.features[0], 0.972_751_86);
        assert_eq!(item.features.iter().filter(|&&x| x == 1.0).count(), 3);
    }
}

// ------------------------------------------------------------------------------------------------
// MovieLens
// ------------------------------------------------------------------------------------------------

mod movielens {
    use super::*;

    struct Ml {
        tmp: tempfile::TempDir,
        item: PathBuf,
        user: PathBuf,
        inter: PathBuf,
    }

    fn setup(item: impl AsRef<[u8]>, user: impl AsRef<[u8]>, inter: impl AsRef<[u8]>) -> Ml {
        let tmp = tempfile::tempdir().unwrap();
        let (item, user, inter) =
            write_movielens(tmp.path(), item.as_ref(), user.as_ref(), inter.as_ref());
        Ml {
            tmp,
            item,
            user,
            inter,
        }
    }

    impl Ml {
        fn load(&self, options: &LoadOptions) -> Result<MovieLens, DataError> {
            load_movielens(self.tmp.path(), options)
        }
    }

    fn items() -> String {
        lines(ML_ITEM_HEADER, &ML_ITEM_ROWS)
    }
    fn users() -> String {
        lines(ML_USER_HEADER, &ML_USER_ROWS)
    }
    fn inters() -> String {
        lines(ML_INTER_HEADER, &ML_INTER_ROWS)
    }
    fn with(header: &str, rows: &[&str], k: usize, row: &str) -> String {
        let mut rows = rows.to_vec();
        rows[k] = row;
        lines(header, &rows)
    }

    #[test]
    fn small_valid_files_load() {
        let m = setup(items(), users(), inters());
        let ml = m.load(&FAIL).unwrap();
        assert_eq!(ml.catalog.len(), 3);
        assert_eq!(ml.users.len(), 3);
        assert_eq!(ml.ratings.len(), 4);
        assert_report(&ml.report, 10, 10, &[]);
        assert_eq!(ml.genres[0], vec!["Animation", "Children's", "Comedy"]);
        // Genres: Action Adventure Animation Children's Comedy Thriller.
        assert_eq!(ml.catalog.features().dim(), 6);
        assert_eq!(ml.years, vec![Some(1995); 3]);
        assert_eq!(ml.ratings[2].rating, 4.0);
        assert_eq!(ml.ratings[2].timestamp_ms, 878_542_960_000);
        assert_eq!(ml.users[1].gender, "F");
        assert_eq!(ml.report.source, m.tmp.path().display().to_string());
    }

    #[test]
    fn quotes_in_titles_are_literal() {
        let item = with(
            ML_ITEM_HEADER,
            &ML_ITEM_ROWS,
            2,
            "3\t\"Four\" Rooms, \"the\tmovie\"\t1995\tThriller",
        );
        let m = setup(item, users(), inters());
        let err = m.load(&FAIL).unwrap_err();
        // A tab inside quotes still separates fields: TSV has no quoting.
        assert_malformed(&err, &m.item, 4, "<record>");

        let item = with(
            ML_ITEM_HEADER,
            &ML_ITEM_ROWS,
            2,
            "3\t\"Four Rooms\t1995\tThriller",
        );
        let ml = setup(item, users(), inters()).load(&FAIL).unwrap();
        assert_eq!(
            ml.catalog.title(ml.catalog.id_of("3").unwrap()),
            Some("\"Four Rooms")
        );
    }

    #[test]
    fn truncated_last_line_is_a_record_error_on_its_line() {
        let m = setup(items(), users(), inters() + "3\t2\t4");
        let err = m.load(&FAIL).unwrap_err();
        assert_malformed(&err, &m.inter, 6, "<record>");
        let ml = m.load(&skip()).unwrap();
        assert_eq!(ml.ratings.len(), 4);
        assert_report(&ml.report, 11, 10, &[("malformed <record>", 1)]);

        let m = setup(items() + "4\tGet Sho", users(), inters());
        assert_malformed(&m.load(&FAIL).unwrap_err(), &m.item, 5, "<record>");
        let m = setup(items(), users() + "4\t2", inters());
        assert_malformed(&m.load(&FAIL).unwrap_err(), &m.user, 5, "<record>");
    }

    #[test]
    fn wrong_column_count_is_reported_with_its_line() {
        let user = with(
            ML_USER_HEADER,
            &ML_USER_ROWS,
            1,
            "2\t53\tF\tother\t94043\textra",
        );
        let m = setup(items(), user, inters());
        let err = m.load(&FAIL).unwrap_err();
        assert_malformed(&err, &m.user, 3, "<record>");
        // The skipped user's ratings then refer to an unknown user.
        let ml = m.load(&skip()).unwrap();
        assert_eq!(ml.users.len(), 2);
        assert_eq!(ml.ratings.len(), 3);
        assert_report(
            &ml.report,
            10,
            8,
            &[("malformed <record>", 1), ("malformed user_id:token", 1)],
        );
    }

    #[test]
    fn non_numeric_fields_name_their_column() {
        let inter = |row: &str| with(ML_INTER_HEADER, &ML_INTER_ROWS, 1, row);
        let cases = [
            (inter("1\t2\tthree\t876893171"), "rating:float"),
            (inter("1\t2\t7\t876893171"), "rating:float"),
            (inter("1\t2\t-1\t876893171"), "rating:float"),
            (inter("1\t2\t3\tyesterday"), "timestamp:float"),
            (inter("1\t2\t3\t-5"), "timestamp:float"),
            (inter("9\t2\t3\t876893171"), "user_id:token"),
            (inter("1\t99\t3\t876893171"), "item_id:token"),
        ];
        for (text, field) in cases {
            let m = setup(items(), users(), &text);
            let err = m.load(&FAIL).unwrap_err();
            assert_malformed(&err, &m.inter, 3, field);
            let ml = m.load(&skip()).unwrap();
            assert_eq!(ml.ratings.len(), 3);
            assert_report(&ml.report, 10, 9, &[(&format!("malformed {field}"), 1)]);
        }

        let m = setup(
            items(),
            with(
                ML_USER_HEADER,
                &ML_USER_ROWS,
                2,
                "3\tthirty\tM\twriter\t32067",
            ),
            inters(),
        );
        assert_malformed(&m.load(&FAIL).unwrap_err(), &m.user, 4, "age:token");

        // A year is optional: one that is not a number is kept as unknown and counted.
        let m = setup(
            with(
                ML_ITEM_HEADER,
                &ML_ITEM_ROWS,
                0,
                "1\tToy Story\t95AD\tAnimation",
            ),
            users(),
            inters(),
        );
        for options in [FAIL, skip()] {
            let ml = m.load(&options).unwrap();
            assert_eq!(ml.years, vec![None, Some(1995), Some(1995)]);
            assert_report(&ml.report, 10, 10, &[]);
            assert_eq!(
                ml.report.missing.get("release_year:token not a year"),
                Some(&1),
                "{}",
                ml.report
            );
        }

        // A title that is not UTF-8 skips the movie, and its two ratings with it.
        let mut item = items().into_bytes();
        let at = item.windows(3).position(|w| w == b"Toy").unwrap();
        item[at + 1] = 0xF8;
        let m = setup(&item, users(), inters());
        assert_malformed(
            &m.load(&FAIL).unwrap_err(),
            &m.item,
            2,
            "movie_title:token_seq",
        );
        let ml = m.load(&skip()).unwrap();
        assert_eq!(ml.catalog.len(), 2);
        assert_report(
            &ml.report,
            10,
            7,
            &[
                ("malformed movie_title:token_seq", 1),
                ("malformed item_id:token", 2),
            ],
        );
    }

    #[test]
    fn duplicate_ids_are_reported_on_their_second_line() {
        let m = setup(
            with(
                ML_ITEM_HEADER,
                &ML_ITEM_ROWS,
                2,
                "1\tToy Story again\t1995\tComedy",
            ),
            users(),
            inters(),
        );
        let err = m.load(&FAIL).unwrap_err();
        assert_malformed(&err, &m.item, 4, "item_id:token");
        let m = setup(
            items(),
            with(ML_USER_HEADER, &ML_USER_ROWS, 2, "2\t23\tM\twriter\t32067"),
            inters(),
        );
        assert_malformed(&m.load(&FAIL).unwrap_err(), &m.user, 4, "user_id:token");
    }

    #[test]
    fn invalid_utf8_in_a_field_names_the_field() {
        let mut item = items().into_bytes();
        let at = item.windows(9).position(|w| w == b"GoldenEye").unwrap();
        item[at + 4] = 0xE9; // Latin-1 é, as old MovieLens files have
        let m = setup(&item, users(), inters());
        let err = m.load(&FAIL).unwrap_err();
        assert_malformed(&err, &m.item, 3, "movie_title:token_seq");
        let ml = m.load(&skip()).unwrap();
        assert_eq!(ml.catalog.len(), 2);
        assert_report(
            &ml.report,
            10,
            8,
            &[
                ("malformed movie_title:token_seq", 1),
                ("malformed item_id:token", 1),
            ],
        );

        let mut user = users().into_bytes();
        let at = user.windows(6).position(|w| w == b"writer").unwrap();
        user[at] = 0x80;
        let m = setup(items(), &user, inters());
        assert_malformed(&m.load(&FAIL).unwrap_err(), &m.user, 4, "occupation:token");
    }

    #[test]
    fn empty_files_are_empty_errors() {
        for which in 0..3 {
            let mut files = [items(), users(), inters()];
            files[which].clear();
            let m = setup(&files[0], &files[1], &files[2]);
            let expected = [&m.item, &m.user, &m.inter][which];
            for options in [FAIL, skip()] {
                let err = m.load(&options).unwrap_err();
                assert!(
                    matches!(&err, DataError::Empty { path } if path == expected),
                    "{err:?}"
                );
            }
        }
    }

    #[test]
    fn missing_header_columns_are_named() {
        let cases = [
            (0, "class:token_seq"),
            (1, "occupation:token"),
            (2, "rating:float"),
        ];
        for (which, column) in cases {
            let mut files = [items(), users(), inters()];
            files[which] = files[which].replacen(column, "something_else", 1);
            let m = setup(&files[0], &files[1], &files[2]);
            let expected = [&m.item, &m.user, &m.inter][which];
            let err = m.load(&skip()).unwrap_err();
            match &err {
                DataError::MissingColumn {
                    path, column: c, ..
                } => {
                    assert_eq!((path, c.as_str()), (expected, column));
                }
                other => panic!("expected MissingColumn {column}, got {other:?}"),
            }
            assert!(err.to_string().contains(&format!("`{column}`")), "{err}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let m = setup(items(), users(), inters());
        std::fs::remove_file(&m.user).unwrap();
        let err = m.load(&skip()).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path, .. } if path == &m.user),
            "{err:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Interaction log
// ------------------------------------------------------------------------------------------------

mod log {
    use super::*;
    use metarec_core::{Catalog, Context, Decision, Feedback, Interaction, ItemId, Slate, UserKey};
    use metarec_data::log::{ItemKeys, LogHeader, LogReader, read_log, write_log, write_record};

    /// Sixty items keyed `i0` to `i59`.
    pub(super) fn catalog() -> &'static Catalog {
        static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        CATALOG.get_or_init(|| {
            let mut c = Catalog::new(Vec::new());
            for i in 0..60 {
                c.push(metarec_core::Item {
                    key: format!("i{i}"),
                    title: None,
                    category: None,
                    price: None,
                    features: Vec::new(),
                    embedding: None,
                })
                .unwrap();
            }
            c
        })
    }

    /// The header line of a log of [`catalog`], with its newline.
    pub(super) fn header() -> String {
        serde_json::to_string(&LogHeader::of(catalog())).unwrap() + "\n"
    }

    fn record(n: u32) -> Interaction {
        Interaction::new(
            Context::for_user(UserKey(format!("u{n}"))),
            Decision {
                event_id: format!("e{n}").as_str().into(),
                slate: Slate::new(vec![ItemId(n), ItemId(n + 1)]).unwrap(),
                propensities: vec![0.5, 0.25],
                slate_propensity: None,
                positions: None,
                policy_id: "uniform".into(),
                model_version: "1".into(),
            },
            Feedback::none(2),
        )
        .unwrap()
    }

    /// The header, then three valid records on lines 2-4.
    fn log_text() -> String {
        let mut out = header().into_bytes();
        for n in 0..3 {
            write_record(&mut out, &record(n), catalog()).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn path() -> PathBuf {
        PathBuf::from("mem/interactions.jsonl")
    }

    fn read(bytes: &[u8]) -> Vec<Result<Interaction, DataError>> {
        LogReader::new(bytes, &path(), ItemKeys::Catalog(catalog()))
            .unwrap()
            .collect()
    }

    type ReadLog = Result<(Vec<Interaction>, LoadReport), DataError>;

    /// Writes `bytes` to a temporary log and reads it in both modes: (folder, path, Fail, Skip).
    fn read_file_both(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, ReadLog, ReadLog) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log.jsonl");
        std::fs::write(&p, bytes).unwrap();
        let fail = read_log(&p, catalog(), &FAIL);
        let skip = read_log(&p, catalog(), &skip());
        (tmp, p, fail, skip)
    }

    #[test]
    fn truncated_last_line_is_an_error_on_its_line() {
        let text = log_text();
        let cut = &text[..text.len() - 20];
        let results = read(cut.as_bytes());
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_ok());
        let err = results[2].as_ref().unwrap_err();
        // serde_path_to_error names the object being read when the input ends, with `?` for
        // the field it could not finish.
        assert_malformed(err, &path(), 4, "feedback.?");
        assert!(err.to_string().contains("EOF while parsing"), "{err}");

        // Cut between two fields: the input ends where the next key should start, ...
        let cut_early = &text[..text.rfind(",\"feedback\"").unwrap()];
        let err = read(cut_early.as_bytes()).remove(2).unwrap_err();
        assert!(err.to_string().contains("EOF while parsing"), "{err}");
        // ... which serde_path_to_error reports as `?` at the root.
        let cut_early = &text[..text.rfind(",\"feedback\"").unwrap()];
        let err = read(cut_early.as_bytes()).remove(2).unwrap_err();
        assert_malformed(&err, &path(), 4, "?");

        let (_tmp, p, fail, skip) = read_file_both(cut.as_bytes());
        assert_malformed(&fail.unwrap_err(), &p, 4, "feedback.?");
        let (records, report) = skip.unwrap();
        assert_eq!(records, vec![record(0), record(1)]);
        assert_report(&report, 3, 2, &[("malformed feedback.?", 1)]);
    }

    #[test]
    fn wrong_number_of_entries_is_an_error_on_its_line() {
        // The log's counterpart of a wrong column count: feedback for three entries on a slate
        // of two.
        let text = log_text().replacen(
            "\"clicks\":[false,false]",
            "\"clicks\":[false,false,true]",
            2,
        );
        let text = text.replacen(
            "\"clicks\":[false,false,true]",
            "\"clicks\":[false,false]",
            1,
        );
        let results = read(text.as_bytes());
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let err = results[1].as_ref().unwrap_err();
        // Purchases and revenue keep two entries, so the feedback itself is inconsistent.
        assert_malformed(err, &path(), 3, "feedback");
        assert!(err.to_string().contains("purchases"), "{err}");
    }

    #[test]
    fn non_numeric_field_names_its_path() {
        let text = log_text().replacen(
            "\"propensities\":[0.5,0.25]",
            "\"propensities\":[0.5,\"x\"]",
            3,
        );
        let text = text.replacen(
            "\"propensities\":[0.5,\"x\"]",
            "\"propensities\":[0.5,0.25]",
            2,
        );
        let results = read(text.as_bytes());
        let err = results[2].as_ref().unwrap_err();
        assert_malformed(err, &path(), 4, "decision.propensities[1]");

        let (_tmp, p, fail, skip) = read_file_both(text.as_bytes());
        assert_malformed(&fail.unwrap_err(), &p, 4, "decision.propensities[1]");
        let (records, report) = skip.unwrap();
        assert_eq!(records.len(), 2);
        assert_report(&report, 3, 2, &[("malformed decision.propensities[1]", 1)]);
    }

    #[test]
    fn invalid_utf8_is_a_record_error_on_its_line() {
        let mut bytes = log_text().into_bytes();
        let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let second = header + bytes[header..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let at = second + bytes[second..].windows(2).position(|w| w == b"u1").unwrap();
        bytes[at] = 0xFF;
        let results = read(&bytes);
        assert_eq!(results.len(), 3);
        let err = results[1].as_ref().unwrap_err();
        assert_malformed(err, &path(), 3, "<record>");
        assert!(err.to_string().contains("invalid UTF-8"), "{err}");

        let (_tmp, _p, fail, skip) = read_file_both(&bytes);
        assert!(fail.is_err());
        assert_report(&skip.unwrap().1, 3, 2, &[("malformed <record>", 1)]);
    }

    #[test]
    fn empty_log_has_no_records() {
        let only_header = header();
        for text in ["", "\n", "\n  \n\r\n", only_header.as_str()] {
            assert!(read(text.as_bytes()).is_empty());
            let (_tmp, _p, fail, skip) = read_file_both(text.as_bytes());
            assert_eq!(fail.unwrap().0, vec![]);
            assert_report(&skip.unwrap().1, 0, 0, &[]);
        }
    }

    #[test]
    fn missing_field_is_a_record_error() {
        // The log's counterpart of a missing header column: a record without its decision.
        let text = header() + "{\"context\":{\"user\":\"u\"},\"feedback\":{\"clicks\":[true]}}\n";
        let err = read(text.as_bytes()).remove(0).unwrap_err();
        assert_malformed(&err, &path(), 2, "<record>");
        assert!(
            err.to_string().contains("missing field `decision`"),
            "{err}"
        );
        // A missing field of a nested object names the object.
        let text = log_text().replacen("\"policy_id\":\"uniform\",", "", 1);
        let err = read(text.as_bytes()).remove(0).unwrap_err();
        assert_malformed(&err, &path(), 2, "decision");
        assert!(
            err.to_string().contains("missing field `policy_id`"),
            "{err}"
        );
    }

    #[test]
    fn not_json_at_all_is_a_record_error() {
        let text = format!("{}this is not json\n", log_text());
        let results = read(text.as_bytes());
        assert_eq!(results.len(), 4);
        assert_malformed(results[3].as_ref().unwrap_err(), &path(), 5, "<record>");
        // A JSON array is read as a sequence of the record's fields: the first one is wrong.
        let text = format!("{}[1, 2, 3]\n", log_text());
        assert_malformed(
            read(text.as_bytes())[3].as_ref().unwrap_err(),
            &path(),
            5,
            "[0]",
        );
    }

    #[test]
    fn write_then_read_in_skip_mode_keeps_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log.jsonl");
        let records: Vec<Interaction> = (0..50).map(record).collect();
        write_log(&p, &records, catalog()).unwrap();
        let (back, report) = read_log(&p, catalog(), &skip()).unwrap();
        assert_eq!(back, records);
        assert_report(&report, 50, 50, &[]);
    }
}

// ------------------------------------------------------------------------------------------------
// No panics on arbitrary input
// ------------------------------------------------------------------------------------------------

mod fuzz {
    use super::*;
    use metarec_core::{Context, Decision, Feedback, Interaction, ItemId, Slate, UserKey};
    use metarec_data::log::{ItemKeys, LogReader};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn config(cases: u32) -> Config {
        Config {
            cases,
            rng_seed: RngSeed::Fixed(0x006d_6574_6172_6563),
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// One edit of a byte string; positions are taken modulo the length.
    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Truncate(usize),
        Delete(usize, usize),
        Duplicate(usize, usize),
        Insert(usize, u8),
    }

    /// Bytes that mean something to the parsers.
    const INTERESTING: &[u8] = b"\"\",,\t\t\n\n\r-+.e09 {}[]:\\\x00\xff\xc3\xa9\x80";

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), proptest::sample::select(INTERESTING.to_vec()),]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(p, x)| Mutation::Flip(p, x)),
            (any::<usize>(), byte()).prop_map(|(p, b)| Mutation::Set(p, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), 1usize..8).prop_map(|(p, n)| Mutation::Delete(p, n)),
            (any::<usize>(), 1usize..40).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
            (any::<usize>(), byte()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        ]
    }

    fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
        proptest::collection::vec(mutation(), 1..6)
    }

    fn apply(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
        let mut b = original.to_vec();
        for m in mutations {
            let len = b.len();
            if len == 0 {
                if let Mutation::Insert(_, x) = m {
                    b.push(*x);
                }
                continue;
            }
            match *m {
                Mutation::Flip(p, x) => b[p % len] ^= x,
                Mutation::Set(p, x) => b[p % len] = x,
                Mutation::Truncate(p) => b.truncate(p % len),
                Mutation::Delete(p, n) => {
                    let p = p % len;
                    b.drain(p..(p + n).min(len));
                }
                Mutation::Duplicate(p, n) => {
                    let p = p % len;
                    let piece = b[p..(p + n).min(len)].to_vec();
                    b.splice(p..p, piece);
                }
                Mutation::Insert(p, x) => b.insert(p % (len + 1), x),
            }
        }
        b
    }

    fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(byte(), 0..400)
    }

    fn lines_in(bytes: &[u8]) -> u64 {
        bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1
    }

    /// Properties every loader keeps on any input:
    /// - in Skip mode a successful load accounts for every record;
    /// - an error names a line that exists in the input;
    /// - an error about a data line (not the header) is skippable: Skip mode then succeeds;
    /// - when Fail mode succeeds, Skip mode gives the same counts.
    fn check<T>(
        max_line: u64,
        load: impl Fn(&LoadOptions) -> Result<T, DataError>,
        report: impl Fn(&T) -> &LoadReport,
    ) -> Result<(), TestCaseError> {
        let fail = load(&FAIL);
        let skipped = load(&skip());
        if let Ok(t) = &skipped {
            let r = report(t);
            prop_assert_eq!(r.kept + r.skipped_total(), r.records, "{}", r);
        }
        match &fail {
            Ok(t) => {
                let s = skipped.as_ref().map(&report);
                prop_assert_eq!(Ok(report(t)), s.map_err(|e| e.to_string()));
            }
            Err(DataError::Malformed { line, .. }) | Err(DataError::Invalid { line, .. }) => {
                prop_assert!(
                    *line >= 1 && *line <= max_line,
                    "line {} outside the input ({} lines): {:?}",
                    line,
                    max_line,
                    fail.as_ref().err()
                );
                if *line > 1 {
                    prop_assert!(
                        skipped.is_ok(),
                        "Fail: {:?}; Skip: {:?}",
                        fail.as_ref().err(),
                        skipped.as_ref().err()
                    );
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn or_check(bytes: &[u8]) -> Result<(), TestCaseError> {
        let path = Path::new("fuzz/online_retail.csv");
        check(
            lines_in(bytes),
            |o| parse_online_retail(bytes, path, o),
            |or| &or.report,
        )
    }

    fn ml_check(files: [&[u8]; 3]) -> Result<(), TestCaseError> {
        let tmp = tempfile::tempdir().unwrap();
        write_movielens(tmp.path(), files[0], files[1], files[2]);
        let max_line = files.iter().map(|f| lines_in(f)).max().unwrap();
        check(max_line, |o| load_movielens(tmp.path(), o), |ml| &ml.report)
    }

    fn obd_check(items: &[u8], rounds: &[u8]) -> Result<(), TestCaseError> {
        let tmp = tempfile::tempdir().unwrap();
        write_obd(tmp.path(), items, rounds);
        check(
            lines_in(items).max(lines_in(rounds)),
            |o| load_obd(tmp.path(), ObdPolicy::Random, ObdCampaign::All, o),
            |log| &log.report,
        )?;
        if let Ok(log) = load_obd(tmp.path(), ObdPolicy::Random, ObdCampaign::All, &skip()) {
            prop_assert_eq!(log.affinities.rows(), log.rounds.len());
            for i in 0..log.rounds.len() {
                prop_assert!(log.interaction(i).is_some());
            }
        }
        Ok(())
    }

    fn log_check(bytes: &[u8]) -> Result<(), TestCaseError> {
        let n = lines_in(bytes);
        let catalog = super::log::catalog();
        let header = match LogReader::new(
            bytes,
            Path::new("fuzz/log.jsonl"),
            ItemKeys::Catalog(catalog),
        ) {
            Ok(reader) => {
                for r in reader {
                    if let Err(DataError::Malformed { line, .. }) = r {
                        prop_assert!(line >= 1 && line <= n, "line {} of {}", line, n);
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log.jsonl");
        std::fs::write(&p, bytes).unwrap();
        let fail = metarec_data::log::read_log(&p, catalog, &FAIL);
        let skipped = metarec_data::log::read_log(&p, catalog, &skip());
        // A broken header stops every read (it concerns the whole file), naming a line that
        // exists; every later line-level error is skippable.
        if let Err(e) = header {
            match &e {
                DataError::Malformed { line, .. } => {
                    prop_assert!(*line >= 1 && *line <= n, "line {} of {}", line, n)
                }
                other => prop_assert!(false, "{other:?}"),
            }
            prop_assert!(fail.is_err() && skipped.is_err());
            return Ok(());
        }
        let (records, report) = skipped.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(report.kept as usize, records.len());
        prop_assert_eq!(report.kept + report.skipped_total(), report.records);
        if let Ok((all, _)) = fail {
            prop_assert_eq!(all, records);
        }
        Ok(())
    }

    fn valid_log() -> Vec<u8> {
        let mut out = super::log::header().into_bytes();
        for n in 0..3u32 {
            let i = Interaction::new(
                Context::for_user(UserKey(format!("u{n}"))),
                Decision {
                    event_id: format!("e{n}").as_str().into(),
                    slate: Slate::new(vec![ItemId(n), ItemId(9)]).unwrap(),
                    propensities: vec![0.5, 0.125],
                    slate_propensity: Some(0.0625),
                    positions: Some(vec![0, 2]),
                    policy_id: "p".into(),
                    model_version: "1".into(),
                },
                Feedback {
                    clicks: vec![true, false],
                    purchases: vec![true, false],
                    revenue: vec![1.5, 0.0],
                },
            )
            .unwrap();
            metarec_data::log::write_record(&mut out, &i, super::log::catalog()).unwrap();
        }
        out
    }

    /// `header + \n + body`: random bodies get past the header checks.
    fn after_header(header: &str, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::from(header.as_bytes());
        b.push(b'\n');
        b.extend_from_slice(body);
        b
    }

    proptest! {
        #![proptest_config(config(192))]

        #[test]
        fn online_retail_survives_random_bytes(body in random_bytes(), with_header: bool) {
            let bytes = if with_header { after_header(OR_HEADER, &body) } else { body };
            or_check(&bytes)?;
        }

        #[test]
        fn online_retail_survives_mutations(m in mutations()) {
            or_check(&apply(online_retail_small().as_bytes(), &m))?;
        }

        #[test]
        fn movielens_survives_random_bytes(body in random_bytes(), which in 0usize..3, with_header: bool) {
            let mut files = [
                lines(ML_ITEM_HEADER, &ML_ITEM_ROWS).into_bytes(),
                lines(ML_USER_HEADER, &ML_USER_ROWS).into_bytes(),
                lines(ML_INTER_HEADER, &ML_INTER_ROWS).into_bytes(),
            ];
            let header = [ML_ITEM_HEADER, ML_USER_HEADER, ML_INTER_HEADER][which];
            files[which] = if with_header { after_header(header, &body) } else { body };
            ml_check([&files[0], &files[1], &files[2]])?;
        }

        #[test]
        fn movielens_survives_mutations(m in mutations(), which in 0usize..3) {
            let mut files = [
                lines(ML_ITEM_HEADER, &ML_ITEM_ROWS).into_bytes(),
                lines(ML_USER_HEADER, &ML_USER_ROWS).into_bytes(),
                lines(ML_INTER_HEADER, &ML_INTER_ROWS).into_bytes(),
            ];
            files[which] = apply(&files[which], &m);
            ml_check([&files[0], &files[1], &files[2]])?;
        }

        #[test]
        fn obd_survives_random_bytes(body in random_bytes(), rounds_file: bool, with_header: bool) {
            let items = lines(OBD_ITEMS_HEADER, &OBD_ITEM_ROWS).into_bytes();
            let rounds = lines(OBD_ROUNDS_HEADER, &OBD_ROUND_ROWS).into_bytes();
            if rounds_file {
                let r = if with_header { after_header(OBD_ROUNDS_HEADER, &body) } else { body };
                obd_check(&items, &r)?;
            } else {
                let i = if with_header { after_header(OBD_ITEMS_HEADER, &body) } else { body };
                obd_check(&i, &rounds)?;
            }
        }

        #[test]
        fn obd_survives_mutations(m in mutations(), rounds_file: bool) {
            let items = lines(OBD_ITEMS_HEADER, &OBD_ITEM_ROWS).into_bytes();
            let rounds = lines(OBD_ROUNDS_HEADER, &OBD_ROUND_ROWS).into_bytes();
            if rounds_file {
                let r = apply(&rounds, &m);
                obd_check(&items, &r)?;
            } else {
                let i = apply(&items, &m);
                obd_check(&i, &rounds)?;
            }
        }

        #[test]
        fn log_survives_random_bytes(body in random_bytes(), with_header: bool) {
            let header = super::log::header();
            let bytes = if with_header { after_header(header.trim_end(), &body) } else { body };
            log_check(&bytes)?;
        }

        #[test]
        fn log_survives_mutations(m in mutations()) {
            log_check(&apply(&valid_log(), &m))?;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Regressions: each of these tests once failed; the comment states the bug that was observed and
// the behaviour that is now expected.
// ------------------------------------------------------------------------------------------------

mod regressions {
    use super::*;

    const OR_BAD_QUANTITY: &str =
        "536366,22633,HAND WARMER UNION JACK,six,2010-12-01 08:28:00,1.85,17850.0,United Kingdom";

    fn or_path() -> PathBuf {
        PathBuf::from("in-memory/online_retail.csv")
    }

    // Fixed bug (table.rs, all CSV/TSV loaders): with CRLF line endings every line number is one too
    // small. `Table::next_row` takes the line from `ByteRecord::position()`, which csv records
    // before it consumes the `\n` that ends the previous CRLF line; and `parse_online_retail`'s
    // header offset (`count_lines(&bytes[..data_start])`) does not count that `\n` either.
    // Observed: "line 3" for a bad Quantity on line 4 (and "line 6" for line 7).
    #[test]
    fn crlf_line_endings_give_the_same_line_numbers() {
        let mut rows = OR_ROWS.to_vec();
        rows[2] = OR_BAD_QUANTITY;
        let lf = lines(OR_HEADER, &rows);
        let crlf = lf.replace('\n', "\r\n");
        let err = parse_online_retail(lf.as_bytes(), &or_path(), &FAIL).unwrap_err();
        assert_malformed(&err, &or_path(), 4, "Quantity");
        let err = parse_online_retail(crlf.as_bytes(), &or_path(), &FAIL).unwrap_err();
        assert_malformed(&err, &or_path(), 4, "Quantity");

        let mut rows = OR_ROWS.to_vec();
        rows[5] = OR_BAD_QUANTITY;
        let crlf = lines(OR_HEADER, &rows).replace('\n', "\r\n");
        let err = parse_online_retail(crlf.as_bytes(), &or_path(), &FAIL).unwrap_err();
        assert_malformed(&err, &or_path(), 7, "Quantity");
    }

    // Same bug through the TSV dialect (MovieLens).
    #[test]
    fn crlf_line_numbers_in_tsv_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rows = ML_INTER_ROWS.to_vec();
        rows[2] = "2\t3\tfour\t878542960";
        let inter = lines(ML_INTER_HEADER, &rows).replace('\n', "\r\n");
        let (_, _, inter_path) = write_movielens(
            tmp.path(),
            lines(ML_ITEM_HEADER, &ML_ITEM_ROWS).as_bytes(),
            lines(ML_USER_HEADER, &ML_USER_ROWS).as_bytes(),
            inter.as_bytes(),
        );
        let err = load_movielens(tmp.path(), &FAIL).unwrap_err();
        assert_malformed(&err, &inter_path, 4, "rating:float");
    }

    // Fixed bug (table.rs): a record that follows blank lines is reported at the first blank line.
    // csv skips blank lines while reading the record, but the record's position is the reader's
    // position before the skip. Observed: "line 3" for a bad Quantity on line 5 (lines 3 and 4
    // are blank).
    #[test]
    fn blank_lines_do_not_shift_line_numbers() {
        let text = format!("{OR_HEADER}\n{}\n\n\n{OR_BAD_QUANTITY}\n", OR_ROWS[0]);
        let err = parse_online_retail(text.as_bytes(), &or_path(), &FAIL).unwrap_err();
        assert_malformed(&err, &or_path(), 5, "Quantity");
    }

    // Fixed bug (online_retail.rs): a UnitPrice that is a finite f64 but overflows f32 (for example
    // 1e39) passes `Row::finite`, becomes `inf` through `as f32`, and is only caught when the
    // catalog is built, as `DataError::Invalid { line: 0, .. }` ("line 0: field `price` is inf").
    // Observed in both modes: the whole load fails with line 0 (Skip mode cannot skip it).
    // Expected: Malformed at the record's line, field UnitPrice; Skip mode skips that record.
    #[test]
    fn price_too_large_for_f32_is_reported_on_its_line() {
        let mut rows = OR_ROWS.to_vec();
        rows[1] =
            "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,1e39,17850.0,United Kingdom";
        let text = lines(OR_HEADER, &rows);
        let err = parse_online_retail(text.as_bytes(), &or_path(), &FAIL).unwrap_err();
        assert_malformed(&err, &or_path(), 3, "UnitPrice");
        let or = parse_online_retail(text.as_bytes(), &or_path(), &skip()).unwrap();
        assert_eq!(or.report.kept, 3);
        assert_eq!(or.report.skipped.get("malformed UnitPrice"), Some(&1));
    }

    // Fixed bug (table.rs `split_records`): inputs above 4 MB are cut into chunks at newlines with an
    // even count of `"` before them, assuming every quote belongs to RFC 4180 quoting. csv reads
    // a quote inside an unquoted field (`12" RULER`) literally, so after one such field the parity
    // is off and the cut can land inside a later quoted field that holds a newline; the chunk
    // before the cut then ends in an unterminated quoted field. Observed (2 threads): "line 71495:
    // field `<record>`: expected 8 fields, found 3" on a file that a single sequential read loads
    // without error. Needs `available_parallelism() >= 2` to show.
    #[test]
    fn chunked_parse_agrees_with_a_sequential_read_after_a_literal_quote() {
        let mut text = format!(
            "{OR_HEADER}\n536365,71053,12\" RULER,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
        );
        let mut records = 1;
        while text.len() < 6 << 20 {
            text.push_str(
                "536366,22633,\"HAND WARMER\nUNION JACK\",6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n",
            );
            records += 1;
        }
        let or = parse_online_retail(text.as_bytes(), &or_path(), &FAIL).unwrap();
        assert_eq!(or.report.kept, records);
        let title = or.catalog.title(or.catalog.id_of("71053").unwrap());
        assert_eq!(title, Some("12\" RULER"));
    }
}
