//! The daemon library's error type: every variant names what was being done and where.

use std::io;
use std::path::PathBuf;

/// Everything that can stop the daemon from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A file or socket operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// The operation, as a verb phrase.
        what: &'static str,
        /// The path involved (empty when none).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// SQLite refused an operation.
    #[error("cannot {what} ({}): {detail}", path.display())]
    Db {
        /// The operation.
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// The state file was written by a newer (or unknown) schema.
    #[error("state database {} has schema version {found}; this build supports {supported}", path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Version supported.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("state database {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which row and column, and what was wrong.
        detail: String,
    },
    /// Another daemon already serves this socket.
    #[error("another daemon is already listening on {}", path.display())]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
    },
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The policy spec could not be built.
    #[error("cannot build policy {spec:?}: {detail}")]
    Policy {
        /// The spec.
        spec: String,
        /// Why.
        detail: String,
    },
    /// The node layer (discovery or executor) failed.
    #[error("node layer: {0}")]
    Node(#[from] llmchain_node::NodeError),
}
