//! `metarec coldstart --shop DIR --cutoff DATE --items`: the item cold-start variant on a shop's
//! own history: items first seen on or after the cutoff, ranked for the users who interacted
//! with them from their titles, categories and prices, every method against title-kNN paired by
//! user (docs/coldstart.md, "Item cold start").

use super::ColdStartArgs;
use crate::Global;
use anyhow::Result;
use metarec_coldstart::shop_items::ITEM_REFERENCE;
use metarec_coldstart::{ItemBenchConfig, ItemFeatures, ItemReport, run_item_benchmark};

/// Runs the item variant and prints (and with `--json`, writes) its table.
pub(super) fn run_shop_items(
    args: &ColdStartArgs,
    dir: &std::path::Path,
    cutoff_ms: i64,
    global: &Global,
) -> Result<()> {
    let mut config = ItemBenchConfig {
        cutoff_ms,
        validation_days: args.validation_days.map(|d| d as f64),
        seed: args.seed,
        ..ItemBenchConfig::default()
    };
    super::overrides(args, &mut config.methods, &mut config.als_grid);
    let (shop, data) = super::load_shop(dir, cutoff_ms, global)?;
    let features = ItemFeatures::from_shop(&shop);
    let report = run_item_benchmark(&data, &features, &config, &|line| global.progress(line))?;
    print_item_report(&report, &shop.manifest.name);
    if let Some(path) = &args.out {
        crate::report::write_results(path, "coldstart-shop-items", &report)?;
        global.progress(format!("wrote {}", path.display()));
    }
    Ok(())
}

fn print_item_report(report: &ItemReport, name: &str) {
    println!(
        "{name}: item cold start after {} ({} of {} items new; models fitted on {} users' \
         interactions before it, the content map on {} old items; hyperparameters chosen on {} \
         new items and {} users from {} on)",
        metarec_data::time::format_ms(report.config.cutoff_ms),
        report.new_items,
        report.items,
        report.training_users,
        report.training_items,
        report.validation_new_items,
        report.validation_users,
        metarec_data::time::format_ms(report.validation_cutoff_ms),
    );
    println!(
        "{} users; {:.1} profile items and {:.1} new items each on average; all {} new items ranked; \
         mean [95% interval] over users",
        report.users, report.mean_profile, report.mean_query, report.new_items
    );
    super::print_method_table(&report.methods, ITEM_REFERENCE, 15);
    let c = &report.chosen;
    println!(
        "chosen on validation: factorisation dim {} lambda {} alpha {}; content map ridge {}, \
         fold-in lambda {}; price bandwidth {}; blend: content-als {} attribute-match {}",
        report.als.dim,
        report.als.lambda,
        report.als.alpha,
        c.ridge,
        c.fold_lambda,
        c.bandwidth,
        c.blend.0,
        c.blend.1
    );
    println!();
    println!("finished in {:.1}s", report.seconds);
}
