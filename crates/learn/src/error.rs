//! [`LearnError`]: everything that can go wrong reading data, training,
//! saving or loading models. Each variant names what was being done and where.

use std::path::PathBuf;

/// Errors of the learning module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A data line could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, naming the field.
        reason: String,
    },

    /// Loading or sampling a workload, or running the simulator, failed.
    #[error("{what}: {source}")]
    Sim {
        /// What was being done.
        what: String,
        /// The simulator's error.
        #[source]
        source: llmchain_sim::SimError,
    },

    /// Building a baseline policy failed.
    #[error("policy `{spec}`: {reason}")]
    Policy {
        /// The spec asked for.
        spec: String,
        /// The policy crate's error text.
        reason: String,
    },

    /// The ML framework failed.
    #[error("{what}: {source}")]
    Candle {
        /// What was being done.
        what: String,
        /// The framework's error.
        #[source]
        source: candle_core::Error,
    },

    /// A model file or card is missing, malformed or inconsistent.
    #[error("model {path}: {reason}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A JSON file could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// No model of that name exists in the registry.
    #[error("no model named `{name}` under {root} (available: {available})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The registry root.
        root: PathBuf,
        /// Names found there, comma-separated.
        available: String,
    },
}

impl LearnError {
    /// Shorthand for a [`LearnError::Candle`] with context.
    pub(crate) fn candle(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> LearnError {
        let what = what.into();
        move |source| LearnError::Candle { what, source }
    }

    /// Shorthand for a [`LearnError::Sim`] with context.
    pub(crate) fn sim(
        what: impl Into<String>,
    ) -> impl FnOnce(llmchain_sim::SimError) -> LearnError {
        let what = what.into();
        move |source| LearnError::Sim { what, source }
    }
}
