//! Model cards (`card.json`) and weight files (`weights.safetensors`), and
//! the registry: one directory per model under a root (`models/<name>/`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::lm::{LmShape, WeightMap};
use crate::LearnError;

/// File name of the card inside a model directory.
pub const CARD_FILE: &str = "card.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Card kind of a scheduling LM.
pub const KIND_SCHED_LM: &str = "sched-lm";
/// Card kind of a runtime predictor.
pub const KIND_RUNTIME: &str = "runtime-predictor";

/// A window of consecutive jobs of a workload used by a split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRange {
    /// Workload source (`swf:...`, `deeprm:...`).
    pub source: String,
    /// First job index (TaskId in the whole workload), inclusive.
    pub start: usize,
    /// One past the last job index.
    pub end: usize,
}

/// What a model was trained, validated and tested on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataCard {
    /// Training job ranges.
    pub train: Vec<JobRange>,
    /// Validation job ranges.
    pub validation: Vec<JobRange>,
    /// Test / evaluation job ranges (never overlapping the training ones on the same source).
    pub test: Vec<JobRange>,
    /// Free-form notes (teacher, protocol, ...).
    pub notes: Vec<String>,
}

/// The JSON card saved next to every model's weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Registry name (the directory name).
    pub name: String,
    /// [`KIND_SCHED_LM`] or [`KIND_RUNTIME`].
    pub kind: String,
    /// `llmchain-learn <version>`.
    pub created_by: String,
    /// `git rev-parse HEAD` of the tree that trained it (with `-dirty` when modified), if known.
    pub git_commit: Option<String>,
    /// Training seed.
    pub seed: u64,
    /// Full training configuration.
    pub config: serde_json::Value,
    /// Network sizes (scheduling LM only).
    pub shape: Option<LmShape>,
    /// Data splits.
    pub data: DataCard,
    /// Named figures (losses, bounded slowdowns, MAE, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Training wall time, seconds (informational, not reproducible).
    pub train_seconds: f64,
    /// The command that reproduces it.
    pub reproduce: String,
}

impl ModelCard {
    /// The LM shape when this is a scheduling LM card.
    pub fn lm_shape(&self) -> Option<LmShape> {
        (self.kind == KIND_SCHED_LM)
            .then(|| self.shape.clone())
            .flatten()
    }

    /// Read `dir/card.json`.
    pub fn read(dir: &Path) -> Result<ModelCard, LearnError> {
        let path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| LearnError::Io {
            what: "cannot read",
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LearnError::Json { path, source })
    }

    /// Write `dir/card.json` (creating `dir`), via a temporary file and rename.
    pub fn write(&self, dir: &Path) -> Result<(), LearnError> {
        std::fs::create_dir_all(dir).map_err(|source| LearnError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(CARD_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|source| LearnError::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, text.as_bytes())
    }
}

/// Write bytes via `path.tmp` + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LearnError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|source| LearnError::Io {
        what: "cannot write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| LearnError::Io {
        what: "cannot rename into",
        path: path.to_path_buf(),
        source,
    })
}

/// The current git commit of the working tree, if git can tell.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut c = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        c.push_str("-dirty");
    }
    Some(c)
}

/// Save f32 tensors (`name → (shape, values)`) and u32 tensors as safetensors.
pub fn write_weights(
    path: &Path,
    f32s: &WeightMap,
    u32s: &BTreeMap<String, Vec<u32>>,
) -> Result<(), LearnError> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    let ctx = |what: &str| LearnError::candle(format!("{what} {}", path.display()));
    for (name, (shape, vals)) in f32s {
        let t =
            Tensor::from_slice(vals, shape.as_slice(), &Device::Cpu).map_err(ctx("tensor for"))?;
        map.insert(name.clone(), t);
    }
    for (name, vals) in u32s {
        let t = Tensor::from_slice(vals, vals.len(), &Device::Cpu).map_err(ctx("tensor for"))?;
        map.insert(name.clone(), t);
    }
    // candle writes through a private temporary file (mode 0600); copy the
    // bytes so the shipped file gets the usual permissions.
    let dir = tempfile_dir(path);
    let tmp = dir.join(".weights-save.tmp");
    candle_core::safetensors::save(&map, &tmp).map_err(ctx("cannot write"))?;
    let bytes = std::fs::read(&tmp).map_err(|source| LearnError::Io {
        what: "cannot read",
        path: tmp.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(&tmp);
    write_atomic(path, &bytes)
}

fn tempfile_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Read every f32 tensor of a safetensors file.
pub fn read_weights(path: &Path) -> Result<WeightMap, LearnError> {
    Ok(read_all(path)?.0)
}

/// Read a safetensors file: f32 tensors and u32 tensors (flattened).
pub fn read_all(path: &Path) -> Result<(WeightMap, BTreeMap<String, Vec<u32>>), LearnError> {
    if !path.exists() {
        return Err(LearnError::Model {
            path: path.to_path_buf(),
            reason: "file not found".into(),
        });
    }
    let ctx = |what: &str| LearnError::candle(format!("{what} {}", path.display()));
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(ctx("cannot read"))?;
    split_tensors(path, tensors)
}

/// Read safetensors bytes (e.g. compiled into the binary); `origin` names them in errors.
pub fn read_buffer(
    origin: &Path,
    bytes: &[u8],
) -> Result<(WeightMap, BTreeMap<String, Vec<u32>>), LearnError> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(
        LearnError::candle(format!("cannot read {}", origin.display())),
    )?;
    split_tensors(origin, tensors)
}

fn split_tensors(
    path: &Path,
    tensors: HashMap<String, Tensor>,
) -> Result<(WeightMap, BTreeMap<String, Vec<u32>>), LearnError> {
    let ctx = |what: &str| LearnError::candle(format!("{what} {}", path.display()));
    let mut f = WeightMap::new();
    let mut u = BTreeMap::new();
    for (name, t) in tensors {
        let flat = t.flatten_all().map_err(ctx("bad tensor in"))?;
        match t.dtype() {
            DType::F32 => {
                f.insert(
                    name,
                    (
                        t.dims().to_vec(),
                        flat.to_vec1::<f32>().map_err(ctx("bad tensor in"))?,
                    ),
                );
            }
            DType::U32 => {
                u.insert(name, flat.to_vec1::<u32>().map_err(ctx("bad tensor in"))?);
            }
            other => {
                return Err(LearnError::Model {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{name}` has dtype {other:?}"),
                })
            }
        }
    }
    Ok((f, u))
}

/// Names of the models under `root` (directories holding a `card.json`), sorted.
pub fn list_models(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(CARD_FILE).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// A model loaded from the registry.
#[derive(Clone, Debug)]
pub enum LoadedModel {
    /// A scheduling LM.
    SchedLm(crate::lm::SchedLm),
    /// A runtime predictor.
    Runtime(crate::runtime::RuntimePredictor, ModelCard),
    /// A per-window policy selector (`kernel:auto`).
    AutoSelect(crate::auto::AutoModel),
}

/// The repository's `models/` directory (where shipped models live), or
/// `$LLMCHAIN_MODELS` when set.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("LLMCHAIN_MODELS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("models"),
    }
}

/// Load model `name` from `root/<name>/`. Unknown names list what is there.
pub fn load_by_name(root: &Path, name: &str) -> Result<LoadedModel, LearnError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    let dir = root.join(name);
    if !valid || !dir.join(CARD_FILE).is_file() {
        return Err(LearnError::UnknownModel {
            name: name.to_string(),
            root: root.to_path_buf(),
            available: list_models(root).join(", "),
        });
    }
    let card = ModelCard::read(&dir)?;
    match card.kind.as_str() {
        KIND_SCHED_LM => Ok(LoadedModel::SchedLm(crate::lm::SchedLm::load(&dir)?)),
        KIND_RUNTIME => Ok(LoadedModel::Runtime(
            crate::runtime::RuntimePredictor::load(&dir)?,
            card,
        )),
        crate::auto::KIND_AUTO => Ok(LoadedModel::AutoSelect(crate::auto::AutoModel::load(&dir)?)),
        other => Err(LearnError::Model {
            path: dir,
            reason: format!("unknown card kind `{other}`"),
        }),
    }
}
