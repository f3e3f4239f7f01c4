//! Helpers shared by the CLI test binaries: running `metarec`, reading its output, and finding the
//! data directory that `scripts/test` fills.

// Each test binary compiles this module on its own and uses only some of the helpers.
#![allow(dead_code)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Runs `metarec --data-dir DATA ARGS...` and waits for it.
pub fn metarec(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metarec"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("the metarec binary runs")
}

/// Like [`metarec`], with the working directory set (for commands that write relative paths).
pub fn metarec_in(cwd: &Path, data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metarec"))
        .current_dir(cwd)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("the metarec binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that the command succeeded and printed `text` on standard output.
pub fn assert_says(o: &Output, text: &str) {
    assert!(o.status.success(), "{}", stderr(o));
    assert!(stdout(o).contains(text), "{}", stdout(o));
}

/// The data directory: `$METAREC_DATA`, else the repository's `data/` (Online Retail is shipped
/// in the binary and unpacked there on first use).
pub fn data_dir() -> PathBuf {
    std::env::var_os("METAREC_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

/// The data directory, checked to hold a fetched data set (`scripts/test` fetches them).
pub fn fetched_data_dir(dataset: &str) -> PathBuf {
    let dir = data_dir();
    assert!(
        dir.join(dataset).join(".complete").is_file(),
        "data set `{dataset}` is missing from {}: run `cargo run -p metarec -- data fetch {dataset}` \
         (scripts/test does this before running the tests)",
        dir.display()
    );
    dir
}

/// Trains the smallest useful model (scenario `small`, 2 iterations of 8 users) into `model`, for
/// tests that need a model directory rather than a good policy.
pub fn train_tiny_model(data_dir: &Path, model: &Path) {
    let m = model.to_str().expect("a UTF-8 temporary path");
    let out = metarec(
        data_dir,
        &[
            "-q",
            "train",
            "--scenario",
            "small",
            "--iterations",
            "2",
            "--batch",
            "8",
            "--out",
            m,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A catalog of the given item keys with one numeric feature `f` (the item's rank); a catalog
/// needs at least one feature column to be written as `catalog.json` and read back.
pub fn catalog_of(keys: &[&str]) -> metarec_core::Catalog {
    let mut c = metarec_core::Catalog::new(vec!["f".into()]);
    for (i, k) in keys.iter().enumerate() {
        c.push(metarec_core::Item {
            key: (*k).to_owned(),
            features: vec![i as f32],
            ..metarec_core::Item::default()
        })
        .expect("distinct keys");
    }
    c
}

/// Writes `catalog` as `dir/catalog.json` (what `--catalog FILE` reads) and returns the path.
pub fn write_catalog(dir: &Path, catalog: &metarec_core::Catalog) -> PathBuf {
    let path = dir.join("catalog.json");
    std::fs::write(
        &path,
        serde_json::to_vec(catalog).expect("a catalog serialises"),
    )
    .expect("the temporary folder is writable");
    path
}

/// The header line of an interaction log written against `catalog` (without its newline).
pub fn log_header(catalog: &metarec_core::Catalog) -> String {
    serde_json::to_string(&metarec_data::log::LogHeader::of(catalog)).expect("a header serialises")
}

/// Starts `metarec serve --model MODEL --db DB` on a free loopback port with an admin key `token`
/// and further `options`, and returns the child with the address it printed.
pub fn serve_with(
    data_dir: &Path,
    model: &Path,
    db: &Path,
    token: &str,
    options: &[&str],
) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["-q", "serve", "--model"])
        .arg(model)
        .arg("--db")
        .arg(db)
        .args(["--addr", "127.0.0.1:0", "--workers", "2"])
        .args(options)
        .env("METAREC_API_KEYS", format!("admin:{token}"))
        .env("METAREC_PSEUDONYM_KEY", "crash-test-secret-0123456")
        .stdout(Stdio::piped())
        .spawn()
        .expect("metarec serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in `{line}`"));
    (child, addr)
}

/// Meta-trains the adjuster of a model from [`train_tiny_model`] on 8 users of the `small`
/// scenario, so that `metarec serve` can serve it.
pub fn meta_train_tiny(data_dir: &Path, model: &Path) {
    let m = model.to_str().expect("a UTF-8 temporary path");
    let out = metarec(
        data_dir,
        &[
            "-q",
            "meta-train",
            "--scenario",
            "small",
            "--model",
            m,
            "--users",
            "8",
            "--grid",
            "0.3",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Generates a made-up shop's files with `shop generate` and imports them into `dir/shop`; the
/// shop directory's path.
pub fn made_up_shop(data: &Path, dir: &Path, users: &str, seed: &str) -> PathBuf {
    let files = dir.join("files");
    let shop = dir.join("shop");
    let out = metarec(
        data,
        &[
            "-q",
            "shop",
            "generate",
            "--items",
            "60",
            "--users",
            users,
            "--seed",
            seed,
            "--out",
            arg(&files),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = metarec(
        data,
        &[
            "-q",
            "shop",
            "import",
            "--catalog",
            arg(&files.join("catalog.csv")),
            "--events",
            arg(&files.join("events.csv")),
            "--users",
            arg(&files.join("users.csv")),
            "--name",
            "made-up",
            "--out",
            arg(&shop),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    shop
}
