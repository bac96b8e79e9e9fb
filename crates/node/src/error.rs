//! The node crate's error type: every variant names what was being done and where.

use std::io;
use std::path::PathBuf;

use llmchain_core::TaskId;

/// Everything that can go wrong in hardware discovery, telemetry and the executor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A file or directory operation failed (`what` says which: "read", "create cgroup", ...).
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// The operation, as a verb phrase.
        what: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A kernel or tool output file had unexpected content.
    #[error("cannot parse {what} in {}: {detail}", path.display())]
    Parse {
        /// What was being parsed ("MemTotal", "cpu line", "PSI line", ...).
        what: &'static str,
        /// The file (or pseudo-path such as `nvidia-smi`) it came from.
        path: PathBuf,
        /// What was wrong, with the offending text.
        detail: String,
    },
    /// A launch spec is unusable (empty argv, missing cwd, NUL byte in an argument, ...).
    #[error("invalid launch spec for task {task}: {detail}")]
    InvalidSpec {
        /// The task.
        task: TaskId,
        /// What is wrong.
        detail: String,
    },
    /// Starting the task's process failed (program not found, cgroup join refused, ...).
    #[error("cannot start task {task} ({program}): {source}")]
    Spawn {
        /// The task.
        task: TaskId,
        /// `argv[0]`.
        program: String,
        /// The underlying error (from `fork`, the pre-exec setup, or `execve`).
        #[source]
        source: io::Error,
    },
    /// A task cgroup with this task's name is still populated (the task is still running).
    #[error("task {task} already has a populated cgroup at {}", path.display())]
    AlreadyRunning {
        /// The task.
        task: TaskId,
        /// Its cgroup directory.
        path: PathBuf,
    },
    /// A forced cgroup mode cannot be used on this machine.
    #[error("cgroup mode {mode} is not usable here: {detail}")]
    ModeUnavailable {
        /// "v2", "v1" or "none".
        mode: &'static str,
        /// Why (missing mount, not writable, ...).
        detail: String,
    },
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Sys {
        /// The call and its argument, e.g. "waitid(pid 42)".
        what: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The feature needs Linux.
    #[error("{what} is only supported on Linux")]
    Unsupported {
        /// The feature.
        what: &'static str,
    },
}

impl NodeError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        NodeError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(
        what: &'static str,
        path: impl Into<PathBuf>,
        detail: impl Into<String>,
    ) -> Self {
        NodeError::Parse {
            what,
            path: path.into(),
            detail: detail.into(),
        }
    }
}
