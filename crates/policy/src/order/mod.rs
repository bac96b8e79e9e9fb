//! Queue orderings: the scoring functions that decide *which* task goes
//! first. Each one is an [`Ordering`] and is combined with a [`crate::Mode`]
//! (strict, greedy, EASY, conservative) by [`crate::Scheduler`].
//!
//! # The total order
//! Every ordering yields a score per waiting task; **lower scores go first**.
//! Ties are broken by submit time (earlier first), then by task id (lower
//! first). Task ids are unique, so the order is total and deterministic. A
//! NaN score is treated as `+∞` (never produced by the built-in orderings).
//!
//! # Units shared by the RLScheduler formulas (WFP3, UNICEP, F1)
//! * `procs` = requested CPU millicores / 1000 (SWF processors), as a float;
//! * `req` = the task's runtime estimate in seconds (SWF requested time),
//!   floored at 0.001 s (one time unit) so no formula divides by zero;
//! * `wait` = `now − submit` in seconds; `submit` in seconds since the
//!   workload's epoch.
//!
//! A task with **no estimate** cannot be scored by SJF, WFP3, UNICEP or F1:
//! it scores `+∞` and sorts after every task that has one (FCFS among
//! themselves).

mod basic;
mod drf;
mod packing;
mod random;
mod rl;

pub use basic::{FcfsOrder, SjfOrder};
pub use drf::DrfOrder;
pub use packing::{BestFitOrder, PackerOrder, TetrisOrder};
pub use random::RandomOrder;
pub use rl::{F1Order, UnicepOrder, Wfp3Order};

use llmchain_core::{NodeId, Resources, Snapshot, WaitingTask, NDIMS};

use crate::Mode;

/// What an ordering may look at while scoring: the snapshot and the free
/// resources per node *after* the starts already planned in this decision.
#[derive(Clone, Copy, Debug)]
pub struct PlanView<'s, 'a> {
    /// The snapshot being decided on.
    pub snap: &'s Snapshot<'a>,
    /// Free resources per node (index = node id), minus planned starts.
    pub free: &'s [Resources],
}

/// A queue ordering: a documented scoring function (lower = sooner), with
/// optional placement preference and per-decision state.
///
/// Implementations must be deterministic: the same calls with the same
/// snapshots give the same scores (seeded randomness included).
pub trait Ordering: Send {
    /// Canonical spec of the ordering part, with parameters only where they
    /// differ from the defaults (`sjf`, `tetris:knob=0.3`).
    fn spec(&self) -> String;

    /// The mode used when the spec names none.
    fn default_mode(&self) -> Mode;

    /// Called once at the start of every decision, before any scoring.
    fn prepare(&mut self, _snap: &Snapshot<'_>) {}

    /// Like [`Ordering::prepare`], but for showing the current order outside a
    /// decision (explanations): it must leave the next decision unchanged.
    /// The default calls `prepare`, which suits orderings whose per-decision
    /// state is recomputed from the snapshot; seeded random orderings override
    /// it to keep their generator where it was.
    fn prepare_preview(&mut self, snap: &Snapshot<'_>) {
        self.prepare(snap);
    }

    /// Score of the waiting task `snap.waiting[idx]` (== `t`); lower = sooner.
    fn score(&self, view: &PlanView<'_, '_>, idx: usize, t: &WaitingTask) -> f64;

    /// True when [`Ordering::score`] is a non-decreasing function of the
    /// submit time alone (FCFS). The priority order is then exactly
    /// submission order (submit time, then id: equal scores fall to those
    /// tie-breakers anyway), and [`crate::Scheduler`] orders by them without
    /// computing scores.
    fn submit_order(&self) -> bool {
        false
    }

    /// True when scores change as tasks are started within one decision
    /// (they depend on the planned free resources or on per-decision state
    /// updated by [`Ordering::on_start`]). In greedy mode such orderings are
    /// re-scored after every start; in the other modes they are scored once,
    /// against the state at the start of the decision.
    fn dynamic(&self) -> bool {
        false
    }

    /// Placement preference for putting `t` on a node with `free` left of
    /// `capacity` (lower = better), or `None` for first-fit by node id.
    /// Only called for nodes where `t` fits.
    fn placement(&self, _t: &WaitingTask, _free: &Resources, _capacity: &Resources) -> Option<f64> {
        None
    }

    /// Told about every start planned in this decision.
    fn on_start(&mut self, _t: &WaitingTask, _node: NodeId) {}
}

/// Seconds of a task's estimate, floored at one time unit (0.001 s); `None`
/// when it has no estimate.
pub(crate) fn req_secs(t: &WaitingTask) -> Option<f64> {
    t.estimate.map(|d| (d.0.max(1)) as f64 / 1000.0)
}

/// Requested processors: CPU millicores / 1000.
pub(crate) fn procs(t: &WaitingTask) -> f64 {
    t.request.cpu_milli() as f64 / 1000.0
}

/// Alignment of a task's demand with a node's free resources, both
/// normalised by the node's capacity: `Σ_d (req_d/cap_d)·(free_d/cap_d)`
/// over the dimensions the node has (`cap_d > 0`). In `[0, NDIMS]`.
pub fn alignment(req: &Resources, free: &Resources, cap: &Resources) -> f64 {
    let mut a = 0.0;
    for d in 0..NDIMS {
        if cap.0[d] > 0 {
            let c = cap.0[d] as f64;
            a += (req.0[d] as f64 / c) * (free.0[d] as f64 / c);
        }
    }
    a
}

/// Normalised free space a node would have left after placing `req`:
/// `Σ_d (free_d − req_d)/cap_d` over the dimensions the node has. Assumes
/// `req` fits in `free`.
pub fn leftover(req: &Resources, free: &Resources, cap: &Resources) -> f64 {
    let mut a = 0.0;
    for d in 0..NDIMS {
        if cap.0[d] > 0 {
            a += free.0[d].saturating_sub(req.0[d]) as f64 / cap.0[d] as f64;
        }
    }
    a
}

/// Best (lowest) placement score of `t` over the nodes where it fits now
/// according to `view.free`, or `+∞` when it fits nowhere.
pub(crate) fn best_over_nodes(
    view: &PlanView<'_, '_>,
    t: &WaitingTask,
    f: impl Fn(&Resources, &Resources) -> f64,
) -> f64 {
    let mut best = f64::INFINITY;
    for (free, node) in view.free.iter().zip(view.snap.nodes) {
        if t.request.fits_in(free) {
            let s = f(free, &node.capacity);
            if s < best {
                best = s;
            }
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Hand-made snapshots for the ordering tests.
    use llmchain_core::{Dur, NodeId, NodeState, Resources, TaskId, Time, WaitingTask};

    /// A waiting task: id, submit (s), cpus, estimate (s), user.
    pub fn task(id: u64, submit_s: u64, cpus: u64, est_s: Option<u64>, user: u32) -> WaitingTask {
        WaitingTask {
            id: TaskId(id),
            submit: Time::from_secs(submit_s),
            request: Resources::cpus(cpus, 0),
            estimate: est_s.map(Dur::from_secs),
            user,
            priority: 0,
        }
    }

    /// One node with `cpus` CPUs (no memory dimension) and `free` CPUs free.
    pub fn node(id: u32, cpus: u64, free: u64) -> NodeState {
        NodeState {
            id: NodeId(id),
            capacity: Resources::cpus(cpus, 0),
            free: Resources::cpus(free, 0),
        }
    }
}
