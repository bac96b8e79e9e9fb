//! [`Committed`]: RLScheduler's start semantics around any policy's queue order.

use llmchain_core::{
    Decision, Dur, NodeId, NodeState, Outcome, Policy, PolicyStats, Rejection, Resources,
    RunningTask, Snapshot, TaskId, Time, WaitingTask,
};

/// RLScheduler's start semantics around any policy's queue order, so results
/// can be set beside the published RLScheduler tables (Zhang et al., SC'20).
///
/// [`Committed`] asks the wrapped policy only for its order
/// ([`Policy::queue_order`]); it never calls the inner `decide`. It asks once
/// per *choice* of a task to commit to — not while a committed task still
/// waits — and, when a choice follows a start planned in the same decision,
/// on the state after that start (the started task running, its resources
/// taken), as RLScheduler's agent observes the queue again after each pick.
/// An order that is a fixed function of each task (SJF, F1, ...) is
/// unaffected; one that reads the cluster state (a trained model, Tetris)
/// sees what is really left. It then behaves like the RLScheduler simulator:
/// * the first task of the order becomes the **committed** task; it starts as
///   soon as it fits, and nothing else overtakes it — not even tasks that
///   arrive later and rank higher — until it has started (this differs from
///   [`crate::Mode::Strict`], which re-ranks the queue at every decision);
/// * with backfilling (`easy`), while the committed task waits, the other
///   waiting tasks are tried in **FCFS order** (submit time, then id) and start
///   if they fit now and end, by their estimate, strictly before the committed
///   task's reserved start (the *shadow time*). Unlike [`crate::Mode::Easy`]
///   there is no "extra resources" rule, and the backfill order is FCFS, not
///   the policy's.
///
/// Placement is first-fit by node id. The shadow time is the earliest time
/// the committed task fits on some node, from running tasks' expected ends
/// (a running task without one, or past it, is assumed to end at
/// `now + 1 ms`) and the starts planned in this decision. A task without an
/// estimate is never backfilled. A task that fits no node's capacity is never
/// committed to (it could block the queue for ever).
pub struct Committed {
    inner: Box<dyn Policy + Send>,
    name: String,
    easy: bool,
    committed: Option<TaskId>,
    // Scratch buffers, reused across decisions.
    order: Vec<TaskId>,
    free: Vec<Resources>,
    ends: Vec<(Time, Resources)>,
    fcfs: Vec<usize>,
}

impl Committed {
    /// Wrap `inner`, whose [`Policy::queue_order`] gives the order; `easy`
    /// adds RLScheduler's backfilling. The name is `<inner>+commit` or
    /// `<inner>+commit-easy`.
    ///
    /// Fails (with the inner policy's name) when `inner` keeps no queue order.
    pub fn new(mut inner: Box<dyn Policy + Send>, easy: bool) -> Result<Self, String> {
        let mut probe = Vec::new();
        if inner
            .queue_order(&Snapshot::new(Time::ZERO, &[], &[], &[]), &mut probe)
            .is_none()
        {
            return Err(format!(
                "`{}` keeps no queue order to commit to (use an ordering such as sjf, or lm:NAME)",
                inner.name()
            ));
        }
        let name = format!(
            "{}+{}",
            inner.name(),
            if easy { "commit-easy" } else { "commit" }
        );
        Ok(Committed {
            inner,
            name,
            easy,
            committed: None,
            order: Vec::new(),
            free: Vec::new(),
            ends: Vec::new(),
            fcfs: Vec::new(),
        })
    }

    /// Rename (tables and audit records show this name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The earliest time `req` fits on some node, given `self.free` now and
    /// the expected ends of running and just-planned tasks.
    fn shadow(
        &mut self,
        snap: &Snapshot<'_>,
        planned: &[(Time, NodeId, Resources)],
        req: &Resources,
    ) -> Option<Time> {
        let soon = snap.now + Dur(1);
        let mut best: Option<Time> = None;
        for (i, node) in snap.nodes.iter().enumerate() {
            if !req.fits_in(&node.capacity) {
                continue;
            }
            self.ends.clear();
            self.ends
                .extend(snap.running.iter().filter(|r| r.node == node.id).map(|r| {
                    (
                        r.expected_end.filter(|&e| e > snap.now).unwrap_or(soon),
                        r.request,
                    )
                }));
            self.ends.extend(
                planned
                    .iter()
                    .filter(|p| p.1 == node.id)
                    .map(|p| (p.0, p.2)),
            );
            self.ends.sort_by_key(|e| e.0);
            let mut avail = self.free[i];
            let mut at = None;
            for &(t, r) in &self.ends {
                avail += r;
                if req.fits_in(&avail) {
                    at = Some(t);
                    break;
                }
            }
            if let Some(t) = at {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best
    }
}

impl Policy for Committed {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        let first = out.len();
        self.free = snap.free_vec();
        let mut planned: Vec<(Time, NodeId, Resources)> = Vec::new();
        let started = |out: &Vec<Decision>, id: TaskId| out[first..].iter().any(|d| d.task() == id);
        let can_ever_fit = |req: &Resources| snap.nodes.iter().any(|n| req.fits_in(&n.capacity));
        // The state after the starts planned so far in this decision, built
        // on the first start (owned copies), so each choice sees it.
        let mut after: Option<(Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>)> = None;
        loop {
            let head = match self.committed.and_then(|id| snap.waiting_task(id)) {
                Some(t) if !started(out, t.id) => t,
                _ => {
                    // One choice: ask the inner policy for its order now.
                    self.order.clear();
                    let _ = match &after {
                        None => self.inner.queue_order(snap, &mut self.order),
                        Some((n, w, r)) => self
                            .inner
                            .queue_order(&Snapshot::new(snap.now, n, w, r), &mut self.order),
                    };
                    let found = self.order.iter().find_map(|&id| {
                        snap.waiting_task(id)
                            .filter(|t| !started(out, id) && can_ever_fit(&t.request))
                    });
                    match found {
                        Some(t) => t,
                        None => {
                            self.committed = None;
                            return;
                        }
                    }
                }
            };
            self.committed = Some(head.id);
            if let Some(n) = Snapshot::first_fit(&head.request, &self.free) {
                self.free[n.0 as usize] -= head.request;
                out.push(Decision::start(head.id, n));
                let end = snap.now + head.estimate.unwrap_or(Dur(1)).max(Dur(1));
                planned.push((end, n, head.request));
                self.committed = None;
                let (nodes, waiting, running) = after.get_or_insert_with(|| {
                    (
                        snap.nodes.to_vec(),
                        snap.waiting.to_vec(),
                        snap.running.to_vec(),
                    )
                });
                nodes[n.0 as usize].free -= head.request;
                waiting.retain(|t| t.id != head.id);
                running.push(RunningTask {
                    id: head.id,
                    node: n,
                    request: head.request,
                    start: snap.now,
                    expected_end: head.estimate.map(|e| snap.now + e),
                    user: head.user,
                });
                continue;
            }
            if !self.easy {
                return;
            }
            let Some(shadow) = self.shadow(snap, &planned, &head.request) else {
                return;
            };
            self.fcfs.clear();
            self.fcfs.extend(0..snap.waiting.len());
            let w = snap.waiting;
            self.fcfs.sort_by_key(|&i| (w[i].submit, w[i].id));
            for k in 0..self.fcfs.len() {
                let t = &w[self.fcfs[k]];
                if t.id == head.id || started(out, t.id) {
                    continue;
                }
                let Some(est) = t.estimate else { continue };
                if snap.now + est >= shadow {
                    continue;
                }
                if let Some(n) = Snapshot::first_fit(&t.request, &self.free) {
                    self.free[n.0 as usize] -= t.request;
                    out.push(Decision::start(t.id, n));
                }
            }
            return;
        }
    }

    fn feedback(&mut self, outcome: &Outcome) {
        self.inner.feedback(outcome);
    }

    fn rejected(&mut self, rejections: &[Rejection]) {
        self.inner.rejected(rejections);
    }

    fn stats(&self) -> PolicyStats {
        self.inner.stats()
    }

    /// The committed task first, then the inner policy's order.
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        let label = self.inner.queue_order(snap, out)?;
        if let Some(c) = self.committed.filter(|&c| snap.waiting_task(c).is_some()) {
            out.retain(|&id| id != c);
            out.insert(0, c);
            return Some(format!(
                "{label}; committed to task {} until it starts",
                c.0
            ));
        }
        Some(label)
    }

    fn remark(&self, task: TaskId) -> Option<String> {
        if self.committed == Some(task) {
            return Some("committed: no other task may overtake it until it starts".into());
        }
        self.inner.remark(task)
    }
}

#[cfg(test)]
mod tests {
    use llmchain_core::{RunningTask, Validator};

    use super::*;
    use crate::order::testutil::{node, task};
    use crate::{build, BuildCtx};

    fn sjf(easy: bool) -> Committed {
        Committed::new(build("sjf", &BuildCtx::default()).unwrap(), easy).unwrap()
    }

    fn running(id: u64, cpus: u64, end_s: u64) -> RunningTask {
        RunningTask {
            id: TaskId(id),
            node: NodeId(0),
            request: Resources::cpus(cpus, 0),
            start: Time::ZERO,
            expected_end: Some(Time::from_secs(end_s)),
            user: 0,
        }
    }

    fn ids(out: &[Decision]) -> Vec<u64> {
        out.iter().map(|d| d.task().0).collect()
    }

    #[test]
    fn the_committed_task_is_not_overtaken_even_by_better_arrivals() {
        let mut p = sjf(false);
        assert_eq!(p.name(), "sjf+commit");
        // 4 CPUs, 2 busy until t=100 s. A (4 CPUs, 50 s) is SJF's first and does not fit.
        let nodes = [node(0, 4, 2)];
        let run = [running(9, 2, 100)];
        let q = [task(1, 0, 4, Some(50), 0), task(2, 1, 1, Some(500), 0)];
        let mut out = Vec::new();
        p.decide(
            &Snapshot::new(Time::from_secs(10), &nodes, &q, &run),
            &mut out,
        );
        assert!(
            out.is_empty(),
            "B must not overtake the committed A: {out:?}"
        );
        // D (1 s) arrives and ranks first for SJF, and would fit now; A stays committed.
        let q = [q[0].clone(), q[1].clone(), task(3, 20, 2, Some(1), 0)];
        let snap = Snapshot::new(Time::from_secs(20), &nodes, &q, &run);
        p.decide(&snap, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut order = Vec::new();
        let label = p.queue_order(&snap, &mut order).unwrap();
        assert_eq!(order, [TaskId(1), TaskId(3), TaskId(2)], "{label}");
        assert!(p.remark(TaskId(1)).unwrap().contains("committed"));
        // Plain strict SJF would start D now.
        let mut plain = build("sjf", &BuildCtx::default()).unwrap();
        plain.decide(&snap, &mut out);
        assert_eq!(ids(&out), [3]);
        // Once the running task ends, A starts first, then the order goes on.
        let free = [node(0, 4, 4)];
        let mut out = Vec::new();
        p.decide(
            &Snapshot::new(Time::from_secs(100), &free, &q, &[]),
            &mut out,
        );
        assert_eq!(ids(&out), [1], "A takes all 4 CPUs; D waits for its turn");
    }

    #[test]
    fn easy_backfills_in_fcfs_order_only_what_ends_before_the_shadow_time() {
        let mut p = sjf(true);
        assert_eq!(p.name(), "sjf+commit-easy");
        let nodes = [node(0, 4, 2)];
        let run = [running(9, 2, 100)];
        // A (SJF's first) is committed; shadow = 100 s. B ends at 10+500 > 100: no. C, D and
        // E end before 100 s; two CPUs are free, so FCFS order takes C and D, not the
        // shorter E.
        let q = [
            task(1, 0, 4, Some(50), 0),
            task(2, 1, 1, Some(500), 0),
            task(3, 2, 1, Some(60), 0),
            task(4, 3, 1, Some(55), 0),
            task(5, 4, 1, Some(52), 0),
        ];
        let snap = Snapshot::new(Time::from_secs(10), &nodes, &q, &run);
        let mut out = Vec::new();
        p.decide(&snap, &mut out);
        assert_eq!(
            ids(&out),
            [3, 4],
            "FCFS backfill of what fits and ends before t=100 s"
        );
        let verdict = Validator::new().check(&snap, &out);
        assert!(verdict.rejected.is_empty(), "{verdict:?}");
    }

    #[test]
    fn tasks_that_fit_no_node_are_never_committed_to() {
        let mut p = sjf(false);
        let nodes = [node(0, 4, 4)];
        let q = [task(1, 0, 8, Some(1), 0), task(2, 1, 2, Some(9), 0)];
        let mut out = Vec::new();
        p.decide(&Snapshot::new(Time::ZERO, &nodes, &q, &[]), &mut out);
        assert_eq!(ids(&out), [2]);
    }

    /// What one `queue_order` call saw: waiting ids, free CPUs, running tasks.
    type Seen = (Vec<u64>, u64, usize);

    /// An order (by id) that records what each `queue_order` call saw.
    struct Spy {
        seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    }
    impl Policy for Spy {
        fn name(&self) -> &str {
            "spy"
        }
        fn decide(&mut self, _: &Snapshot<'_>, _: &mut Vec<Decision>) {
            unreachable!("Committed never calls the inner decide")
        }
        fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
            self.seen.lock().unwrap().push((
                snap.waiting.iter().map(|t| t.id.0).collect(),
                snap.total_free().cpu_milli() / 1000,
                snap.running.len(),
            ));
            out.extend(snap.waiting.iter().map(|t| t.id));
            Some("by id".into())
        }
    }

    #[test]
    fn the_order_is_asked_once_per_choice_on_the_state_after_earlier_starts() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut p = Committed::new(Box::new(Spy { seen: seen.clone() }), false).unwrap();
        // `new` probes with an empty snapshot.
        seen.lock().unwrap().clear();
        // 4 CPUs free: 1 (2 CPUs) starts, 2 (1 CPU) starts, 3 (4 CPUs) is committed.
        let nodes = [node(0, 4, 4)];
        let q = [
            task(1, 0, 2, Some(50), 0),
            task(2, 1, 1, Some(50), 0),
            task(3, 2, 4, Some(50), 0),
        ];
        let mut out = Vec::new();
        p.decide(&Snapshot::new(Time::ZERO, &nodes, &q, &[]), &mut out);
        assert_eq!(ids(&out), [1, 2]);
        assert_eq!(
            *seen.lock().unwrap(),
            [(vec![1, 2, 3], 4, 0), (vec![2, 3], 2, 1), (vec![3], 1, 2)],
            "one call per choice, each on the state after the planned starts"
        );
        // While 3 stays committed and does not fit, the order is not asked.
        let busy = [node(0, 4, 1)];
        let run = [running(1, 2, 50), running(2, 1, 50)];
        p.decide(
            &Snapshot::new(Time::from_secs(1), &busy, &q[2..], &run),
            &mut out,
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(ids(&out), [1, 2]);
    }

    #[test]
    fn a_policy_without_an_order_is_refused() {
        struct Blind;
        impl Policy for Blind {
            fn name(&self) -> &str {
                "blind"
            }
            fn decide(&mut self, _: &Snapshot<'_>, _: &mut Vec<Decision>) {}
        }
        let err = Committed::new(Box::new(Blind), true).err().unwrap();
        assert!(err.contains("`blind` keeps no queue order"), "{err}");
    }
}
