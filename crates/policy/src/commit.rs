//! [`Committed`]: RLScheduler's start semantics around any policy's queue order.

use llmchain_core::{
    Decision, Dur, NodeId, Outcome, Policy, PolicyStats, Rejection, Resources, Snapshot, TaskId,
    Time,
};

/// RLScheduler's start semantics around any policy's queue order, so results
/// can be set beside the published RLScheduler tables (Zhang et al., SC'20).
///
/// [`Committed`] asks the wrapped policy only for its order
/// ([`Policy::queue_order`]); it never calls the inner `decide`. It then
/// behaves like the RLScheduler simulator:
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
        self.order.clear();
        let _ = self.inner.queue_order(snap, &mut self.order);
        let mut planned: Vec<(Time, NodeId, Resources)> = Vec::new();
        let started = |out: &Vec<Decision>, id: TaskId| out[first..].iter().any(|d| d.task() == id);
        let can_ever_fit = |req: &Resources| snap.nodes.iter().any(|n| req.fits_in(&n.capacity));
        let mut next = 0;
        loop {
            let head = match self.committed.and_then(|id| snap.waiting_task(id)) {
                Some(t) if !started(out, t.id) => t,
                _ => {
                    let mut found = None;
                    while let Some(&id) = self.order.get(next) {
                        next += 1;
                        match snap.waiting_task(id) {
                            Some(t) if !started(out, id) && can_ever_fit(&t.request) => {
                                found = Some(t);
                                break;
                            }
                            _ => {}
                        }
                    }
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
