//! A simulator of a shop from the command line: `shop generate` and `shop import`, then `sim
//! calibrate --shop` (the shop's CTR by position against the simulator's), `train --shop --algo
//! reinforce` in that simulator, the arena and `meta-train --shop` with the bundle (which
//! rebuilds the same world from the shop it records), and the clear error of a shop with nothing
//! to fit.

mod common;

use common::{arg, metarec, stderr, stdout};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint::DataSource;
use std::path::{Path, PathBuf};

/// Imports the made-up shop's files in `files` into `dir`, keeping only the event lines that
/// `keep` accepts.
fn import(data: &Path, files: &Path, dir: &Path, keep: impl Fn(&str) -> bool) -> PathBuf {
    let events = std::fs::read_to_string(files.join("events.csv")).unwrap();
    let mut lines = events.lines();
    let mut kept = format!("{}\n", lines.next().unwrap());
    for line in lines.filter(|l| keep(l)) {
        kept.push_str(line);
        kept.push('\n');
    }
    let filtered = dir.with_extension("csv");
    std::fs::write(&filtered, kept).unwrap();
    let out = metarec(
        data,
        &[
            "-q",
            "shop",
            "import",
            "--catalog",
            arg(&files.join("catalog.csv")),
            "--events",
            arg(&filtered),
            "--users",
            arg(&files.join("users.csv")),
            "--name",
            "made-up",
            "--out",
            arg(dir),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    dir.to_owned()
}

#[test]
fn a_shop_simulator_calibrates_trains_a_model_and_plays_it_in_the_arena() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let files = tmp.path().join("files");
    let out = metarec(
        &data,
        &[
            "-q",
            "shop",
            "generate",
            "--items",
            "40",
            "--users",
            "300",
            "--seed",
            "5",
            "--out",
            arg(&files),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shop_dir = import(&data, &files, &tmp.path().join("shop"), |_| true);
    let shop = arg(&shop_dir);

    // The calibration report compares the shop's CTR by position with the simulator's.
    let out = metarec(
        &data,
        &[
            "-q",
            "sim",
            "calibrate",
            "--shop",
            shop,
            "--scenario",
            "small",
            "--users",
            "200",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["shop"], "shop `made-up`", "{report}");
    let rows = report["impressions"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{report}");
    assert_eq!(rows[0]["what"], "CTR at position 1");
    assert!(rows[0]["real"].as_f64().unwrap() > rows[3]["real"].as_f64().unwrap());

    // Reinforcement learning in the simulator of the shop; the bundle records which shop.
    let model = tmp.path().join("model");
    let runs = tmp.path().join("runs");
    let (model_arg, runs_arg) = (arg(&model), arg(&runs));
    let out = metarec(
        &data,
        &[
            "-q",
            "train",
            "--shop",
            shop,
            "--algo",
            "reinforce",
            "--scenario",
            "small",
            "--iterations",
            "2",
            "--batch",
            "4",
            "--out",
            model_arg,
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = ModelBundle::load(&model).unwrap();
    match &bundle.manifest.source {
        DataSource::ShopSimulator { dir, toml, .. } => {
            assert_eq!(dir, shop);
            assert!(toml.contains("fit_impressions = true"), "{toml}");
        }
        other => panic!("{other:?}"),
    }
    // Every item of the shop is on offer (the small scenario keeps up to 100).
    assert_eq!(bundle.catalog.len(), 40);

    // Resuming it on the shop's logs instead says how to resume it in the simulator.
    let out = metarec(
        &data,
        &[
            "train", "--shop", shop, "--resume", "--out", model_arg, "--logdir", runs_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("resume it there with `--algo reinforce`"),
        "{}",
        stderr(&out)
    );

    // The arena rebuilds the same world from the bundle alone, and plays it.
    let neural = format!("neural:{model_arg}");
    let out = metarec(
        &data,
        &[
            "-q",
            "arena",
            "--policies",
            &format!("random,{neural}"),
            "--users",
            "10",
            "--seeds",
            "1",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("small on {shop}")),
        "{}",
        stdout(&out)
    );

    // Meta-training with --shop meta-trains in the simulator for such a model.
    let out = metarec(
        &data,
        &[
            "-q",
            "meta-train",
            "--model",
            model_arg,
            "--shop",
            shop,
            "--users",
            "8",
            "--grid",
            "0.1",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(model.join("adjuster.json").exists());

    // A shop whose events changed is not the shop the model was trained in a simulator of.
    let changed = import(&data, &files, &tmp.path().join("changed"), |l| {
        !l.starts_with("U0000000,")
    });
    let out = metarec(
        &data,
        &[
            "meta-train",
            "--model",
            model_arg,
            "--shop",
            arg(&changed),
            "--users",
            "8",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("catalog or events changed"),
        "{}",
        stderr(&out)
    );

    // A shop with impressions but no click, add-to-cart or purchase: a clear error, no panic.
    let views = import(&data, &files, &tmp.path().join("views"), |l| {
        l.contains(",view,")
    });
    let out = metarec(&data, &["sim", "calibrate", "--shop", arg(&views)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot fit a simulator to shop `made-up`") && err.contains("0 purchases"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
