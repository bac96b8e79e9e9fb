//! The [`Validator`]: the deterministic reference monitor every proposal
//! passes before anything happens (architecture invariant 2).
//!
//! Proposals are checked **in order** against a running copy of the nodes'
//! free resources, so a list that over-commits only in its tail keeps its
//! valid head. Each rejected proposal carries a [`RejectReason`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Decision, Dim, NodeId, Resources, Snapshot, TaskId};

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// No waiting task has this id (it never existed or already finished).
    UnknownTask,
    /// The task is already running.
    AlreadyStarted,
    /// The same task was proposed twice in one batch.
    Duplicate,
    /// The node does not exist.
    NoSuchNode {
        /// The node named.
        node: NodeId,
    },
    /// Starting it would over-commit the node in this dimension.
    OverCommit {
        /// The node named.
        node: NodeId,
        /// The first dimension that does not fit.
        dim: Dim,
        /// Amount requested in that dimension.
        need: u64,
        /// Amount free there at that point of the batch.
        free: u64,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::UnknownTask => f.write_str("unknown task (not waiting)"),
            RejectReason::AlreadyStarted => f.write_str("task already started"),
            RejectReason::Duplicate => f.write_str("task proposed twice"),
            RejectReason::NoSuchNode { node } => write!(f, "no such node {node}"),
            RejectReason::OverCommit {
                node,
                dim,
                need,
                free,
            } => write!(
                f,
                "would over-commit {node}: {dim} needs {need} {}, {free} free",
                dim.unit()
            ),
        }
    }
}

/// One refused proposal and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The proposal as made.
    pub decision: Decision,
    /// Why it was refused.
    pub reason: RejectReason,
}

/// The result of validating a batch of proposals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Accepted proposals, in proposal order. Applying all of them is safe.
    pub accepted: Vec<Decision>,
    /// Refused proposals, in proposal order.
    pub rejected: Vec<Rejection>,
}

/// Checks proposals against a snapshot. Holds scratch buffers so repeated
/// use does not allocate.
#[derive(Debug, Default)]
pub struct Validator {
    free: Vec<Resources>,
    seen: Vec<TaskId>,
}

impl Validator {
    /// A new validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate `proposals` against `snap`, appending to `verdict` (which is
    /// cleared first).
    pub fn check_into(
        &mut self,
        snap: &Snapshot<'_>,
        proposals: &[Decision],
        verdict: &mut Verdict,
    ) {
        verdict.accepted.clear();
        verdict.rejected.clear();
        self.free.clear();
        self.free.extend(snap.nodes.iter().map(|n| n.free));
        self.seen.clear();
        for &d in proposals {
            match self.check_one(snap, d) {
                Ok(()) => verdict.accepted.push(d),
                Err(reason) => verdict.rejected.push(Rejection {
                    decision: d,
                    reason,
                }),
            }
        }
    }

    /// Validate `proposals` against `snap`.
    pub fn check(&mut self, snap: &Snapshot<'_>, proposals: &[Decision]) -> Verdict {
        let mut v = Verdict::default();
        self.check_into(snap, proposals, &mut v);
        v
    }

    fn check_one(&mut self, snap: &Snapshot<'_>, d: Decision) -> Result<(), RejectReason> {
        match d {
            Decision::Start { task, node } => {
                if self.seen.contains(&task) {
                    return Err(RejectReason::Duplicate);
                }
                let Some(t) = snap.waiting_task(task) else {
                    return Err(if snap.is_running(task) {
                        RejectReason::AlreadyStarted
                    } else {
                        RejectReason::UnknownTask
                    });
                };
                let Some(free) = self.free.get_mut(node.0 as usize) else {
                    return Err(RejectReason::NoSuchNode { node });
                };
                if let Some(dim) = t.request.first_shortfall(free) {
                    return Err(RejectReason::OverCommit {
                        node,
                        dim,
                        need: t.request.get(dim),
                        free: free.get(dim),
                    });
                }
                *free -= t.request;
                self.seen.push(task);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeState, RunningTask, Time, WaitingTask};

    fn waiting(id: u64, cpus: u64) -> WaitingTask {
        WaitingTask {
            id: TaskId(id),
            submit: Time::ZERO,
            request: Resources::cpus(cpus, 1),
            estimate: None,
            user: 0,
            priority: 0,
        }
    }

    #[test]
    fn each_rejection_has_its_reason() {
        let nodes = [NodeState {
            id: NodeId(0),
            capacity: Resources::cpus(4, 16),
            free: Resources::cpus(3, 15),
        }];
        let waiting = [waiting(1, 2), waiting(2, 2), waiting(3, 1)];
        let running = [RunningTask {
            id: TaskId(0),
            node: NodeId(0),
            request: Resources::cpus(1, 1),
            start: Time::ZERO,
            expected_end: None,
            user: 0,
        }];
        let snap = Snapshot::new(Time::ZERO, &nodes, &waiting, &running);
        let s = |t, n| Decision::start(TaskId(t), NodeId(n));
        let v = Validator::new().check(
            &snap,
            &[
                s(1, 0),
                s(1, 0),
                s(9, 0),
                s(0, 0),
                s(3, 7),
                s(2, 0),
                s(3, 0),
            ],
        );
        assert_eq!(v.accepted, vec![s(1, 0), s(3, 0)]);
        let reasons: Vec<_> = v.rejected.iter().map(|r| r.reason.clone()).collect();
        assert_eq!(
            reasons,
            vec![
                RejectReason::Duplicate,
                RejectReason::UnknownTask,
                RejectReason::AlreadyStarted,
                RejectReason::NoSuchNode { node: NodeId(7) },
                RejectReason::OverCommit {
                    node: NodeId(0),
                    dim: Dim::Cpu,
                    need: 2000,
                    free: 1000
                },
            ]
        );
    }
}
