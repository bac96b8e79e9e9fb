//! Evaluation under the RLScheduler protocol: `n` windows of `len` jobs from
//! seeded random starts, mean bounded slowdown per policy (mean over windows
//! of each window's mean), for baselines (`sjf+easy`, ...) and trained
//! models (`lm:<name>` or `lm:<name>+easy`, loaded from the registry).

use std::path::Path;

use llmchain_core::Policy;
use llmchain_policy::{BuildCtx, Mode};
use llmchain_sim::{SimConfig, Workload};
use serde::{Deserialize, Serialize};

use crate::card::{load_by_name, LoadedModel};
use crate::progress::{NoProgress, Progress};
use crate::LearnError;

/// What to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Workload spec (`swf:data/traces/lublin_256.swf`, `deeprm:load=1.1`).
    pub workload: String,
    /// Windows.
    pub sequences: usize,
    /// Jobs per window.
    pub length: usize,
    /// Sampling seed.
    pub seed: u64,
    /// Policy specs: baselines as `llmchain_policy::build` takes them, models
    /// as `lm:<name>[+mode]`, either with `+commit[-easy]` (RLScheduler's semantics).
    pub policies: Vec<String>,
}

/// One policy's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Policy name.
    pub policy: String,
    /// Mean over windows of the window's mean bounded slowdown.
    pub bsld: f64,
    /// Per-window mean bounded slowdown.
    pub per_window: Vec<f64>,
    /// Mean over windows of the mean wait (s).
    pub wait: f64,
    /// Mean over windows of the mean slowdown.
    pub slowdown: f64,
    /// Decisions rejected by the validator, summed.
    pub rejected: u64,
}

/// The evaluation result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The configuration.
    pub config: EvalConfig,
    /// Window starts (job indices) that were evaluated.
    pub windows: Vec<usize>,
    /// Whether the workload's estimates are the actual runtimes.
    pub perfect_estimates: bool,
    /// One row per policy.
    pub rows: Vec<EvalRow>,
}

/// `SPEC+commit-easy` / `SPEC+commit`: SPEC's order under RLScheduler's
/// semantics ([`llmchain_policy::Committed`]), SPEC built by `build`. A
/// scheduling LM's cluster token says whether its order is used with
/// backfilling, so `lm:NAME+commit-easy` builds `lm:NAME+easy` inside (only
/// its order is read); an LM's policy is named as written. `None` when `spec` has
/// no commit suffix (any case).
pub fn build_committed<E>(
    spec: &str,
    build: impl FnOnce(&str) -> Result<Box<dyn Policy + Send>, E>,
    err: impl FnOnce(String) -> E,
) -> Option<Result<Box<dyn Policy + Send>, E>> {
    let spec = spec.trim();
    let (inner, suffix, easy) = [("+commit-easy", true), ("+commit", false)]
        .into_iter()
        .find_map(|(suffix, easy)| {
            let n = spec.len().checked_sub(suffix.len())?;
            (n > 0 && spec.is_char_boundary(n) && spec[n..].eq_ignore_ascii_case(suffix))
                .then(|| (&spec[..n], suffix, easy))
        })?;
    let lm = inner.len() > 3 && inner[..3].eq_ignore_ascii_case("lm:");
    let flagged = easy && lm && !inner.contains('+');
    let built = if flagged {
        build(&format!("{inner}+easy"))
    } else {
        build(inner)
    };
    Some(built.and_then(|p| {
        let p = llmchain_policy::Committed::new(p, easy).map_err(err)?;
        // An LM's policy name leaves out the default (strict) mode: name it as written.
        Ok(Box::new(if lm {
            p.named(format!("{inner}{suffix}"))
        } else {
            p
        }) as Box<dyn Policy + Send>)
    }))
}

/// Build a policy from a spec: `lm:<name>[+mode]` from `models_root`,
/// `SPEC+commit[-easy]` ([`build_committed`]), else a baseline.
pub fn build_policy(spec: &str, models_root: &Path) -> Result<Box<dyn Policy + Send>, LearnError> {
    if let Some(r) = build_committed(
        spec,
        |inner| build_policy(inner, models_root),
        |reason| LearnError::Policy {
            spec: spec.into(),
            reason,
        },
    ) {
        return r;
    }
    if let Some(rest) = spec.strip_prefix("lm:") {
        let (name, mode) = match rest.split_once('+') {
            Some((n, m)) => (
                n,
                Mode::parse(m).ok_or_else(|| LearnError::Policy {
                    spec: spec.into(),
                    reason: format!("unknown mode `{m}` (strict, greedy, easy, cons)"),
                })?,
            ),
            None => (rest, Mode::Strict),
        };
        return match load_by_name(models_root, name)? {
            LoadedModel::SchedLm(m) => Ok(m.boxed_policy(mode)),
            LoadedModel::Runtime(..) | LoadedModel::AutoSelect(..) => Err(LearnError::Policy {
                spec: spec.into(),
                reason: format!("`{name}` is not a scheduling LM"),
            }),
        };
    }
    if spec.starts_with("p:") {
        let (o, mode) = match spec.split_once('+') {
            Some((o, m)) => (o, Mode::parse(m)),
            None => (spec, Some(Mode::Strict)),
        };
        if let (Some(o), Some(mode)) = (crate::lm::train::ParamOrder::parse(o), mode) {
            return Ok(Box::new(llmchain_policy::Scheduler::new(o, mode)));
        }
        return Err(LearnError::Policy {
            spec: spec.into(),
            reason: "expected p:A:B[+mode]".into(),
        });
    }
    llmchain_policy::build(spec, &BuildCtx::default()).map_err(|e| LearnError::Policy {
        spec: spec.into(),
        reason: e.to_string(),
    })
}

/// Run `policies` on the protocol's windows of `w`.
pub fn eval_workload(
    w: &Workload,
    cfg: &EvalConfig,
    models_root: &Path,
) -> Result<EvalReport, LearnError> {
    eval_workload_with(w, cfg, models_root, &mut NoProgress)
}

/// [`eval_workload`], reporting one `evaluation` phase whose steps are
/// (policy, window) runs to `progress`.
pub fn eval_workload_with(
    w: &Workload,
    cfg: &EvalConfig,
    models_root: &Path,
    progress: &mut dyn Progress,
) -> Result<EvalReport, LearnError> {
    let seqs = llmchain_sim::sample(w, cfg.sequences, cfg.length, cfg.seed)
        .map_err(LearnError::sim("sampling evaluation windows"))?;
    let mut rows = Vec::new();
    progress.phase("evaluation", (cfg.policies.len() * seqs.len()) as u64);
    let mut done = 0u64;
    for spec in &cfg.policies {
        let mut per = Vec::new();
        let (mut wait, mut sld, mut rej) = (0.0, 0.0, 0);
        let mut name = spec.clone();
        for s in &seqs {
            let mut p = build_policy(spec, models_root)?;
            name = p.name().to_string();
            let r = llmchain_sim::run(s, &mut p, &SimConfig::default())
                .map_err(LearnError::sim(format!("running {spec}")))?;
            per.push(r.metrics.bounded_slowdown.mean);
            wait += r.metrics.wait.mean;
            sld += r.metrics.slowdown.mean;
            rej += r.metrics.rejected;
            done += 1;
            progress.step(done, &name);
        }
        let n = per.len().max(1) as f64;
        rows.push(EvalRow {
            policy: name,
            bsld: per.iter().sum::<f64>() / n,
            per_window: per,
            wait: wait / n,
            slowdown: sld / n,
            rejected: rej,
        });
    }
    progress.finish("");
    Ok(EvalReport {
        config: cfg.clone(),
        windows: seqs
            .iter()
            .filter_map(|s| s.meta.window.map(|w| w.start))
            .collect(),
        perfect_estimates: w.meta.perfect_estimates,
        rows,
    })
}

/// Load `cfg.workload` and evaluate.
pub fn eval(cfg: &EvalConfig, models_root: &Path) -> Result<EvalReport, LearnError> {
    eval_with(cfg, models_root, &mut NoProgress)
}

/// [`eval`], reporting progress (see [`eval_workload_with`]).
pub fn eval_with(
    cfg: &EvalConfig,
    models_root: &Path,
    progress: &mut dyn Progress,
) -> Result<EvalReport, LearnError> {
    let w = crate::lm::train::load_source(&cfg.workload, cfg.seed)?;
    eval_workload_with(&w, cfg, models_root, progress)
}

/// The report as a plain-text table.
pub fn format_table(r: &EvalReport) -> String {
    let w = r
        .rows
        .iter()
        .map(|row| row.policy.chars().count())
        .max()
        .unwrap_or(0)
        .max(28);
    let mut s = format!(
        "{} — {} windows x {} jobs, seed {}{}\n{:<w$} {:>10} {:>12} {:>10} {:>8}\n",
        r.config.workload,
        r.config.sequences,
        r.config.length,
        r.config.seed,
        if r.perfect_estimates {
            " (perfect estimates)"
        } else {
            ""
        },
        "policy",
        "avg bsld",
        "avg wait s",
        "slowdown",
        "rejected"
    );
    for row in &r.rows {
        s.push_str(&format!(
            "{:<w$} {:>10.2} {:>12.0} {:>10.2} {:>8}\n",
            row.policy, row.bsld, row.wait, row.slowdown, row.rejected
        ));
    }
    s
}
