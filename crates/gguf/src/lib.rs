//! LLMChain's in-process GGUF language-model engine: load a llama-family GGUF with candle,
//! tokenise exactly as llama.cpp does (byte-level BPE from the file's own vocabulary), apply its
//! ChatML chat template, and generate — greedily or with seeded sampling — optionally under a
//! [`Constraint`] that masks every token which would leave a language (for the kernel: a JSON
//! array of distinct waiting task ids, [`ScheduleConstraint`]).
//!
//! Getting the default model: [`fetch_model`] (`llmchain model fetch smollm2 [--q8]`) downloads
//! SmolLM2-135M-Instruct through pip and can re-quantise it to Q8_0 ([`requantize`]).
//!
//! ```no_run
//! use llmchain_gguf::{ChatMessage, GenerateConfig, Model, ScheduleConstraint, Variant, smollm2_path};
//! let mut model = Model::load(smollm2_path(Variant::Q8_0))?;
//! let mut schedule = ScheduleConstraint::new(&[3, 5, 7], 3);
//! let out = model.chat(
//!     &[ChatMessage::system("Answer with a JSON array of task ids."), ChatMessage::user("tasks: 3, 5, 7")],
//!     &GenerateConfig { max_tokens: 32, ..GenerateConfig::default() },
//!     Some(&mut schedule),
//! )?;
//! assert!(llmchain_gguf::parse_schedule(&out.text).is_some());
//! # Ok::<(), llmchain_gguf::Error>(())
//! ```
//!
//! Determinism: same file, prompt, config and seed give the same tokens.

mod chat;
mod constraint;
mod error;
mod fetch;
mod model;
mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate, Role};
pub use constraint::{parse_schedule, Constraint, ScheduleConstraint};
pub use error::{Error, Result};
pub use fetch::{
    default_model_dir, fetch_model, fetch_smollm2, requantize, sha256_file, smollm2_path,
    smollm2_path_in, verify_smollm2, FetchOptions, FetchedModel, QuantType, RequantizeReport,
    Variant, FETCH_HINT, SMOLLM2_BYTES, SMOLLM2_FILE, SMOLLM2_PACKAGE, SMOLLM2_Q8_FILE,
    SMOLLM2_SHA256,
};
pub use model::{
    read_gguf, GenStats, GenerateConfig, Generation, Model, ModelInfo, Sampling, StopReason,
};
pub use tokenizer::{TokenKind, Tokenizer, TokenizerParts};
