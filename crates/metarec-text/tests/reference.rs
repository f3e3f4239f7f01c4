//! Embeddings against reference vectors from Python sentence-transformers (see
//! `tests/data/make_reference.py` for the script and versions).

use metarec_text::TextEncoder;
use std::path::{Path, PathBuf};

fn model_dir() -> Option<PathBuf> {
    let data = std::env::var_os("METAREC_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    let dir = data.join("minilm");
    if dir.join(".complete").is_file() {
        return Some(dir);
    }
    // CI fetches the model (scripts/test), so there its absence is a failure, not a skip.
    assert!(
        std::env::var_os("CI").is_none(),
        "the MiniLM model is missing from {}: run `metarec data fetch minilm`",
        dir.display()
    );
    eprintln!(
        "SKIPPED: the MiniLM model is not in {}; run `cargo run -p metarec -- data fetch minilm` to run this test",
        dir.display()
    );
    None
}

#[test]
fn embeddings_match_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let encoder = TextEncoder::load(&dir).unwrap();
    assert_eq!(encoder.dim(), 384);
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/reference.json")).unwrap();
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    // One batch, so texts of different lengths share padding: pooling must ignore the pads.
    let ours = encoder.embed(&sentences).unwrap();
    for (i, expected) in reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let expected: Vec<f32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos: f32 = ours[i].iter().zip(&expected).map(|(a, b)| a * b).sum();
        assert!(cos >= 0.9999, "`{}`: cosine {cos}", sentences[i]);
        let norm: f32 = ours[i].iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    // The same text alone gives the same vector as in a padded batch.
    let alone = encoder.embed(&[sentences[0]]).unwrap();
    let cos: f32 = alone[0].iter().zip(&ours[0]).map(|(a, b)| a * b).sum();
    assert!(cos > 0.99999, "{cos}");
}

#[test]
fn a_missing_model_is_a_clear_error() {
    let err = TextEncoder::load(Path::new("/nonexistent-model-dir"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("metarec data fetch minilm"),
        "{err}"
    );
}
