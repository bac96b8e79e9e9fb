//! A lookahead (rollout) teacher for RLScheduler's commit semantics.
//!
//! A heuristic teacher is improved by one-step lookahead with itself as the
//! base policy (Bertsekas' rollout algorithm): at each *choice* of a task to
//! commit to, in order, the `m` candidates — the base order's first `m`
//! tasks plus the first task of SJF, F1 and FCFS — are each tried, the rest
//! of the window is simulated with the base heuristic, and the candidate with
//! the lowest mean bounded slowdown is kept. The resulting schedule is never
//! worse than the base heuristic's on the window (keeping the base's own
//! choice is always a candidate). Choices are replayed exactly: the
//! simulator is deterministic and [`llmchain_policy::Committed`] asks for
//! the order once per choice, so the i-th `queue_order` call is the i-th
//! choice in every run.
//!
//! Cost: (choices × candidates) simulations of the window — for 256-job
//! windows a fraction of a second each (the `sched-lm-commit` recipe with
//! `lookahead: 3` trains in 12 s instead of 8 s).

use std::sync::{Arc, Mutex};

use llmchain_core::{Decision, Policy, Snapshot, TaskId};
use llmchain_sim::{SimConfig, Workload};

use super::features::{Encoded, Encoder, Sample};
use crate::LearnError;

/// What a scripted run saw at the choice after its script.
#[derive(Default)]
struct Probe {
    /// Candidates at that choice (the base's own first).
    candidates: Vec<TaskId>,
    /// A scripted task was not waiting when its choice came (replay diverged).
    diverged: bool,
}

/// The base order, with the first `script.len()` choices forced, then
/// optionally `deviate` at the next one; the rest is the base's.
struct Scripted {
    base: Box<dyn Policy + Send>,
    heads: Vec<Box<dyn Policy + Send>>,
    script: Arc<Vec<TaskId>>,
    deviate: Option<TaskId>,
    m: usize,
    calls: usize,
    probe: Arc<Mutex<Probe>>,
    /// Record (state, chosen token) at every choice with ≥ 2 waiting tasks.
    record: Option<(Encoder, usize, Arc<Mutex<Vec<Sample>>>)>,
    scratch: Vec<TaskId>,
}

impl Policy for Scripted {
    fn name(&self) -> &str {
        "lookahead"
    }
    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        // Only the order is read (under `Committed`).
        self.base.decide(snap, out)
    }
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        let first = out.len();
        let label = self.base.queue_order(snap, out)?;
        if snap.waiting.is_empty() {
            return Some(label);
        }
        let i = self.calls;
        self.calls += 1;
        let fits = |id: TaskId| {
            snap.waiting_task(id)
                .is_some_and(|t| snap.nodes.iter().any(|n| t.request.fits_in(&n.capacity)))
        };
        let forced = match i.cmp(&self.script.len()) {
            std::cmp::Ordering::Less => Some(self.script[i]),
            std::cmp::Ordering::Equal => self.deviate,
            std::cmp::Ordering::Greater => None,
        };
        if i == self.script.len() && self.deviate.is_none() {
            let mut p = self.probe.lock().expect("probe lock");
            p.candidates.clear();
            for &id in out[first..].iter().filter(|&&id| fits(id)).take(self.m) {
                p.candidates.push(id);
            }
            for h in &mut self.heads {
                self.scratch.clear();
                let _ = h.queue_order(snap, &mut self.scratch);
                if let Some(&id) = self.scratch.iter().find(|&&id| fits(id)) {
                    if !p.candidates.contains(&id) {
                        p.candidates.push(id);
                    }
                }
            }
        }
        if let Some(t) = forced {
            if !fits(t) {
                self.probe.lock().expect("probe lock").diverged = true;
            }
            let pos = out[first..].iter().position(|&x| x == t);
            if let Some(pos) = pos {
                out.remove(first + pos);
            }
            out.insert(first, t);
        }
        if let Some((enc, mq, rec)) = &mut self.record {
            let chosen = out[first..].iter().copied().find(|&id| fits(id));
            if let (true, Some(c)) = (snap.waiting.len() >= 2, chosen) {
                let mut e = Encoded::default();
                enc.encode(snap, *mq, &mut e);
                if let Some(tok) = e.idx.iter().position(|&wi| snap.waiting[wi].id == c) {
                    rec.lock().expect("recording lock").push(Sample {
                        n: e.n,
                        task: e.task,
                        cluster: e.cluster,
                        prefix: vec![tok as u16],
                    });
                }
            }
        }
        Some(label)
    }
}

/// Builds the policies of one scripted run.
pub(crate) struct Lookahead<'a> {
    /// The window.
    pub workload: &'a Workload,
    /// RLScheduler's backfilling.
    pub easy: bool,
    /// Base teacher spec (`sjf`, `p:A:B`, ...).
    pub base: &'a str,
    /// Candidates from the base order per choice.
    pub m: usize,
    /// Encoder mode flag and queue cap for the recorded samples.
    pub backfill_flag: bool,
    /// Most task tokens per sample.
    pub max_queue: usize,
}

impl Lookahead<'_> {
    fn build(&self, spec: &str) -> Result<Box<dyn Policy + Send>, LearnError> {
        crate::eval::build_policy(spec, std::path::Path::new("."))
    }

    /// One run: mean bounded slowdown and what the probe saw.
    fn run(
        &self,
        script: &Arc<Vec<TaskId>>,
        deviate: Option<TaskId>,
        record: Option<Arc<Mutex<Vec<Sample>>>>,
    ) -> Result<(f64, Probe), LearnError> {
        let probe = Arc::new(Mutex::new(Probe::default()));
        let heads = ["sjf", "f1", "fcfs"]
            .iter()
            .map(|s| self.build(s))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = Scripted {
            base: self.build(self.base)?,
            heads,
            script: script.clone(),
            deviate,
            m: self.m,
            calls: 0,
            probe: probe.clone(),
            record: record.map(|r| (Encoder::new(self.backfill_flag), self.max_queue, r)),
            scratch: Vec::new(),
        };
        let mut p =
            llmchain_policy::Committed::new(Box::new(inner), self.easy).map_err(|reason| {
                LearnError::Policy {
                    spec: self.base.into(),
                    reason,
                }
            })?;
        let r = llmchain_sim::run(self.workload, &mut p, &SimConfig::default())
            .map_err(LearnError::sim("lookahead rollout"))?;
        let probe = std::mem::take(&mut *probe.lock().expect("probe lock"));
        if probe.diverged {
            return Err(LearnError::Config {
                field: "lookahead",
                reason: "a replayed choice was not waiting: the simulation is not deterministic"
                    .into(),
            });
        }
        Ok((r.metrics.bounded_slowdown.mean, probe))
    }

    /// Improve the base by lookahead: the final mean bounded slowdown and
    /// one sample (state, chosen task) per choice.
    pub fn teach(&self) -> Result<(f64, Vec<Sample>), LearnError> {
        let mut script: Vec<TaskId> = Vec::new();
        loop {
            let s = Arc::new(script.clone());
            let (base_b, probe) = self.run(&s, None, None)?;
            let Some(&own) = probe.candidates.first() else {
                break;
            };
            let mut best = (base_b, own);
            for &c in &probe.candidates[1..] {
                let (b, _) = self.run(&s, Some(c), None)?;
                if b < best.0 {
                    best = (b, c);
                }
            }
            script.push(best.1);
        }
        let rec = Arc::new(Mutex::new(Vec::new()));
        let (b, _) = self.run(&Arc::new(script), None, Some(rec.clone()))?;
        let samples = std::mem::take(&mut *rec.lock().expect("recording lock"));
        Ok((b, samples))
    }
}
