//! Writes a small TensorBoard run, for checking the writer against TensorBoard's own reader:
//! `cargo run -p metarec-report --example tfevents_demo -- /tmp/tb-runs` and then
//! `tensorboard --logdir /tmp/tb-runs` (or `scripts/check_tfevents.py /tmp/tb-runs`).

use metarec_report::tfevents::EventWriter;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let logdir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: tfevents_demo LOGDIR")?;
    for seed in 0..2u32 {
        let mut w = EventWriter::create(&logdir.join(format!("demo-seed{seed}")))?;
        for step in 1..=100i64 {
            let x = step as f64;
            w.scalars(
                step,
                &[
                    (
                        "train/reward_per_user",
                        (x / 10.0).ln_1p() + f64::from(seed),
                    ),
                    ("train/loss", 1.0 / x),
                ],
            )?;
        }
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i % 37) / 3.0).collect();
        w.histogram("train/scores", 100, &values)?;
        w.flush()?;
        println!("{}", w.path().display());
    }
    Ok(())
}
