//! [`GgufBackend`]: an in-process GGUF model (llmchain-gguf on candle) with
//! constrained decoding — logits are masked so the model can only emit a JSON
//! array of distinct ids that were shown as waiting (order mode) or one choice
//! index (choose mode); even a random-weight model produces a parseable
//! schedule. The deadline is checked between tokens: when it passes before
//! the array is complete, generation stops and the call reports a timeout.

use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

use llmchain_gguf::{
    ChatMessage, Constraint, GenerateConfig, Model, Sampling, ScheduleConstraint, Variant,
};

use super::{Backend, Proposal, ProposalRequest};
use crate::error::{BackendError, KernelError};
use crate::kernel::KernelConfig;

/// A schedule constraint that also completes when a deadline passes.
struct DeadlineConstraint {
    inner: ScheduleConstraint,
    deadline: Instant,
    expired: Cell<bool>,
}

impl DeadlineConstraint {
    fn past(&self) -> bool {
        if !self.expired.get() && Instant::now() >= self.deadline {
            self.expired.set(true);
        }
        self.expired.get()
    }
}

impl Constraint for DeadlineConstraint {
    fn reset(&mut self) {
        self.inner.reset();
    }
    fn alphabet(&self) -> Option<Vec<u8>> {
        self.inner.alphabet()
    }
    fn allows(&self, piece: &[u8]) -> bool {
        self.inner.allows(piece)
    }
    fn advance(&mut self, piece: &[u8]) {
        self.inner.advance(piece);
    }
    fn is_complete(&self) -> bool {
        self.inner.is_complete() || self.past()
    }
    fn may_end(&self) -> bool {
        self.inner.may_end() || self.expired.get()
    }
}

/// A GGUF model answering proposal requests in process.
pub struct GgufBackend {
    name: String,
    model: Model,
}

impl GgufBackend {
    /// Load `path`. The backend's name is `gguf:<file stem>`.
    pub fn load(path: &Path) -> Result<Self, KernelError> {
        let stem = path.file_stem().map_or_else(
            || "model".into(),
            |s| s.to_string_lossy().to_ascii_lowercase(),
        );
        let name = format!("gguf:{stem}");
        if !path.exists() {
            return Err(KernelError::ModelMissing {
                path: path.to_path_buf(),
                hint: "give the path of a llama-family GGUF file".into(),
            });
        }
        let model = Model::load(path).map_err(|e| KernelError::Backend {
            backend: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(GgufBackend { name, model })
    }

    /// The loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl Backend for GgufBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn propose(&mut self, req: &ProposalRequest<'_>) -> Result<Proposal, BackendError> {
        let t = req.text;
        let messages = [
            ChatMessage::system(t.system.clone()),
            ChatMessage::user(t.user.clone()),
        ];
        let mut c = DeadlineConstraint {
            inner: ScheduleConstraint::new(&t.allowed_ids, t.max_items),
            deadline: t.deadline,
            expired: Cell::new(false),
        };
        let cfg = GenerateConfig {
            max_tokens: t.max_tokens as usize,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            reuse_prefix: true,
        };
        let g = self
            .model
            .chat(&messages, &cfg, Some(&mut c as &mut dyn Constraint))
            .map_err(|e| BackendError::Model(e.to_string()))?;
        if c.expired.get() && !c.inner.is_complete() {
            return Err(BackendError::Timeout {
                deadline_ms: t.deadline_ms,
            });
        }
        Ok(Proposal {
            raw: g.text,
            model: self.name.clone(),
            tokens: Some(g.tokens.len() as u32),
        })
    }
}

/// Open a GGUF model file as a backend.
pub fn open(path: &Path, _cfg: &KernelConfig) -> Result<Box<dyn Backend>, KernelError> {
    Ok(Box::new(GgufBackend::load(path)?))
}

/// Open the fetched SmolLM2-135M-Instruct (Q4_1, or Q8_0 with `q8`) from the model directory.
pub fn open_smollm2(q8: bool, cfg: &KernelConfig) -> Result<Box<dyn Backend>, KernelError> {
    let path = smollm2_path(q8);
    if !path.exists() {
        return Err(KernelError::ModelMissing {
            path,
            hint: llmchain_gguf::FETCH_HINT.into(),
        });
    }
    open(&path, cfg)
}

/// Where the fetched SmolLM2 file is (Q4_1, or Q8_0 with `q8`).
pub fn smollm2_path(q8: bool) -> std::path::PathBuf {
    llmchain_gguf::smollm2_path(if q8 { Variant::Q8_0 } else { Variant::Q4_1 })
}
