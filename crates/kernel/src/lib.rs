//! LLMChain's decision kernel: observe a [`Snapshot`](llmchain_core::Snapshot)
//! → predict ([`Predictor`]) → ask a decision [`Backend`] (a language model
//! over HTTP or in process, or any policy) → decode ([`decode`]) → validate
//! ([`llmchain_core::Validator`]) → return only accepted starts → record an
//! audit entry ([`DecisionRecord`]) → pass feedback on.
//!
//! The [`Kernel`] is a [`llmchain_core::Policy`], so every driver runs it
//! unchanged. Build one from a spec with [`build_kernel`], or any policy or
//! kernel with [`build_policy`]:
//!
//! ```
//! use llmchain_core::*;
//! let mut k = llmchain_kernel::build_kernel("kernel:policy=fcfs", 0).unwrap();
//! let nodes = [NodeState { id: NodeId(0), capacity: Resources::cpus(4, 8), free: Resources::cpus(4, 8) }];
//! let waiting = [WaitingTask { id: TaskId(0), submit: Time::ZERO, request: Resources::cpus(2, 1),
//!                              estimate: None, user: 0, priority: 0 }];
//! let mut out = Vec::new();
//! k.decide(&Snapshot::new(Time::ZERO, &nodes, &waiting, &[]), &mut out);
//! assert_eq!(out, vec![Decision::start(TaskId(0), NodeId(0))]);
//! assert_eq!(k.audit().len(), 1);
//! assert_eq!(k.stats().model_calls, 1);
//! ```
//!
//! Architecture invariants: nothing a backend proposes leaves the kernel
//! without passing the validator; untrusted task text enters prompts only
//! sanitised, quoted, and inside the data section ([`encode`]); a model call
//! never holds a decision past its deadline.

mod audit;
pub mod backend;
pub mod decode;
pub mod encode;
mod error;
mod explain;
mod kernel;
mod owned;
mod predict;
mod spec;

pub use audit::DecisionRecord;
pub use backend::{Backend, Proposal, ProposalRequest, TextRequest};
pub use error::{BackendError, DecodeError, KernelError};
pub use explain::{
    explain, At, CaptureAt, Captured, Explanation, ModelMention, NodeFit, TaskState,
};
pub use kernel::{Kernel, KernelConfig, KernelStats, SlowMode};
pub use owned::OwnedSnapshot;
pub use predict::Predictor;
pub use spec::{
    build_kernel, build_policy, describe_builtin, is_kernel_spec, BUILTIN_POLICY, MODEL_FORMS,
    PRED_MODEL, VALID_FORMS,
};
