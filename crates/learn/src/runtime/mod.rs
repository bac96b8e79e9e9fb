//! The runtime predictor (performance model §4.3a): predicts a job's run time
//! from what is known when it is submitted, with a gradient-boosted tree
//! ensemble ([`crate::gbt`]) on `ln(1 + run seconds)`.
//!
//! # Features (all known at submit time)
//! The job's own fields — requested time, processors and memory, user, group,
//! executable, queue, submit hour and weekday — and the submitting user's
//! history: jobs of that user that had **ended** (submit + wait + run in the
//! trace, or a simulator outcome) before this submit. See [`FEATURE_NAMES`].
//!
//! # Baselines
//! * `request`: the user's requested time (SWF field 9), when the trace has it;
//! * `last2`: the mean of the user's last two ended runtimes (Tsafrir et al.),
//!   falling back to the request, else the training median, for a user with no history.

mod policy;

use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use policy::{EstimateSource, PredictedEstimates};

use crate::gbt::{Gbt, GbtConfig};
use crate::LearnError;

/// One SWF job with the fields the predictor uses (times in seconds; `-1` = missing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// SWF job number.
    pub job: u64,
    /// Submit time.
    pub submit: i64,
    /// Wait time in the trace (`-1` = unknown, treated as 0).
    pub wait: i64,
    /// Actual run time.
    pub run: i64,
    /// Processors (max of allocated and requested).
    pub procs: i64,
    /// Requested time.
    pub req_time: i64,
    /// Requested memory (KB per processor).
    pub req_mem: i64,
    /// User id.
    pub user: i64,
    /// Group id.
    pub group: i64,
    /// Executable number.
    pub executable: i64,
    /// Queue number.
    pub queue: i64,
}

impl JobRecord {
    /// When the job ended in the trace.
    pub fn end(&self) -> i64 {
        self.submit + self.wait.max(0) + self.run
    }
}

/// Read an `.swf` / `.swf.gz` trace keeping exactly the jobs the simulator
/// keeps (run > 0, processors > 0, submit ≥ 0), stable-sorted by submit time,
/// so index `i` here is `TaskId(i)` of `llmchain_sim::swf::read` on the same file.
pub fn read_swf_jobs(path: &Path) -> Result<Vec<JobRecord>, LearnError> {
    let io = |source| LearnError::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let bytes = llmchain_sim::swf::read_bytes(path).map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with(';') {
            continue;
        }
        let (j, _) = llmchain_sim::swf::SwfJob::parse_line(t).map_err(|(field, reason)| {
            LearnError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: match field {
                    Some(f) => format!(
                        "SWF field {} ({}): {reason}",
                        f + 1,
                        llmchain_sim::swf::FIELD_NAMES[f]
                    ),
                    None => reason,
                },
            }
        })?;
        if j.submit < 0 || j.run <= 0 || j.procs() <= 0 {
            continue;
        }
        jobs.push(JobRecord {
            job: if j.job >= 0 {
                j.job as u64
            } else {
                (i + 1) as u64
            },
            submit: j.submit,
            wait: j.wait,
            run: j.run,
            procs: j.procs(),
            req_time: j.req_time,
            req_mem: j.req_mem,
            user: j.user,
            group: j.group,
            executable: j.executable,
            queue: j.queue,
        });
    }
    jobs.sort_by_key(|j| j.submit);
    Ok(jobs)
}

/// Names of the predictor's features, in order.
pub const FEATURE_NAMES: [&str; 18] = [
    "ln1p(requested time)",
    "ln1p(processors)",
    "ln1p(requested memory)",
    "user",
    "group",
    "executable",
    "queue",
    "submit hour",
    "submit weekday",
    "ln1p(user history count)",
    "ln1p(user last runtime)",
    "ln1p(user last-two mean)",
    "user mean ln1p(runtime), last 8",
    "user last runtime / its request",
    "same request as user's last job",
    "ln1p(user last runtime, same executable)",
    "user max ln1p(runtime), last 8",
    "user mean ln(runtime/request), last 8",
];

/// Number of features.
pub const NFEAT: usize = FEATURE_NAMES.len();

/// One ended job in a user's history.
#[derive(Copy, Clone, Debug, PartialEq)]
struct Past {
    run: f32,
    req: f32,
    exe: i64,
}

/// Per-user history of ended jobs, most recent last (at most 8 kept).
#[derive(Clone, Debug, Default)]
pub struct UserHistory {
    users: BTreeMap<i64, (u64, VecDeque<Past>)>,
}

impl UserHistory {
    /// Record that a job of `user` ended after running `run_s` seconds
    /// (with request `req_s`, `-1` if unknown, and executable `exe`).
    pub fn push(&mut self, user: i64, run_s: f64, req_s: f64, exe: i64) {
        let e = self.users.entry(user).or_default();
        e.0 += 1;
        e.1.push_back(Past {
            run: run_s as f32,
            req: req_s as f32,
            exe,
        });
        if e.1.len() > 8 {
            e.1.pop_front();
        }
    }

    /// Mean of the user's last two ended runtimes (one if only one), seconds.
    pub fn last2(&self, user: i64) -> Option<f64> {
        let (_, h) = self.users.get(&user)?;
        let k = h.len().min(2);
        if k == 0 {
            return None;
        }
        Some(h.iter().rev().take(k).map(|p| p.run as f64).sum::<f64>() / k as f64)
    }

    /// The feature vector of a job about to be submitted.
    pub fn features(&self, j: &JobRecord) -> [f32; NFEAT] {
        let l = |v: f64| if v < 0.0 { -1.0 } else { (v + 1.0).ln() as f32 };
        let mut f = [0f32; NFEAT];
        f[0] = l(j.req_time as f64);
        f[1] = l(j.procs as f64);
        f[2] = l(j.req_mem as f64);
        f[3] = j.user as f32;
        f[4] = j.group as f32;
        f[5] = j.executable as f32;
        f[6] = j.queue as f32;
        f[7] = ((j.submit / 3600) % 24) as f32;
        f[8] = ((j.submit / 86400) % 7) as f32;
        let (count, h) = match self.users.get(&j.user) {
            Some((c, h)) => (*c, Some(h)),
            None => (0, None),
        };
        f[9] = (count as f32 + 1.0).ln();
        match h.filter(|h| !h.is_empty()) {
            None => {
                for v in &mut f[10..17] {
                    *v = -1.0;
                }
                f[17] = 0.0;
            }
            Some(h) => {
                let last = h.back().copied().unwrap_or(Past {
                    run: 0.0,
                    req: -1.0,
                    exe: -1,
                });
                f[10] = l(last.run as f64);
                f[11] = l(self.last2(j.user).unwrap_or(0.0));
                f[12] = h.iter().map(|p| l(p.run as f64)).sum::<f32>() / h.len() as f32;
                f[13] = if last.req > 0.0 {
                    last.run / last.req
                } else {
                    -1.0
                };
                f[14] = if last.req > 0.0 && (last.req - j.req_time as f32).abs() < 0.5 {
                    1.0
                } else {
                    0.0
                };
                f[15] = h
                    .iter()
                    .rev()
                    .find(|p| p.exe == j.executable)
                    .map(|p| l(p.run as f64))
                    .unwrap_or(-1.0);
                f[16] = h.iter().map(|p| l(p.run as f64)).fold(f32::MIN, f32::max);
                let acc: Vec<f32> = h
                    .iter()
                    .filter(|p| p.req > 0.0)
                    .map(|p| (p.run.max(1.0) / p.req).ln())
                    .collect();
                f[17] = if acc.is_empty() {
                    0.0
                } else {
                    acc.iter().sum::<f32>() / acc.len() as f32
                };
            }
        }
        f
    }
}

/// Features of every job of a trace, in order, where each job's user history
/// holds exactly the jobs that ended (in the trace) at or before its submit.
/// Also returns the last-two baseline per job (seconds, `None` without history).
pub fn trace_features(jobs: &[JobRecord]) -> (Vec<[f32; NFEAT]>, Vec<Option<f64>>) {
    let mut hist = UserHistory::default();
    // Min-heap of (end, index) of submitted, not yet ended jobs.
    let mut pending: BinaryHeap<std::cmp::Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut feats = Vec::with_capacity(jobs.len());
    let mut last2 = Vec::with_capacity(jobs.len());
    for (i, j) in jobs.iter().enumerate() {
        while let Some(std::cmp::Reverse((end, k))) = pending.peek().copied() {
            if end > j.submit {
                break;
            }
            pending.pop();
            let p = &jobs[k];
            hist.push(p.user, p.run as f64, p.req_time as f64, p.executable);
        }
        feats.push(hist.features(j));
        last2.push(hist.last2(j.user));
        pending.push(std::cmp::Reverse((j.end(), i)));
    }
    (feats, last2)
}

/// The trained predictor: the ensemble plus the fallbacks it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimePredictor {
    /// The ensemble, on `ln(1 + run seconds)`.
    pub gbt: Gbt,
    /// Median training runtime (seconds), used when nothing else is known.
    pub median_run: f64,
}

impl RuntimePredictor {
    /// Predicted runtime in seconds for a feature row; never above the
    /// request when one is given (features\[0\] ≥ 0), never below 1 s.
    pub fn predict_secs(&self, f: &[f32; NFEAT]) -> f64 {
        let p = (self.gbt.predict(f) as f64).exp() - 1.0;
        let mut p = p.max(1.0);
        if f[0] >= 0.0 {
            let req = (f[0] as f64).exp() - 1.0;
            if req >= 1.0 {
                p = p.min(req);
            }
        }
        p
    }
}

/// Chronological split of a trace for the predictor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChronoSplit {
    /// Training job index range `[start, end)` (submit order).
    pub train: (usize, usize),
    /// Test job index range.
    pub test: (usize, usize),
    /// Training jobs dropped because they ended after the first test submit
    /// (their runtime was not yet known then).
    pub train_dropped_unfinished: usize,
    /// SWF job numbers at the range bounds (first/last of train and of test).
    pub job_numbers: [u64; 4],
}

/// Mean absolute errors (seconds) on the test range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaeReport {
    /// Trace file.
    pub trace: String,
    /// The split used.
    pub split: ChronoSplit,
    /// Test jobs.
    pub n_test: usize,
    /// MAE of the trained predictor.
    pub mae_model: f64,
    /// MAE of the user's requested time (`None` when the trace has none).
    pub mae_request: Option<f64>,
    /// MAE of the user's last-two mean (fallback: request, else training median).
    pub mae_last2: f64,
    /// MAE of always predicting the training median.
    pub mae_median: f64,
    /// Training MSE (log space) after the first and the last tree.
    pub train_loss_first_last: (f32, f32),
}

/// Train on the first `train_frac` of `jobs` (chronological) and report MAE on the rest.
pub fn train_and_evaluate(
    trace: &str,
    jobs: &[JobRecord],
    train_frac: f64,
    cfg: &GbtConfig,
) -> Result<(RuntimePredictor, MaeReport), LearnError> {
    if jobs.len() < 20 {
        return Err(LearnError::Config {
            field: "trace",
            reason: format!("{trace} has only {} usable jobs", jobs.len()),
        });
    }
    if !(0.1..=0.95).contains(&train_frac) {
        return Err(LearnError::Config {
            field: "train_frac",
            reason: format!("{train_frac} is outside 0.1..=0.95"),
        });
    }
    let (feats, last2) = trace_features(jobs);
    let cut = ((jobs.len() as f64) * train_frac).round() as usize;
    let test_start = jobs[cut].submit;
    let train_idx: Vec<usize> = (0..cut).filter(|&i| jobs[i].end() <= test_start).collect();
    let dropped = cut - train_idx.len();
    let mut x = Vec::with_capacity(train_idx.len() * NFEAT);
    let mut y = Vec::with_capacity(train_idx.len());
    for &i in &train_idx {
        x.extend_from_slice(&feats[i]);
        y.push((jobs[i].run as f32 + 1.0).ln());
    }
    let (gbt, curve) = Gbt::fit(&x, NFEAT, &y, cfg);
    let mut runs: Vec<f64> = train_idx.iter().map(|&i| jobs[i].run as f64).collect();
    runs.sort_by(f64::total_cmp);
    let median_run = runs.get(runs.len() / 2).copied().unwrap_or(60.0);
    let pred = RuntimePredictor { gbt, median_run };
    let test: Vec<usize> = (cut..jobs.len()).collect();
    let n = test.len() as f64;
    let mae = |f: &dyn Fn(usize) -> f64| {
        test.iter()
            .map(|&i| (f(i) - jobs[i].run as f64).abs())
            .sum::<f64>()
            / n
    };
    let has_req = test.iter().all(|&i| jobs[i].req_time > 0);
    let report = MaeReport {
        trace: trace.to_string(),
        split: ChronoSplit {
            train: (0, cut),
            test: (cut, jobs.len()),
            train_dropped_unfinished: dropped,
            job_numbers: [
                jobs[0].job,
                jobs[cut - 1].job,
                jobs[cut].job,
                jobs[jobs.len() - 1].job,
            ],
        },
        n_test: test.len(),
        mae_model: mae(&|i| pred.predict_secs(&feats[i])),
        mae_request: has_req.then(|| mae(&|i| jobs[i].req_time as f64)),
        mae_last2: mae(&|i| {
            last2[i].unwrap_or(if jobs[i].req_time > 0 {
                jobs[i].req_time as f64
            } else {
                median_run
            })
        }),
        mae_median: mae(&|_| median_run),
        train_loss_first_last: (
            curve.first().copied().unwrap_or(0.0),
            curve.last().copied().unwrap_or(0.0),
        ),
    };
    Ok((pred, report))
}

/// Path of a trace relative to the repository root, for reports.
pub fn display_path(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job: u64, submit: i64, run: i64, user: i64, req: i64) -> JobRecord {
        JobRecord {
            job,
            submit,
            wait: 0,
            run,
            procs: 1,
            req_time: req,
            req_mem: -1,
            user,
            group: 1,
            executable: -1,
            queue: 1,
        }
    }

    #[test]
    fn history_holds_only_jobs_ended_before_submit() {
        // Job 0 (user 1) ends at 100; job 1 (user 1) is submitted at 50: no history yet.
        // Job 2 (user 1) at 150 sees job 0 only (job 1 ends at 50 + 500).
        let jobs = vec![
            job(1, 0, 100, 1, 200),
            job(2, 50, 500, 1, 600),
            job(3, 150, 10, 1, 20),
        ];
        let (f, last2) = trace_features(&jobs);
        assert_eq!(last2, vec![None, None, Some(100.0)]);
        assert_eq!(f[1][10], -1.0);
        assert!((f[2][10] - (101f32).ln()).abs() < 1e-6);
        assert_eq!(f[2][9], (2f32).ln());
    }

    #[test]
    fn predictor_learns_user_specific_runtimes() {
        // User 1 always runs 100 s, user 2 always 5000 s; both request 10000 s.
        let jobs: Vec<JobRecord> = (0..400)
            .map(|i| {
                let u = 1 + (i % 2);
                job(
                    i as u64,
                    i * 10_000,
                    if u == 1 { 100 } else { 5000 },
                    u,
                    10_000,
                )
            })
            .collect();
        let cfg = GbtConfig {
            trees: 150,
            depth: 3,
            learning_rate: 0.2,
            ..GbtConfig::default()
        };
        let (_, r) = train_and_evaluate("synthetic", &jobs, 0.7, &cfg).unwrap();
        assert!(r.mae_model < 50.0, "{r:?}");
        assert!(r.mae_request.unwrap() > 5000.0);
        assert!(r.train_loss_first_last.1 < r.train_loss_first_last.0);
        assert_eq!(r.split.test, (280, 400));
    }
}

impl RuntimePredictor {
    /// Save `dir/weights.safetensors` (tree arrays) and `dir/card.json`.
    pub fn save(&self, dir: &Path, card: &crate::card::ModelCard) -> Result<(), LearnError> {
        std::fs::create_dir_all(dir).map_err(|source| LearnError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let (feature, threshold, left, right, value, roots) = self.gbt.to_arrays();
        let mut f = crate::lm::WeightMap::new();
        f.insert("threshold".into(), (vec![threshold.len()], threshold));
        f.insert("value".into(), (vec![value.len()], value));
        f.insert("base".into(), (vec![1], vec![self.gbt.base]));
        f.insert("median_run".into(), (vec![1], vec![self.median_run as f32]));
        let mut u = BTreeMap::new();
        u.insert("feature".to_string(), feature);
        u.insert("left".to_string(), left);
        u.insert("right".to_string(), right);
        u.insert("roots".to_string(), roots);
        u.insert("n_features".to_string(), vec![self.gbt.n_features as u32]);
        crate::card::write_weights(&dir.join(crate::card::WEIGHTS_FILE), &f, &u)?;
        card.write(dir)
    }

    /// Load from a model directory written by [`RuntimePredictor::save`].
    pub fn load(dir: &Path) -> Result<RuntimePredictor, LearnError> {
        let path = dir.join(crate::card::WEIGHTS_FILE);
        let (f, u) = crate::card::read_all(&path)?;
        let bad = |reason: String| LearnError::Model {
            path: path.clone(),
            reason,
        };
        let fv = |n: &str| {
            f.get(n)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| bad(format!("missing tensor `{n}`")))
        };
        let uv = |n: &str| {
            u.get(n)
                .cloned()
                .ok_or_else(|| bad(format!("missing tensor `{n}`")))
        };
        let nf = *uv("n_features")?
            .first()
            .ok_or_else(|| bad("empty `n_features`".into()))? as usize;
        if nf != NFEAT {
            return Err(bad(format!(
                "trained on {nf} features, this build computes {NFEAT}"
            )));
        }
        let base = *fv("base")?
            .first()
            .ok_or_else(|| bad("empty `base`".into()))?;
        let median = *fv("median_run")?
            .first()
            .ok_or_else(|| bad("empty `median_run`".into()))? as f64;
        let gbt = Gbt::from_arrays(
            nf,
            base,
            uv("feature")?,
            fv("threshold")?,
            uv("left")?,
            uv("right")?,
            fv("value")?,
            uv("roots")?,
        )
        .map_err(bad)?;
        Ok(RuntimePredictor {
            gbt,
            median_run: median,
        })
    }
}

/// Bounded slowdown of one policy with one estimate source on a test range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BsldRow {
    /// Policy name as run (e.g. `sjf+easy+pred`).
    pub policy: String,
    /// Mean bounded slowdown.
    pub bsld: f64,
    /// Mean wait, seconds.
    pub wait: f64,
}

/// Predictor figures for one trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStudy {
    /// MAE comparison.
    pub mae: MaeReport,
    /// Bounded slowdown on the test range (one sequence: all test jobs).
    pub bsld: Vec<BsldRow>,
    /// Notes (e.g. a trace without requested times).
    pub notes: Vec<String>,
}

/// History of every job of `jobs[..upto]` that ended by `at`.
pub fn history_before(jobs: &[JobRecord], upto: usize, at: i64) -> UserHistory {
    let mut ended: Vec<&JobRecord> = jobs[..upto].iter().filter(|j| j.end() <= at).collect();
    ended.sort_by_key(|j| j.end());
    let mut h = UserHistory::default();
    for j in ended {
        h.push(j.user, j.run as f64, j.req_time as f64, j.executable);
    }
    h
}

/// Train on the first 70% of `trace` and measure MAE and the bounded-slowdown
/// effect of each estimate source with `policies` (e.g. `sjf+easy`) on the rest.
pub fn study_trace(
    trace: &Path,
    policies: &[&str],
    cfg: &GbtConfig,
) -> Result<(RuntimePredictor, TraceStudy), LearnError> {
    let jobs = read_swf_jobs(trace)?;
    let label = display_path(trace);
    let (pred, mae) = train_and_evaluate(&label, &jobs, 0.7, cfg)?;
    let w = llmchain_sim::swf::read(trace, &llmchain_sim::SwfOptions::default())
        .map_err(LearnError::sim(format!("loading {label}")))?;
    if w.tasks.len() != jobs.len() || w.tasks.iter().zip(&jobs).any(|(t, j)| t.source_id != j.job) {
        return Err(LearnError::Model {
            path: trace.to_path_buf(),
            reason: "the simulator's task list and the predictor's job list disagree".into(),
        });
    }
    let (cut, end) = mae.split.test;
    let test = llmchain_sim::sample::window(&w, 0, cut, end - cut, 0);
    let hist = history_before(&jobs, cut, jobs[cut].submit);
    let mut notes = Vec::new();
    if w.meta.perfect_estimates || mae.mae_request.is_none() {
        notes.push("the trace has no requested times: `req` rows use the actual run time (perfect estimates)".into());
    }
    let mut rows = Vec::new();
    for spec in policies {
        for src in [
            EstimateSource::Request,
            EstimateSource::Last2,
            EstimateSource::Model(Box::new(pred.clone())),
        ] {
            let inner = llmchain_policy::build(spec, &llmchain_policy::BuildCtx::default())
                .map_err(|e| LearnError::Policy {
                    spec: spec.to_string(),
                    reason: e.to_string(),
                })?;
            let mut p = PredictedEstimates::new(inner, src, jobs[cut..end].to_vec(), hist.clone());
            let r = llmchain_sim::run(&test, &mut p, &llmchain_sim::SimConfig::default())
                .map_err(LearnError::sim(format!("running {spec} on {label}")))?;
            use llmchain_core::Policy as _;
            rows.push(BsldRow {
                policy: p.name().to_string(),
                bsld: r.metrics.bounded_slowdown.mean,
                wait: r.metrics.wait.mean,
            });
        }
    }
    Ok((
        pred,
        TraceStudy {
            mae,
            bsld: rows,
            notes,
        },
    ))
}

/// The runtime-predictor study on the repository's traces with user ids
/// (HPC2N excerpt, NASA iPSC); saves the HPC2N predictor as
/// `out/runtime-hpc2n/` when `out` is given. Paths are relative to the repository root.
pub fn report_runtime_predictor(out: Option<&Path>) -> Result<Vec<TraceStudy>, LearnError> {
    let t0 = std::time::Instant::now();
    let cfg = GbtConfig::default();
    let policies = ["sjf+easy", "fcfs+easy"];
    let mut studies = Vec::new();
    let mut saved = None;
    for trace in [
        "data/traces/alea-hpc2n-excerpt.swf",
        "data/traces/NASA-iPSC-1993-3.1-cln.swf.gz",
    ] {
        let (pred, st) = study_trace(Path::new(trace), &policies, &cfg)?;
        if saved.is_none() {
            saved = Some((pred, st.clone()));
        }
        studies.push(st);
    }
    if let (Some(dir), Some((pred, st))) = (out, saved) {
        let mut metrics = BTreeMap::new();
        metrics.insert("mae_model_s".to_string(), st.mae.mae_model);
        metrics.insert("mae_last2_s".to_string(), st.mae.mae_last2);
        if let Some(r) = st.mae.mae_request {
            metrics.insert("mae_request_s".to_string(), r);
        }
        for row in &st.bsld {
            metrics.insert(format!("bsld_{}", row.policy), row.bsld);
        }
        let src = "swf:data/traces/alea-hpc2n-excerpt.swf".to_string();
        let card = crate::card::ModelCard {
            name: "runtime-hpc2n".into(),
            kind: crate::card::KIND_RUNTIME.into(),
            created_by: format!("llmchain-learn {}", env!("CARGO_PKG_VERSION")),
            git_commit: crate::card::git_commit(),
            seed: 0,
            config: serde_json::to_value(&cfg).unwrap_or(serde_json::Value::Null),
            shape: None,
            data: crate::card::DataCard {
                train: vec![crate::card::JobRange { source: src.clone(), start: st.mae.split.train.0, end: st.mae.split.train.1 }],
                validation: vec![],
                test: vec![crate::card::JobRange { source: src, start: st.mae.split.test.0, end: st.mae.split.test.1 }],
                notes: vec![
                    format!("features: {}", FEATURE_NAMES.join("; ")),
                    "target ln(1 + run seconds); chronological split 70/30; training jobs still running at the first test submit dropped".into(),
                ],
            },
            metrics,
            train_seconds: t0.elapsed().as_secs_f64(),
            reproduce: "cargo run --release -p llmchain-learn --example learn -- runtime models".into(),
        };
        pred.save(&dir.join("runtime-hpc2n"), &card)?;
    }
    Ok(studies)
}
