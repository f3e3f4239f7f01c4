//! `metarec train --shop` and `metarec meta-train --shop` on a made-up shop (`metarec shop
//! generate`, then `metarec shop import`, as a shop's own files would come in), and the clear
//! errors of commands that would rebuild a simulator for a model trained on a shop.

mod common;

use common::{arg, made_up_shop, metarec, stderr, stdout};
use metarec_data::shop::Shop;
use metarec_neural::bundle::{AdjusterStatus, ModelBundle};
use metarec_neural::checkpoint::DataSource;

#[test]
fn train_and_meta_train_on_a_shop_write_a_bundle_with_its_catalog_and_a_fitted_adjuster() {
    let tmp = tempfile::tempdir().unwrap();
    // An empty data directory: no text encoder, so no title features unless asked for.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop_dir = made_up_shop(&data, tmp.path(), "600", "7");
    let model = tmp.path().join("model");
    let runs = tmp.path().join("runs");
    let (shop, model_arg, runs_arg) = (arg(&shop_dir), arg(&model), arg(&runs));

    let out = metarec(
        &data,
        &[
            "train",
            "--shop",
            shop,
            "--out",
            model_arg,
            "--iterations",
            "200",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("supervised on shop `made-up`"), "{text}");
    let auc: f64 = text
        .split("held-out click AUC ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no held-out AUC in:\n{text}"));
    assert!(auc > 0.6, "{text}");
    assert!(
        stderr(&out).contains("no title features: run `metarec data fetch minilm`"),
        "{}",
        stderr(&out)
    );

    let loaded = Shop::load(&shop_dir).unwrap();
    let bundle = ModelBundle::load(&model).unwrap();
    assert_eq!(bundle.manifest.scenario, "made-up");
    assert_eq!(bundle.manifest.algos, vec!["supervised".to_string()]);
    match &bundle.manifest.source {
        DataSource::Shop {
            name,
            dir,
            catalog_sha256,
            events_sha256,
            holdout,
        } => {
            assert_eq!(name, "made-up");
            assert_eq!(dir, shop);
            assert_eq!(catalog_sha256, &loaded.manifest.catalog_sha256);
            assert_eq!(events_sha256, &loaded.manifest.events_sha256);
            assert_eq!(*holdout, 0.2);
        }
        other => panic!("{other:?}"),
    }
    // The bundle carries the shop's catalog: it ranks the shop's SKUs with no shop at hand.
    assert_eq!(*bundle.catalog, loaded.catalog);
    assert!(matches!(bundle.adjuster, AdjusterStatus::Missing));

    let out = metarec(
        &data,
        &[
            "meta-train",
            "--model",
            model_arg,
            "--shop",
            shop,
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("<- chosen"), "{text}");
    assert!(text.contains("validation users ("), "{text}");
    let bundle = ModelBundle::load(&model).unwrap();
    assert!(
        matches!(bundle.adjuster, AdjusterStatus::Fitted(_)),
        "{:?}",
        bundle.adjuster
    );
    let offline = bundle.adjuster_file.unwrap().offline.unwrap();
    assert_eq!((offline.shop.as_str(), offline.support), ("made-up", 3));
    // The report renders the training on the shop and the offline evidence.
    let report_dir = tmp.path().join("report");
    let (manifest, adjuster) = (model.join("manifest.json"), model.join("adjuster.json"));
    let out = metarec(
        &data,
        &[
            "-q",
            "report",
            arg(&manifest),
            arg(&adjuster),
            "--out",
            arg(&report_dir),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(report_dir.join("index.html")).unwrap();
    assert!(page.contains("Training: shop `made-up`"), "{page}");
    assert!(page.contains("Offline meta-training"), "{page}");
    // A fifth of the users with a query after their support set are validation users.
    let tasks = offline.validation.users + offline.selection_users;
    assert_eq!(offline.validation.users, tasks.div_ceil(5), "{offline:?}");

    // Training further on the same shop keeps its split and drops the adjuster's fit.
    let out = metarec(
        &data,
        &[
            "-q",
            "train",
            "--shop",
            shop,
            "--out",
            model_arg,
            "--resume",
            "--iterations",
            "3",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = ModelBundle::load(&model).unwrap();
    assert_eq!(bundle.manifest.iterations, 203);
    assert!(matches!(bundle.adjuster, AdjusterStatus::Stale { .. }));
}

#[test]
fn commands_that_need_a_simulator_say_how_to_use_a_shop_model_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop_dir = made_up_shop(&data, tmp.path(), "60", "7");
    let model = tmp.path().join("model");
    let runs = tmp.path().join("runs");
    let (shop, model_arg, runs_arg) = (arg(&shop_dir), arg(&model), arg(&runs));
    let out = metarec(
        &data,
        &[
            "-q",
            "train",
            "--shop",
            shop,
            "--out",
            model_arg,
            "--iterations",
            "2",
            "--holdout",
            "0.3",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Off-policy evaluation on the shop holds out what the model was trained without.
    let greedy = format!("neural-greedy:{model_arg}");
    let out = metarec(
        &data,
        &[
            "-q",
            "ope",
            "--shop",
            shop,
            "--policy",
            &greedy,
            "--resamples",
            "20",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["held_out"]["holdout"], 0.3, "{report}");

    // Resuming on the shop reads --memory as resuming in a scenario does: a trained memory's
    // window cannot change, and a model without a memory gains one.
    let resume = |dir: &str, memory: &str| {
        metarec(
            &data,
            &[
                "-q",
                "train",
                "--shop",
                shop,
                "--out",
                dir,
                "--resume",
                "--iterations",
                "1",
                "--memory",
                memory,
                "--logdir",
                runs_arg,
            ],
        )
    };
    let out = resume(model_arg, "5");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("a trained memory cannot change"),
        "{}",
        stderr(&out)
    );
    let plain = tmp.path().join("plain");
    let out = metarec(
        &data,
        &[
            "-q",
            "train",
            "--shop",
            shop,
            "--out",
            arg(&plain),
            "--iterations",
            "1",
            "--memory",
            "0",
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ModelBundle::load(&plain).unwrap().manifest.model.memory, 0);
    let out = resume(arg(&plain), "20");
    assert!(out.status.success(), "{}", stderr(&out));
    let widened = ModelBundle::load(&plain).unwrap();
    assert_eq!(widened.manifest.model.memory, 20);
    assert_eq!(widened.manifest.iterations, 2);

    let clear = |args: &[&str]| {
        let out = metarec(&data, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        for expected in [
            "was trained on shop `made-up`",
            "metarec ope --shop",
            "meta-train --model",
        ] {
            assert!(err.contains(expected), "{args:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    let neural = format!("neural:{model_arg}");
    clear(&[
        "arena",
        "--policies",
        &neural,
        "--users",
        "2",
        "--seeds",
        "1",
    ]);
    clear(&[
        "arena",
        "--policies",
        &format!("random,{greedy}"),
        "--scenario",
        "small",
    ]);
    clear(&["meta-train", "--model", model_arg, "--logdir", runs_arg]);
    clear(&[
        "train", "--out", model_arg, "--resume", "--logdir", runs_arg,
    ]);

    // The options of supervised training on the shop's logs mean nothing in a simulator of
    // the shop: a usage error.
    let out = metarec(
        &data,
        &[
            "train",
            "--shop",
            shop,
            "--out",
            "m2",
            "--algo",
            "reinforce",
            "--holdout",
            "0.3",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--holdout cannot be used with --algo reinforce on --shop"),
        "{}",
        stderr(&out)
    );
    // Title features asked for without the encoder: say how to fetch it.
    let other = tmp.path().join("other");
    let out = metarec(
        &data,
        &[
            "train",
            "--shop",
            shop,
            "--out",
            arg(&other),
            "--text-dims",
            "4",
            "--logdir",
            runs_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("metarec data fetch minilm"),
        "{}",
        stderr(&out)
    );
    assert!(!other.exists());
    // A model trained on one shop does not meta-train on another.
    let second_dir = tmp.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let second = made_up_shop(&data, &second_dir, "60", "9");
    let out = metarec(
        &data,
        &["meta-train", "--model", model_arg, "--shop", arg(&second)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("with another catalog"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn title_embeddings_become_item_features_that_the_bundle_carries() {
    let data = common::fetched_data_dir("minilm");
    let tmp = tempfile::tempdir().unwrap();
    let shop_dir = made_up_shop(&data, tmp.path(), "100", "7");
    let model = tmp.path().join("model");
    let runs = tmp.path().join("runs");
    let (shop, model_arg, runs_arg) = (arg(&shop_dir), arg(&model), arg(&runs));
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--shop",
            shop,
            "--out",
            out,
            "--iterations",
            "5",
            "--logdir",
            runs_arg,
        ];
        args.extend_from_slice(extra);
        let out = metarec(&data, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    // By default, with titles and the encoder at hand: eight principal components.
    let out = train(model_arg, &[]);
    assert!(
        stderr(&out).contains("adding 8 title features"),
        "{}",
        stderr(&out)
    );
    let loaded = Shop::load(&shop_dir).unwrap();
    let bundle = ModelBundle::load(&model).unwrap();
    let names = bundle.catalog.features().names().to_vec();
    let mut expected = loaded.catalog.features().names().to_vec();
    expected.extend((0..8).map(|k| format!("text_{k}")));
    assert_eq!(names, expected);
    // Same items in the same order, and the shop's catalog recorded as the one trained on.
    assert_eq!(bundle.catalog.len(), loaded.catalog.len());
    assert!(
        bundle
            .catalog
            .ids()
            .all(|id| bundle.catalog.key(id) == loaded.catalog.key(id))
    );
    // Meta-training finds it belongs to the shop, although its catalog has more columns.
    let out = metarec(
        &data,
        &[
            "-q",
            "meta-train",
            "--model",
            model_arg,
            "--shop",
            shop,
            "--logdir",
            runs_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // --text-dims 0 turns them off.
    let plain = tmp.path().join("plain");
    train(arg(&plain), &["--text-dims", "0"]);
    let bundle = ModelBundle::load(&plain).unwrap();
    assert_eq!(*bundle.catalog, loaded.catalog);
}

#[test]
fn the_catalog_softmax_trains_on_purchases_alone_and_is_refused_where_impressions_are_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // A shop that logs purchases only: user u buys items of their group (u % 3) over a week.
    let mut csv = String::from("user_id,item_id,timestamp,type\n");
    for u in 0..60 {
        for k in 0..6 {
            let item = (u % 3) * 10 + (u * 7 + k * 3) % 10;
            csv.push_str(&format!(
                "u{u},sku{item},2026-01-{:02}T10:{:02}:00,purchase\n",
                1 + k,
                u % 60
            ));
        }
    }
    let events = tmp.path().join("events.csv");
    std::fs::write(&events, csv).unwrap();
    let organic = tmp.path().join("organic");
    let out = metarec(
        &data,
        &[
            "-q",
            "shop",
            "import",
            "--events",
            arg(&events),
            "--out",
            arg(&organic),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let model = tmp.path().join("model");
    // Trains the organic shop's model for `iterations` more, with `flag` ("" for none), and
    // returns the bundle's iteration count and whether it was trained with the catalog softmax.
    let train = |flag: &str, iterations: &str| {
        let mut args = vec!["-q", "train", "--shop", arg(&organic), "--out", arg(&model)];
        args.extend(["--iterations", iterations]);
        args.extend([flag].into_iter().filter(|f| !f.is_empty()));
        let out = metarec(&data, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let bundle = ModelBundle::load(&model).unwrap();
        (
            bundle.manifest.iterations,
            bundle.manifest.train.catalog_softmax,
        )
    };
    assert_eq!(train("--catalog-softmax", "20"), (20, true));
    // Resumed without the flag, it keeps the objective it was trained with.
    assert_eq!(train("--resume", "2"), (22, true));

    // A shop with impressions says which shown items were passed over: refused, nothing written.
    let shop = made_up_shop(&data, tmp.path(), "200", "7");
    let refused = tmp.path().join("refused");
    let out = metarec(
        &data,
        &[
            "train",
            "--shop",
            arg(&shop),
            "--catalog-softmax",
            "--iterations",
            "5",
            "--out",
            arg(&refused),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--catalog-softmax: shop `made-up` logs impressions"),
        "{}",
        stderr(&out)
    );
    assert!(!refused.exists());
    // Without a shop there is nothing organic to learn from.
    let out = metarec(
        &data,
        &["train", "--catalog-softmax", "--out", arg(&refused)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
