//! [`EmbeddingCache`]: vectors keyed by (model, text), kept in one file per model.
//!
//! File format: the magic `MRTE1\n`, the dimension (u32 little-endian), then records of a u64
//! FNV-1a hash of the text and `dim` little-endian f32. Written whole beside its name and renamed,
//! so a crash never leaves a torn cache; a damaged cache is rebuilt rather than trusted.

use crate::TextError;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"MRTE1\n";

/// Embeddings of texts for one model.
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    entries: HashMap<u64, Vec<f32>>,
    dirty: bool,
}

/// The cache key of a text.
pub fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl EmbeddingCache {
    /// Opens (or starts) the cache of model `model_id` in `dir`. A file that cannot be read as a
    /// cache of this dimension is ignored and will be overwritten.
    pub fn open(dir: &Path, model_id: &str, dim: usize) -> EmbeddingCache {
        let path = dir.join(format!("embeddings-{model_id}.bin"));
        let mut entries = HashMap::new();
        if let Ok(bytes) = std::fs::read(&path) {
            let record = 8 + 4 * dim;
            let ok = bytes.starts_with(MAGIC)
                && bytes.len() >= MAGIC.len() + 4
                && u32::from_le_bytes(
                    bytes[MAGIC.len()..MAGIC.len() + 4]
                        .try_into()
                        .unwrap_or_default(),
                ) as usize
                    == dim
                && (bytes.len() - MAGIC.len() - 4) % record == 0;
            if ok {
                for chunk in bytes[MAGIC.len() + 4..].chunks_exact(record) {
                    let key = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
                    let v = chunk[8..]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect();
                    entries.insert(key, v);
                }
            }
        }
        EmbeddingCache {
            path,
            dim,
            entries,
            dirty: false,
        }
    }

    /// The cached vector of a text.
    pub fn get(&self, text: &str) -> Option<&[f32]> {
        self.entries.get(&text_hash(text)).map(Vec::as_slice)
    }

    /// Stores a vector.
    pub fn insert(&mut self, text: &str, vector: Vec<f32>) {
        self.entries.insert(text_hash(text), vector);
        self.dirty = true;
    }

    /// Number of cached texts.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cache if it changed.
    pub fn save(&mut self) -> Result<(), TextError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TextError::Io {
                path: parent.to_owned(),
                source: e,
            })?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let mut keys: Vec<&u64> = self.entries.keys().collect();
        keys.sort();
        let result = (|| -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            out.write_all(MAGIC)?;
            out.write_all(&(self.dim as u32).to_le_bytes())?;
            for k in keys {
                out.write_all(&k.to_le_bytes())?;
                for v in &self.entries[k] {
                    out.write_all(&v.to_le_bytes())?;
                }
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            TextError::Io {
                path: self.path.clone(),
                source: e,
            }
        })?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_ignores_a_damaged_file() {
        let dir = std::env::temp_dir().join(format!("metarec-text-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = EmbeddingCache::open(&dir, "m", 2);
        assert!(c.is_empty());
        c.insert("a", vec![1.0, 2.0]);
        c.insert("b", vec![3.0, 4.0]);
        c.save().unwrap();
        let again = EmbeddingCache::open(&dir, "m", 2);
        assert_eq!(again.get("a"), Some(&[1.0f32, 2.0][..]));
        assert_eq!(again.len(), 2);
        // Another dimension, or a truncated file, starts empty instead of returning garbage.
        assert!(EmbeddingCache::open(&dir, "m", 3).is_empty());
        let path = dir.join("embeddings-m.bin");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(EmbeddingCache::open(&dir, "m", 2).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
