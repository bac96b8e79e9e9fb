//! Nodes and clusters of 1..N nodes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Resources;

/// Index of a node within its [`Cluster`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// One machine: a name and what it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Human-readable name (host name, or `n0`, `n1`, ... in simulations).
    pub name: String,
    /// Total allocatable resources.
    pub capacity: Resources,
}

/// A set of nodes. A task always runs on exactly one node.
///
/// SWF traces describe a processor pool; following the RLScheduler
/// convention they are simulated as one node with `MaxProcs` processors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The nodes; `NodeId(i)` is `nodes[i]`.
    pub nodes: Vec<NodeSpec>,
}

impl Cluster {
    /// One node with the given capacity.
    pub fn single(capacity: Resources) -> Self {
        Cluster {
            nodes: vec![NodeSpec {
                name: "n0".into(),
                capacity,
            }],
        }
    }

    /// `n` identical nodes.
    pub fn uniform(n: usize, capacity: Resources) -> Self {
        Cluster {
            nodes: (0..n)
                .map(|i| NodeSpec {
                    name: format!("n{i}"),
                    capacity,
                })
                .collect(),
        }
    }

    /// Sum of all nodes' capacities.
    pub fn total(&self) -> Resources {
        self.nodes
            .iter()
            .fold(Resources::ZERO, |acc, n| acc + n.capacity)
    }

    /// Whether some node could ever hold `req` (when empty).
    pub fn can_ever_fit(&self, req: &Resources) -> bool {
        self.nodes.iter().any(|n| req.fits_in(&n.capacity))
    }

    /// Largest capacity per dimension over all nodes.
    pub fn max_node(&self) -> Resources {
        let mut out = Resources::ZERO;
        for n in &self.nodes {
            for i in 0..out.0.len() {
                out.0[i] = out.0[i].max(n.capacity.0[i]);
            }
        }
        out
    }
}
