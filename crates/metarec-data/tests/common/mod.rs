//! Helpers shared by the integration tests of `metarec-data`: where the real data sets live, and
//! small hand-written inputs built from the real files' headers.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use metarec_data::DataError;
use metarec_data::fetch::{DATA_ENV, DataDir, Dataset};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The data directory: `$METAREC_DATA`, else `<workspace>/data`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os(DATA_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    }
}

/// Serialises the first-use unpacking of Online Retail, so that tests running in parallel unpack
/// it once rather than racing each other into the same data directory.
static REQUIRE_LOCK: Mutex<()> = Mutex::new(());

/// The folder of a data set in the data directory.
///
/// Online Retail ships inside the crate and is unpacked on first use. Any other data set must have
/// been fetched; when it is absent this panics (a test that silently skipped would count as
/// passed) and says how to fetch it.
pub fn require(dataset: Dataset) -> PathBuf {
    let dir = DataDir::new(data_dir());
    let _guard = REQUIRE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match dir.require(dataset) {
        Ok(path) => path,
        Err(DataError::NotFetched { .. }) => panic!(
            "data set `{name}` is not in {root}: these tests read the real data set. Run \
             `cargo run -p metarec -- data fetch obd ml-100k` from the workspace root (or set \
             {DATA_ENV} to a data directory that holds it), then run the tests again.",
            name = dataset.name(),
            root = dir.root().display(),
        ),
        Err(e) => panic!("cannot prepare data set `{}`: {e}", dataset.name()),
    }
}

/// Header of `online_retail.csv`, as the real file has it.
pub const OR_HEADER: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country";

/// The first data lines of the real `online_retail.csv` (lines 2 to 4), plus a cancellation
/// (line 5), a guest checkout (line 6) and a line with a quoted comma (line 7).
///
/// The cancellation is of a product (the real line 156): the file's first cancellation, a
/// `Discount` line, is a non-product line and is counted as such, not as a cancellation.
pub const OR_ROWS: [&str; 6] = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
    "C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,2010-12-01 09:49:00,4.65,15311.0,United Kingdom",
    "536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom",
    "536381,82567,\"AIRLINE LOUNGE,METAL SIGN\",2,2010-12-01 09:41:00,2.1,15311.0,United Kingdom",
];

/// A small valid Online Retail file: 6 records, 4 kept (customers 17850 and 15311), one
/// cancellation and one guest line.
pub fn online_retail_small() -> String {
    let mut s = String::from(OR_HEADER);
    s.push('\n');
    for r in OR_ROWS {
        s.push_str(r);
        s.push('\n');
    }
    s
}

/// Header of the real `item_context.csv` of every Open Bandit log.
pub const OBD_ITEMS_HEADER: &str =
    ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3";

/// The first three rows of the real `random/all/item_context.csv` (items 0, 1, 2).
pub const OBD_ITEM_ROWS: [&str; 3] = [
    "0,0,-0.49917162609493676,aed790911d0344f149be2fb9470d6f0a,67503f4af781d4037a8bac5e22549edd,5c1e29f902c3ad66e0ff9f6020b1aa0b",
    "1,1,-0.5437753679553131,31af389431e50a8fcd6470aeeb7951f8,67503f4af781d4037a8bac5e22549edd,5c1e29f902c3ad66e0ff9f6020b1aa0b",
    "2,2,0.9727518552974822,31af389431e50a8fcd6470aeeb7951f8,84da86f2aa5e816a473e4065f137bfa9,1ead5eb1766472d5bbe45ef0d5654a59",
];

/// The header of a real Open Bandit log cut down to the affinity columns of items 0 to 2.
pub const OBD_ROUNDS_HEADER: &str = ",timestamp,item_id,position,click,propensity_score,\
user_feature_0,user_feature_1,user_feature_2,user_feature_3,\
user-item_affinity_0,user-item_affinity_1,user-item_affinity_2";

/// The first rounds of the real `random/all/all.csv` with the item ids mapped onto items 0 to 2
/// and the affinity columns cut to three; the third is a click at position 1.
pub const OBD_ROUND_ROWS: [&str; 3] = [
    "0,2019-11-24 00:00:34.762830+00:00,1,3,0,0.0125,81ce123cbb5bd8ce818f60fb3586bba5,03a5648a76832f83c859d46bc06cb64a,c2e4f76cdbabecd33b8c762aeef386b3,f97571b9c14a786aab269f0b427d2a85,0.0,0.0,0.0",
    "1,2019-11-24 00:00:53.965051+00:00,2,2,0,0.0125,81ce123cbb5bd8ce818f60fb3586bba5,03a5648a76832f83c859d46bc06cb64a,2723d2eb8bba04e0362098011fa3997b,c39b0c7dd5d4eb9a18e7db6ba2f258f8,0.0,1.0,0.0",
    "2,2019-11-24 00:00:56.727734+00:00,0,1,1,0.0125,81ce123cbb5bd8ce818f60fb3586bba5,03a5648a76832f83c859d46bc06cb64a,9b2d331c329ceb74d3dcfb48d8798c78,270b3e1c052b4f2e9c90bf0ebeb84f34,2.0,0.0,0.0",
];

/// Lines joined with a trailing newline.
pub fn lines(header: &str, rows: &[&str]) -> String {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

/// Writes an Open Bandit log folder `<root>/random/all/` holding `item_context.csv` and
/// `all.csv`; returns the paths of the two files (items, rounds).
pub fn write_obd(root: &Path, items: &[u8], rounds: &[u8]) -> (PathBuf, PathBuf) {
    let dir = root.join("random").join("all");
    std::fs::create_dir_all(&dir).unwrap();
    let items_path = dir.join("item_context.csv");
    let rounds_path = dir.join("all.csv");
    std::fs::write(&items_path, items).unwrap();
    std::fs::write(&rounds_path, rounds).unwrap();
    (items_path, rounds_path)
}

/// Header of the real `ml-100k.item`.
pub const ML_ITEM_HEADER: &str =
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq";
/// The first rows of the real `ml-100k.item`.
pub const ML_ITEM_ROWS: [&str; 3] = [
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "2\tGoldenEye\t1995\tAction Adventure Thriller",
    "3\tFour Rooms\t1995\tThriller",
];
/// Header of the real `ml-100k.user`.
pub const ML_USER_HEADER: &str =
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token";
/// The first rows of the real `ml-100k.user`.
pub const ML_USER_ROWS: [&str; 3] = [
    "1\t24\tM\ttechnician\t85711",
    "2\t53\tF\tother\t94043",
    "3\t23\tM\twriter\t32067",
];
/// Header of the real `ml-100k.inter`.
pub const ML_INTER_HEADER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float";
/// Ratings in the real file's format, over the users and items above.
pub const ML_INTER_ROWS: [&str; 4] = [
    "1\t1\t5\t874965758",
    "1\t2\t3\t876893171",
    "2\t3\t4\t878542960",
    "3\t1\t1\t889751712",
];

/// Writes `ml-100k.{item,user,inter}` into `dir`; returns their paths (item, user, inter).
pub fn write_movielens(
    dir: &Path,
    item: &[u8],
    user: &[u8],
    inter: &[u8],
) -> (PathBuf, PathBuf, PathBuf) {
    let p = |ext: &str| dir.join(format!("ml-100k.{ext}"));
    let (pi, pu, pr) = (p("item"), p("user"), p("inter"));
    std::fs::write(&pi, item).unwrap();
    std::fs::write(&pu, user).unwrap();
    std::fs::write(&pr, inter).unwrap();
    (pi, pu, pr)
}

/// Asserts that `err` is [`DataError::Malformed`] at `line` and `field`, and that its message
/// names the file, the line and the field.
#[track_caller]
pub fn assert_malformed(err: &DataError, path: &Path, line: u64, field: &str) {
    match err {
        DataError::Malformed {
            path: p,
            line: l,
            field: f,
            ..
        } => {
            assert_eq!(
                (p.as_path(), *l, f.as_str()),
                (path, line, field),
                "wrong place in {err}"
            );
        }
        other => panic!("expected a Malformed error at line {line}, field {field}; got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    assert!(
        msg.contains(&format!("line {line}:")),
        "message does not name line {line}: {msg}"
    );
    assert!(
        msg.contains(field),
        "message does not name field {field}: {msg}"
    );
}
