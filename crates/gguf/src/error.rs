//! The error type of the GGUF engine: every variant names what was being done and where.

use std::path::PathBuf;

/// Everything that can go wrong while fetching, loading, tokenising or generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("reading GGUF", "creating model dir", ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The GGUF file is malformed or lacks a required field.
    #[error("GGUF {path}: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the metadata key or tensor).
        message: String,
    },
    /// The model's architecture is not one this engine runs.
    #[error("GGUF {path}: architecture {arch:?} is not supported (only llama-family models)")]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// The value of `general.architecture`.
        arch: String,
    },
    /// The tokenizer metadata is missing or inconsistent.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template in the GGUF is not one this engine can apply.
    #[error("chat template not supported ({0}); pass a raw prompt instead")]
    UnknownChatTemplate(String),
    /// The model failed while computing (the message is candle's).
    #[error("model {what}: {message}")]
    Model {
        /// What was being done ("forward pass at position 12", ...).
        what: String,
        /// The framework's message.
        message: String,
    },
    /// The prompt plus the requested tokens do not fit the context window.
    #[error("prompt of {prompt} tokens plus {max_tokens} new tokens exceeds the context of {context} tokens")]
    ContextOverflow {
        /// Prompt length in tokens.
        prompt: usize,
        /// Requested new tokens.
        max_tokens: usize,
        /// Usable context length.
        context: usize,
    },
    /// The constraint allowed no token of the vocabulary at some step.
    #[error(
        "constraint dead end after {generated:?}: no vocabulary token is an allowed continuation"
    )]
    ConstraintDeadEnd {
        /// Text generated so far (lossy UTF-8).
        generated: String,
    },
    /// Invalid generation settings.
    #[error("invalid generation config: {0}")]
    Config(String),
    /// Fetching a model failed (pip missing, offline, bad download).
    #[error("fetching {model}: {message}")]
    Fetch {
        /// The model being fetched.
        model: String,
        /// What went wrong and how to fix it.
        message: String,
    },
    /// A fetched or given model file does not match the recorded size or checksum.
    #[error("{path}: {message}")]
    Verify {
        /// The file.
        path: PathBuf,
        /// What did not match.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn gguf(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Gguf {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn model(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Model {
            what: what.into(),
            message: e.to_string(),
        }
    }
}
