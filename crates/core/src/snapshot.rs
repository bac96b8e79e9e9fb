//! The [`Snapshot`]: everything a policy may see when it decides.
//!
//! A snapshot borrows the driver's state, so taking one costs nothing; a
//! policy that needs to keep anything copies it.

use serde::{Deserialize, Serialize};

use crate::{Dur, NodeId, Resources, TaskId, Time, UserId};

/// A node as the policy sees it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Which node.
    pub id: NodeId,
    /// Total allocatable resources.
    pub capacity: Resources,
    /// Resources not held by running tasks.
    pub free: Resources,
}

/// A task waiting to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitingTask {
    /// Its id.
    pub id: TaskId,
    /// When it was submitted.
    pub submit: Time,
    /// What it needs.
    pub request: Resources,
    /// Runtime estimate the policy may use: the user's request, a predictor's
    /// output, or (only under a labelled "perfect estimates" protocol) the
    /// actual runtime. `None` when nothing is known.
    pub estimate: Option<Dur>,
    /// Submitting user.
    pub user: UserId,
    /// Priority hint (higher = sooner).
    pub priority: i32,
}

impl WaitingTask {
    /// Time waited so far at `now`.
    pub fn wait(&self, now: Time) -> Dur {
        now.saturating_since(self.submit)
    }
}

/// A task currently running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningTask {
    /// Its id.
    pub id: TaskId,
    /// Where it runs.
    pub node: NodeId,
    /// What it holds.
    pub request: Resources,
    /// When it started.
    pub start: Time,
    /// Start + estimate, when an estimate is known. A task may outlive it.
    pub expected_end: Option<Time>,
    /// Submitting user.
    pub user: UserId,
}

/// What a policy sees at one decision point.
///
/// Invariants drivers uphold (checked by `debug_assert` in [`Snapshot::new`]):
/// `waiting` is sorted by id (ids are assigned in submission order), and
/// `nodes[i].id == NodeId(i)`.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Current time.
    pub now: Time,
    /// Every node with its free resources.
    pub nodes: &'a [NodeState],
    /// Tasks waiting to start, sorted by id.
    pub waiting: &'a [WaitingTask],
    /// Tasks running now (any order).
    pub running: &'a [RunningTask],
}

impl<'a> Snapshot<'a> {
    /// Build a snapshot, checking its invariants in debug builds.
    pub fn new(
        now: Time,
        nodes: &'a [NodeState],
        waiting: &'a [WaitingTask],
        running: &'a [RunningTask],
    ) -> Self {
        debug_assert!(
            waiting.windows(2).all(|w| w[0].id < w[1].id),
            "waiting not sorted by id"
        );
        debug_assert!(
            nodes.iter().enumerate().all(|(i, n)| n.id.0 as usize == i),
            "node ids"
        );
        Snapshot {
            now,
            nodes,
            waiting,
            running,
        }
    }

    /// Find a waiting task by id (binary search).
    pub fn waiting_task(&self, id: TaskId) -> Option<&'a WaitingTask> {
        self.waiting
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.waiting[i])
    }

    /// Whether `id` is running now (linear scan).
    pub fn is_running(&self, id: TaskId) -> bool {
        self.running.iter().any(|r| r.id == id)
    }

    /// Sum of free resources over all nodes.
    pub fn total_free(&self) -> Resources {
        self.nodes.iter().fold(Resources::ZERO, |a, n| a + n.free)
    }

    /// Sum of capacity over all nodes.
    pub fn total_capacity(&self) -> Resources {
        self.nodes
            .iter()
            .fold(Resources::ZERO, |a, n| a + n.capacity)
    }

    /// First node (lowest id) whose entry in `free` can hold `req`.
    /// `free` is usually a copy of the nodes' free resources that the policy
    /// decrements as it plans several starts.
    pub fn first_fit(req: &Resources, free: &[Resources]) -> Option<NodeId> {
        free.iter()
            .position(|f| req.fits_in(f))
            .map(|i| NodeId(i as u32))
    }

    /// The nodes' free resources as a vector a policy can plan against.
    pub fn free_vec(&self) -> Vec<Resources> {
        self.nodes.iter().map(|n| n.free).collect()
    }
}
