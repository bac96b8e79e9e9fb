//! Decision backends behind one trait: anything that answers a
//! [`ProposalRequest`] with a raw text [`Proposal`] — an OpenAI-compatible
//! HTTP server ([`OpenAi`], run on a worker thread by [`Threaded`] so the
//! kernel never waits past its deadline), an in-process GGUF model
//! ([`crate::backend::gguf`]), any [`llmchain_core::Policy`]
//! ([`PolicyBackend`]), or a function ([`FnBackend`], for replaying recorded
//! answers and for tests).
//!
//! A backend's answer is untrusted text: the kernel decodes and validates it.

mod func;
pub mod gguf;
mod openai;
mod policy;
mod threaded;

use std::time::Instant;

use llmchain_core::{Outcome, Snapshot};
use serde_json::Value;

use crate::encode::Question;
use crate::error::BackendError;

pub use func::FnBackend;
pub use openai::{Constrain, OpenAi, OpenAiConfig};
pub use policy::PolicyBackend;
pub use threaded::{TextBackend, Threaded};

/// The text parts of a request: owned, so a worker thread can take a copy.
#[derive(Clone, Debug)]
pub struct TextRequest {
    /// Instructions (system message).
    pub system: String,
    /// The data section (user message).
    pub user: String,
    /// What is asked.
    pub question: Question,
    /// The only ids (order mode) or indices (choose mode) a valid answer holds.
    pub allowed_ids: Vec<u64>,
    /// At most this many elements in an answer.
    pub max_items: usize,
    /// JSON schema of a valid answer (object form, see [`crate::encode::order_schema`]).
    pub schema: Value,
    /// GBNF grammar of a valid answer (array form, see [`crate::encode::order_grammar`]).
    pub grammar: String,
    /// Tokens to generate at most.
    pub max_tokens: u32,
    /// Answer by then or not at all.
    pub deadline: Instant,
    /// The deadline as a duration from the request's start, ms (for messages).
    pub deadline_ms: u64,
}

/// One request to a backend.
#[derive(Clone, Copy, Debug)]
pub struct ProposalRequest<'a> {
    /// The state being decided on (policy backends use it; text backends use `text`).
    pub snapshot: &'a Snapshot<'a>,
    /// The prompt and constraints.
    pub text: &'a TextRequest,
}

/// A backend's raw answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The answer text, unparsed and untrusted.
    pub raw: String,
    /// The model that produced it (as the backend or server names it).
    pub model: String,
    /// Tokens generated, when known.
    pub tokens: Option<u32>,
}

/// A decision backend.
pub trait Backend: Send {
    /// Name for tables and audit records (`gguf:smollm2-q4_1`, `openai:NAME`, `policy:sjf+easy`).
    fn name(&self) -> &str;

    /// Whether the backend reads the prompt text. When false the kernel
    /// skips encoding and sends empty text.
    fn needs_prompt(&self) -> bool {
        true
    }

    /// Propose a schedule. Must return by `req.text.deadline` (or as soon
    /// after as one step of work allows).
    fn propose(&mut self, req: &ProposalRequest<'_>) -> Result<Proposal, BackendError>;

    /// Learn that a task ended. Default: ignore.
    fn feedback(&mut self, _outcome: &Outcome) {}
}
