//! [`Workload`]: a cluster, its tasks in submission order, and metadata saying
//! where they came from and what was assumed or skipped.

use std::collections::BTreeMap;

use llmchain_core::{Cluster, Dim, TaskId, TaskSpec, Time};
use serde::{Deserialize, Serialize};

use crate::SimError;

/// Where a workload came from and what was assumed while loading it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadMeta {
    /// The source, e.g. `swf:data/traces/lublin_256.swf`, `deeprm:load=1.1,jobs=10000`.
    pub source: String,
    /// Short label for tables (file stem, generator name; sequences add `#i`).
    pub label: String,
    /// Human-readable notes about assumptions, e.g.
    /// "requested time missing for 10000 jobs: used actual run time as estimate".
    pub notes: Vec<String>,
    /// Jobs skipped while loading, by reason (sorted, so output is deterministic).
    pub skipped: BTreeMap<String, u64>,
    /// Number of tasks whose estimate is their actual run time (because the
    /// source gave none, or the generator declares exact durations).
    pub estimates_from_runtime: u64,
    /// True when every task's estimate equals its actual run time: results on
    /// this workload are "perfect estimates" results and are labelled so.
    pub perfect_estimates: bool,
    /// Seed used to generate or sample it, when one was used.
    pub seed: Option<u64>,
    /// Present on a sampled sequence: which window of the parent workload it is.
    pub window: Option<Window>,
}

/// A window of consecutive tasks cut from a parent workload by [`crate::sample()`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Index of this sequence among those sampled (0-based).
    pub sequence: usize,
    /// Index (TaskId) in the parent workload of the window's first task.
    pub start: usize,
    /// Number of tasks in the window.
    pub len: usize,
    /// Submit time, in the parent's clock, that became time 0 here.
    pub rebased_from: Time,
}

/// A cluster and the tasks to run on it.
///
/// Invariants (established by [`Workload::new`], re-checked by [`crate::run`]):
/// `tasks[i].id == TaskId(i)`; tasks are sorted by submit time (ties keep
/// source order); every task has a run time and fits on some node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// The machines.
    pub cluster: Cluster,
    /// The tasks, in submission order.
    pub tasks: Vec<TaskSpec>,
    /// Provenance and assumptions.
    pub meta: WorkloadMeta,
}

impl Workload {
    /// Build a workload from tasks in any order: stable-sorts by submit time,
    /// assigns `TaskId`s 0..n (keeping each task's `source_id`), and checks that
    /// it is non-empty, every task has a run time and fits on some node.
    /// `meta.perfect_estimates` is recomputed from the tasks.
    pub fn new(
        cluster: Cluster,
        mut tasks: Vec<TaskSpec>,
        meta: WorkloadMeta,
    ) -> Result<Self, SimError> {
        if tasks.is_empty() {
            let reason = if meta.skipped.is_empty() {
                "the source contains no jobs".to_string()
            } else {
                format!("every job was skipped ({})", fmt_skipped(&meta.skipped))
            };
            return Err(SimError::EmptyWorkload {
                source_label: meta.source.clone(),
                reason,
            });
        }
        if cluster.nodes.is_empty() {
            return Err(SimError::InvalidWorkload {
                source_label: meta.source.clone(),
                reason: "the cluster has no nodes".into(),
            });
        }
        tasks.sort_by_key(|t| t.submit); // stable: ties keep source order
        for (i, t) in tasks.iter_mut().enumerate() {
            t.id = TaskId(i as u64);
        }
        let mut w = Workload {
            cluster,
            tasks,
            meta,
        };
        w.check()?;
        w.meta.perfect_estimates = w
            .tasks
            .iter()
            .all(|t| t.estimate.is_some() && t.estimate == t.runtime);
        Ok(w)
    }

    /// Check the invariants listed on [`Workload`].
    pub fn check(&self) -> Result<(), SimError> {
        let src = || self.meta.source.clone();
        if self.tasks.is_empty() {
            return Err(SimError::EmptyWorkload {
                source_label: src(),
                reason: "no tasks".into(),
            });
        }
        if self.cluster.nodes.is_empty() {
            return Err(SimError::InvalidWorkload {
                source_label: src(),
                reason: "the cluster has no nodes".into(),
            });
        }
        let max = self.cluster.max_node();
        let mut prev = Time::ZERO;
        for (i, t) in self.tasks.iter().enumerate() {
            if t.id != TaskId(i as u64) {
                return Err(SimError::InvalidWorkload {
                    source_label: src(),
                    reason: format!("tasks[{i}] has id {} (ids must be 0..n in order)", t.id),
                });
            }
            if t.submit < prev {
                return Err(SimError::InvalidWorkload {
                    source_label: src(),
                    reason: format!(
                        "task {} (source id {}) is submitted before its predecessor",
                        t.id, t.source_id
                    ),
                });
            }
            prev = t.submit;
            if t.runtime.is_none() {
                return Err(SimError::MissingRuntime {
                    source_label: src(),
                    source_id: t.source_id,
                });
            }
            if !self.cluster.can_ever_fit(&t.request) {
                // Name the first dimension that exceeds every node, if one does on its own.
                let dim = Dim::ALL
                    .into_iter()
                    .find(|d| t.request.get(*d) > max.get(*d))
                    .unwrap_or_else(|| t.request.first_shortfall(&max).unwrap_or(Dim::Cpu));
                return Err(SimError::TaskFitsNoNode {
                    source_label: src(),
                    source_id: t.source_id,
                    dim,
                    need: t.request.get(dim),
                    max: max.get(dim),
                    unit: dim.unit(),
                });
            }
        }
        Ok(())
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks (never true for a workload built by [`Workload::new`]).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// `reason: count, ...` in reason order.
pub(crate) fn fmt_skipped(skipped: &BTreeMap<String, u64>) -> String {
    skipped
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use llmchain_core::{Dur, Resources};

    use super::*;

    fn task(src: u64, submit: u64, cpus: u64) -> TaskSpec {
        let mut t = TaskSpec::new(
            99,
            Time::from_secs(submit),
            Resources::cpus(cpus, 0),
            Dur::from_secs(5),
        );
        t.source_id = src;
        t
    }

    #[test]
    fn ids_follow_stable_submit_order() {
        let tasks = vec![
            task(10, 5, 1),
            task(11, 1, 1),
            task(12, 5, 1),
            task(13, 0, 1),
        ];
        let w = Workload::new(
            Cluster::single(Resources::cpus(2, 0)),
            tasks,
            WorkloadMeta::default(),
        )
        .unwrap();
        let order: Vec<u64> = w.tasks.iter().map(|t| t.source_id).collect();
        assert_eq!(order, vec![13, 11, 10, 12]);
        assert!(w
            .tasks
            .iter()
            .enumerate()
            .all(|(i, t)| t.id == TaskId(i as u64)));
    }

    #[test]
    fn task_that_fits_no_node_is_named() {
        let meta = WorkloadMeta {
            source: "test".into(),
            ..Default::default()
        };
        let err = Workload::new(
            Cluster::single(Resources::cpus(2, 0)),
            vec![task(7, 0, 1), task(42, 0, 3)],
            meta,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("task 42") && msg.contains("cpu") && msg.contains("3000"),
            "{msg}"
        );
    }

    #[test]
    fn empty_workload_says_why() {
        let mut meta = WorkloadMeta {
            source: "x.swf".into(),
            ..Default::default()
        };
        meta.skipped.insert("with run time <= 0".into(), 3);
        let msg = Workload::new(Cluster::single(Resources::cpus(2, 0)), vec![], meta)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("x.swf") && msg.contains("3 with run time <= 0"),
            "{msg}"
        );
    }

    #[test]
    fn perfect_estimates_detected() {
        let t = task(1, 0, 1).with_estimate(Dur::from_secs(5));
        let w = Workload::new(
            Cluster::single(Resources::cpus(2, 0)),
            vec![t.clone()],
            WorkloadMeta::default(),
        )
        .unwrap();
        assert!(w.meta.perfect_estimates);
        let t2 = task(2, 0, 1).with_estimate(Dur::from_secs(6));
        let w = Workload::new(
            Cluster::single(Resources::cpus(2, 0)),
            vec![t, t2],
            WorkloadMeta::default(),
        )
        .unwrap();
        assert!(!w.meta.perfect_estimates);
    }
}
