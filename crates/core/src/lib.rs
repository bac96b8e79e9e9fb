//! LLMChain's shared model of resources, tasks, clusters, decisions and
//! policies. Pure data and traits: this crate does no I/O and knows nothing of
//! async runtimes, SQLite, HTTP or ML frameworks (architecture invariant 1).
//!
//! The flow every driver follows (simulator, node daemon, Slurm driver):
//! build a [`Snapshot`] → [`Policy::decide`] → [`Validator::check`] → apply the
//! accepted [`Decision`]s → on each completion [`Policy::feedback`].
//!
//! ```
//! use llmchain_core::*;
//!
//! let nodes = [NodeState { id: NodeId(0), capacity: Resources::cpus(8, 16), free: Resources::cpus(8, 16) }];
//! let waiting = [WaitingTask { id: TaskId(0), submit: Time::ZERO, request: Resources::cpus(4, 8),
//!                              estimate: None, user: 0, priority: 0 }];
//! let snap = Snapshot::new(Time::ZERO, &nodes, &waiting, &[]);
//! let verdict = Validator::new().check(&snap, &[Decision::start(TaskId(0), NodeId(0))]);
//! assert_eq!(verdict.accepted.len(), 1);
//! ```

mod cluster;
mod decision;
pub mod metrics;
mod policy;
mod resources;
mod snapshot;
mod task;
mod time;
mod validate;

pub use cluster::{Cluster, NodeId, NodeSpec};
pub use decision::Decision;
pub use policy::{ExitStatus, Outcome, Policy, PolicyStats};
pub use resources::{Dim, Resources, NDIMS};
pub use snapshot::{NodeState, RunningTask, Snapshot, WaitingTask};
pub use task::{TaskId, TaskSpec, UserId};
pub use time::{Dur, Time};
pub use validate::{RejectReason, Rejection, Validator, Verdict};
