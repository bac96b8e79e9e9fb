//! `kernel:auto` (performance model §4.3b): predict each candidate policy's
//! bounded slowdown on the next window from workload features, and switch to
//! the candidate with the lowest prediction at every window.
//!
//! # Windows
//! A window is [`AutoConfig::window`] consecutive arrivals (task ids are
//! assigned in submission order, so window *k* holds the tasks first seen as
//! the `k·N`-th to `(k+1)·N − 1`-th arrival), or, with
//! [`AutoConfig::seconds`], a span of simulated time. At the first decision
//! point of a window [`AutoPolicy`] computes [`FEATURE_NAMES`] and picks.
//!
//! # Features (decision-time information only)
//! Statistics of the last `N` arrivals seen (rate, offered load by *requested*
//! time, requested processors relative to capacity, requested times), the
//! state now (queue length, queued work, utilisation, remaining work of
//! running tasks by their expected ends, mean wait so far) and what has
//! ended (bounded slowdown and runtime/request of the last `N` completions,
//! known from feedback). Actual run times of unfinished tasks are never used.
//!
//! # Training data ([`train_auto`])
//! Segments of the training job ranges (time-disjoint from the evaluation
//! windows, [`crate::dataset`]) are replayed with a seeded random *script*
//! of candidates per window (so states look like those a switching policy
//! creates). For each window *k* and candidate *c* the segment is replayed
//! with the script's first *k* choices, then *c*, over the arrivals up to the
//! end of window *k + 1*; the target is `ln` of the mean bounded slowdown of
//! window *k*'s tasks. One gradient-boosted tree ensemble ([`crate::gbt`])
//! per candidate regresses it on the features recorded at window *k*'s start.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use llmchain_core::{Decision, Outcome, Policy, PolicyStats, Snapshot, Time};
use llmchain_policy::Mode;
use llmchain_sim::{SimConfig, Workload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::card::{DataCard, JobRange, LoadedModel, ModelCard};
use crate::dataset::{cut_windows, free_ranges};
use crate::gbt::{Gbt, GbtConfig};
use crate::lm::SchedLm;
use crate::LearnError;

/// Registry name of the shipped selector.
pub const MODEL_NAME: &str = "auto-select";
/// Card kind of a policy selector.
pub const KIND_AUTO: &str = "auto-select";

/// Names of the window features, in order.
pub const FEATURE_NAMES: [&str; 14] = [
    "ln arrivals per hour (last N arrivals)",
    "offered load by requested time (last N arrivals)",
    "mean requested processors / capacity (last N)",
    "CV of requested processors (last N)",
    "mean ln requested time (last N)",
    "std of ln requested time (last N)",
    "ln(1 + queue length) now",
    "ln(1 + queued work, capacity-hours, by requested time)",
    "utilisation now",
    "ln(1 + remaining work of running tasks, capacity-hours, by expected end)",
    "ln mean bounded slowdown of the last N completions",
    "mean runtime / request of the last N completions",
    "ln(1 + mean wait so far of queued tasks, hours)",
    "fraction of queued tasks that fit now",
];
/// Number of features.
pub const NF: usize = FEATURE_NAMES.len();

/// The default candidate policies.
pub fn default_candidates() -> Vec<String> {
    [
        "fcfs+easy",
        "sjf+easy",
        "f1+easy",
        "wfp3+easy",
        "unicep+easy",
        "lm:sched-lm+easy",
    ]
    .map(String::from)
    .to_vec()
}

/// Build a non-kernel policy: `lm:NAME[+MODE]` from `root` (the embedded
/// `sched-lm` when `root` has no such model), else a heuristic.
pub fn build_model_policy(spec: &str, root: &Path) -> Result<Box<dyn Policy + Send>, LearnError> {
    let s = spec.trim();
    if s.len() > 3 && s[..3].eq_ignore_ascii_case("lm:") {
        let rest = &s[3..];
        let (name, mode) = match rest.split_once('+') {
            Some((n, m)) => (
                n,
                Mode::parse(&m.to_ascii_lowercase()).ok_or_else(|| LearnError::Policy {
                    spec: spec.into(),
                    reason: format!("unknown mode `{m}` (strict, greedy, easy, cons)"),
                })?,
            ),
            None => (rest, Mode::Strict),
        };
        return Ok(load_lm(name, root)?.boxed_policy(mode));
    }
    llmchain_policy::build(s, &llmchain_policy::BuildCtx::default()).map_err(|e| {
        LearnError::Policy {
            spec: spec.into(),
            reason: e.to_string(),
        }
    })
}

/// A scheduling LM by registry name; `sched-lm` falls back to the embedded copy.
fn load_lm(name: &str, root: &Path) -> Result<SchedLm, LearnError> {
    match crate::card::load_by_name(root, name) {
        Ok(LoadedModel::SchedLm(m)) => Ok(m),
        Ok(_) => Err(LearnError::Policy {
            spec: format!("lm:{name}"),
            reason: format!("`{name}` is not a scheduling LM"),
        }),
        Err(LearnError::UnknownModel { .. }) if name == "sched-lm" => SchedLm::embedded(),
        Err(e) => Err(e),
    }
}

/// Builds candidate policies, loading each scheduling LM once.
struct Factory {
    specs: Vec<String>,
    lms: Vec<Option<(SchedLm, Mode)>>,
}

impl Factory {
    fn new(specs: &[String], root: &Path) -> Result<Factory, LearnError> {
        let mut lms = Vec::new();
        for s in specs {
            // Check every spec builds now, so errors name it.
            build_model_policy(s, root)?;
            lms.push(match s.strip_prefix("lm:") {
                Some(rest) => {
                    let (name, mode) = rest.split_once('+').unwrap_or((rest, "strict"));
                    Some((
                        load_lm(name, root)?,
                        Mode::parse(mode).unwrap_or(Mode::Strict),
                    ))
                }
                None => None,
            });
        }
        Ok(Factory {
            specs: specs.to_vec(),
            lms,
        })
    }

    fn build_all(&self) -> Vec<Box<dyn Policy + Send>> {
        self.specs
            .iter()
            .zip(&self.lms)
            .map(|(s, lm)| match lm {
                Some((m, mode)) => m.boxed_policy(*mode),
                None => llmchain_policy::build(s, &llmchain_policy::BuildCtx::default())
                    .expect("checked in Factory::new"),
            })
            .collect()
    }
}

// ------------------------------------------------------------------ features

#[derive(Copy, Clone, Debug)]
struct Arrival {
    submit_s: f64,
    procs: f64,
    est_s: f64,
}

#[derive(Copy, Clone, Debug)]
struct Done {
    bsld: f64,
    ratio: Option<f64>,
}

/// What the selector has observed so far (decision-time information only).
#[derive(Clone, Debug, Default)]
struct Observer {
    next_id: Option<u64>,
    arrivals_total: u64,
    arrivals: VecDeque<Arrival>,
    done: VecDeque<Done>,
    keep: usize,
}

impl Observer {
    fn new(keep: usize) -> Self {
        Observer {
            keep: keep.max(2),
            ..Default::default()
        }
    }

    /// Record tasks first seen in `snap`; returns how many arrived.
    fn observe(&mut self, snap: &Snapshot<'_>) -> u64 {
        let cap = snap.total_capacity().cpu_milli().max(1) as f64;
        let from = self.next_id.unwrap_or(0);
        let start = snap.waiting.partition_point(|t| t.id.0 < from);
        let mut n = 0;
        for t in &snap.waiting[start..] {
            self.arrivals.push_back(Arrival {
                submit_s: t.submit.0 as f64 / 1000.0,
                procs: t.request.cpu_milli() as f64 / cap,
                est_s: t.estimate.map_or(0.0, |d| d.0 as f64 / 1000.0),
            });
            if self.arrivals.len() > self.keep {
                self.arrivals.pop_front();
            }
            self.next_id = Some(t.id.0 + 1);
            n += 1;
        }
        self.arrivals_total += n;
        n
    }

    fn feedback(&mut self, o: &Outcome) {
        let run = o.runtime();
        let bsld = llmchain_core::metrics::bounded_slowdown(o.end.saturating_since(o.submit), run);
        let ratio = o
            .estimate
            .filter(|e| e.0 > 0)
            .map(|e| run.0 as f64 / e.0 as f64);
        self.done.push_back(Done { bsld, ratio });
        if self.done.len() > self.keep {
            self.done.pop_front();
        }
    }

    fn features(&self, snap: &Snapshot<'_>) -> [f32; NF] {
        let mut f = [0f32; NF];
        let cap = snap.total_capacity().cpu_milli().max(1) as f64;
        let now_s = snap.now.0 as f64 / 1000.0;
        let a = &self.arrivals;
        let n = a.len() as f64;
        if a.len() >= 2 {
            let span = (a[a.len() - 1].submit_s - a[0].submit_s).max(60.0);
            f[0] = ((n - 1.0) / span * 3600.0).max(1e-3).ln() as f32;
            f[1] = (a.iter().map(|x| x.procs * x.est_s).sum::<f64>() / span) as f32;
        }
        if !a.is_empty() {
            let (m, sd) = mean_sd(a.iter().map(|x| x.procs));
            f[2] = m as f32;
            f[3] = if m > 0.0 { (sd / m) as f32 } else { 0.0 };
            let (m, sd) = mean_sd(a.iter().map(|x| (x.est_s.max(1.0)).ln()));
            f[4] = m as f32;
            f[5] = sd as f32;
        }
        let q = snap.waiting;
        f[6] = (q.len() as f32).ln_1p();
        let queued: f64 = q
            .iter()
            .map(|t| {
                t.request.cpu_milli() as f64 / cap * t.estimate.map_or(0.0, |d| d.0 as f64 / 1000.0)
            })
            .sum();
        f[7] = (queued / 3600.0).ln_1p() as f32;
        let busy: u64 = snap.running.iter().map(|r| r.request.cpu_milli()).sum();
        f[8] = (busy as f64 / cap) as f32;
        let remaining: f64 = snap
            .running
            .iter()
            .map(|r| {
                let left = r
                    .expected_end
                    .map_or(0.0, |e| e.saturating_since(snap.now).0 as f64 / 1000.0);
                r.request.cpu_milli() as f64 / cap * left
            })
            .sum();
        f[9] = (remaining / 3600.0).ln_1p() as f32;
        if !self.done.is_empty() {
            let (m, _) = mean_sd(self.done.iter().map(|d| d.bsld));
            f[10] = m.max(1.0).ln() as f32;
            let rs: Vec<f64> = self.done.iter().filter_map(|d| d.ratio).collect();
            f[11] = if rs.is_empty() {
                1.0
            } else {
                (rs.iter().sum::<f64>() / rs.len() as f64) as f32
            };
        } else {
            f[11] = 1.0;
        }
        if !q.is_empty() {
            let w = q
                .iter()
                .map(|t| (now_s - t.submit.0 as f64 / 1000.0).max(0.0))
                .sum::<f64>()
                / q.len() as f64;
            f[12] = (w / 3600.0).ln_1p() as f32;
            let free = snap.total_free();
            f[13] = (q.iter().filter(|t| t.request.fits_in(&free)).count() as f64 / q.len() as f64)
                as f32;
        }
        f
    }
}

fn mean_sd(it: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for x in it {
        n += 1.0;
        s += x;
        s2 += x * x;
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let m = s / n;
    (m, (s2 / n - m * m).max(0.0).sqrt())
}

// ------------------------------------------------------------------ model

/// The trained selector: one regressor per candidate on `ln` mean bounded slowdown.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoModel {
    /// The card.
    pub card: ModelCard,
    /// Candidate policy specs, in order.
    pub candidates: Vec<String>,
    /// Arrivals per window the model was trained with.
    pub window: usize,
    /// Switch away from the active candidate only when another one's
    /// prediction is lower by more than this (`ln` units; card `config.switch_margin`).
    pub switch_margin: f32,
    /// One ensemble per candidate; with one more (the last), the candidates'
    /// ensembles predict the offset from the window's mean `ln` bounded
    /// slowdown over candidates and the last one predicts that mean.
    pub gbts: Vec<Gbt>,
}

impl AutoModel {
    /// Predicted `ln` mean bounded slowdown of every candidate for these features.
    pub fn predict(&self, f: &[f32; NF]) -> Vec<f32> {
        let nc = self.candidates.len();
        let level = if self.gbts.len() > nc {
            self.gbts[nc].predict(f)
        } else {
            0.0
        };
        self.gbts[..nc]
            .iter()
            .map(|g| level + g.predict(f))
            .collect()
    }

    /// Index of the candidate with the lowest prediction (ties: lowest index).
    pub fn choose(&self, f: &[f32; NF]) -> usize {
        argmin(&self.predict(f))
    }

    /// Save `dir/card.json` and `dir/weights.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<(), LearnError> {
        std::fs::create_dir_all(dir).map_err(|source| LearnError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut f = crate::lm::WeightMap::new();
        let mut u = BTreeMap::new();
        for (i, g) in self.gbts.iter().enumerate() {
            let (feature, threshold, left, right, value, roots) = g.to_arrays();
            f.insert(
                format!("c{i}.threshold"),
                (vec![threshold.len()], threshold),
            );
            f.insert(format!("c{i}.value"), (vec![value.len()], value));
            f.insert(format!("c{i}.base"), (vec![1], vec![g.base]));
            u.insert(format!("c{i}.feature"), feature);
            u.insert(format!("c{i}.left"), left);
            u.insert(format!("c{i}.right"), right);
            u.insert(format!("c{i}.roots"), roots);
        }
        u.insert("n_features".into(), vec![NF as u32]);
        u.insert("n_candidates".into(), vec![self.candidates.len() as u32]);
        u.insert("n_models".into(), vec![self.gbts.len() as u32]);
        crate::card::write_weights(&dir.join(crate::card::WEIGHTS_FILE), &f, &u)?;
        self.card.write(dir)
    }

    /// Load a directory written by [`AutoModel::save`]. Errors name the file and the problem.
    pub fn load(dir: &Path) -> Result<AutoModel, LearnError> {
        let card = ModelCard::read(dir)?;
        let bad = |path: &Path, reason: String| LearnError::Model {
            path: path.to_path_buf(),
            reason,
        };
        if card.kind != KIND_AUTO {
            return Err(bad(
                dir,
                format!("card kind is `{}`, not `{KIND_AUTO}`", card.kind),
            ));
        }
        let cpath = dir.join(crate::card::CARD_FILE);
        let candidates: Vec<String> = card
            .config
            .get("candidates")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| {
                bad(
                    &cpath,
                    "config.candidates missing or not a list of specs".into(),
                )
            })?;
        let window = card
            .config
            .get("window")
            .and_then(|v| v.as_u64())
            .filter(|w| *w > 0)
            .ok_or_else(|| bad(&cpath, "config.window missing or not ≥ 1".into()))?
            as usize;
        let switch_margin = card
            .config
            .get("switch_margin")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as f32;
        let path = dir.join(crate::card::WEIGHTS_FILE);
        let (f, u) = crate::card::read_all(&path)?;
        let fv = |n: String| {
            f.get(&n)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| bad(&path, format!("missing tensor `{n}`")))
        };
        let uv = |n: String| {
            u.get(&n)
                .cloned()
                .ok_or_else(|| bad(&path, format!("missing tensor `{n}`")))
        };
        let nf = uv("n_features".into())?.first().copied().unwrap_or(0) as usize;
        if nf != NF {
            return Err(bad(
                &path,
                format!("trained on {nf} features, this build computes {NF}"),
            ));
        }
        let nc = uv("n_candidates".into())?.first().copied().unwrap_or(0) as usize;
        if nc != candidates.len() || nc == 0 {
            return Err(bad(
                &path,
                format!(
                    "{nc} regressors for {} candidates in the card",
                    candidates.len()
                ),
            ));
        }
        let nm = uv("n_models".into())?.first().copied().unwrap_or(0) as usize;
        if nm != nc && nm != nc + 1 {
            return Err(bad(
                &path,
                format!(
                    "{nm} ensembles for {nc} candidates (expected {nc} or {})",
                    nc + 1
                ),
            ));
        }
        let mut gbts = Vec::with_capacity(nm);
        for i in 0..nm {
            let base = fv(format!("c{i}.base"))?.first().copied().unwrap_or(0.0);
            gbts.push(
                Gbt::from_arrays(
                    NF,
                    base,
                    uv(format!("c{i}.feature"))?,
                    fv(format!("c{i}.threshold"))?,
                    uv(format!("c{i}.left"))?,
                    uv(format!("c{i}.right"))?,
                    fv(format!("c{i}.value"))?,
                    uv(format!("c{i}.roots"))?,
                )
                .map_err(|r| bad(&path, format!("candidate {i}: {r}")))?,
            );
        }
        Ok(AutoModel {
            card,
            candidates,
            window,
            switch_margin,
            gbts,
        })
    }

    /// Load `root/<name>/`. Unknown names list what is there.
    pub fn load_by_name(root: &Path, name: &str) -> Result<AutoModel, LearnError> {
        match crate::card::load_by_name(root, name)? {
            LoadedModel::AutoSelect(m) => Ok(m),
            _ => Err(LearnError::Model {
                path: root.join(name),
                reason: format!("`{name}` is not a `{KIND_AUTO}` model"),
            }),
        }
    }
}

fn argmin(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x < v[best] {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------------ policy

/// When [`AutoPolicy`] starts a new window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoConfig {
    /// Arrivals per window (`kernel:auto,window=N`). Default: the model's.
    pub window: usize,
    /// When > 0, windows are this many seconds of driver time instead.
    pub seconds: u64,
}

/// One window decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowChoice {
    /// Window index (0-based).
    pub window: u64,
    /// Driver time of the decision.
    pub at: Time,
    /// Arrivals seen before and at this decision.
    pub arrivals: u64,
    /// The features.
    pub features: Vec<f32>,
    /// Predicted `ln` bounded slowdown per candidate (empty for scripted choices).
    pub predicted: Vec<f32>,
    /// Index of the chosen candidate.
    pub chosen: usize,
}

/// A change of the active candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// Window index.
    pub window: u64,
    /// Driver time.
    pub at: Time,
    /// Previous candidate spec.
    pub from: String,
    /// New candidate spec.
    pub to: String,
}

enum Chooser {
    Model(Arc<AutoModel>),
    Script(Vec<usize>),
}

/// The `kernel:auto` policy: see the [module docs](self).
///
/// [`Policy::stats`] reports one `model_calls` per window decision (the
/// selector's consultations), with their latency; [`AutoPolicy::switches`]
/// and [`AutoPolicy::choices`] hold the history, and every switch is logged
/// at `debug` level.
pub struct AutoPolicy {
    name: String,
    chooser: Chooser,
    specs: Vec<String>,
    policies: Vec<Box<dyn Policy + Send>>,
    window: usize,
    seconds: u64,
    active: usize,
    obs: Observer,
    next_k: u64,
    window_start: Option<Time>,
    choices: Vec<WindowChoice>,
    switches: Vec<Switch>,
    decision_points: u64,
    latencies_us: Vec<f64>,
}

impl AutoPolicy {
    /// The selector `model` with its candidates built from `root` (for `lm:` specs).
    pub fn new(model: AutoModel, cfg: AutoConfig, root: &Path) -> Result<AutoPolicy, LearnError> {
        let factory = Factory::new(&model.candidates, root)?;
        let window = if cfg.window > 0 {
            cfg.window
        } else {
            model.window
        };
        Ok(Self::with_chooser(
            Chooser::Model(Arc::new(model)),
            &factory,
            window,
            cfg.seconds,
        ))
    }

    /// Load model `name` from `root` and build the policy.
    pub fn load_by_name(
        root: &Path,
        name: &str,
        cfg: AutoConfig,
    ) -> Result<AutoPolicy, LearnError> {
        Self::new(AutoModel::load_by_name(root, name)?, cfg, root)
    }

    fn with_chooser(chooser: Chooser, f: &Factory, window: usize, seconds: u64) -> AutoPolicy {
        let window = window.max(1);
        AutoPolicy {
            name: "auto".into(),
            chooser,
            specs: f.specs.clone(),
            policies: f.build_all(),
            window,
            seconds,
            active: 0,
            obs: Observer::new(window),
            next_k: 0,
            window_start: None,
            choices: Vec::new(),
            switches: Vec::new(),
            decision_points: 0,
            latencies_us: Vec::new(),
        }
    }

    /// Every window decision so far.
    pub fn choices(&self) -> &[WindowChoice] {
        &self.choices
    }

    /// Every change of the active candidate so far.
    pub fn switches(&self) -> &[Switch] {
        &self.switches
    }

    /// The candidate specs.
    pub fn candidates(&self) -> &[String] {
        &self.specs
    }

    /// The candidate deciding now.
    pub fn active(&self) -> &str {
        &self.specs[self.active]
    }

    fn new_window(&mut self, snap: &Snapshot<'_>) -> bool {
        if self.obs.arrivals_total == 0 {
            return false;
        }
        if self.seconds > 0 {
            return match self.window_start {
                None => true,
                Some(t) => snap.now.saturating_since(t).0 >= self.seconds * 1000,
            };
        }
        self.obs.arrivals_total > self.next_k * self.window as u64
    }

    fn choose(&mut self, snap: &Snapshot<'_>) {
        let t0 = Instant::now();
        let features = self.obs.features(snap);
        let k = self.next_k;
        let (chosen, predicted) = match &self.chooser {
            Chooser::Model(m) => {
                let p = m.predict(&features);
                let best = argmin(&p);
                let stay = !self.choices.is_empty() && p[self.active] - p[best] <= m.switch_margin;
                (if stay { self.active } else { best }, p)
            }
            Chooser::Script(s) => (
                s.get(k as usize)
                    .or(s.last())
                    .copied()
                    .unwrap_or(0)
                    .min(self.specs.len() - 1),
                Vec::new(),
            ),
        };
        self.latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
        if chosen != self.active || self.choices.is_empty() {
            if !self.choices.is_empty() {
                tracing::debug!(
                    window = k,
                    from = %self.specs[self.active],
                    to = %self.specs[chosen],
                    "kernel:auto switches policy"
                );
                self.switches.push(Switch {
                    window: k,
                    at: snap.now,
                    from: self.specs[self.active].clone(),
                    to: self.specs[chosen].clone(),
                });
            }
            self.active = chosen;
        }
        self.choices.push(WindowChoice {
            window: k,
            at: snap.now,
            arrivals: self.obs.arrivals_total,
            features: features.to_vec(),
            predicted,
            chosen,
        });
        self.window_start = Some(snap.now);
        self.next_k = if self.seconds > 0 {
            k + 1
        } else {
            // Skip windows that passed within one decision point.
            self.obs
                .arrivals_total
                .div_ceil(self.window as u64)
                .max(k + 1)
        };
    }
}

impl Policy for AutoPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.decision_points += 1;
        self.obs.observe(snap);
        if self.new_window(snap) {
            self.choose(snap);
        }
        self.policies[self.active].decide(snap, out);
    }

    fn feedback(&mut self, o: &Outcome) {
        self.obs.feedback(o);
        for p in &mut self.policies {
            p.feedback(o);
        }
    }

    fn rejected(&mut self, r: &[llmchain_core::Rejection]) {
        self.policies[self.active].rejected(r)
    }

    fn queue_order(
        &mut self,
        snap: &Snapshot<'_>,
        out: &mut Vec<llmchain_core::TaskId>,
    ) -> Option<String> {
        let active = self.specs[self.active].clone();
        self.policies[self.active]
            .queue_order(snap, out)
            .map(|d| format!("kernel:auto chose {active} for this window: {d}"))
    }

    fn remark(&self, task: llmchain_core::TaskId) -> Option<String> {
        self.policies[self.active].remark(task)
    }

    fn stats(&self) -> PolicyStats {
        let mut s: Vec<f64> = self.latencies_us.clone();
        s.sort_by(f64::total_cmp);
        PolicyStats {
            model_calls: self.choices.len() as u64,
            fallbacks: 0,
            decision_points: self.decision_points,
            proposals_dropped: 0,
            latency_mean_us: (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64),
            latency_p99_us: (!s.is_empty())
                .then(|| llmchain_core::metrics::percentile_sorted(&s, 99.0)),
        }
    }
}

// ------------------------------------------------------------------ training

/// Everything that defines a selector training run (saved in the card).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoTrainConfig {
    /// Registry name.
    pub name: String,
    /// Seed of the candidate scripts.
    pub seed: u64,
    /// Workload specs to learn from.
    pub sources: Vec<String>,
    /// Candidate policy specs.
    pub candidates: Vec<String>,
    /// Arrivals per window.
    pub window: usize,
    /// Jobs per training segment (cut from the free job ranges).
    pub segment: usize,
    /// Random candidate scripts replayed per segment.
    pub scripts: usize,
    /// At most this many segments per source, evenly spread (0 = all); for tiny test runs.
    pub max_segments: usize,
    /// Evaluation protocol whose windows are excluded from training: sequences.
    pub eval_sequences: usize,
    /// ... jobs per evaluation window.
    pub eval_length: usize,
    /// ... seeds of the evaluation sampling.
    pub eval_seeds: Vec<u64>,
    /// Jobs kept free on each side of an evaluation window.
    pub margin: usize,
    /// Regressor settings.
    pub gbt: GbtConfig,
    /// Hysteresis of the trained policy (see [`AutoModel::switch_margin`]).
    pub switch_margin: f32,
    /// Worker threads for the simulations (results do not depend on it).
    pub threads: usize,
    /// Evaluate on the evaluation windows after training (the card's `eval_*` metrics).
    pub evaluate: bool,
}

impl Default for AutoTrainConfig {
    fn default() -> Self {
        AutoTrainConfig {
            name: MODEL_NAME.into(),
            seed: 11,
            sources: vec![
                "swf:data/traces/lublin_256.swf".into(),
                "swf:data/traces/lublin_256_new2".into(),
            ],
            candidates: default_candidates(),
            window: 128,
            segment: 768,
            scripts: 16,
            max_segments: 0,
            eval_sequences: 10,
            eval_length: 1024,
            eval_seeds: vec![1],
            margin: 16,
            gbt: GbtConfig {
                trees: 120,
                depth: 3,
                learning_rate: 0.06,
                min_leaf: 6,
                bins: 32,
                l2: 2.0,
            },
            switch_margin: 0.2,
            threads: 2,
            evaluate: true,
        }
    }
}

/// One training row: features at a window's start and every candidate's target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoSample {
    /// Source spec.
    pub source: String,
    /// Segment start (job index in the source).
    pub segment: usize,
    /// Window index within the segment.
    pub window: usize,
    /// Features.
    pub features: Vec<f32>,
    /// `ln` mean bounded slowdown of the window's tasks, per candidate.
    pub target: Vec<f32>,
}

/// Result of [`train_auto`].
pub struct TrainedAuto {
    /// The model (its card holds the data ranges and metrics).
    pub model: AutoModel,
    /// The training rows.
    pub samples: Vec<AutoSample>,
    /// The evaluation, when asked for.
    pub eval: Option<AutoEval>,
}

/// Mean bounded slowdown of window `[lo, hi)` of a run's tasks.
fn window_bsld(r: &llmchain_sim::RunResult, lo: usize, hi: usize) -> f64 {
    let mut s = 0.0;
    let mut n = 0usize;
    for t in r.tasks.iter().skip(lo).take(hi.saturating_sub(lo)) {
        if let (Some(st), Some(en)) = (t.start, t.end) {
            s += llmchain_core::metrics::bounded_slowdown(
                en.saturating_since(t.submit),
                en.saturating_since(st),
            );
            n += 1;
        }
    }
    if n == 0 {
        1.0
    } else {
        s / n as f64
    }
}

/// Replay `w` (truncated to `upto` tasks) with a scripted selector; returns the run and its choices.
fn replay(
    w: &Workload,
    upto: usize,
    script: Vec<usize>,
    f: &Factory,
    window: usize,
) -> Result<(llmchain_sim::RunResult, Vec<WindowChoice>), LearnError> {
    let mut cut = w.clone();
    cut.tasks.truncate(upto.min(w.tasks.len()).max(1));
    let mut p = AutoPolicy::with_chooser(Chooser::Script(script), f, window, 0);
    let r = llmchain_sim::run(&cut, &mut p, &SimConfig::default())
        .map_err(LearnError::sim(format!("replaying {}", w.meta.label)))?;
    Ok((r, p.choices))
}

/// One training row: (features, target per candidate).
type Row = (Vec<f32>, Vec<f32>);

/// Rows of one segment under one script: for every window, the features
/// at its start and every candidate's window bounded slowdown.
fn segment_rows(
    w: &Workload,
    script: &[usize],
    f: &Factory,
    window: usize,
) -> Result<Vec<Row>, LearnError> {
    let n = w.tasks.len();
    let k_max = n.div_ceil(window);
    let mut rows = Vec::new();
    for k in 0..k_max {
        let (lo, hi) = (k * window, ((k + 1) * window).min(n));
        let upto = ((k + 2) * window).min(n);
        let mut target = Vec::with_capacity(f.specs.len());
        let mut feats = None;
        for c in 0..f.specs.len() {
            let mut s = script[..k].to_vec();
            s.push(c);
            let (r, choices) = replay(w, upto, s, f, window)?;
            if feats.is_none() {
                feats = choices
                    .iter()
                    .find(|ch| ch.window == k as u64)
                    .map(|ch| ch.features.clone());
            }
            target.push(window_bsld(&r, lo, hi).max(1.0).ln() as f32);
        }
        // A window whose first arrival coincided with the previous one's decision has no features.
        if let Some(x) = feats {
            rows.push((x, target));
        }
    }
    Ok(rows)
}

/// Run `jobs` closures on `threads` workers; results in input order.
fn parallel<T: Send>(
    threads: usize,
    n: usize,
    job: &(dyn Fn(usize) -> Result<T, LearnError> + Sync),
) -> Result<Vec<T>, LearnError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: std::sync::Mutex<Vec<Option<Result<T, LearnError>>>> =
        std::sync::Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|sc| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = job(i);
                slots.lock().expect("no panic while holding the lock")[i] = Some(r);
            });
        }
    });
    slots
        .into_inner()
        .expect("workers done")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

/// The evaluation windows of `spec` under the protocol in `cfg`.
fn eval_windows(
    spec: &str,
    w: &Workload,
    cfg: &AutoTrainConfig,
) -> Result<Vec<(usize, usize)>, LearnError> {
    let mut test = Vec::new();
    if w.len() >= cfg.eval_length {
        for &s in &cfg.eval_seeds {
            for q in llmchain_sim::sample(w, cfg.eval_sequences, cfg.eval_length, s).map_err(
                LearnError::sim(format!("sampling evaluation windows of `{spec}`")),
            )? {
                if let Some(win) = q.meta.window {
                    test.push((win.start, win.start + win.len));
                }
            }
        }
    }
    test.sort();
    test.dedup();
    Ok(test)
}

/// Train the selector (see the [module docs](self)); saves into `out` when given.
/// `progress` receives one line per stage.
pub fn train_auto(
    cfg: &AutoTrainConfig,
    out: Option<&Path>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<TrainedAuto, LearnError> {
    let t0 = Instant::now();
    if cfg.candidates.is_empty() {
        return Err(LearnError::Config {
            field: "candidates",
            reason: "at least one candidate policy is needed".into(),
        });
    }
    if cfg.window < 8 || cfg.segment < cfg.window {
        return Err(LearnError::Config {
            field: "window",
            reason: format!(
                "window must be ≥ 8 and ≤ segment (window {}, segment {})",
                cfg.window, cfg.segment
            ),
        });
    }
    let root = crate::card::models_dir();
    let factory = Factory::new(&cfg.candidates, &root)?;
    let mut data = DataCard::default();
    // (source, segment start, workload)
    let mut segments: Vec<(String, usize, Workload)> = Vec::new();
    let mut sources = Vec::new();
    for spec in &cfg.sources {
        let w = crate::lm::train::load_source(spec, cfg.seed)?;
        let test = eval_windows(spec, &w, cfg)?;
        let free = free_ranges(w.len(), &test, cfg.margin);
        let (mut train, _) = cut_windows(&free, cfg.segment, 0);
        if cfg.max_segments > 0 && train.len() > cfg.max_segments {
            let step = train.len() as f64 / cfg.max_segments as f64;
            train = (0..cfg.max_segments)
                .map(|i| train[(i as f64 * step) as usize])
                .collect();
        }
        for &(s, e) in &train {
            segments.push((
                spec.clone(),
                s,
                llmchain_sim::sample::window(&w, 0, s, e - s, cfg.seed),
            ));
            data.train.push(JobRange {
                source: spec.clone(),
                start: s,
                end: e,
            });
        }
        for &(s, e) in &test {
            data.test.push(JobRange {
                source: spec.clone(),
                start: s,
                end: e,
            });
        }
        sources.push((spec.clone(), w, test));
    }
    progress(&format!(
        "{} training segments ({} jobs) x {} scripts x {} candidates",
        segments.len(),
        segments.iter().map(|s| s.2.len()).sum::<usize>(),
        cfg.scripts,
        cfg.candidates.len()
    ));
    let jobs: Vec<(usize, usize)> = (0..segments.len())
        .flat_map(|s| (0..cfg.scripts.max(1)).map(move |r| (s, r)))
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let rows = parallel(cfg.threads, jobs.len(), &|i| {
        let (s, r) = jobs[i];
        let (_, _, w) = &segments[s];
        let k_max = w.len().div_ceil(cfg.window);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ ((s as u64) << 32) ^ r as u64);
        let script: Vec<usize> = (0..k_max)
            .map(|_| rng.gen_range(0..cfg.candidates.len()))
            .collect();
        let out = segment_rows(w, &script, &factory, cfg.window);
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(&format!(
            "replayed {d}/{} (segment, script) pairs",
            jobs.len()
        ));
        out
    })?;
    let mut samples = Vec::new();
    for ((s, _), rs) in jobs.iter().zip(rows) {
        for (k, (x, y)) in rs.into_iter().enumerate() {
            samples.push(AutoSample {
                source: segments[*s].0.clone(),
                segment: segments[*s].1,
                window: k,
                features: x,
                target: y,
            });
        }
    }
    let nc = cfg.candidates.len();
    let mut x = Vec::with_capacity(samples.len() * NF);
    for s in &samples {
        x.extend_from_slice(&s.features);
    }
    // The window's level (mean over candidates) and each candidate's offset
    // from it are fitted separately: the level varies far more between
    // windows than the differences the choice depends on.
    let level: Vec<f32> = samples
        .iter()
        .map(|s| s.target.iter().sum::<f32>() / nc as f32)
        .collect();
    let mut gbts = Vec::new();
    let mut metrics = BTreeMap::new();
    for c in 0..nc {
        let y: Vec<f32> = samples
            .iter()
            .zip(&level)
            .map(|(s, l)| s.target[c] - l)
            .collect();
        let (g, curve) = Gbt::fit(&x, NF, &y, &cfg.gbt);
        metrics.insert(
            format!("train_mse_ln_bsld_offset_{}", cfg.candidates[c]),
            curve.last().copied().unwrap_or(0.0) as f64,
        );
        gbts.push(g);
    }
    let (g, curve) = Gbt::fit(&x, NF, &level, &cfg.gbt);
    metrics.insert(
        "train_mse_ln_bsld_level".into(),
        curve.last().copied().unwrap_or(0.0) as f64,
    );
    gbts.push(g);
    // Training-set choice quality: regret of the chosen candidate vs the best per row.
    let mut wins = vec![0usize; nc];
    let (mut regret, mut best_fixed) = (0.0f64, vec![0.0f64; nc]);
    for s in &samples {
        let b = argmin(&s.target);
        wins[b] += 1;
        let p: Vec<f32> = gbts[..nc]
            .iter()
            .map(|g| g.predict(&to_arr(&s.features)))
            .collect();
        regret += (s.target[argmin(&p)] - s.target[b]) as f64;
        for (acc, y) in best_fixed.iter_mut().zip(&s.target) {
            *acc += (y - s.target[b]) as f64;
        }
    }
    let n = samples.len().max(1) as f64;
    metrics.insert("train_windows".into(), samples.len() as f64);
    metrics.insert("train_mean_ln_regret_model".into(), regret / n);
    for c in 0..nc {
        metrics.insert(
            format!("train_best_share_{}", cfg.candidates[c]),
            wins[c] as f64 / n,
        );
        metrics.insert(
            format!("train_mean_ln_regret_fixed_{}", cfg.candidates[c]),
            best_fixed[c] / n,
        );
    }
    data.notes.push(format!(
        "segments of {} jobs cut from job ranges {} jobs away from every evaluation window \
         ({} x {} jobs, seeds {:?}); windows of {} arrivals; {} random candidate scripts per segment",
        cfg.segment, cfg.margin, cfg.eval_sequences, cfg.eval_length, cfg.eval_seeds, cfg.window, cfg.scripts
    ));
    data.notes
        .push(format!("features: {}", FEATURE_NAMES.join("; ")));
    data.notes.push(
        "target: ln mean bounded slowdown of the window's tasks, replaying the script's earlier \
         choices, then the candidate, over arrivals up to the end of the next window"
            .into(),
    );
    data.notes.push(
        "the lm:sched-lm+easy candidate was itself trained on job ranges disjoint from the same evaluation windows".into(),
    );
    let mut config = serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut config {
        m.insert("features".into(), serde_json::json!(FEATURE_NAMES));
    }
    let mut model = AutoModel {
        card: ModelCard {
            name: cfg.name.clone(),
            kind: KIND_AUTO.into(),
            created_by: format!("llmchain-learn {}", env!("CARGO_PKG_VERSION")),
            git_commit: crate::card::git_commit(),
            seed: cfg.seed,
            config,
            shape: None,
            data,
            metrics,
            train_seconds: 0.0,
            reproduce: format!("llmchain train auto --out models/{}", cfg.name),
        },
        candidates: cfg.candidates.clone(),
        window: cfg.window,
        switch_margin: cfg.switch_margin,
        gbts,
    };
    let fit_seconds = t0.elapsed().as_secs_f64();
    let eval = if cfg.evaluate {
        progress("evaluating on the evaluation windows");
        let mut per = Vec::new();
        for (spec, w, _) in &sources {
            per.push(evaluate(&model, spec, w, cfg, progress)?);
        }
        for e in &per {
            let tag = short(&e.source);
            for row in &e.rows {
                model
                    .card
                    .metrics
                    .insert(format!("eval_bsld_{tag}_{}", row.policy), row.bsld);
            }
            model
                .card
                .metrics
                .insert(format!("eval_switches_{tag}"), e.switches as f64);
        }
        Some(AutoEval { per_source: per })
    } else {
        None
    };
    model.card.metrics.insert("fit_seconds".into(), fit_seconds);
    model.card.train_seconds = t0.elapsed().as_secs_f64();
    if let Some(dir) = out {
        model.save(dir)?;
    }
    Ok(TrainedAuto {
        model,
        samples,
        eval,
    })
}

fn to_arr(v: &[f32]) -> [f32; NF] {
    let mut a = [0f32; NF];
    for (d, s) in a.iter_mut().zip(v) {
        *d = *s;
    }
    a
}

fn short(spec: &str) -> String {
    spec.rsplit('/')
        .next()
        .unwrap_or(spec)
        .trim_end_matches(".swf")
        .to_string()
}

// ------------------------------------------------------------------ evaluation

/// One row of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoEvalRow {
    /// `auto`, a candidate spec, `oracle-sequence` (best candidate per
    /// evaluation sequence) or `oracle-window` (greedy best candidate per window).
    pub policy: String,
    /// Mean over sequences of the sequence's mean bounded slowdown.
    pub bsld: f64,
    /// Per sequence.
    pub per_sequence: Vec<f64>,
}

/// Evaluation of a selector on one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoEvalSource {
    /// Source spec.
    pub source: String,
    /// Evaluation window starts.
    pub windows: Vec<usize>,
    /// Rows.
    pub rows: Vec<AutoEvalRow>,
    /// Switches `auto` made, summed over sequences.
    pub switches: usize,
    /// How often `auto` chose each candidate (window decisions), by spec.
    pub chosen: BTreeMap<String, usize>,
}

/// Evaluation over all sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoEval {
    /// Per source.
    pub per_source: Vec<AutoEvalSource>,
}

/// Evaluate `model` on the protocol's windows of `w`: every fixed candidate,
/// `auto`, and two oracles.
pub fn evaluate(
    model: &AutoModel,
    spec: &str,
    w: &Workload,
    cfg: &AutoTrainConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<AutoEvalSource, LearnError> {
    let root = crate::card::models_dir();
    let factory = Factory::new(&model.candidates, &root)?;
    let seed = cfg.eval_seeds.first().copied().unwrap_or(1);
    let seqs = llmchain_sim::sample(w, cfg.eval_sequences, cfg.eval_length, seed).map_err(
        LearnError::sim(format!("sampling evaluation windows of `{spec}`")),
    )?;
    let nc = model.candidates.len();
    let window = model.window;
    // Fixed candidates and auto, per sequence.
    let runs = parallel(cfg.threads, seqs.len() * (nc + 1), &|i| {
        let (q, c) = (i / (nc + 1), i % (nc + 1));
        if c < nc {
            let mut p = factory.build_all().swap_remove(c);
            let r = llmchain_sim::run(&seqs[q], &mut p, &SimConfig::default())
                .map_err(LearnError::sim(format!("running {}", model.candidates[c])))?;
            Ok((r.metrics.bounded_slowdown.mean, 0, Vec::new()))
        } else {
            let mut p = AutoPolicy::with_chooser(
                Chooser::Model(Arc::new(model.clone())),
                &factory,
                window,
                0,
            );
            let r = llmchain_sim::run(&seqs[q], &mut p, &SimConfig::default())
                .map_err(LearnError::sim("running auto"))?;
            Ok((
                r.metrics.bounded_slowdown.mean,
                p.switches.len(),
                p.choices.iter().map(|c| c.chosen).collect(),
            ))
        }
    })?;
    progress(&format!(
        "{spec}: fixed candidates and auto done; greedy oracle ..."
    ));
    // Greedy per-window oracle: at each window, the candidate with the lowest
    // window bounded slowdown given the oracle's earlier choices.
    let oracle = parallel(cfg.threads, seqs.len(), &|q| {
        let s = &seqs[q];
        let n = s.len();
        let mut script = Vec::new();
        for k in 0..n.div_ceil(window) {
            let (lo, hi) = (k * window, ((k + 1) * window).min(n));
            let upto = ((k + 2) * window).min(n);
            let mut best = (f64::INFINITY, 0);
            for c in 0..nc {
                let mut sc = script.clone();
                sc.push(c);
                let (r, _) = replay(s, upto, sc, &factory, window)?;
                let b = window_bsld(&r, lo, hi);
                if b < best.0 {
                    best = (b, c);
                }
            }
            script.push(best.1);
        }
        let (r, _) = replay(s, n, script, &factory, window)?;
        Ok(r.metrics.bounded_slowdown.mean)
    })?;
    let mut rows = Vec::new();
    let col =
        |c: usize| -> Vec<f64> { (0..seqs.len()).map(|q| runs[q * (nc + 1) + c].0).collect() };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    for c in 0..nc {
        let v = col(c);
        rows.push(AutoEvalRow {
            policy: model.candidates[c].clone(),
            bsld: mean(&v),
            per_sequence: v,
        });
    }
    let auto = col(nc);
    rows.push(AutoEvalRow {
        policy: "auto".into(),
        bsld: mean(&auto),
        per_sequence: auto,
    });
    let best_seq: Vec<f64> = (0..seqs.len())
        .map(|q| {
            (0..nc)
                .map(|c| runs[q * (nc + 1) + c].0)
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    rows.push(AutoEvalRow {
        policy: "oracle-sequence".into(),
        bsld: mean(&best_seq),
        per_sequence: best_seq,
    });
    rows.push(AutoEvalRow {
        policy: "oracle-window".into(),
        bsld: mean(&oracle),
        per_sequence: oracle,
    });
    let mut chosen = BTreeMap::new();
    let mut switches = 0;
    for q in 0..seqs.len() {
        let (_, sw, ch) = &runs[q * (nc + 1) + nc];
        switches += sw;
        for c in ch {
            *chosen.entry(model.candidates[*c].clone()).or_insert(0) += 1;
        }
    }
    Ok(AutoEvalSource {
        source: spec.to_string(),
        windows: seqs
            .iter()
            .filter_map(|s| s.meta.window.map(|w| w.start))
            .collect(),
        rows,
        switches,
        chosen,
    })
}

/// The evaluation as a plain-text table.
pub fn format_eval(e: &AutoEval) -> String {
    let mut s = String::new();
    for src in &e.per_source {
        s.push_str(&format!(
            "{} — {} windows (starts {:?})\n{:<22} {:>10}\n",
            src.source,
            src.windows.len(),
            src.windows,
            "policy",
            "avg bsld"
        ));
        for r in &src.rows {
            s.push_str(&format!("{:<22} {:>10.2}\n", r.policy, r.bsld));
        }
        s.push_str(&format!(
            "auto: {} switches; window choices {:?}\n\n",
            src.switches, src.chosen
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmin_keeps_the_first_of_ties() {
        assert_eq!(argmin(&[2.0, 1.0, 1.0]), 1);
        assert_eq!(argmin(&[0.5]), 0);
    }

    #[test]
    fn mean_sd_of_constant_is_zero_spread() {
        let (m, sd) = mean_sd([3.0, 3.0, 3.0].into_iter());
        assert_eq!(m, 3.0);
        assert!(sd.abs() < 1e-12);
        assert_eq!(mean_sd(std::iter::empty()), (0.0, 0.0));
    }
}
