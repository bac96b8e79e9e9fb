//! The scheduler thread: owns the policy and the validator, and makes a
//! decision point after every batch of events (submit, exit, cancel, policy
//! change). There is no polling timer.
//!
//! One decision point: lock → build the snapshot vectors → unlock →
//! `decide` → `Validator::check` → lock → reserve accepted tasks → unlock →
//! hand each to its own task thread, which spawns it (outside the lock, in
//! parallel with other starts), records pid/killer under the lock, waits for
//! the exit and sends [`Event::Exited`] (or [`Event::StartFailed`]) back here.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use llmchain_core::{
    Decision, ExitStatus, NodeId, NodeState, Outcome, Policy, Resources, RunningTask, TaskId,
    Validator, Verdict, WaitingTask,
};
use llmchain_node::LaunchSpec;

use crate::db::Op;
use crate::protocol::{PolicyResponse, TaskState};
use crate::state::{core_time, now_us, Event, PolicyView, Shared};

struct Sched {
    shared: Arc<Shared>,
    policy: Box<dyn Policy + Send>,
    validator: Validator,
    verdict: Verdict,
    out: Vec<Decision>,
    nodes: Vec<NodeState>,
    waiting: Vec<WaitingTask>,
    running: Vec<RunningTask>,
    tx: mpsc::Sender<Event>,
}

/// Run the scheduler loop until [`Event::Shutdown`] (or every sender is gone).
pub fn run(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    policy: Box<dyn Policy + Send>,
) {
    let mut s = Sched {
        shared,
        policy,
        validator: Validator::new(),
        verdict: Verdict::default(),
        out: Vec::new(),
        nodes: Vec::new(),
        waiting: Vec::new(),
        running: Vec::new(),
        tx,
    };
    // Recovered queued tasks get a first decision point.
    s.decision_point();
    while let Ok(first) = rx.recv() {
        let mut shutdown = s.handle(first);
        while let Ok(ev) = rx.try_recv() {
            shutdown |= s.handle(ev);
        }
        if shutdown {
            s.shutdown(&rx);
            return;
        }
        s.decision_point();
    }
}

impl Sched {
    /// Apply one event; true on shutdown.
    fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Wake => false,
            Event::Admitted(rows) => {
                let mut st = self.shared.lock();
                for row in rows {
                    st.admit(&self.shared.writer, row);
                }
                false
            }
            Event::Exited { id, report } => {
                self.exited(id, report);
                false
            }
            Event::SetPolicy { spec, reply } => {
                let res = (self.shared.config.policy_factory)(&spec).map(|p| {
                    self.policy = p;
                    let name = self.policy.name().to_string();
                    let mut st = self.shared.lock();
                    st.policy_spec = spec.clone();
                    st.policy_name = name.clone();
                    self.shared
                        .writer
                        .send(Op::Meta("policy".into(), spec.clone()));
                    tracing::info!(spec = %spec, "policy switched");
                    PolicyResponse {
                        spec: spec.clone(),
                        name,
                    }
                });
                let _ = reply.send(res);
                false
            }
            Event::StartFailed { id, error } => {
                self.start_failed(id, error);
                false
            }
            Event::Explain { id, reply } => {
                let _ = reply.send(self.policy_view(id));
                false
            }
            Event::Shutdown => true,
        }
    }

    /// The policy's current order of the eligible queue and its remark on `id`.
    fn policy_view(&mut self, id: u64) -> PolicyView {
        let now;
        {
            let st = self.shared.lock();
            st.snapshot_parts(&mut self.nodes, &mut self.waiting, &mut self.running);
            now = core_time(now_us());
        }
        let snap = llmchain_core::Snapshot::new(now, &self.nodes, &self.waiting, &self.running);
        let mut ids = Vec::with_capacity(self.waiting.len());
        let how = self.policy.queue_order(&snap, &mut ids);
        PolicyView {
            order: how.is_some().then(|| ids.iter().map(|t| t.0).collect()),
            how,
            remark: self.policy.remark(TaskId(id)),
        }
    }

    fn exited(&mut self, id: u64, report: Result<llmchain_node::ExitReport, String>) {
        let outcome;
        {
            let mut st = self.shared.lock();
            let shutting_down = st.shutting_down;
            let Some(t) = st.tasks.get(&id) else { return };
            if t.row.info.state != TaskState::Running {
                return;
            }
            let cancel = t.cancel_requested;
            let (mut status, reason, cpu, peak, oom) = match &report {
                Ok(r) => (
                    r.status,
                    None,
                    Some(r.cpu_time.as_millis() as u64),
                    r.peak_mem_mib,
                    r.oom_kills > 0 || r.status == ExitStatus::OomKilled,
                ),
                Err(e) => (
                    ExitStatus::Lost,
                    Some(format!("waiting for the process failed: {e}")),
                    None,
                    None,
                    false,
                ),
            };
            let mut reason = reason;
            if shutting_down && status != ExitStatus::Completed && !cancel {
                status = ExitStatus::Lost;
                reason = Some(
                    "the daemon shut down while the task ran; its processes were killed".into(),
                );
            } else if cancel && status == ExitStatus::Cancelled {
                reason = Some("cancelled while running".into());
            }
            let info = &st.tasks[&id].row.info;
            outcome = Outcome {
                task: TaskId(id),
                node: NodeId(0),
                user: info.uid,
                request: Resources::new(info.cpu_millis, info.mem_mib),
                estimate: info.estimate_ms.map(llmchain_core::Dur),
                submit: core_time(info.submit_us),
                start: core_time(info.start_us.unwrap_or(info.submit_us)),
                end: core_time(now_us()),
                status,
            };
            let writer = self.shared.writer.clone();
            st.finish(&writer, id, status, reason, cpu, peak, oom);
        }
        self.shared.finished_tx.send_modify(|n| *n += 1);
        self.policy.feedback(&outcome);
    }

    fn decision_point(&mut self) {
        let t0 = Instant::now();
        let now;
        {
            let st = self.shared.lock();
            // Nothing fits the free resources: no policy can start anything,
            // so skip the snapshot copy and the policy call (a full queue
            // behind a busy node costs O(queue) per submit, not a decision).
            if st.shutting_down || !st.anything_fits() {
                return;
            }
            st.snapshot_parts(&mut self.nodes, &mut self.waiting, &mut self.running);
            now = core_time(now_us());
        }
        if self.waiting.is_empty() {
            return;
        }
        let snap = llmchain_core::Snapshot::new(now, &self.nodes, &self.waiting, &self.running);
        self.out.clear();
        self.policy.decide(&snap, &mut self.out);
        self.validator
            .check_into(&snap, &self.out, &mut self.verdict);
        if !self.verdict.rejected.is_empty() {
            self.policy.rejected(&self.verdict.rejected);
        }
        let latency_us = t0.elapsed().as_micros() as u64;
        let policy_name = self.policy.name().to_string();
        let stats = self.policy.stats();
        let at = now_us();
        let mut to_start: Vec<LaunchSpec> = Vec::new();
        {
            let mut st = self.shared.lock();
            st.metrics.decision(latency_us, self.verdict.rejected.len());
            st.policy_stats = stats;
            for r in &self.verdict.rejected {
                let id = r.decision.task().0;
                if let Some(t) = st.tasks.get_mut(&id) {
                    t.last_rejection = Some(format!("{}: {}", r.decision, r.reason));
                }
                tracing::warn!(policy = %policy_name, decision = %r.decision, reason = %r.reason, "proposal refused");
                self.shared.writer.send(Op::Decision {
                    at_us: at,
                    policy: policy_name.clone(),
                    task: id,
                    accepted: false,
                    reason: Some(r.reason.to_string()),
                    latency_us,
                });
            }
            for d in &self.verdict.accepted {
                let id = d.task().0;
                let Some(t) = st.tasks.get(&id) else { continue };
                if t.row.info.state != TaskState::Queued || t.cancel_requested {
                    continue;
                }
                let req = t.request();
                let spec = self.launch_spec(t);
                let t = st.tasks.get_mut(&id).expect("present");
                t.row.info.state = TaskState::Running;
                st.dequeue(id);
                st.running.insert(id);
                st.used += req;
                self.shared.writer.send(Op::Decision {
                    at_us: at,
                    policy: policy_name.clone(),
                    task: id,
                    accepted: true,
                    reason: None,
                    latency_us,
                });
                to_start.push(spec);
            }
        }
        for spec in to_start {
            self.launch(spec);
        }
    }

    fn launch_spec(&self, t: &crate::state::Task) -> LaunchSpec {
        let i = &t.row.info;
        let (out, err) = self.shared.log_paths(i.id);
        let mut spec = LaunchSpec::new(TaskId(i.id), i.argv.clone());
        spec.cwd = i.cwd.clone().into();
        spec.env = t
            .row
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        spec.limits = Resources::new(i.cpu_millis, i.mem_mib);
        spec.stdout = Some(out);
        spec.stderr = Some(err);
        if self.shared.uid == 0 && i.uid != 0 {
            spec.uid = Some(i.uid);
        }
        spec
    }

    /// Start one reserved task on its own thread: spawn (cgroup setup, fork, exec — the
    /// slow part, so several starts proceed in parallel and the scheduler never waits
    /// for them), record the start, then wait for the exit and report it as an event.
    fn launch(&mut self, spec: LaunchSpec) {
        let id = spec.task.0;
        let shared = Arc::clone(&self.shared);
        let tx = self.tx.clone();
        let res = std::thread::Builder::new()
            .name(format!("llmchain-task-{id}"))
            .spawn(move || {
                let handle = match shared.executor.spawn(&spec) {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = tx.send(Event::StartFailed {
                            id,
                            error: e.to_string(),
                        });
                        return;
                    }
                };
                let start = now_us();
                let pid = handle.pid();
                let killer = handle.killer();
                let kill_now;
                {
                    let mut st = shared.lock();
                    st.metrics.starts += 1;
                    kill_now = st.shutting_down;
                    if let Some(t) = st.tasks.get_mut(&id) {
                        t.row.info.start_us = Some(start);
                        t.row.info.pid = Some(pid);
                        t.killer = Some(killer.clone());
                        t.probe = Some(handle.probe());
                        let cancel = t.cancel_requested;
                        shared.writer.send(Op::Transition {
                            id,
                            at_us: start,
                            from: Some(TaskState::Queued),
                            to: TaskState::Running,
                            reason: None,
                            start_us: Some(start),
                            pid: Some(pid),
                            exit: None,
                            end_us: None,
                        });
                        if cancel {
                            killer.kill();
                        }
                    }
                }
                if kill_now {
                    killer.kill();
                }
                let report = handle.wait().map_err(|e| e.to_string());
                let _ = tx.send(Event::Exited { id, report });
            });
        if let Err(e) = res {
            tracing::error!(task = id, "cannot start a task thread: {e}");
            let _ = self.tx.send(Event::StartFailed {
                id,
                error: format!("no thread: {e}"),
            });
        }
    }

    fn start_failed(&mut self, id: u64, error: String) {
        tracing::warn!(task = id, "spawn failed: {error}");
        {
            let mut st = self.shared.lock();
            let writer = self.shared.writer.clone();
            st.finish(
                &writer,
                id,
                ExitStatus::Failed { code: 127 },
                Some(format!("could not start: {error}")),
                None,
                None,
                false,
            );
        }
        self.shared.finished_tx.send_modify(|n| *n += 1);
    }

    /// Kill running tasks, wait (bounded) for their exits, record them as lost.
    fn shutdown(&mut self, rx: &mpsc::Receiver<Event>) {
        let killers: Vec<_> = {
            let mut st = self.shared.lock();
            st.shutting_down = true;
            st.running
                .iter()
                .filter_map(|id| st.tasks[id].killer.clone())
                .collect()
        };
        for k in &killers {
            k.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.shared.lock().running.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(Event::Exited { id, report }) => self.exited(id, report),
                Ok(Event::StartFailed { id, error }) => self.start_failed(id, error),
                Ok(Event::SetPolicy { reply, .. }) => {
                    let _ = reply.send(Err("the daemon is shutting down".into()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Whatever did not report an exit (a task still starting) is recorded as lost.
        let mut st = self.shared.lock();
        let left: Vec<u64> = st.running.iter().copied().collect();
        let writer = self.shared.writer.clone();
        for id in left {
            st.finish(
                &writer,
                id,
                ExitStatus::Lost,
                Some("the daemon shut down while the task ran; its exit was not observed".into()),
                None,
                None,
                false,
            );
        }
    }
}
