//! `metarec coldstart --shop` on a made-up shop (`shop generate`, then `shop import`): the table
//! per support size, the JSON report and its page in `metarec report`, and clear errors for a bad
//! date and a cutoff with no new users; with `--model`, the network trained on the shop before
//! the cutoff as one more row, and the refusal of a network that saw events after it; with
//! `--items`, the item cold-start variant on a shop whose new items carry their group in their
//! titles and categories, and its error for a cutoff with no new items.

mod common;

use common::{arg, made_up_shop, metarec, stderr, stdout};

#[test]
fn coldstart_on_a_shop_prints_each_support_size_and_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    let json = tmp.path().join("coldstart.json");
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--support",
            "1,2",
            "--dim",
            "4",
            "--ceiling",
            "--json",
            arg(&json),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "made-up: cold start after 2026-03-01 00:00:00",
        "K = 1:",
        "K = 2:",
        "item-knn",
        "tuned-knn",
        "bayes-knn",
        "NDCG@10 - item-knn (paired)",
        "tuned neighbourhood: damping",
        "ceiling of bayes-knn",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // Progress goes to standard error.
    assert!(stderr(&out).contains("new users at the cutoff"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["results_kind"], "coldstart-shop");
    let budgets = report["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2);
    for b in budgets {
        assert!(b["users"].as_u64().unwrap() > 0);
        assert!(b["ceiling"]["ndcg10"].as_f64().is_some(), "{b}");
        let methods = b["methods"].as_array().unwrap();
        assert_eq!(methods.len(), metarec_coldstart::shop::SHOP_METHODS.len());
        for m in methods {
            let ndcg = &m["metrics"][0];
            assert_eq!(ndcg[0], "ndcg10");
            let (low, mean, high) = (
                ndcg[1]["low"].as_f64().unwrap(),
                ndcg[1]["mean"].as_f64().unwrap(),
                ndcg[1]["high"].as_f64().unwrap(),
            );
            assert!(low <= mean && mean <= high && (0.0..=1.0).contains(&mean));
        }
    }
    // `metarec report` renders it: a table per K and the K-sweep plot.
    let page = tmp.path().join("page");
    let out = metarec(&data, &["report", arg(&json), "--out", arg(&page)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("Cold start on a shop&#39;s history"),
        "{html}"
    );
    assert!(html.contains("K = 2: "));
    assert!(html.contains("NDCG@10 against the support size K"));
    assert!(html.contains("the blend&#39;s ceiling"), "{html}");
}

#[test]
fn coldstart_on_a_shop_rejects_a_bad_date_and_a_cutoff_without_new_users() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    let out = metarec(
        &data,
        &["coldstart", "--shop", arg(&shop), "--cutoff", "2026-13-45"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a date"), "{}", stderr(&out));
    let out = metarec(
        &data,
        &["coldstart", "--shop", arg(&shop), "--cutoff", "2027-01-01"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no new users"), "{}", stderr(&out));
    // --cutoff without --shop is a usage error.
    let out = metarec(&data, &["coldstart", "--cutoff", "2026-03-01"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Trains a tiny network on the shop with `--holdout holdout` into `model` (a few seconds).
fn train_on_shop(
    data: &std::path::Path,
    shop: &std::path::Path,
    model: &std::path::Path,
    holdout: &str,
) {
    let out = metarec(
        data,
        &[
            "-q",
            "train",
            "--shop",
            arg(shop),
            "--holdout",
            holdout,
            "--iterations",
            "30",
            "--out",
            arg(model),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn coldstart_on_a_shop_ranks_with_a_network_trained_before_the_cutoff() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    let model = tmp.path().join("model");
    // The made-up shop runs from January to March: holding out the latest half of its rankings
    // leaves only rankings (with their feedback) from before March.
    train_on_shop(&data, &shop, &model, "0.5");
    let json = tmp.path().join("coldstart.json");
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--support",
            "1,3",
            "--methods",
            "popularity",
            "--dim",
            "4",
            "--model",
            arg(&model),
            "--json",
            arg(&json),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\nnetwork "), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for b in report["budgets"].as_array().unwrap() {
        let methods = b["methods"].as_array().unwrap();
        let network = methods.last().unwrap();
        assert_eq!(network["method"], "network");
        for (name, interval) in network["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (&m[0], &m[1]))
        {
            let mean = interval["mean"].as_f64().unwrap();
            assert!(
                mean.is_finite() && (0.0..=1.0).contains(&mean),
                "{name}: {mean}"
            );
        }
        // Paired with item-kNN like every other method.
        let diff = network["vs_reference"][0][1]["mean"].as_f64().unwrap();
        assert!(diff.is_finite());
    }
}

#[test]
fn coldstart_on_a_shop_refuses_a_network_that_saw_events_after_the_cutoff() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "600", "7");
    let model = tmp.path().join("model");
    // Holding out the latest tenth leaves rankings of March, after the cutoff, in training.
    train_on_shop(&data, &shop, &model, "0.1");
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--model",
            arg(&model),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not wholly before the cutoff 2026-03-01"),
        "{err}"
    );
    assert!(err.contains("train --shop"), "{err}");
    // The share the refusal names is accepted.
    let safe = err
        .split("--holdout ")
        .nth(2)
        .and_then(|t| t.split('`').next())
        .unwrap_or_else(|| panic!("no safe --holdout in: {err}"));
    assert!(
        safe.parse::<f64>().is_ok_and(|h| h > 0.1 && h < 1.0),
        "{err}"
    );
    let retrained = tmp.path().join("retrained");
    train_on_shop(&data, &shop, &retrained, safe);
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--support",
            "1",
            "--dim",
            "4",
            "--model",
            arg(&retrained),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\nnetwork "), "{}", stdout(&out));
    // A model trained on another source is refused by the same check as `ope --shop`'s.
    let other = tmp.path().join("other");
    common::train_tiny_model(&data, &other);
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--model",
            arg(&other),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not on shop `made-up`"),
        "{}",
        stderr(&out)
    );
}

/// A shop of 4 groups of 10 items written as CSV and imported: items 0-5 of a group go on sale
/// on day 0, 6-7 on day 60 and 8-9 on day 90 (2026-04-01). Each of 240 users buys 6 items of
/// their group, one every two days from a start day spread over the first 130, the first an
/// old one, the rest cycling through what is on sale. Titles and categories name the group.
fn new_item_shop(data: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    const DAY: i64 = 86_400_000;
    const START: i64 = 1_767_225_600_000; // 2026-01-01
    let words = ["red", "blue", "green", "gold"];
    let mut catalog = String::from("item_id,title,category,price\n");
    for i in 0..40 {
        let g = i / 10;
        catalog.push_str(&format!(
            "I{i:02},{} thing {i},{},{}.5\n",
            words[g],
            words[g],
            1 + i % 7
        ));
    }
    let mut events = String::from("user_id,item_id,timestamp,type\n");
    for u in 0..240usize {
        let g = u % 4;
        let start = ((u * 37) % 130) as i64 * DAY;
        for k in 0..6usize {
            let ms = start + k as i64 * 2 * DAY;
            let on_sale: Vec<usize> = (0..10)
                .filter(|&j| k > 0 || j < 6)
                .filter(|&j| {
                    let day = match j {
                        0..6 => 0,
                        6..8 => 60,
                        _ => 90,
                    };
                    day * DAY <= ms
                })
                .collect();
            let j = on_sale[(u / 4 + k * 3) % on_sale.len()];
            events.push_str(&format!(
                "U{u:03},I{:02},{},purchase\n",
                g * 10 + j,
                START + ms
            ));
        }
    }
    let files = dir.join("items-files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("catalog.csv"), catalog).unwrap();
    std::fs::write(files.join("events.csv"), events).unwrap();
    let shop = dir.join("items-shop");
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
            "--name",
            "grouped",
            "--out",
            arg(&shop),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    shop
}

#[test]
fn coldstart_items_ranks_new_items_and_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = new_item_shop(&data, tmp.path());
    let json = tmp.path().join("items.json");
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-04-01",
            "--items",
            "--dim",
            "4",
            "--json",
            arg(&json),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "grouped: item cold start after 2026-04-01 00:00:00",
        "random",
        "attribute-match",
        "content-als",
        "content-blend",
        "NDCG@10 - title-knn (paired)",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(stderr(&out).contains("new items and"), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["results_kind"], "coldstart-shop-items");
    // Only the 8 items released on the cutoff are new.
    assert_eq!(report["new_items"], 8);
    assert!(report["users"].as_u64().unwrap() > 0);
    let methods = report["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 5);
    let mean = |name: &str| {
        let m = methods.iter().find(|m| m["method"] == name).unwrap();
        assert_eq!(m["metrics"][0][0], "ndcg10");
        m["metrics"][0][1]["mean"].as_f64().unwrap()
    };
    // Titles name the group, so title-kNN beats a random order of the new items.
    assert!(mean("title-knn") > mean("random") + 0.2, "{report}");
    // `metarec report` renders it: one table against title-kNN.
    let page = tmp.path().join("items-page");
    let out = metarec(&data, &["report", arg(&json), "--out", arg(&page)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert!(
        html.contains("Item cold start on a shop&#39;s history"),
        "{html}"
    );
    assert!(html.contains("NDCG@10 - title-kNN"), "{html}");
}

#[test]
fn coldstart_items_rejects_a_cutoff_without_new_items() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let shop = made_up_shop(&data, tmp.path(), "2000", "7");
    // Every item of the made-up shop sells in its first days.
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--items",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no new items"), "{}", stderr(&out));
    // --items without --shop is a usage error.
    let out = metarec(&data, &["coldstart", "--items"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // So are the user benchmark's options, which the item variant would silently ignore.
    for extra in [
        &["--ceiling"][..],
        &["--model", "m"][..],
        &["--support", "3"][..],
    ] {
        let mut args = vec![
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--items",
        ];
        args.extend_from_slice(extra);
        let out = metarec(&data, &args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            stderr(&out)
        );
    }
    // The ceiling is the blend's: asking for it without the blend is an error that says so.
    let out = metarec(
        &data,
        &[
            "coldstart",
            "--shop",
            arg(&shop),
            "--cutoff",
            "2026-03-01",
            "--methods",
            "popularity",
            "--ceiling",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("include bayes-knn"),
        "{}",
        stderr(&out)
    );
}
