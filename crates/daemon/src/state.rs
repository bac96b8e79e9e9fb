//! The daemon's in-memory state ([`State`], behind the one state mutex) and the
//! shared handle every thread and handler holds ([`Shared`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llmchain_core::{
    Dur, ExitStatus, NodeId, NodeState, PolicyStats, Resources, RunningTask, TaskId, Time,
    WaitingTask,
};
use llmchain_node::{Executor, Killer, Probe};
use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::db::{Op, OutcomeRow, TaskRow, Writer};
use crate::metrics::Metrics;
use crate::protocol::{PolicyResponse, TaskInfo, TaskState};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Core time (ms since the Unix epoch) of a µs timestamp.
pub fn core_time(us: u64) -> Time {
    Time(us / 1000)
}

/// One task in memory.
#[derive(Debug)]
pub struct Task {
    /// What is stored (info + environment).
    pub row: TaskRow,
    /// Kills its tree while it runs.
    pub killer: Option<Killer>,
    /// Reads its usage while it runs.
    pub probe: Option<Probe>,
    /// A cancel arrived; the exit becomes `Cancelled`.
    pub cancel_requested: bool,
    /// The validator's last refusal of a proposal to start it.
    pub last_rejection: Option<String>,
}

impl Task {
    /// Its id.
    pub fn id(&self) -> u64 {
        self.row.info.id
    }

    /// Its request as a core resource vector.
    pub fn request(&self) -> Resources {
        Resources::new(self.row.info.cpu_millis, self.row.info.mem_mib)
    }
}

/// Events the scheduler thread reacts to. There is no timer: a decision point
/// happens only after one of these.
#[derive(Debug)]
pub enum Event {
    /// The queue changed (a submit, a cancel of a queued task).
    Wake,
    /// The state writer committed these new tasks (sent from the writer thread
    /// right after the commit, so a new task reaches the scheduler without a
    /// detour through its submit handler; whichever of the two comes first
    /// admits it, see [`State::admit`]).
    Admitted(Vec<TaskRow>),
    /// A task's main process exited (from its wait thread).
    Exited {
        /// The task.
        id: u64,
        /// The executor's report, or why waiting failed.
        report: Result<llmchain_node::ExitReport, String>,
    },
    /// A reserved task could not be spawned (bad program, cwd, ...).
    StartFailed {
        /// The task.
        id: u64,
        /// Why.
        error: String,
    },
    /// Switch policy; the reply says whether it was built.
    SetPolicy {
        /// New spec.
        spec: String,
        /// Answer.
        reply: oneshot::Sender<Result<PolicyResponse, String>>,
    },
    /// Explain: the policy's current order of the eligible queue and its remark
    /// about one task (the policy lives on the scheduler thread).
    Explain {
        /// The task asked about.
        id: u64,
        /// Answer.
        reply: oneshot::Sender<PolicyView>,
    },
    /// Stop: kill running tasks (recorded as lost), then end the thread.
    Shutdown,
}

/// The policy's view of the queue for an explanation.
#[derive(Clone, Debug, Default)]
pub struct PolicyView {
    /// Eligible queued task ids in the policy's order, when it keeps one.
    pub order: Option<Vec<u64>>,
    /// The policy's description of that order.
    pub how: Option<String>,
    /// What the policy last said about the task.
    pub remark: Option<String>,
}

/// Everything behind the state mutex.
#[derive(Debug)]
pub struct State {
    /// All tasks by id.
    pub tasks: BTreeMap<u64, Task>,
    /// Ids of queued tasks (eligible or held by dependencies).
    pub queued: BTreeSet<u64>,
    /// The queued tasks whose dependencies have all completed, as the policy sees
    /// them (kept up to date incrementally so a decision point copies, never recomputes).
    pub eligible: BTreeMap<u64, WaitingTask>,
    /// Queued tasks waiting on each not-yet-completed task.
    pub dependents: BTreeMap<u64, Vec<u64>>,
    /// Ids of running (or starting) tasks.
    pub running: BTreeSet<u64>,
    /// Schedulable capacity of the node.
    pub capacity: Resources,
    /// Sum of the requests of running tasks.
    pub used: Resources,
    /// The spec of the policy in force.
    pub policy_spec: String,
    /// Its name.
    pub policy_name: String,
    /// Its latest self-reported figures.
    pub policy_stats: PolicyStats,
    /// Counters and latency figures.
    pub metrics: Metrics,
    /// Finished tasks counted since start.
    pub finished: u64,
    /// Set once shutdown begins: no more submits, exits become `lost`.
    pub shutting_down: bool,
}

/// What every handler and thread shares.
pub struct Shared {
    /// The settings.
    pub config: Config,
    /// The state; see the locking rule in the crate docs.
    pub state: Mutex<State>,
    /// Writes to SQLite.
    pub writer: Writer,
    /// Wakes the scheduler thread.
    pub events: Mutex<mpsc::Sender<Event>>,
    /// Bumped whenever a task finishes (waiters re-check).
    pub finished_tx: watch::Sender<u64>,
    /// Next task id.
    pub next_id: AtomicU64,
    /// When the daemon started.
    pub started: Instant,
    /// Starts tasks.
    pub executor: Arc<Executor>,
    /// Host name.
    pub hostname: String,
    /// Machine telemetry sampler (its own mutex; never taken while `state` is held).
    pub telemetry: Mutex<llmchain_node::TelemetrySampler>,
    /// Task log directory.
    pub log_dir: PathBuf,
    /// The daemon's own uid.
    pub uid: u32,
}

impl Shared {
    /// Take the state lock (a poisoned lock is recovered: state updates are
    /// written so that a panic mid-update leaves no broken invariant behind).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake the scheduler.
    pub fn send(&self, ev: Event) {
        let tx = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(ev);
    }

    /// Log paths of a task.
    pub fn log_paths(&self, id: u64) -> (PathBuf, PathBuf) {
        (
            self.log_dir.join(format!("task-{id}.out")),
            self.log_dir.join(format!("task-{id}.err")),
        )
    }
}

impl State {
    /// A fresh state.
    pub fn new(capacity: Resources, policy_spec: String, policy_name: String) -> Self {
        State {
            tasks: BTreeMap::new(),
            queued: BTreeSet::new(),
            eligible: BTreeMap::new(),
            dependents: BTreeMap::new(),
            running: BTreeSet::new(),
            capacity,
            used: Resources::ZERO,
            policy_spec,
            policy_name,
            policy_stats: PolicyStats::default(),
            metrics: Metrics::default(),
            finished: 0,
            shutting_down: false,
        }
    }

    /// Dependencies of `id` not yet completed.
    pub fn unmet_deps(&self, t: &Task) -> Vec<u64> {
        t.row
            .info
            .after
            .iter()
            .copied()
            .filter(|d| {
                !matches!(
                    self.tasks.get(d).and_then(|d| d.row.info.exit),
                    Some(ExitStatus::Completed)
                )
            })
            .collect()
    }

    /// Whether a queued task may be offered to the policy.
    pub fn deps_met(&self, t: &Task) -> bool {
        t.row.info.after.iter().all(|d| {
            matches!(
                self.tasks.get(d).and_then(|d| d.row.info.exit),
                Some(ExitStatus::Completed)
            )
        })
    }

    /// Queue a task already in `tasks`: register it with its dependencies and make it
    /// eligible when they have all completed. Returns a dependency that already ended
    /// without completing (the caller cancels the task).
    pub fn enqueue(&mut self, id: u64) -> Option<(u64, ExitStatus)> {
        self.queued.insert(id);
        let after = self.tasks[&id].row.info.after.clone();
        let mut waiting_on = false;
        for d in after {
            match self.tasks.get(&d).and_then(|t| t.row.info.exit) {
                Some(ExitStatus::Completed) => {}
                Some(bad) => return Some((d, bad)),
                None => {
                    waiting_on = true;
                    self.dependents.entry(d).or_default().push(id);
                }
            }
        }
        if !waiting_on {
            let w = waiting_of(&self.tasks[&id]);
            self.eligible.insert(id, w);
        }
        None
    }

    /// Add a newly committed task to memory and queue it, unless it is there
    /// already (the submit handler and the scheduler both try; the first wins).
    /// Returns whether this call added it.
    pub fn admit(&mut self, writer: &Writer, row: TaskRow) -> bool {
        let id = row.info.id;
        if self.tasks.contains_key(&id) {
            return false;
        }
        self.metrics.submits += 1;
        self.tasks.insert(
            id,
            Task {
                row,
                killer: None,
                probe: None,
                cancel_requested: false,
                last_rejection: None,
            },
        );
        // A dependency may have failed between the submit's check and now.
        if let Some((d, s)) = self.enqueue(id) {
            self.finish(
                writer,
                id,
                ExitStatus::Cancelled,
                Some(format!("dependency {d} ended {}", status_name(&s))),
                None,
                None,
                false,
            );
        }
        true
    }

    /// Whether some eligible queued task fits in the free resources now. When
    /// none does, no policy can start anything and the decision point is skipped.
    pub fn anything_fits(&self) -> bool {
        let free = self.free();
        self.eligible.values().any(|w| w.request.fits_in(&free))
    }

    /// Remove a queued task from the queue structures (it starts or ends).
    pub fn dequeue(&mut self, id: u64) {
        self.queued.remove(&id);
        self.eligible.remove(&id);
    }

    /// Free resources on the node.
    pub fn free(&self) -> Resources {
        self.capacity.saturating_sub(&self.used)
    }

    /// Fill the snapshot vectors (one node, eligible waiting tasks by id, running tasks).
    pub fn snapshot_parts(
        &self,
        nodes: &mut Vec<NodeState>,
        waiting: &mut Vec<WaitingTask>,
        running: &mut Vec<RunningTask>,
    ) {
        nodes.clear();
        waiting.clear();
        running.clear();
        nodes.push(NodeState {
            id: NodeId(0),
            capacity: self.capacity,
            free: self.free(),
        });
        waiting.extend(self.eligible.values().cloned());
        for id in &self.running {
            let t = &self.tasks[id];
            let i = &t.row.info;
            let start = core_time(i.start_us.unwrap_or(i.submit_us));
            running.push(RunningTask {
                id: TaskId(i.id),
                node: NodeId(0),
                request: t.request(),
                start,
                expected_end: i.estimate_ms.map(|e| start + Dur(e)),
                user: i.uid,
            });
        }
    }

    /// Mark a queued or running task finished, record it, and cancel queued
    /// tasks that depended on it when it did not complete. Returns the ids finished.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        writer: &Writer,
        id: u64,
        status: ExitStatus,
        reason: Option<String>,
        cpu_time_ms: Option<u64>,
        peak_mem_mib: Option<u64>,
        oom: bool,
    ) -> Vec<u64> {
        let mut done = Vec::new();
        let mut stack = vec![(id, status, reason, cpu_time_ms, peak_mem_mib, oom)];
        while let Some((id, status, reason, cpu_t, peak, oom)) = stack.pop() {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            let from = t.row.info.state;
            if from == TaskState::Finished {
                continue;
            }
            let end = now_us();
            if from == TaskState::Running {
                self.running.remove(&id);
                self.used = self
                    .used
                    .saturating_sub(&Resources::new(t.row.info.cpu_millis, t.row.info.mem_mib));
            } else {
                self.queued.remove(&id);
                self.eligible.remove(&id);
            }
            let i = &mut t.row.info;
            i.state = TaskState::Finished;
            i.exit = Some(status);
            i.reason = reason.clone();
            i.end_us = Some(end);
            i.cpu_time_ms = cpu_t;
            i.peak_mem_mib = peak;
            t.killer = None;
            t.probe = None;
            writer.send(Op::Transition {
                id,
                at_us: end,
                from: Some(from),
                to: TaskState::Finished,
                reason: reason.clone(),
                start_us: None,
                pid: None,
                exit: Some(status),
                end_us: Some(end),
            });
            writer.send(Op::Outcome(Box::new(OutcomeRow {
                task: id,
                status,
                oom,
                start_us: i.start_us,
                end_us: end,
                cpu_time_ms: cpu_t,
                peak_mem_mib: peak,
                reason,
            })));
            self.metrics.completed(&status);
            self.finished += 1;
            done.push(id);
            for d in self.dependents.remove(&id).unwrap_or_default() {
                if !self.queued.contains(&d) {
                    continue;
                }
                if status == ExitStatus::Completed {
                    if self.deps_met(&self.tasks[&d]) {
                        let w = waiting_of(&self.tasks[&d]);
                        self.eligible.insert(d, w);
                    }
                } else {
                    stack.push((
                        d,
                        ExitStatus::Cancelled,
                        Some(format!("dependency {id} ended {}", status_name(&status))),
                        None,
                        None,
                        false,
                    ));
                }
            }
        }
        done
    }

    /// Task info as `caller` may see it (another user's command, cwd are hidden).
    pub fn view(&self, t: &Task, caller: u32) -> TaskInfo {
        let mut info = t.row.info.clone();
        if caller != 0 && caller != info.uid {
            info.argv.clear();
            info.cwd.clear();
        }
        info
    }
}

/// The policy's view of a queued task.
pub fn waiting_of(t: &Task) -> WaitingTask {
    let i = &t.row.info;
    WaitingTask {
        id: TaskId(i.id),
        submit: core_time(i.submit_us),
        request: t.request(),
        estimate: i.estimate_ms.map(Dur),
        user: i.uid,
        priority: i.priority,
    }
}

/// Short name of an exit status (`completed`, `failed`, `oom_killed`, ...).
pub fn status_name(s: &ExitStatus) -> &'static str {
    match s {
        ExitStatus::Completed => "completed",
        ExitStatus::Failed { .. } => "failed",
        ExitStatus::Signaled { .. } => "signaled",
        ExitStatus::OomKilled => "oom_killed",
        ExitStatus::Cancelled => "cancelled",
        ExitStatus::Lost => "lost",
        _ => "other",
    }
}
