//! metarec's text encoder: a sentence-transformers model (all-MiniLM-L6-v2 by default) loaded
//! from a local directory, run on candle, turning item titles into unit vectors.
//!
//! [`TextEncoder::load`] reads `config.json`, `tokenizer.json` and `model.safetensors` (and
//! `sentence_bert_config.json` for the maximum length when present); nothing is downloaded.
//! [`TextEncoder::embed`] tokenizes a batch padded to its longest text (not to the model's
//! maximum: ten times faster on short titles), runs BERT, mean-pools the token states under the
//! attention mask and L2-normalises, as sentence-transformers does. [`EmbeddingCache`] keeps
//! vectors keyed by model and text hash, so a second run is instant and a changed title is
//! re-embedded.
#![deny(missing_docs)]

mod cache;

pub use cache::EmbeddingCache;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Why a model cannot be loaded or run.
#[derive(Debug, Error)]
pub enum TextError {
    /// A model file is missing.
    #[error("{path}: missing ({hint})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },
    /// A model file cannot be read or parsed.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Running the model failed.
    #[error("text encoder: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Tokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Reading or writing the cache failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A loaded sentence encoder.
pub struct TextEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    id: String,
}

const FETCH_HINT: &str =
    "run `metarec data fetch minilm`, or pass the folder of a sentence-transformers model";

fn need(dir: &Path, name: &str) -> Result<PathBuf, TextError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TextError::Missing {
            path,
            hint: FETCH_HINT,
        })
    }
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl TextEncoder {
    /// Loads a model directory.
    pub fn load(dir: &Path) -> Result<TextEncoder, TextError> {
        let config_path = need(dir, "config.json")?;
        let tokenizer_path = need(dir, "tokenizer.json")?;
        let weights_path = need(dir, "model.safetensors")?;
        let invalid = |path: &Path, reason: String| TextError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| invalid(&config_path, e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| invalid(&config_path, format!("not a BERT config: {e}")))?;
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(256, |n| n as usize)
            .min(config.max_position_embeddings);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(&tokenizer_path, format!("not a tokenizer: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| invalid(&tokenizer_path, e.to_string()))?;
        let weights = std::fs::read(&weights_path).map_err(|e| TextError::Io {
            path: weights_path.clone(),
            source: e,
        })?;
        // The model's identity for caches: a hash of its weights and configuration.
        let id = format!(
            "{:016x}",
            fnv(&weights, fnv(config_text.as_bytes(), 0xcbf2_9ce4_8422_2325))
        );
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| invalid(&weights_path, format!("not a safetensors file: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            invalid(
                &weights_path,
                format!("weights do not fit config.json: {e}"),
            )
        })?;
        Ok(TextEncoder {
            model,
            tokenizer,
            dim: config.hidden_size,
            id,
        })
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// A stable identifier of the model (hash of weights and configuration).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Embeds a batch of texts: unit vectors, one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TextError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        let n = encodings.len();
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend(e.get_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().copied());
        }
        let ids = Tensor::from_vec(ids, (n, len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (n, len), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let states = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens only, then unit length.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}
