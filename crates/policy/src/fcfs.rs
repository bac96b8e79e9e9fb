//! **The template for new policies**: first come, first served, as a plain
//! [`Policy`] in a few lines. Copy this file to start a new policy.
//!
//! What every policy must get right, shown here:
//! 1. **Plan against a copy of the free resources** and decrement it for each
//!    start you propose, so a batch never over-commits a node (the
//!    [`llmchain_core::Validator`] would reject the tail of the batch).
//! 2. **Use a total order with explicit tie-breakers.** Here the queue order
//!    is `snap.waiting`'s own order: by task id, which drivers assign in
//!    submission order — i.e. (submit time, id).
//! 3. **Never let an impossible task block the queue**: a task no node could
//!    hold even when empty is skipped (drivers normally reject those at load).
//! 4. **Reuse buffers**: keep scratch vectors in the struct so a decision
//!    does not allocate.
//! 5. Never read actual runtimes: only `estimate`, which the driver fills.
//!
//! Orderings that need scores, placement or backfilling do not need a new
//! `Policy`: implement [`crate::order::Ordering`] and wrap it in
//! [`crate::Scheduler`] with any [`crate::Mode`].

use llmchain_core::{Decision, Policy, PolicyStats, Resources, Snapshot, TaskId};

/// FCFS without backfilling: start waiting tasks in submission order while
/// the next one fits (first-fit by node id); the first that does not fit
/// blocks everything behind it. Built by the spec `fcfs`.
#[derive(Debug, Default)]
pub struct Fcfs {
    /// Free resources per node, decremented as starts are planned (reused).
    free: Vec<Resources>,
    decision_points: u64,
}

impl Fcfs {
    /// A new FCFS policy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for Fcfs {
    fn name(&self) -> &str {
        "fcfs"
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        self.decision_points += 1;
        self.free.clear();
        self.free.extend(snap.nodes.iter().map(|n| n.free));
        for t in snap.waiting {
            match Snapshot::first_fit(&t.request, &self.free) {
                Some(node) => {
                    self.free[node.0 as usize] -= t.request;
                    out.push(Decision::start(t.id, node));
                }
                // Could run on an empty node: it waits, and so does everyone behind it.
                None if snap.nodes.iter().any(|n| t.request.fits_in(&n.capacity)) => break,
                // Fits no node at all: skip it rather than block forever.
                None => continue,
            }
        }
    }

    fn stats(&self) -> PolicyStats {
        PolicyStats {
            decision_points: self.decision_points,
            ..PolicyStats::default()
        }
    }

    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        out.extend(snap.waiting.iter().map(|t| t.id));
        Some(
            "submission order (task id); strict: the first task that does not fit blocks the rest"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use llmchain_core::{NodeId, TaskId, Time};

    #[test]
    fn starts_in_order_until_blocked() {
        // 4 free CPUs: t1 (2) starts, t2 (3) blocks, t3 (1) must wait behind it.
        let nodes = [node(0, 4, 4)];
        let q = [
            task(1, 0, 2, None, 0),
            task(2, 1, 3, None, 0),
            task(3, 2, 1, None, 0),
        ];
        let mut out = Vec::new();
        Fcfs::new().decide(&Snapshot::new(Time::ZERO, &nodes, &q, &[]), &mut out);
        assert_eq!(out, vec![Decision::start(TaskId(1), NodeId(0))]);
    }

    #[test]
    fn impossible_task_does_not_block_and_second_node_is_used() {
        let nodes = [node(0, 4, 1), node(1, 4, 4)];
        let q = [
            task(1, 0, 9, None, 0),
            task(2, 1, 3, None, 0),
            task(3, 2, 1, None, 0),
        ];
        let mut out = Vec::new();
        Fcfs::new().decide(&Snapshot::new(Time::ZERO, &nodes, &q, &[]), &mut out);
        assert_eq!(
            out,
            vec![
                Decision::start(TaskId(2), NodeId(1)),
                Decision::start(TaskId(3), NodeId(0))
            ]
        );
    }
}
