//! The pretrained network the demo starts from: a model bundle for the default scenario, shipped
//! inside the binary like the Online Retail data, so the main job needs no download and no hour
//! of training.
//!
//! It is made by `scripts/pretrain` (the exact `metarec train` command, from seed 7), which
//! prints the SHA-256 of its weights; [`WEIGHTS_SHA256`] records it, and
//! the test `the_shipped_network_is_the_one_the_manifest_and_the_docs_name` checks that the
//! shipped files and the record agree. Training is deterministic for a seed on one machine; on
//! another CPU the floating-point kernels may round differently, so a rebuilt bundle can differ
//! in its last bits there (see docs/pretrained.md).

use anyhow::{Context as _, Result, bail};
use metarec_neural::bundle::ModelBundle;
use metarec_neural::checkpoint;
use std::path::Path;

/// The SHA-256 of the shipped weights (`model.safetensors`), as `scripts/pretrain` printed it.
pub const WEIGHTS_SHA256: &str = "0aa20fbb7c79ac5f99d5e45e96d77bc7848f7330fa989d0ac87bc238cc1bd7da";

/// The teacher the shipped network was distilled from, and the one the demo fine-tunes with.
pub const TEACHER: &str = "informed:100";

/// How deep a ranking of the teacher's the shipped network's last iterations imitated in each
/// state (`train --imitate-depth`), and the demo's fine-tuning imitates.
pub const IMITATE_DEPTH: usize = 20;

/// The bundle's files, by name.
const FILES: [(&str, &[u8]); 3] = [
    (
        checkpoint::WEIGHTS,
        include_bytes!("../pretrained/default/model.safetensors"),
    ),
    (
        checkpoint::MANIFEST,
        include_bytes!("../pretrained/default/manifest.json"),
    ),
    (
        checkpoint::CATALOG,
        include_bytes!("../pretrained/default/catalog.json"),
    ),
];

/// Writes the shipped bundle into `dir` and loads it, checking its weights against
/// [`WEIGHTS_SHA256`]. The demo owns its report directory, so a model left there by an earlier
/// run is replaced, and its adjuster file (fitted to other weights) removed.
pub fn unpack(dir: &Path) -> Result<ModelBundle> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stale = dir.join(metarec_neural::adjust::ADJUSTER_FILE);
    if stale.exists() {
        std::fs::remove_file(&stale)
            .with_context(|| format!("cannot remove {}", stale.display()))?;
    }
    for (name, bytes) in FILES {
        let path = dir.join(name);
        metarec_data::log::atomic_write(&path, |out| std::io::Write::write_all(out, bytes))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let bundle = ModelBundle::load(dir)
        .with_context(|| format!("the shipped pretrained network in {}", dir.display()))?;
    let recorded = bundle.manifest.weights_sha256.as_deref().unwrap_or("");
    if recorded != WEIGHTS_SHA256 {
        bail!(
            "the shipped pretrained network's weights have SHA-256 {recorded}, not the recorded {WEIGHTS_SHA256}"
        );
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_network_is_the_one_the_manifest_and_the_docs_name() {
        let weights = FILES[0].1;
        assert_eq!(checkpoint::sha256_hex(weights), WEIGHTS_SHA256);
        let manifest: serde_json::Value = serde_json::from_slice(FILES[1].1).unwrap();
        assert_eq!(manifest["weights_sha256"], WEIGHTS_SHA256);
        // 1,000 iterations, then 100, 400 and 150 more resumed: distillation throughout.
        assert_eq!(
            manifest["algos"],
            serde_json::json!(["distill", "distill", "distill", "distill"])
        );
        assert_eq!(manifest["iterations"], 1650);
        assert_eq!(manifest["train"]["imitate_depth"], IMITATE_DEPTH);
        let docs = include_str!("../../../docs/pretrained.md");
        assert!(docs.contains(WEIGHTS_SHA256), "docs/pretrained.md");
        let script = include_str!("../../../scripts/pretrain");
        assert!(script.contains(&format!("--teacher {TEACHER}")));
        assert!(script.contains(&format!("--imitate-depth {IMITATE_DEPTH}")));
    }

    #[test]
    fn unpacking_loads_the_bundle_and_replaces_an_earlier_model() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let bundle = unpack(&dir).unwrap();
        assert_eq!(bundle.manifest.iterations, 1650);
        assert_eq!(bundle.catalog.len(), 500);
        std::fs::write(dir.join(checkpoint::WEIGHTS), b"damaged").unwrap();
        std::fs::write(dir.join(metarec_neural::adjust::ADJUSTER_FILE), b"{}").unwrap();
        let again = unpack(&dir).unwrap();
        assert_eq!(
            again.manifest.weights_sha256.as_deref(),
            Some(WEIGHTS_SHA256)
        );
        assert!(!dir.join(metarec_neural::adjust::ADJUSTER_FILE).exists());
    }
}
