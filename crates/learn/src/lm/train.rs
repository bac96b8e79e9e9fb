//! Training the scheduling LM with the design text's objective
//! `L = −E[log P(Y*|X)] + λ·(1 − g(Y))`.
//!
//! # Data
//! Each workload source is cut into windows ([`crate::dataset`]) that never
//! overlap its evaluation windows; the card lists every range.
//!
//! # Teacher order Y* (how it is made)
//! On each training window every teacher ordering (default SJF, F1, WFP3,
//! UNICEP, FCFS and five parametric orders [`ParamOrder`]; `packer` and
//! `tetris` are available too), each in the configured `mode` (default EASY
//! backfilling — and, with `strict_too`, again without backfilling) is
//! rolled out in the simulator; per mode, the one with the lowest mean
//! bounded slowdown on that window is the window's teacher. At each of its decision points with ≥ 2 waiting tasks
//! the teacher's priority order is turned into a *start prefix* — the tasks
//! it starts in order, then the first that does not fit (the EASY head),
//! at most `prefix_k` — and Y* is that prefix. In `greedy` mode Y* is the
//! sequence of tasks the teacher actually started (so dynamic orderings such
//! as Packer, re-scored after every start, are imitated exactly). This is the best of several
//! heuristic rollouts per window: cheap (one simulation per teacher and
//! window) and never worse than the best single heuristic on the window.
//!
//! # Objective
//! 1. Imitation: pointer (Plackett–Luce) negative log-likelihood of Y*.
//! 2. Policy gradient: per iteration, a training window is replayed
//!    `rl_samples` times with orders *sampled* from the model (Gumbel noise
//!    on the logits) in the configured mode; the reward `g = bsld_teacher / bsld_sample`
//!    (normalised bounded slowdown, 1 = as good as the best heuristic) and
//!    REINFORCE with the mean reward of the group as baseline gives the
//!    surrogate `λ·Σ (g − ḡ)·(−log P(Y))`, added to an imitation minibatch.
//!
//! The kept model is the better of the post-imitation and post-RL weights
//! on the validation windows (mean bounded slowdown in the configured mode).
//!
//! # Generated sources
//! Generated workloads (`deeprm:...`) are drawn with the training seed, and a
//! seed that is also an evaluation seed is refused, so the evaluated
//! workload (`llmchain eval -s SEED` draws with SEED) is never trained on.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use llmchain_core::{Decision, Policy, Snapshot};
use llmchain_policy::order::{
    F1Order, FcfsOrder, Ordering, PackerOrder, PlanView, SjfOrder, TetrisOrder, UnicepOrder,
    Wfp3Order,
};
use llmchain_policy::{Mode, Scheduler};
use llmchain_sim::{SimConfig, Workload, WorkloadSpec};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::features::{greedy_start_prefix, start_prefix, Encoded, Encoder, Sample};
use super::model::{Batch, LmModel};
use super::ordering::LmOrdering;
use super::{LmShape, LmWeights, SchedLm, TASK_FEATS};
use crate::card::{DataCard, ModelCard, KIND_SCHED_LM};
use crate::dataset::{cut_windows, free_ranges, strided_windows, Splits};
use crate::progress::{NoProgress, Progress};
use crate::LearnError;

/// The start semantics a model is trained for: one of the [`Scheduler`]'s
/// modes, or RLScheduler's commit-to-the-head semantics
/// ([`llmchain_policy::Committed`], with or without its FCFS-order EASY
/// backfilling) for comparisons with the published RLScheduler tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainMode {
    /// `easy`, `greedy` or `strict`: the model's order drives a [`Scheduler`].
    Sched(Mode),
    /// `commit-easy` (backfilling) or `commit`: the model picks the task to
    /// commit to, once per choice, on the state after earlier starts.
    Commit {
        /// RLScheduler's backfilling.
        easy: bool,
    },
}

impl TrainMode {
    /// Parse `easy`, `greedy`, `strict`, `commit-easy` or `commit`.
    pub fn parse(s: &str) -> Option<TrainMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "commit-easy" => Some(TrainMode::Commit { easy: true }),
            "commit" => Some(TrainMode::Commit { easy: false }),
            other => match Mode::parse(other)? {
                m @ (Mode::Easy | Mode::Greedy | Mode::Strict) => Some(TrainMode::Sched(m)),
                Mode::Cons => None,
            },
        }
    }

    /// The cluster token's mode flag: whether the order is used with backfilling.
    pub fn backfill(self) -> bool {
        match self {
            TrainMode::Sched(m) => m != Mode::Strict,
            TrainMode::Commit { easy } => easy,
        }
    }

    /// The same semantics without backfilling (what `strict_too` adds), if different.
    pub fn without_backfill(self) -> Option<TrainMode> {
        match self {
            TrainMode::Sched(Mode::Strict) | TrainMode::Commit { easy: false } => None,
            TrainMode::Sched(_) => Some(TrainMode::Sched(Mode::Strict)),
            TrainMode::Commit { easy: true } => Some(TrainMode::Commit { easy: false }),
        }
    }

    /// Longest start prefix imitated per decision point: a commit choice is one task.
    fn prefix_len(self, k: usize) -> usize {
        match self {
            TrainMode::Commit { .. } => 1,
            TrainMode::Sched(_) => k,
        }
    }

    /// The policy that runs `order` under these semantics.
    fn policy<O: Ordering + Send + 'static>(self, order: O) -> Box<dyn Policy + Send> {
        self.wrap(Box::new(Scheduler::new(order, self.sched_mode())))
    }

    /// The mode of the [`Scheduler`] around the order (a commit wrapper only reads its order).
    fn sched_mode(self) -> Mode {
        match self {
            TrainMode::Sched(m) => m,
            TrainMode::Commit { .. } => Mode::Strict,
        }
    }

    /// Wrap a policy that keeps a queue order in these semantics.
    fn wrap(self, p: Box<dyn Policy + Send>) -> Box<dyn Policy + Send> {
        match self {
            TrainMode::Sched(_) => p,
            TrainMode::Commit { easy } => Box::new(
                llmchain_policy::Committed::new(p, easy)
                    .expect("a Scheduler always keeps a queue order"),
            ),
        }
    }
}

impl std::fmt::Display for TrainMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainMode::Sched(m) => write!(f, "{m}"),
            TrainMode::Commit { easy: true } => f.write_str("commit-easy"),
            TrainMode::Commit { easy: false } => f.write_str("commit"),
        }
    }
}

/// Everything that defines a training run (saved in the card).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Registry name of the model.
    pub name: String,
    /// Seed for initialisation, shuffling and sampling.
    pub seed: u64,
    /// Network sizes.
    pub shape: LmShape,
    /// Workload specs to learn from (`swf:PATH`, `deeprm:load=L,jobs=N`).
    pub sources: Vec<String>,
    /// Evaluation protocol whose windows are excluded from training: sequences.
    pub eval_sequences: usize,
    /// ... length of each evaluation window.
    pub eval_length: usize,
    /// ... seeds of the evaluation sampling (every seed's windows are excluded).
    pub eval_seeds: Vec<u64>,
    /// Jobs kept free on each side of an evaluation window.
    pub margin: usize,
    /// Jobs per training window.
    pub window: usize,
    /// Also cut training windows starting every `stride` jobs (overlapping
    /// each other, never a validation or evaluation window); 0 = none.
    pub stride: usize,
    /// At most this many training windows per source (0 = all).
    pub max_windows: usize,
    /// Every n-th window goes to validation.
    pub val_every: usize,
    /// Teacher orderings (each run in `mode`).
    pub teachers: Vec<String>,
    /// The mode the model is trained for (`easy`, `greedy` or `strict`, or
    /// RLScheduler's `commit-easy` / `commit`, see [`TrainMode`]): teacher
    /// rollouts, the policy-gradient phase and the choice of kept weights use it.
    pub mode: String,
    /// Also imitate the best teacher without backfilling (strict mode, or
    /// `commit` for `commit-easy`), so one model serves both (the cluster
    /// token carries the mode flag).
    pub strict_too: bool,
    /// Longest start prefix imitated per decision point (a commit mode
    /// imitates one task per choice).
    pub prefix_k: usize,
    /// Imitation epochs.
    pub epochs: usize,
    /// DAgger rounds after imitation (0 = none): each round rolls the current
    /// model out on every training window, labels every state it visits with
    /// that window's teacher's choice, adds those samples and trains
    /// `epochs` more epochs on everything gathered.
    pub dagger_rounds: usize,
    /// Commit modes only: improve each window's best teacher by one-step
    /// lookahead over this many of its candidates per choice (0 = off;
    /// see `lm/lookahead.rs`); Y* is then the improved schedule's choices.
    pub lookahead: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Policy-gradient iterations after imitation.
    pub rl_iters: usize,
    /// Sampled schedules per iteration.
    pub rl_samples: usize,
    /// λ, the weight of the policy-gradient term.
    pub lambda: f64,
    /// Threads for the ML framework's matrix products (1 = deterministic).
    pub threads: usize,
    /// Stop after this many decision points of data (0 = no cap), for tiny test runs.
    pub max_samples: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "sched-lm".into(),
            seed: 7,
            shape: LmShape::default(),
            sources: vec![
                "swf:data/traces/lublin_256.swf".into(),
                "swf:data/traces/lublin_256_new2".into(),
            ],
            eval_sequences: 10,
            eval_length: 1024,
            eval_seeds: vec![1],
            margin: 16,
            window: 256,
            stride: 0,
            max_windows: 0,
            val_every: 4,
            teachers: [
                "sjf", "f1", "wfp3", "unicep", "fcfs", "p:1:0", "p:0.5:0", "p:0:1", "p:0.5:1",
                "p:0:3",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            mode: "easy".into(),
            strict_too: true,
            prefix_k: 4,
            epochs: 6,
            dagger_rounds: 0,
            lookahead: 0,
            batch: 64,
            lr: 3e-3,
            rl_iters: 30,
            rl_samples: 4,
            lambda: 1.0,
            threads: 1,
            max_samples: 0,
        }
    }
}

/// Per-epoch (or per-iteration) figures written to `curve.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// `imitation` or `rl`.
    pub phase: String,
    /// Epoch or iteration number.
    pub step: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation NLL per pointer step (imitation) or mean reward g (rl).
    pub val: f64,
}

/// What [`train_sched_lm`] returns.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The card (also written to the output directory when one was given).
    pub card: ModelCard,
    /// The model.
    pub model: SchedLm,
    /// Loss curve.
    pub curve: Vec<CurvePoint>,
}

/// Records the teacher's start prefix at each decision point, then lets the
/// teacher decide. Under a commit mode it records where a choice is made:
/// when [`llmchain_policy::Committed`] asks for the order.
struct TeacherRecorder<O: Ordering + Clone> {
    sched: Scheduler<O>,
    /// Record in `queue_order` (commit modes) instead of `decide`.
    on_order: bool,
    /// DAgger: this policy decides (and gives the order); the teacher only labels.
    driver: Option<Box<dyn Policy + Send>>,
    scorer: O,
    enc: Encoder,
    encoded: Encoded,
    keys: Vec<(f64, u64, usize)>,
    order: Vec<usize>,
    free: Vec<llmchain_core::Resources>,
    k: usize,
    max_queue: usize,
    /// Greedy mode: Y* is the sequence of tasks the teacher actually started.
    greedy: bool,
    out: super::ordering::Recording,
}

impl<O: Ordering + Clone> Policy for TeacherRecorder<O> {
    fn name(&self) -> &str {
        self.sched.name()
    }
    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        if self.driver.is_some() {
            if !self.on_order {
                self.record_prefix(snap);
            }
            if let Some(d) = &mut self.driver {
                d.decide(snap, out);
            }
            return;
        }
        if self.greedy {
            let first = out.len();
            self.sched.decide(snap, out);
            if snap.waiting.len() >= 2 {
                self.enc.encode(snap, self.max_queue, &mut self.encoded);
                // Tokens are the first `n` waiting tasks (sorted by id), so a
                // task's token index is its waiting index.
                let prefix: Vec<u16> = out[first..]
                    .iter()
                    .filter_map(|d| {
                        snap.waiting
                            .binary_search_by_key(&d.task(), |t| t.id)
                            .ok()
                            .filter(|&i| i < self.encoded.n)
                            .map(|i| i as u16)
                    })
                    .take(self.k)
                    .collect();
                if !prefix.is_empty() {
                    self.out.lock().expect("recording lock").push(Sample {
                        n: self.encoded.n,
                        task: self.encoded.task.clone(),
                        cluster: self.encoded.cluster,
                        prefix,
                    });
                }
            }
            return;
        }
        if !self.on_order {
            self.record_prefix(snap);
        }
        self.sched.decide(snap, out);
    }
    fn feedback(&mut self, o: &llmchain_core::Outcome) {
        self.sched.feedback(o);
        if let Some(d) = &mut self.driver {
            d.feedback(o);
        }
    }
    fn queue_order(
        &mut self,
        snap: &Snapshot<'_>,
        out: &mut Vec<llmchain_core::TaskId>,
    ) -> Option<String> {
        if self.on_order {
            self.record_prefix(snap);
        }
        match &mut self.driver {
            Some(d) => d.queue_order(snap, out),
            None => self.sched.queue_order(snap, out),
        }
    }
}

impl<O: Ordering + Clone> TeacherRecorder<O> {
    /// Record the start prefix of the teacher's order at `snap` (≥ 2 waiting).
    fn record_prefix(&mut self, snap: &Snapshot<'_>) {
        if snap.waiting.len() >= 2 {
            self.enc.encode(snap, self.max_queue, &mut self.encoded);
            self.scorer.prepare(snap);
            let free = snap.free_vec();
            let view = PlanView { snap, free: &free };
            self.keys.clear();
            for (tok, &i) in self.encoded.idx.iter().enumerate() {
                let t = &snap.waiting[i];
                let s = self.scorer.score(&view, i, t);
                self.keys
                    .push((if s.is_nan() { f64::INFINITY } else { s }, t.submit.0, tok));
            }
            self.keys
                .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            self.order.clear();
            self.order.extend(self.keys.iter().map(|k| k.2));
            let prefix = if self.greedy {
                greedy_start_prefix(snap, &self.encoded, &self.order, self.k, &mut self.free)
            } else {
                start_prefix(snap, &self.encoded, &self.order, self.k, &mut self.free)
            };
            self.out.lock().expect("recording lock").push(Sample {
                n: self.encoded.n,
                task: self.encoded.task.clone(),
                cluster: self.encoded.cluster,
                prefix,
            });
        }
    }
}

fn rollout_with<O: Ordering + Clone + Send + 'static>(
    o: O,
    w: &Workload,
    mode: TrainMode,
    k: usize,
    mq: usize,
    driver: Option<Box<dyn Policy + Send>>,
) -> Result<(f64, Vec<Sample>), LearnError> {
    let out: super::ordering::Recording = Arc::new(Mutex::new(Vec::new()));
    let rec = TeacherRecorder {
        sched: Scheduler::new(o.clone(), mode.sched_mode()),
        on_order: matches!(mode, TrainMode::Commit { .. }),
        driver,
        scorer: o,
        enc: Encoder::new(mode.backfill()),
        encoded: Encoded::default(),
        keys: Vec::new(),
        order: Vec::new(),
        free: Vec::new(),
        k: mode.prefix_len(k),
        max_queue: mq,
        greedy: mode == TrainMode::Sched(Mode::Greedy),
        out: out.clone(),
    };
    let mut p = mode.wrap(Box::new(rec));
    let r = llmchain_sim::run(w, &mut p, &SimConfig::default())
        .map_err(LearnError::sim("teacher rollout"))?;
    let samples = std::mem::take(&mut *out.lock().expect("recording lock"));
    Ok((r.metrics.bounded_slowdown.mean, samples))
}

/// A parametric teacher ordering `p:A:B`:
/// score = ln(est) + A·ln(procs) − B·ln(1 + wait / max(est, 10 s)) (lower = sooner),
/// with est in seconds floored at 1 s and procs floored at 1. `p:0:0` is SJF,
/// `p:1:0` smallest area first; B > 0 favours tasks whose bounded slowdown grows.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamOrder {
    /// Weight of ln(procs).
    pub a: f64,
    /// Weight of the waiting term.
    pub b: f64,
}

impl ParamOrder {
    /// Parse `p:A:B`.
    pub fn parse(s: &str) -> Option<ParamOrder> {
        let mut it = s.strip_prefix("p:")?.split(':');
        let a = it.next()?.parse().ok()?;
        let b = it.next()?.parse().ok()?;
        it.next().is_none().then_some(ParamOrder { a, b })
    }
}

impl Ordering for ParamOrder {
    fn spec(&self) -> String {
        format!("p:{}:{}", self.a, self.b)
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(&self, view: &PlanView<'_, '_>, _idx: usize, t: &llmchain_core::WaitingTask) -> f64 {
        let est = t
            .estimate
            .map(|d| d.0 as f64 / 1000.0)
            .unwrap_or(3600.0)
            .max(1.0);
        let procs = (t.request.cpu_milli() as f64 / 1000.0).max(1.0);
        let wait = view.snap.now.saturating_since(t.submit).as_secs_f64();
        est.ln() + self.a * procs.ln() - self.b * (1.0 + wait / est.max(10.0)).ln()
    }
}

/// Roll out teacher ordering `name` in `mode` on `w`: mean bounded slowdown
/// and recorded samples. With a `driver` (DAgger), the driver decides and
/// the teacher only labels the states the driver visits.
pub fn teacher_rollout(
    name: &str,
    w: &Workload,
    mode: TrainMode,
    k: usize,
    max_queue: usize,
    driver: Option<Box<dyn Policy + Send>>,
) -> Result<(f64, Vec<Sample>), LearnError> {
    let d = driver;
    match name {
        "sjf" => rollout_with(SjfOrder, w, mode, k, max_queue, d),
        "f1" => rollout_with(F1Order, w, mode, k, max_queue, d),
        "wfp3" => rollout_with(Wfp3Order, w, mode, k, max_queue, d),
        "unicep" => rollout_with(UnicepOrder, w, mode, k, max_queue, d),
        "fcfs" => rollout_with(FcfsOrder, w, mode, k, max_queue, d),
        "packer" => rollout_with(PackerOrder, w, mode, k, max_queue, d),
        "tetris" => rollout_with(TetrisOrder::default(), w, mode, k, max_queue, d),
        other => match ParamOrder::parse(other) {
            Some(o) => rollout_with(o, w, mode, k, max_queue, d),
            None if other.starts_with("tetris:knob=") => {
                match other["tetris:knob=".len()..].parse::<f64>() {
                    Ok(knob) if (0.0..=1.0).contains(&knob) => {
                        rollout_with(TetrisOrder { knob }, w, mode, k, max_queue, d)
                    }
                    _ => Err(LearnError::Config {
                        field: "teachers",
                        reason: format!("`{other}`: the knob must be a number in 0..=1"),
                    }),
                }
            }
            None => Err(LearnError::Config {
                field: "teachers",
                reason: format!(
                    "unknown teacher `{other}` (valid: sjf, f1, wfp3, unicep, fcfs, packer, tetris, tetris:knob=K, p:A:B)"
                ),
            }),
        },
    }
}

/// Mean bounded slowdown of the model (greedy decoding) on `w` under `mode`.
pub fn model_bsld(
    weights: &Arc<LmWeights>,
    w: &Workload,
    mode: TrainMode,
) -> Result<f64, LearnError> {
    let mut p = mode.policy(LmOrdering::new("lm", weights.clone()).backfill(mode.backfill()));
    let r = llmchain_sim::run(w, &mut p, &SimConfig::default())
        .map_err(LearnError::sim("model rollout"))?;
    Ok(r.metrics.bounded_slowdown.mean)
}

/// One training window with its teacher's result.
struct TrainWindow {
    workload: Workload,
    teacher_bsld: f64,
    /// The best teacher per trained mode (primary first), for DAgger labels.
    teachers: Vec<(TrainMode, String)>,
}

/// Load a workload spec with the run's seed.
pub fn load_source(spec: &str, seed: u64) -> Result<Workload, LearnError> {
    let ws = WorkloadSpec::parse(spec).map_err(LearnError::sim(format!("workload `{spec}`")))?;
    llmchain_sim::load(&ws, seed, false).map_err(LearnError::sim(format!("loading `{spec}`")))
}

/// Plan the splits of one source: evaluation windows of every eval seed are excluded.
pub fn plan_splits(spec: &str, w: &Workload, cfg: &TrainConfig) -> Result<Splits, LearnError> {
    let mut test = Vec::new();
    if !spec.starts_with("swf:") && cfg.eval_seeds.contains(&cfg.seed) {
        // A generated source is drawn with the training seed; with an
        // evaluation seed it would be the evaluated workload itself.
        return Err(LearnError::Config {
            field: "seed",
            reason: format!(
                "`{spec}` is generated with the training seed {}, which is also an \
                 evaluation seed {:?}: pick a seed outside eval_seeds",
                cfg.seed, cfg.eval_seeds
            ),
        });
    }
    if spec.starts_with("swf:") && w.len() >= cfg.eval_length {
        for &s in &cfg.eval_seeds {
            let seqs = llmchain_sim::sample(w, cfg.eval_sequences, cfg.eval_length, s).map_err(
                LearnError::sim(format!("sampling evaluation windows of `{spec}`")),
            )?;
            for q in seqs {
                if let Some(win) = q.meta.window {
                    test.push((win.start, win.start + win.len));
                }
            }
        }
    }
    test.sort();
    test.dedup();
    let free = free_ranges(w.len(), &test, cfg.margin);
    let (mut train, validation) = cut_windows(&free, cfg.window, cfg.val_every);
    let extra = strided_windows(&free, &train, &validation, cfg.window, cfg.stride);
    train.extend(extra);
    train.sort();
    if cfg.max_windows > 0 && train.len() > cfg.max_windows {
        // Keep an even spread over the trace.
        let step = train.len() as f64 / cfg.max_windows as f64;
        train = (0..cfg.max_windows)
            .map(|i| train[(i as f64 * step) as usize])
            .collect();
    }
    Ok(Splits {
        source: spec.to_string(),
        n_jobs: w.len(),
        test,
        train,
        validation,
    })
}

fn make_batch(samples: &[&Sample], k: usize, mq: usize, weights: &[f32]) -> Batch {
    let n = samples
        .iter()
        .map(|s| s.n.min(mq))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut b = Batch::new(samples.len(), n, k);
    for (r, s) in samples.iter().enumerate() {
        b.set_row(
            r,
            &s.task[..s.n.min(mq) * TASK_FEATS],
            &s.cluster,
            s.n.min(mq),
            &s.prefix,
            weights[r],
        );
    }
    b
}

/// `cfg.epochs` epochs of pointer NLL over `samples` (shuffled minibatches,
/// prefixes of at most `k` steps), one curve point per epoch (steps numbered on from the last imitation point).
#[allow(clippy::too_many_arguments)]
fn imitation_epochs(
    model: &LmModel,
    opt: &mut AdamW,
    samples: &[Sample],
    val_samples: &[Sample],
    cfg: &TrainConfig,
    k: usize,
    rng: &mut ChaCha8Rng,
    progress: &mut dyn Progress,
    curve: &mut Vec<CurvePoint>,
    phase: &str,
) -> Result<(), LearnError> {
    let mq = model.shape.max_queue;
    let step0 = curve.iter().filter(|c| c.phase == "imitation").count() - 1;
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let batches = order.len().div_ceil(cfg.batch);
    progress.phase(phase, (cfg.epochs * batches) as u64);
    let mut batches_done = 0u64;
    for epoch in 1..=cfg.epochs {
        order.shuffle(rng);
        let (mut tot, mut steps) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch) {
            let refs: Vec<&Sample> = chunk.iter().map(|&i| &samples[i]).collect();
            let nsteps: usize = refs
                .iter()
                .map(|s| s.prefix.len().min(k))
                .sum::<usize>()
                .max(1);
            let w = vec![1.0 / nsteps as f32; refs.len()];
            let b = make_batch(&refs, k, mq, &w);
            let loss = model
                .pointer_nll(&b)
                .map_err(LearnError::candle("imitation loss"))?;
            opt.backward_step(&loss)
                .map_err(LearnError::candle("imitation step"))?;
            tot += loss
                .to_scalar::<f32>()
                .map_err(LearnError::candle("loss value"))? as f64
                * nsteps as f64;
            steps += nsteps;
            batches_done += 1;
            progress.step(
                batches_done,
                &format!(
                    "epoch {epoch}/{} loss {:.4}",
                    cfg.epochs,
                    tot / steps.max(1) as f64
                ),
            );
        }
        let val = mean_nll(model, val_samples, k, 256)?;
        tracing::info!(phase, epoch, train = tot / steps as f64, val, "imitation");
        curve.push(CurvePoint {
            phase: "imitation".into(),
            step: step0 + epoch,
            train_loss: tot / steps.max(1) as f64,
            val,
        });
    }
    progress.finish(&format!(
        "validation NLL {:.4}",
        curve.last().map_or(0.0, |c| c.val)
    ));
    Ok(())
}

/// Mean pointer NLL per step over `samples` (no gradient).
fn mean_nll(model: &LmModel, samples: &[Sample], k: usize, bs: usize) -> Result<f64, LearnError> {
    let (mut tot, mut steps) = (0.0, 0usize);
    for chunk in samples.chunks(bs) {
        let refs: Vec<&Sample> = chunk.iter().collect();
        let w = vec![1.0; refs.len()];
        let b = make_batch(&refs, k, model.shape.max_queue, &w);
        let l = model
            .pointer_nll(&b)
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(LearnError::candle("validation loss"))?;
        tot += l as f64;
        steps += b.weight.iter().filter(|w| **w > 0.0).count();
    }
    Ok(if steps == 0 { 0.0 } else { tot / steps as f64 })
}

fn weights_of(model: &LmModel) -> Result<Arc<LmWeights>, LearnError> {
    let map = model.weight_map()?;
    LmWeights::from_map(model.shape.clone(), &map)
        .map(Arc::new)
        .map_err(|reason| LearnError::Config {
            field: "shape",
            reason,
        })
}

fn mean_bsld(
    weights: &Arc<LmWeights>,
    ws: &[Workload],
    mode: TrainMode,
) -> Result<f64, LearnError> {
    let mut s = 0.0;
    for w in ws {
        s += model_bsld(weights, w, mode)?;
    }
    Ok(s / ws.len().max(1) as f64)
}

/// Train a scheduling LM. Writes `card.json`, `weights.safetensors` and
/// `curve.csv` under `out_dir` when given. Paths in `sources` are relative to
/// the current directory.
pub fn train_sched_lm(cfg: &TrainConfig, out_dir: Option<&Path>) -> Result<Trained, LearnError> {
    train_sched_lm_with(cfg, out_dir, &mut NoProgress)
}

/// [`train_sched_lm`], reporting to `progress` three phases: `teacher
/// rollouts` (one step per training or validation window), `imitation` (one
/// step per minibatch; the message carries epoch and mean loss) and `policy
/// gradient` (one step per iteration; the message carries the mean reward).
pub fn train_sched_lm_with(
    cfg: &TrainConfig,
    out_dir: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<Trained, LearnError> {
    let t0 = Instant::now();
    cfg.shape.validate()?;
    if cfg.sources.is_empty() {
        return Err(LearnError::Config {
            field: "sources",
            reason: "no workload sources".into(),
        });
    }
    if cfg.batch == 0 || cfg.window < 8 || cfg.prefix_k == 0 {
        return Err(LearnError::Config {
            field: "batch/window/prefix_k",
            reason: "batch ≥ 1, window ≥ 8, prefix_k ≥ 1".into(),
        });
    }
    if cfg.threads >= 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // candle reads this per matrix product; 1 thread makes training bit-reproducible.
        std::env::set_var("RAYON_NUM_THREADS", cfg.threads.to_string());
    }
    let mq = cfg.shape.max_queue;
    let Some(primary) = TrainMode::parse(&cfg.mode) else {
        return Err(LearnError::Config {
            field: "mode",
            reason: format!(
                "`{}` is not one of easy, greedy, strict, commit-easy, commit",
                cfg.mode
            ),
        });
    };
    let k = primary.prefix_len(cfg.prefix_k);
    if cfg.lookahead > 0 && !matches!(primary, TrainMode::Commit { .. }) {
        return Err(LearnError::Config {
            field: "lookahead",
            reason: format!(
                "lookahead teachers are for the commit modes (commit-easy, commit), not `{primary}`"
            ),
        });
    }
    let mut data = DataCard::default();
    data.notes.push(format!(
        "evaluation windows excluded: RLScheduler protocol, {} x {} jobs, seeds {:?}, margin {} jobs",
        cfg.eval_sequences, cfg.eval_length, cfg.eval_seeds, cfg.margin
    ));
    data.notes.push(format!(
        "teacher Y*: per training window, the best (lowest mean bounded slowdown) of {:?} in mode {primary}; \
         Y* = its start prefix ({}), at most {k} steps",
        cfg.teachers,
        match primary {
            TrainMode::Sched(Mode::Greedy) => "the tasks it started, in order",
            TrainMode::Commit { .. } =>
                "the task it commits to, at each choice, seen on the state after earlier starts",
            _ => "started tasks, then the EASY head",
        }
    ));
    if cfg.lookahead > 0 {
        data.notes.push(format!(
            "each window's best teacher improved by one-step lookahead: per choice, its first {} \
             candidates and SJF's, F1's and FCFS's first are each tried with the teacher \
             finishing the window; the best is kept",
            cfg.lookahead
        ));
    }
    for spec in cfg.sources.iter().filter(|s| !s.starts_with("swf:")) {
        data.notes.push(format!(
            "`{spec}` is generated with seed {} (evaluation seeds {:?} are refused for generated sources)",
            cfg.seed, cfg.eval_seeds
        ));
    }
    let mut train_samples: Vec<Sample> = Vec::new();
    let mut val_samples: Vec<Sample> = Vec::new();
    let mut train_windows: Vec<TrainWindow> = Vec::new();
    let mut val_windows: Vec<Workload> = Vec::new();
    let mut teacher_wins: std::collections::BTreeMap<String, usize> = Default::default();
    let mut val_teacher = Vec::new();
    let mut val_teacher_strict: Vec<f64> = Vec::new();
    let mut loaded = Vec::new();
    for spec in &cfg.sources {
        let w = load_source(spec, cfg.seed)?;
        let splits = plan_splits(spec, &w, cfg)?;
        loaded.push((spec, w, splits));
    }
    let total_windows: usize = loaded
        .iter()
        .map(|(_, _, s)| s.train.len() + s.validation.len())
        .sum();
    progress.phase("teacher rollouts", total_windows as u64);
    let mut windows_done = 0u64;
    for (spec, w, splits) in &loaded {
        debug_assert!(splits.disjoint());
        data.train.extend(splits.ranges(&splits.train));
        data.validation.extend(splits.ranges(&splits.validation));
        data.test.extend(splits.ranges(&splits.test));
        for (which, ranges) in [(0, &splits.train), (1, &splits.validation)] {
            for (i, &(s, e)) in ranges.iter().enumerate() {
                windows_done += 1;
                progress.step(windows_done, spec);
                if cfg.max_samples > 0 && train_samples.len() >= cfg.max_samples && which == 0 {
                    continue;
                }
                let win = llmchain_sim::sample::window(w, i, s, e - s, cfg.seed);
                let modes: Vec<TrainMode> = std::iter::once(primary)
                    .chain(primary.without_backfill().filter(|_| cfg.strict_too))
                    .collect();
                for &mode in &modes {
                    let mut best: Option<(f64, String, Vec<Sample>)> = None;
                    for t in &cfg.teachers {
                        let (b, samples) = teacher_rollout(t, &win, mode, k, mq, None)?;
                        if best.as_ref().map_or(true, |(bb, _, _)| b < *bb) {
                            best = Some((b, t.clone(), samples));
                        }
                    }
                    let Some((mut b, name, mut samples)) = best else {
                        continue;
                    };
                    if let (TrainMode::Commit { easy }, true) = (mode, cfg.lookahead > 0) {
                        let la = super::lookahead::Lookahead {
                            workload: &win,
                            easy,
                            base: &name,
                            m: cfg.lookahead,
                            backfill_flag: mode.backfill(),
                            max_queue: mq,
                        };
                        (b, samples) = la.teach()?;
                    }
                    if which == 0 {
                        *teacher_wins.entry(format!("{name}+{mode}")).or_default() += 1;
                        train_samples.extend(samples);
                        if mode == primary {
                            train_windows.push(TrainWindow {
                                workload: win.clone(),
                                teacher_bsld: b,
                                teachers: vec![(mode, name.clone())],
                            });
                        } else if let Some(tw) = train_windows.last_mut() {
                            tw.teachers.push((mode, name.clone()));
                        }
                    } else {
                        val_samples.extend(samples);
                        if mode == primary {
                            val_teacher.push(b);
                            val_windows.push(win.clone());
                        } else {
                            val_teacher_strict.push(b);
                        }
                    }
                }
            }
        }
    }
    progress.finish(&format!(
        "{} training and {} validation decision points",
        train_samples.len(),
        val_samples.len()
    ));
    if cfg.max_samples > 0 {
        train_samples.truncate(cfg.max_samples);
        val_samples.truncate(cfg.max_samples.div_ceil(4));
        val_windows.truncate(2);
    }
    if train_samples.is_empty() {
        return Err(LearnError::Config {
            field: "sources",
            reason: "no training decision points (windows too small?)".into(),
        });
    }
    data.notes.push(format!(
        "teacher chosen per training window: {teacher_wins:?}"
    ));
    tracing::info!(
        train = train_samples.len(),
        val = val_samples.len(),
        windows = train_windows.len(),
        "teacher data ready"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let model = LmModel::new(cfg.shape.clone(), cfg.seed)?;
    let mut opt = AdamW::new(
        model.all_vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )
    .map_err(LearnError::candle("optimizer"))?;
    let mut curve = Vec::new();
    let initial_val = mean_nll(&model, &val_samples, k, 256)?;
    curve.push(CurvePoint {
        phase: "imitation".into(),
        step: 0,
        train_loss: mean_nll(
            &model,
            &train_samples[..train_samples.len().min(2048)],
            k,
            256,
        )?,
        val: initial_val,
    });
    // Imitation, then each DAgger round: gather the states the model visits,
    // labelled by the teachers, and imitate everything gathered so far.
    let mut val_bsld_imit = f64::INFINITY;
    let mut best: Option<(f64, super::WeightMap, String)> = None;
    let mut round_metrics = Vec::new();
    for round in 0..=cfg.dagger_rounds {
        let phase = if round == 0 {
            "imitation".to_string()
        } else {
            format!("DAgger round {round}")
        };
        if round > 0 {
            let weights = weights_of(&model)?;
            progress.phase(
                &format!("{phase}: model rollouts"),
                train_windows.len() as u64,
            );
            let mut added = 0usize;
            for (i, tw) in train_windows.iter().enumerate() {
                for (mode, teacher) in &tw.teachers {
                    let driver = Box::new(Scheduler::new(
                        LmOrdering::new("lm", weights.clone()).backfill(mode.backfill()),
                        mode.sched_mode(),
                    ));
                    let (_, samples) =
                        teacher_rollout(teacher, &tw.workload, *mode, k, mq, Some(driver))?;
                    added += samples.len();
                    train_samples.extend(samples);
                }
                progress.step(i as u64 + 1, "");
            }
            progress.finish(&format!(
                "{added} states the model visited, labelled by the teachers"
            ));
        }
        imitation_epochs(
            &model,
            &mut opt,
            &train_samples,
            &val_samples,
            cfg,
            k,
            &mut rng,
            progress,
            &mut curve,
            &phase,
        )?;
        let v = mean_bsld(&weights_of(&model)?, &val_windows, primary)?;
        if round == 0 {
            val_bsld_imit = v;
        } else {
            tracing::info!(round, val_bsld = v, "DAgger");
            round_metrics.push((format!("val_bsld_{primary}_after_dagger_{round}"), v));
        }
        if best.as_ref().map_or(true, |b| v < b.0) {
            best = Some((v, model.weight_map()?, phase));
        }
    }
    let best = best.expect("at least the imitation round ran");

    // Policy-gradient phase.
    let mut reward_sum = 0.0;
    progress.phase("policy gradient", cfg.rl_iters as u64);
    for it in 1..=cfg.rl_iters {
        let tw = &train_windows[rng.gen_range(0..train_windows.len())];
        let weights = weights_of(&model)?;
        let mut episodes: Vec<(f64, Vec<Sample>)> = Vec::new();
        for _ in 0..cfg.rl_samples.max(2) {
            let rec: super::ordering::Recording = Arc::new(Mutex::new(Vec::new()));
            let o = LmOrdering::new("lm", weights.clone())
                .backfill(primary.backfill())
                .sampling(rng.gen())
                .recording(rec.clone(), k)
                .greedy_prefix(primary == TrainMode::Sched(Mode::Greedy));
            let mut p = primary.policy(o);
            let r = llmchain_sim::run(&tw.workload, &mut p, &SimConfig::default())
                .map_err(LearnError::sim("policy-gradient rollout"))?;
            let g = (tw.teacher_bsld / r.metrics.bounded_slowdown.mean.max(1.0)).min(2.0);
            let samples = std::mem::take(&mut *rec.lock().expect("recording lock"));
            episodes.push((g, samples));
        }
        let gbar = episodes.iter().map(|e| e.0).sum::<f64>() / episodes.len() as f64;
        reward_sum += gbar;
        let total_steps: usize = episodes
            .iter()
            .map(|e| e.1.iter().map(|s| s.prefix.len()).sum::<usize>())
            .sum::<usize>()
            .max(1);
        let mut rows: Vec<&Sample> = Vec::new();
        let mut wts: Vec<f32> = Vec::new();
        for (g, ss) in &episodes {
            // λ·(g − ḡ)·(−log P(Y)) averaged over episodes, per pointer step.
            let a = (cfg.lambda * (g - gbar)) as f32 / total_steps as f32;
            for s in ss {
                rows.push(s);
                wts.push(a);
            }
        }
        // Imitation minibatch alongside (the first term of L).
        let imit: Vec<&Sample> = (0..cfg.batch)
            .map(|_| &train_samples[rng.gen_range(0..train_samples.len())])
            .collect();
        let isteps: usize = imit.iter().map(|s| s.prefix.len()).sum::<usize>().max(1);
        let mut loss_val = 0.0;
        let mut grads_loss: Option<candle_core::Tensor> = None;
        for chunk in rows.chunks(256).zip(wts.chunks(256)) {
            let b = make_batch(chunk.0, k, mq, chunk.1);
            let l = model
                .pointer_nll(&b)
                .map_err(LearnError::candle("policy-gradient loss"))?;
            grads_loss = Some(match grads_loss {
                None => l,
                Some(acc) => acc
                    .add(&l)
                    .map_err(LearnError::candle("policy-gradient loss"))?,
            });
        }
        let bi = make_batch(&imit, k, mq, &vec![1.0 / isteps as f32; imit.len()]);
        let li = model
            .pointer_nll(&bi)
            .map_err(LearnError::candle("imitation loss"))?;
        let total = match grads_loss {
            Some(pg) => li.add(&pg).map_err(LearnError::candle("total loss"))?,
            None => li,
        };
        loss_val += total
            .to_scalar::<f32>()
            .map_err(LearnError::candle("loss value"))? as f64;
        opt.backward_step(&total)
            .map_err(LearnError::candle("policy-gradient step"))?;
        tracing::info!(it, reward = gbar, "policy gradient");
        progress.step(
            it as u64,
            &format!("reward {gbar:.3} (mean {:.3})", reward_sum / it as f64),
        );
        curve.push(CurvePoint {
            phase: "rl".into(),
            step: it,
            train_loss: loss_val,
            val: gbar,
        });
    }
    progress.finish("");
    let w_rl = weights_of(&model)?;
    let val_bsld_rl = if cfg.rl_iters > 0 {
        mean_bsld(&w_rl, &val_windows, primary)?
    } else {
        f64::INFINITY
    };
    let (final_map, kept) = if val_bsld_rl < best.0 {
        (model.weight_map()?, "rl".to_string())
    } else {
        (best.1, best.2)
    };

    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert("train_decision_points".into(), train_samples.len() as f64);
    metrics.insert("val_decision_points".into(), val_samples.len() as f64);
    metrics.insert("imitation_val_nll_initial".into(), initial_val);
    metrics.insert(
        "imitation_val_nll_final".into(),
        curve
            .iter()
            .rfind(|c| c.phase == "imitation")
            .map(|c| c.val)
            .unwrap_or(0.0),
    );
    metrics.insert(format!("val_bsld_{primary}_after_imitation"), val_bsld_imit);
    metrics.extend(round_metrics);
    if cfg.rl_iters > 0 {
        metrics.insert(format!("val_bsld_{primary}_after_rl"), val_bsld_rl);
        metrics.insert("rl_mean_reward".into(), reward_sum / cfg.rl_iters as f64);
    }
    metrics.insert(
        format!("val_bsld_{primary}_best_teacher"),
        val_teacher.iter().sum::<f64>() / val_teacher.len().max(1) as f64,
    );
    if let Some(secondary) = primary.without_backfill().filter(|_| cfg.strict_too) {
        let kept_w = Arc::new(LmWeights::from_map(cfg.shape.clone(), &final_map).map_err(
            |reason| LearnError::Config {
                field: "shape",
                reason,
            },
        )?);
        let mut st = 0.0;
        for w in &val_windows {
            st += model_bsld(&kept_w, w, secondary)?;
        }
        metrics.insert(
            format!("val_bsld_{secondary}"),
            st / val_windows.len().max(1) as f64,
        );
        metrics.insert(
            format!("val_bsld_{secondary}_best_teacher"),
            val_teacher_strict.iter().sum::<f64>() / val_teacher_strict.len().max(1) as f64,
        );
    }
    data.notes.push(format!(
        "kept weights: after {kept} (lower validation bounded slowdown in mode {primary})"
    ));
    let card = ModelCard {
        name: cfg.name.clone(),
        kind: KIND_SCHED_LM.into(),
        created_by: format!("llmchain-learn {}", env!("CARGO_PKG_VERSION")),
        git_commit: crate::card::git_commit(),
        seed: cfg.seed,
        config: serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null),
        shape: Some(cfg.shape.clone()),
        data,
        metrics,
        train_seconds: t0.elapsed().as_secs_f64(),
        reproduce: format!(
            "cargo run --release -p llmchain-learn --example learn -- train models/{0}/train.json models/{0} \
             (or: llmchain train sched-lm --config models/{0}/train.json --out models/{0})",
            cfg.name
        ),
    };
    if let Some(dir) = out_dir {
        save_sched_lm(dir, &card, &final_map)?;
        write_curve(&dir.join("curve.csv"), &curve)?;
        crate::card::write_atomic(&dir.join("curve.svg"), curve_svg(&curve).as_bytes())?;
        let cfg_text = serde_json::to_string_pretty(cfg).map_err(|source| LearnError::Json {
            path: dir.join("train.json"),
            source,
        })?;
        crate::card::write_atomic(&dir.join("train.json"), cfg_text.as_bytes())?;
    }
    let model = SchedLm::from_map(card.clone(), final_map)?;
    Ok(Trained { card, model, curve })
}

/// Save a scheduling LM (weights + card) into `dir`.
pub fn save_sched_lm(
    dir: &Path,
    card: &ModelCard,
    map: &super::WeightMap,
) -> Result<(), LearnError> {
    std::fs::create_dir_all(dir).map_err(|source| LearnError::Io {
        what: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    crate::card::write_weights(
        &dir.join(crate::card::WEIGHTS_FILE),
        map,
        &Default::default(),
    )?;
    card.write(dir)
}

fn write_curve(path: &Path, curve: &[CurvePoint]) -> Result<(), LearnError> {
    let mut s = String::from("phase,step,train_loss,val\n");
    for c in curve {
        s.push_str(&format!(
            "{},{},{:.6},{:.6}\n",
            c.phase, c.step, c.train_loss, c.val
        ));
    }
    crate::card::write_atomic(path, s.as_bytes())
}

/// A small SVG of the imitation losses (train and validation) per epoch.
pub fn curve_svg(curve: &[CurvePoint]) -> String {
    let pts: Vec<&CurvePoint> = curve.iter().filter(|c| c.phase == "imitation").collect();
    let (w, h, pad) = (480.0, 240.0, 30.0);
    let maxy = pts
        .iter()
        .flat_map(|c| [c.train_loss, c.val])
        .fold(1e-9, f64::max);
    let n = pts.len().max(2) as f64 - 1.0;
    let line = |f: &dyn Fn(&CurvePoint) -> f64| {
        pts.iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (w - 2.0 * pad) * i as f64 / n,
                    h - pad - (h - 2.0 * pad) * f(c) / maxy
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{pad}\" y=\"18\" font-size=\"12\">imitation loss per epoch (blue train, red validation; max {maxy:.3})</text>\
         <polyline fill=\"none\" stroke=\"blue\" points=\"{}\"/><polyline fill=\"none\" stroke=\"red\" points=\"{}\"/></svg>\n",
        line(&|c| c.train_loss),
        line(&|c| c.val)
    )
}
