//! [`PredictedEstimates`]: a [`Policy`] wrapper that replaces the runtime
//! estimates a policy sees with predicted ones (`sjf+easy+pred`), without
//! changing the simulator.
//!
//! At every decision it copies the snapshot, rewrites
//! `WaitingTask::estimate` with the chosen [`EstimateSource`] and, for
//! running tasks, `RunningTask::expected_end` = start + predicted runtime
//! (a task that has outlived its prediction is expected to end after as long
//! again as it has run, capped by its requested end), then delegates.
//! User histories grow online from [`Policy::feedback`], so predictions use
//! only what had ended before the task was first seen.
//!
//! # Without the trace's job list ([`PredictedEstimates::from_snapshots`])
//! A driver that only has snapshots (the simulator through a policy spec,
//! the daemon) lets the wrapper build each task's [`JobRecord`] when it is
//! first seen waiting. The predictor then sees: requested time (the
//! snapshot's estimate), processors (CPU millicores / 1000), user, and the
//! submit hour and weekday of the *driver's clock* (simulator windows start
//! at time 0, so these are not the trace's wall-clock hour); group,
//! executable, queue and requested memory are unknown (`-1`), because
//! `Snapshot`/`TaskSpec` do not carry them. User histories start empty and
//! grow from feedback.

use std::collections::HashMap;

use llmchain_core::{
    Decision, Dur, Outcome, Policy, PolicyStats, RunningTask, Snapshot, TaskId, WaitingTask,
};

use super::{JobRecord, RuntimePredictor, UserHistory};

/// Which runtime estimate the wrapped policy sees.
#[derive(Clone, Debug)]
pub enum EstimateSource {
    /// The user's request (no rewrite; the wrapper is transparent).
    Request,
    /// Mean of the user's last two ended runtimes (request when no history).
    Last2,
    /// The trained predictor.
    Model(Box<RuntimePredictor>),
}

impl EstimateSource {
    /// Suffix used in policy names: `req`, `last2`, `pred`.
    pub fn suffix(&self) -> &'static str {
        match self {
            EstimateSource::Request => "req",
            EstimateSource::Last2 => "last2",
            EstimateSource::Model(_) => "pred",
        }
    }
}

/// See the docs of `crates/learn/src/runtime/policy.rs` for how estimates are rewritten.
pub struct PredictedEstimates<P: Policy> {
    inner: P,
    name: String,
    source: EstimateSource,
    /// Static job fields, index = `TaskId`.
    jobs: Vec<JobRecord>,
    hist: UserHistory,
    cache: HashMap<TaskId, Dur>,
    /// Records built from snapshots for tasks beyond `jobs` (see [`Self::from_snapshots`]).
    seen: HashMap<TaskId, JobRecord>,
    from_snapshots: bool,
    waiting: Vec<WaitingTask>,
    running: Vec<RunningTask>,
}

impl<P: Policy> PredictedEstimates<P> {
    /// Wrap `inner`. `jobs[i]` must describe `TaskId(i)` of the workload being
    /// run; `history` holds what had ended before the workload's first task.
    pub fn new(
        inner: P,
        source: EstimateSource,
        jobs: Vec<JobRecord>,
        history: UserHistory,
    ) -> Self {
        let name = format!("{}+{}", inner.name(), source.suffix());
        PredictedEstimates {
            inner,
            name,
            source,
            jobs,
            hist: history,
            cache: HashMap::new(),
            seen: HashMap::new(),
            from_snapshots: false,
            waiting: Vec::new(),
            running: Vec::new(),
        }
    }

    /// Wrap `inner` for a driver that has no job list: each task's record is
    /// built from the snapshot when it is first seen waiting (see the
    /// docs of `crates/learn/src/runtime/policy.rs` for what the predictor then sees), and user
    /// histories start empty.
    pub fn from_snapshots(inner: P, source: EstimateSource) -> Self {
        let mut p = Self::new(inner, source, Vec::new(), UserHistory::default());
        p.from_snapshots = true;
        p
    }

    /// The wrapped policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn record(&self, id: TaskId) -> Option<&JobRecord> {
        self.jobs.get(id.0 as usize).or_else(|| self.seen.get(&id))
    }

    fn estimate(&mut self, id: TaskId, fallback: Option<Dur>) -> Option<Dur> {
        if matches!(self.source, EstimateSource::Request) {
            return fallback;
        }
        if let Some(d) = self.cache.get(&id) {
            return Some(*d);
        }
        let j = self.record(id)?;
        let secs = match &self.source {
            EstimateSource::Request => unreachable!("handled above"),
            EstimateSource::Last2 => self
                .hist
                .last2(j.user)
                .or_else(|| fallback.map(|d| d.as_secs_f64()))?,
            EstimateSource::Model(m) => m.predict_secs(&self.hist.features(j)),
        };
        let d = Dur((secs.max(1.0) * 1000.0).round() as u64);
        self.cache.insert(id, d);
        Some(d)
    }

    /// Run `f` on the inner policy with `snap`'s tasks carrying predicted
    /// estimates (waiting tasks) and predicted ends (running tasks).
    fn with_predictions<R>(
        &mut self,
        snap: &Snapshot<'_>,
        f: impl FnOnce(&mut P, &Snapshot<'_>) -> R,
    ) -> R {
        let mut waiting = std::mem::take(&mut self.waiting);
        let mut running = std::mem::take(&mut self.running);
        waiting.clear();
        running.clear();
        for t in snap.waiting {
            if self.from_snapshots
                && (t.id.0 as usize) >= self.jobs.len()
                && !self.seen.contains_key(&t.id)
            {
                self.seen.insert(t.id, record_of(t));
            }
            let mut t = t.clone();
            t.estimate = self.estimate(t.id, t.estimate);
            waiting.push(t);
        }
        let now = snap.now;
        for r in snap.running {
            let mut r = r.clone();
            let requested_end = r.expected_end;
            if let Some(est) =
                self.estimate(r.id, requested_end.map(|e| e.saturating_since(r.start)))
            {
                let predicted = r.start + est;
                r.expected_end = Some(if predicted > now {
                    predicted
                } else {
                    let again = now + Dur(now.saturating_since(r.start).0.max(60_000));
                    match requested_end {
                        Some(req) if req > now => req.min(again),
                        _ => again,
                    }
                });
            }
            running.push(r);
        }
        let view = Snapshot::new(now, snap.nodes, &waiting, &running);
        let r = f(&mut self.inner, &view);
        self.waiting = waiting;
        self.running = running;
        r
    }
}

impl<P: Policy> Policy for PredictedEstimates<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.with_predictions(snap, |inner, view| inner.decide(view, out));
    }

    fn feedback(&mut self, o: &Outcome) {
        if let Some(j) = self.record(o.task) {
            let (user, req, exe) = (j.user, j.req_time as f64, j.executable);
            self.hist.push(user, o.runtime().as_secs_f64(), req, exe);
        }
        self.cache.remove(&o.task);
        self.seen.remove(&o.task);
        self.inner.feedback(o);
    }

    fn rejected(&mut self, r: &[llmchain_core::Rejection]) {
        self.inner.rejected(r)
    }

    fn stats(&self) -> PolicyStats {
        self.inner.stats()
    }

    /// The inner policy's order over the same predicted estimates its decisions use.
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        let label = self.with_predictions(snap, |inner, view| inner.queue_order(view, out))?;
        Some(format!("{label}, on predicted runtimes"))
    }

    fn remark(&self, task: TaskId) -> Option<String> {
        self.inner.remark(task)
    }
}

/// A task's record as far as a snapshot tells (see the [module docs](self)).
fn record_of(t: &WaitingTask) -> JobRecord {
    JobRecord {
        job: t.id.0,
        submit: (t.submit.0 / 1000) as i64,
        wait: -1,
        run: -1,
        procs: (t.request.cpu_milli() / 1000).max(1) as i64,
        req_time: t.estimate.map_or(-1, |d| (d.0 / 1000) as i64),
        req_mem: -1,
        user: i64::from(t.user),
        group: -1,
        executable: -1,
        queue: -1,
    }
}
