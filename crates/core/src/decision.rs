//! [`Decision`] values: what a policy proposes to do now.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{NodeId, TaskId};

/// One proposed action. Proposals are untrusted until
/// [`crate::Validator`] accepts them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// Start a waiting task now on a node, holding its full request there.
    Start {
        /// Which task.
        task: TaskId,
        /// Where.
        node: NodeId,
    },
}

impl Decision {
    /// Shorthand for [`Decision::Start`].
    pub const fn start(task: TaskId, node: NodeId) -> Self {
        Decision::Start { task, node }
    }

    /// The task this decision is about.
    pub const fn task(&self) -> TaskId {
        match self {
            Decision::Start { task, .. } => *task,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Start { task, node } => write!(f, "start {task} on {node}"),
        }
    }
}
