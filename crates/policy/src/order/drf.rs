//! Dominant resource fairness (Ghodsi et al., NSDI'11) as a queue ordering.

use llmchain_core::{NodeId, Resources, Snapshot, UserId, WaitingTask};

use super::{Ordering, PlanView};
use crate::Mode;

/// DRF: the task whose **user** has the lowest dominant share goes first,
/// then FCFS (submit time, id).
///
/// A user's dominant share = max over dimensions of (resources held by the
/// user's running tasks / the cluster's total capacity), computed from the
/// snapshot's running tasks at the start of each decision and updated after
/// every start planned in the same decision (progressive filling, in greedy
/// mode). Users with nothing running have share 0.
#[derive(Clone, Debug, Default)]
pub struct DrfOrder {
    total: Resources,
    /// (user, resources held), sorted by user; reused across decisions.
    held: Vec<(UserId, Resources)>,
}

impl DrfOrder {
    fn add(&mut self, user: UserId, r: &Resources) {
        match self.held.binary_search_by_key(&user, |e| e.0) {
            Ok(i) => self.held[i].1 += *r,
            Err(i) => self.held.insert(i, (user, *r)),
        }
    }

    /// Dominant share of `user` now.
    pub fn share(&self, user: UserId) -> f64 {
        match self.held.binary_search_by_key(&user, |e| e.0) {
            Ok(i) => self.held[i].1.dominant_share(&self.total),
            Err(_) => 0.0,
        }
    }
}

impl Ordering for DrfOrder {
    fn spec(&self) -> String {
        "drf".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Greedy
    }
    fn prepare(&mut self, snap: &Snapshot<'_>) {
        self.total = snap.total_capacity();
        self.held.clear();
        for r in snap.running {
            self.add(r.user, &r.request);
        }
    }
    fn score(&self, _view: &PlanView<'_, '_>, _idx: usize, t: &WaitingTask) -> f64 {
        self.share(t.user)
    }
    fn dynamic(&self) -> bool {
        true
    }
    fn on_start(&mut self, t: &WaitingTask, _node: NodeId) {
        self.add(t.user, &t.request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testutil::{node, task};
    use crate::ordered_ids;
    use llmchain_core::{RunningTask, TaskId, Time};

    #[test]
    fn lowest_dominant_share_first_then_fcfs() {
        // 10 CPUs; user 7 runs 4 CPUs (share 0.4), user 8 runs 1 CPU (0.1),
        // user 9 runs nothing (0.0).
        let nodes = [node(0, 10, 5)];
        let running = [
            RunningTask {
                id: TaskId(100),
                node: NodeId(0),
                request: Resources::cpus(4, 0),
                start: Time::ZERO,
                expected_end: None,
                user: 7,
            },
            RunningTask {
                id: TaskId(101),
                node: NodeId(0),
                request: Resources::cpus(1, 0),
                start: Time::ZERO,
                expected_end: None,
                user: 8,
            },
        ];
        let q = [
            task(1, 0, 1, None, 7),
            task(2, 3, 1, None, 8),
            task(3, 9, 1, None, 9),
            task(4, 1, 1, None, 9),
        ];
        let s = crate::scores_with_running(DrfOrder::default(), &nodes, &q, &running, 10);
        assert_eq!(s, vec![0.4, 0.1, 0.0, 0.0]);
        let ids = crate::ordered_ids_with_running(DrfOrder::default(), &nodes, &q, &running, 10);
        assert_eq!(ids, vec![4, 3, 2, 1]);
        // With nothing running every share is 0: plain FCFS.
        assert_eq!(
            ordered_ids(DrfOrder::default(), &nodes, &q, 10),
            vec![1, 4, 2, 3]
        );
    }
}
