//! Error types of the kernel: building a kernel from a spec ([`KernelError`])
//! and one call to a decision backend ([`BackendError`]).

use std::path::PathBuf;

/// Errors building or configuring a [`crate::Kernel`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The spec string is not one of the valid forms.
    #[error("bad kernel spec `{spec}`: {reason}; valid forms: {valid}")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
        /// The valid forms, for the user.
        valid: String,
    },
    /// A policy spec inside the kernel spec (`fallback=`, `policy=`, `choices=`) is invalid.
    #[error(
        "bad policy `{spec}` ({what}): {source}; also valid: {}",
        crate::spec::MODEL_FORMS
    )]
    Policy {
        /// The policy spec.
        spec: String,
        /// Which parameter held it.
        what: &'static str,
        /// The policy crate's error.
        #[source]
        source: llmchain_policy::PolicyError,
    },
    /// A trained model named by a policy spec (`lm:NAME`, `SPEC+pred`,
    /// `kernel:auto`) cannot be loaded or used.
    #[error("policy `{spec}` ({what}): {reason}; valid forms: {valid}")]
    Model {
        /// The spec as given.
        spec: String,
        /// Which role it had (`policy`, `fallback`, `choices`).
        what: &'static str,
        /// What is wrong (names the file or model).
        reason: String,
        /// The valid forms, for the user.
        valid: String,
    },
    /// A model file named by the spec does not exist.
    #[error("model file {path} not found: {hint}")]
    ModelMissing {
        /// The path looked at.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// A backend could not be created (model load, HTTP client setup).
    #[error("cannot create backend `{backend}`: {reason}")]
    Backend {
        /// The backend.
        backend: String,
        /// Why.
        reason: String,
    },
}

/// Errors from one proposal request to a [`crate::Backend`]. Every one of them
/// makes the kernel fall back to its fast policy for that decision point; the
/// error's text is the recorded fallback reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The deadline passed before an answer arrived.
    #[error("deadline of {deadline_ms} ms passed without an answer")]
    Timeout {
        /// The decision deadline, ms.
        deadline_ms: u64,
    },
    /// A previous call that missed its deadline is still running.
    #[error("backend still busy with a call that missed its deadline")]
    Busy,
    /// Transport failure (connect, read, TLS).
    #[error("transport error talking to {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// Start of the response body (bounded).
        body: String,
    },
    /// The server's answer is not a chat completion.
    #[error("malformed response from {url}: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The in-process model failed.
    #[error("model error: {0}")]
    Model(String),
    /// The backend's worker thread is gone.
    #[error("backend worker thread stopped")]
    WorkerGone,
}

/// Why a model's raw answer could not be decoded at all (the whole answer is
/// refused and the kernel falls back). Single bad elements inside a
/// well-formed answer are not errors: they are dropped one by one
/// ([`crate::decode::Dropped`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Nothing but white space.
    #[error("empty answer")]
    Empty,
    /// Longer than the decoder reads.
    #[error("answer of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not one JSON value.
    #[error("not JSON at line {line}, column {column}: {reason}")]
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        reason: String,
    },
    /// JSON, but not a schedule.
    #[error("not a schedule: {0}")]
    WrongShape(String),
}
