//! The [`Policy`] trait: one API called the same way by the simulator, the
//! node daemon and (later) the Slurm driver.
//!
//! # Contract
//! * At every decision point (every arrival and every completion, or a
//!   driver-specific trigger) the driver calls [`Policy::decide`] with a
//!   [`Snapshot`] and an empty output vector.
//! * The policy pushes the tasks it wants started **now**, in order. It may
//!   push nothing. It never sees actual runtimes unless the driver's protocol
//!   grants perfect estimates.
//! * The driver passes every proposal through [`crate::Validator`]; only
//!   accepted ones happen. A policy must not assume its proposals were applied:
//!   the next snapshot tells the truth.
//! * When a task ends the driver calls [`Policy::feedback`] with its
//!   [`Outcome`].
//! * For explanations a driver may ask [`Policy::queue_order`] and
//!   [`Policy::remark`] between decisions; both have defaults.
//!
//! The documented template for new policies is `llmchain_policy::fcfs`.

use serde::{Deserialize, Serialize};

use crate::{Decision, Dur, NodeId, Resources, Snapshot, TaskId, Time, UserId};

/// How a task ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitStatus {
    /// Ran to completion with exit code 0 (or simulated completion).
    Completed,
    /// Exited with a non-zero code.
    Failed {
        /// The exit code.
        code: i32,
    },
    /// Killed by a signal other than an OOM kill.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// Killed for exceeding its memory limit.
    OomKilled,
    /// Cancelled by a user.
    Cancelled,
    /// Its process vanished (e.g. daemon crash); reason recorded by the driver.
    Lost,
}

/// What happened to a task, handed to [`Policy::feedback`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The task.
    pub task: TaskId,
    /// Where it ran.
    pub node: NodeId,
    /// Who submitted it.
    pub user: UserId,
    /// What it held.
    pub request: Resources,
    /// The estimate it was scheduled with, if any.
    pub estimate: Option<Dur>,
    /// Submitted at.
    pub submit: Time,
    /// Started at.
    pub start: Time,
    /// Ended at.
    pub end: Time,
    /// How it ended.
    pub status: ExitStatus,
}

impl Outcome {
    /// Actual run time.
    pub fn runtime(&self) -> Dur {
        self.end.saturating_since(self.start)
    }
}

/// Counters a policy may report about itself (model-backed policies fill them;
/// heuristics report zeros). Latencies are measured by the policy itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyStats {
    /// Calls made to a (language) model.
    pub model_calls: u64,
    /// Decision points where the policy fell back to its fallback policy.
    pub fallbacks: u64,
    /// Decision points handled in total.
    pub decision_points: u64,
    /// Model proposals dropped before reaching the validator (unparseable, unknown id, ...).
    pub proposals_dropped: u64,
    /// Mean latency of one decision, microseconds, when measured.
    pub latency_mean_us: Option<f64>,
    /// 99th percentile latency of one decision, microseconds, when measured.
    pub latency_p99_us: Option<f64>,
}

/// A scheduling policy.
pub trait Policy {
    /// Short name used in tables (`fcfs`, `sjf+easy`, `kernel:gguf`, ...).
    fn name(&self) -> &str;

    /// Propose tasks to start now, in order, by pushing onto `out`.
    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>);

    /// Learn that a task ended. Default: ignore.
    fn feedback(&mut self, _outcome: &Outcome) {}

    /// Learn which of the last proposals the validator rejected. Default: ignore.
    fn rejected(&mut self, _rejections: &[crate::Rejection]) {}

    /// Self-reported counters. Default: zeros.
    fn stats(&self) -> PolicyStats {
        PolicyStats::default()
    }

    /// For explanations ("which tasks are ahead of X?"): write the waiting
    /// tasks of `snap` into `out` in the order this policy ranks them now
    /// (first = considered first) and return a short description of that
    /// order and how it is used (e.g. backfilling may let later tasks start
    /// first). `None` (the default) when the policy keeps no such order;
    /// callers then say so. Called between decisions, never inside one; it
    /// must not change what later decisions do.
    fn queue_order(&mut self, _snap: &Snapshot<'_>, _out: &mut Vec<TaskId>) -> Option<String> {
        None
    }

    /// For explanations: what this policy last said about `task`, in words
    /// (e.g. the language model's answer that placed it in a plan or dropped
    /// it, or why the kernel fell back). Default `None`.
    fn remark(&self, _task: TaskId) -> Option<String> {
        None
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        (**self).decide(snap, out)
    }
    fn feedback(&mut self, outcome: &Outcome) {
        (**self).feedback(outcome)
    }
    fn rejected(&mut self, rejections: &[crate::Rejection]) {
        (**self).rejected(rejections)
    }
    fn stats(&self) -> PolicyStats {
        (**self).stats()
    }
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        (**self).queue_order(snap, out)
    }
    fn remark(&self, task: TaskId) -> Option<String> {
        (**self).remark(task)
    }
}
