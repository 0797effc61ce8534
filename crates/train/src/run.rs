//! Run directories: what `mmrf train` writes and `mmrf eval` / `mmrf serve` read.
//!
//! ```text
//! RUN_DIR/run.toml           method, seed, data it was trained on, every setting
//! RUN_DIR/model.safetensors  the network weights
//! RUN_DIR/train_log.jsonl    one line per logged step (learning curve)
//! ```
//! Files are written atomically, so a killed run never leaves a half-written file.

use std::path::{Path, PathBuf};

use burn::prelude::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use mmrf_model::FeatureShape;
use serde::{Deserialize, Serialize};

use crate::TrainError;

pub const MANIFEST_FILE: &str = "run.toml";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TRAIN_LOG_FILE: &str = "train_log.jsonl";

/// `run.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub method: String,
    pub seed: u64,
    /// The data directory it was trained on (absolute when known).
    pub data_dir: PathBuf,
    /// Sizes of the data's feature space; a run refuses data of another shape.
    pub shape: FeatureShape,
    pub train_seconds: f64,
    /// The method's own settings, as a TOML table.
    pub config: toml::Table,
}

impl Manifest {
    /// The manifest of a run of `method` trained on `data` with settings `config`.
    pub fn new<T: Serialize>(
        method: &str,
        seed: u64,
        data: &mmrf_data::Dataset,
        shape: FeatureShape,
        train_seconds: f64,
        config: &T,
    ) -> Manifest {
        Manifest {
            method: method.to_string(),
            seed,
            data_dir: std::fs::canonicalize(&data.dir).unwrap_or(data.dir.clone()),
            shape,
            train_seconds,
            config: to_table(config),
        }
    }

    pub fn read(dir: &Path) -> Result<Manifest, TrainError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))
    }

    pub fn write(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(MANIFEST_FILE);
        let text = toml::to_string_pretty(self).map_err(|e| TrainError::Run(e.to_string()))?;
        mmrf_data::write_atomic(&path, text.as_bytes()).map_err(|e| TrainError::io(&path, e))
    }

    /// The method's settings as a typed config.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, TrainError> {
        T::deserialize(toml::Value::Table(self.config.clone()))
            .map_err(|e| TrainError::Run(format!("{}: [config]: {e}", self.method)))
    }

    /// Refuse data whose feature space differs from the training data's.
    pub fn check_shape(&self, shape: &FeatureShape) -> Result<(), TrainError> {
        if &self.shape != shape {
            let (a, b) = (&self.shape, shape);
            let differs: Vec<String> = [
                ("users", a.n_users, b.n_users),
                ("user features", a.user_dim, b.user_dim),
                ("videos", a.n_videos, b.n_videos),
                ("video features", a.video_dim, b.video_dim),
                ("authors", a.n_authors, b.n_authors),
                ("tags", a.n_tags, b.n_tags),
            ]
            .iter()
            .filter(|(_, x, y)| x != y)
            .map(|(what, x, y)| format!("{x} {what} against {y}"))
            .collect();
            return Err(TrainError::Run(format!(
                "the run was trained on other data ({}: {}): use it with the data it was trained on",
                self.data_dir.display(),
                differs.join(", ")
            )));
        }
        Ok(())
    }
}

/// A method's settings as a TOML table for the manifest.
pub fn to_table<T: Serialize>(config: &T) -> toml::Table {
    match toml::Value::try_from(config) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

/// Write a module's weights to `path` atomically, byte for byte the same for the same
/// weights ([`canonical_safetensors`]).
pub fn save_weights<M: Module>(module: &M, path: &Path) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))?;
    let bytes = canonical_safetensors(&bytes).map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))?;
    mmrf_data::write_atomic(path, &bytes).map_err(|e| TrainError::io(path, e))
}

/// A safetensors file with its JSON header's keys sorted (the tensors' entries and the
/// `__metadata__` map), padded with spaces to 8 bytes as the format allows; the tensor
/// data is untouched (its offsets are relative to the end of the header). burn writes the
/// metadata from a hash map, in an order that changes from process to process, so without
/// this two runs with the same seed could not be compared by checksum.
pub fn canonical_safetensors(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::collections::BTreeMap;
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
        .ok_or("not a safetensors file: shorter than its header length")?;
    let header = bytes
        .get(8..8usize.saturating_add(n))
        .ok_or("not a safetensors file: the header runs past the end")?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("safetensors header: {e}"))?;
    if let Some(meta) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(meta.take()).map_err(|e| format!("safetensors metadata: {e}"))?;
        *meta = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    let mut json = serde_json::to_vec(&entries).map_err(|e| e.to_string())?;
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Build a module and load weights saved by [`save_weights`] into it. `build`'s initial
/// draws from burn's process-wide generator are made holding it, so that they cannot land
/// inside a seeded training run in another thread and change its numbers.
pub fn load_module<M: Module>(build: impl FnOnce() -> M, path: &Path) -> Result<M, TrainError> {
    let module = {
        let _held = mmrf_model::device::held();
        build()
    };
    load_weights(module, path)
}

/// Load weights saved by [`save_weights`] into `module` (every tensor must match).
pub fn load_weights<M: Module>(mut module: M, path: &Path) -> Result<M, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = module
        .load_from(&mut store)
        .map_err(|e| TrainError::Run(format!("{}: {e}", path.display())))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(TrainError::Run(format!(
            "{}: weights do not fit the network: {} errors, missing {:?}",
            path.display(),
            result.errors.len(),
            result.missing
        )));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::canonical_safetensors;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn header_key_order_does_not_change_the_bytes() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let t = r#""w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
        let a = file(
            &format!(r#"{{"__metadata__":{{"format":"pt","producer":"burn"}},{t}}}"#),
            &data,
        );
        let b = file(
            &format!(r#"{{{t},"__metadata__":{{"producer":"burn","format":"pt"}}}}"#),
            &data,
        );
        let (ca, cb) = (canonical_safetensors(&a).unwrap(), canonical_safetensors(&b).unwrap());
        assert_eq!(ca, cb);
        assert_eq!(&ca[ca.len() - 8..], &data, "the data is untouched");
        let n = u64::from_le_bytes(ca[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let text = std::str::from_utf8(&ca[8..8 + n]).unwrap();
        assert!(text.find("format").unwrap() < text.find("producer").unwrap(), "{text}");
        assert_eq!(canonical_safetensors(&ca).unwrap(), ca, "canonical is a fixed point");
        assert!(canonical_safetensors(&a[..10]).is_err());
    }

    #[test]
    fn another_shape_names_the_sizes_that_differ() {
        let shape = mmrf_model::features::FeatureShape {
            n_users: 1000,
            user_dim: 4,
            n_videos: 7388,
            video_dim: 9,
            n_authors: 50,
            n_tags: 30,
        };
        let manifest = super::Manifest {
            method: "bc".into(),
            seed: 7,
            data_dir: "/data/w7".into(),
            shape,
            train_seconds: 1.0,
            config: toml::Table::new(),
        };
        assert!(manifest.check_shape(&shape).is_ok());
        let other = mmrf_model::features::FeatureShape {
            n_users: 1,
            n_tags: 31,
            ..shape
        };
        let e = manifest.check_shape(&other).unwrap_err().to_string();
        assert!(
            e.contains("/data/w7: 1000 users against 1, 30 tags against 31") && !e.contains("FeatureShape"),
            "{e}"
        );
    }
}
