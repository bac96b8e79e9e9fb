//! [`SimError`]: everything that can go wrong loading a workload or running a simulation.

use std::path::PathBuf;

use llmchain_core::Dim;

/// Errors from workload loading, sampling and simulation. Each variant names
/// what was being done and where (file, line, field, task).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A line of an SWF file is malformed.
    #[error("{path}:{line}: SWF field {field}: {reason}")]
    Swf {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The SWF field (e.g. `4 (run time)`), or `line` / `header`.
        field: String,
        /// What is wrong, with the offending text.
        reason: String,
    },

    /// A task list (JSON or CSV) is malformed.
    #[error("{path}: {location}: field `{field}`: {reason}")]
    TaskList {
        /// The file.
        path: PathBuf,
        /// Where in it (`line 3, column 7`, `row 5`, `tasks[2]`, `cluster`).
        location: String,
        /// The field concerned (or `-` when it is the structure).
        field: String,
        /// What is wrong.
        reason: String,
    },

    /// A workload has no tasks.
    #[error("workload {source_label} has no tasks: {reason}")]
    EmptyWorkload {
        /// Where the workload came from.
        source_label: String,
        /// Why (e.g. how many jobs were skipped and for what).
        reason: String,
    },

    /// A task can never run: no node is big enough.
    #[error(
        "task {source_id} of {source_label} fits no node: it needs {need} {unit} of {dim}, \
         the largest node has {max} {unit}"
    )]
    TaskFitsNoNode {
        /// Where the workload came from.
        source_label: String,
        /// The task's id in its source.
        source_id: u64,
        /// The first dimension that exceeds every node.
        dim: Dim,
        /// Amount requested.
        need: u64,
        /// Largest capacity of any node in that dimension.
        max: u64,
        /// Unit of `need` and `max`.
        unit: &'static str,
    },

    /// A task has no actual run time, so it cannot be simulated.
    #[error("task {source_id} of {source_label} has no run time; the simulator needs one")]
    MissingRuntime {
        /// Where the workload came from.
        source_label: String,
        /// The task's id in its source.
        source_id: u64,
    },

    /// A workload spec string could not be parsed.
    #[error("bad workload spec `{spec}`: {reason}; valid forms: {valid}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        reason: String,
        /// The valid forms.
        valid: &'static str,
    },

    /// A generator or sampling parameter is out of range.
    #[error("invalid parameter `{param}`: {reason}")]
    Param {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A workload given to the engine breaks an invariant (ids, order, cluster).
    #[error("invalid workload {source_label}: {reason}")]
    InvalidWorkload {
        /// Where the workload came from.
        source_label: String,
        /// Which invariant is broken.
        reason: String,
    },
}
