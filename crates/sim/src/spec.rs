//! [`WorkloadSpec`]: the `--workload` strings (`swf:PATH`, `deeprm:load=1.1`,
//! `seed-example`, `tasks:FILE`) and [`load`], which turns one into a [`Workload`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::deeprm::DeepRmConfig;
use crate::swf::SwfOptions;
use crate::{deeprm, seed_example, swf, tasklist, SimError, Workload};

/// The valid workload spec forms, for error messages and `--help`.
pub const VALID_SPECS: &str =
    "swf:PATH (.swf or .swf.gz), deeprm:load=L[,jobs=N][,cap=R] (L in 0.1..=1.9), \
                               seed-example, tasks:FILE (.json or .csv)";

/// Where a workload comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkloadSpec {
    /// A Standard Workload Format trace (`.swf` or `.swf.gz`).
    Swf {
        /// The file.
        path: PathBuf,
    },
    /// The DeepRM synthetic generator.
    DeepRm(DeepRmConfig),
    /// The seed's worked example (8 CPUs, 16 memory units, 10 tasks).
    SeedExample,
    /// A JSON or CSV task list (see [`crate::tasklist`]).
    Tasks {
        /// The file.
        path: PathBuf,
    },
}

impl WorkloadSpec {
    /// Parse `swf:PATH`, `deeprm:load=1.1[,jobs=N][,cap=R]`, `seed-example` or `tasks:FILE`.
    pub fn parse(s: &str) -> Result<Self, SimError> {
        let err = |reason: String| SimError::Spec {
            spec: s.to_string(),
            reason,
            valid: VALID_SPECS,
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("swf", Some(p)) if !p.is_empty() => Ok(WorkloadSpec::Swf {
                path: PathBuf::from(p),
            }),
            ("tasks", Some(p)) if !p.is_empty() => Ok(WorkloadSpec::Tasks {
                path: PathBuf::from(p),
            }),
            ("swf" | "tasks", _) => Err(err(format!("`{kind}` needs a file path after the colon"))),
            ("seed-example", None) => Ok(WorkloadSpec::SeedExample),
            ("seed-example", Some(_)) => Err(err("`seed-example` takes no arguments".into())),
            ("deeprm", arg) => {
                let mut cfg = DeepRmConfig::default();
                let mut have_load = false;
                for kv in arg.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| err(format!("`{kv}` is not key=value")))?;
                    let bad = |what: &str| err(format!("`{k}={v}`: {what}"));
                    match k {
                        "load" => {
                            cfg.load = v.parse().map_err(|_| bad("not a number"))?;
                            have_load = true;
                        }
                        "jobs" => cfg.jobs = v.parse().map_err(|_| bad("not a whole number"))?,
                        "cap" => cfg.capacity = v.parse().map_err(|_| bad("not a whole number"))?,
                        _ => {
                            return Err(err(format!(
                                "unknown deeprm parameter `{k}` (known: load, jobs, cap)"
                            )))
                        }
                    }
                }
                if !have_load {
                    return Err(err("deeprm needs load=L".into()));
                }
                cfg.validate().map_err(|e| err(e.to_string()))?;
                Ok(WorkloadSpec::DeepRm(cfg))
            }
            _ => Err(err(format!("unknown workload kind `{kind}`"))),
        }
    }
}

impl FromStr for WorkloadSpec {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        WorkloadSpec::parse(s)
    }
}

impl fmt::Display for WorkloadSpec {
    /// The canonical spec string; `parse(spec.to_string())` gives the spec back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadSpec::Swf { path } => write!(f, "swf:{}", path.display()),
            WorkloadSpec::DeepRm(c) => write!(
                f,
                "deeprm:load={},jobs={},cap={}",
                c.load, c.jobs, c.capacity
            ),
            WorkloadSpec::SeedExample => f.write_str("seed-example"),
            WorkloadSpec::Tasks { path } => write!(f, "tasks:{}", path.display()),
        }
    }
}

/// Load (read or generate) the workload a spec names. `seed` drives the
/// generators (ignored for files); `lenient` makes the SWF reader skip and
/// count malformed lines instead of failing.
pub fn load(spec: &WorkloadSpec, seed: u64, lenient: bool) -> Result<Workload, SimError> {
    match spec {
        WorkloadSpec::Swf { path } => swf::read(path, &SwfOptions { lenient }),
        WorkloadSpec::DeepRm(cfg) => deeprm::generate(cfg, seed),
        WorkloadSpec::SeedExample => seed_example::generate(seed),
        WorkloadSpec::Tasks { path } => tasklist::read(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_round_trips() {
        for s in [
            "swf:data/x.swf",
            "tasks:t.json",
            "seed-example",
            "deeprm:load=1.1,jobs=500,cap=10",
        ] {
            let spec = WorkloadSpec::parse(s).unwrap();
            assert_eq!(WorkloadSpec::parse(&spec.to_string()).unwrap(), spec, "{s}");
        }
        let WorkloadSpec::DeepRm(c) = WorkloadSpec::parse("deeprm:load=0.7").unwrap() else {
            panic!()
        };
        assert_eq!((c.load, c.jobs), (0.7, DeepRmConfig::default().jobs));
    }

    #[test]
    fn errors_list_valid_forms() {
        for bad in [
            "",
            "swf",
            "swf:",
            "nope:x",
            "deeprm",
            "deeprm:load=abc",
            "deeprm:load=5",
            "deeprm:x=1",
            "seed-example:3",
        ] {
            let msg = WorkloadSpec::parse(bad).unwrap_err().to_string();
            assert!(
                msg.contains("valid forms") && msg.contains("seed-example"),
                "{bad}: {msg}"
            );
        }
    }
}
