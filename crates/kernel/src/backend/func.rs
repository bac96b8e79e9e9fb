//! [`FnBackend`]: a backend that is a function — for replaying recorded
//! model answers, scripted error injection in tests, and quick experiments.

use super::{Backend, Proposal, ProposalRequest};
use crate::error::BackendError;

/// A backend whose answers come from a closure.
///
/// ```
/// use llmchain_kernel::backend::FnBackend;
/// let mut answers = vec!["[1]".to_string(), "garbage".to_string()].into_iter().cycle();
/// let b = FnBackend::new("replay", move |_req| Ok(answers.next().unwrap()));
/// # let _ = b;
/// ```
pub struct FnBackend<F> {
    name: String,
    f: F,
}

impl<F> FnBackend<F>
where
    F: FnMut(&ProposalRequest<'_>) -> Result<String, BackendError> + Send,
{
    /// A backend named `name` answering with `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        FnBackend {
            name: name.into(),
            f,
        }
    }
}

impl<F> Backend for FnBackend<F>
where
    F: FnMut(&ProposalRequest<'_>) -> Result<String, BackendError> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn propose(&mut self, req: &ProposalRequest<'_>) -> Result<Proposal, BackendError> {
        let raw = (self.f)(req)?;
        Ok(Proposal {
            raw,
            model: self.name.clone(),
            tokens: None,
        })
    }
}
