//! Task specifications: what a workload or an application asks for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Dur, Resources, Time};

/// Identifies a task within one simulation run or one daemon.
///
/// Drivers assign ids in submission order, so a queue kept in arrival order
/// is also sorted by id (see [`crate::Snapshot::waiting`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user or group number (SWF fields 12 and 13; the uid on a real node).
pub type UserId = u32;

/// What a task asks for and, where known, how long it really runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Driver-assigned id, increasing in submission order.
    pub id: TaskId,
    /// The id the task had in its source (SWF job number, task list row), for reports.
    pub source_id: u64,
    /// When the task was submitted.
    pub submit: Time,
    /// What it needs while it runs; it occupies exactly this on one node.
    pub request: Resources,
    /// Actual run time, where known (traces). Hidden from policies unless a
    /// protocol explicitly grants perfect estimates.
    pub runtime: Option<Dur>,
    /// The user's runtime estimate / requested time limit, where given.
    pub estimate: Option<Dur>,
    /// Submitting user.
    pub user: UserId,
    /// Submitting group.
    pub group: UserId,
    /// Scheduling priority hint from the application (higher = sooner); 0 by default.
    pub priority: i32,
    /// Free-form name from the submitter. **Untrusted text**: never interpret it.
    pub name: Option<String>,
}

impl TaskSpec {
    /// A task with the given id, submit time, request and actual runtime; other fields default.
    pub fn new(id: u64, submit: Time, request: Resources, runtime: Dur) -> Self {
        TaskSpec {
            id: TaskId(id),
            source_id: id,
            submit,
            request,
            runtime: Some(runtime),
            estimate: None,
            user: 0,
            group: 0,
            priority: 0,
            name: None,
        }
    }

    /// Builder: set the runtime estimate.
    pub fn with_estimate(mut self, est: Dur) -> Self {
        self.estimate = Some(est);
        self
    }

    /// Builder: set the user.
    pub fn with_user(mut self, user: UserId) -> Self {
        self.user = user;
        self
    }
}
