//! [`OwnedSnapshot`]: a snapshot that owns its data — for planning on a
//! modified state (the residual after the model's starts), for capturing the
//! state at a point of a simulation, and for explanations.

use llmchain_core::{Decision, NodeState, RunningTask, Snapshot, Time, WaitingTask};
use serde::{Deserialize, Serialize};

/// An owned copy of a [`Snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnedSnapshot {
    /// Current time.
    pub now: Time,
    /// Nodes with free resources.
    pub nodes: Vec<NodeState>,
    /// Waiting tasks, sorted by id.
    pub waiting: Vec<WaitingTask>,
    /// Running tasks.
    pub running: Vec<RunningTask>,
}

impl OwnedSnapshot {
    /// Copy `snap`.
    pub fn of(snap: &Snapshot<'_>) -> Self {
        OwnedSnapshot {
            now: snap.now,
            nodes: snap.nodes.to_vec(),
            waiting: snap.waiting.to_vec(),
            running: snap.running.to_vec(),
        }
    }

    /// Borrow as a [`Snapshot`].
    pub fn view(&self) -> Snapshot<'_> {
        Snapshot::new(self.now, &self.nodes, &self.waiting, &self.running)
    }

    /// Apply starts: each named waiting task that fits its node moves to
    /// `running` and its request leaves the node's free resources. Starts that
    /// are not valid on this state are ignored (callers apply validated starts).
    pub fn apply(&mut self, decisions: &[Decision]) {
        for d in decisions {
            let Decision::Start { task, node } = *d else {
                continue;
            };
            let Ok(i) = self.waiting.binary_search_by_key(&task, |t| t.id) else {
                continue;
            };
            let Some(n) = self.nodes.get_mut(node.0 as usize) else {
                continue;
            };
            let t = &self.waiting[i];
            let Some(left) = n.free.checked_sub(&t.request) else {
                continue;
            };
            n.free = left;
            let t = self.waiting.remove(i);
            self.running.push(RunningTask {
                id: t.id,
                node,
                request: t.request,
                start: self.now,
                expected_end: t.estimate.map(|e| self.now + e),
                user: t.user,
            });
        }
    }
}
