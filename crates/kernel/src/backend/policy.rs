//! [`PolicyBackend`]: any [`Policy`] as a decision backend, so heuristics and
//! (later) the trained scheduling model plug into the kernel the same way as
//! language models. Its answer is the policy's starts as an order object,
//! decoded and validated like any other answer.

use std::fmt::Write as _;

use llmchain_core::{Decision, Outcome, Policy};

use super::{Backend, Proposal, ProposalRequest};
use crate::encode::Question;
use crate::error::BackendError;

/// A [`Policy`] answering proposal requests.
pub struct PolicyBackend {
    name: String,
    policy: Box<dyn Policy + Send>,
    out: Vec<Decision>,
}

impl PolicyBackend {
    /// Wrap `policy`.
    pub fn new(policy: Box<dyn Policy + Send>) -> Self {
        PolicyBackend {
            name: format!("policy:{}", policy.name()),
            policy,
            out: Vec::new(),
        }
    }
}

impl Backend for PolicyBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn needs_prompt(&self) -> bool {
        false
    }

    fn propose(&mut self, req: &ProposalRequest<'_>) -> Result<Proposal, BackendError> {
        if let Question::Choose { .. } = req.text.question {
            return Err(BackendError::Model(format!(
                "{} cannot choose a policy (use mode=order)",
                self.name
            )));
        }
        self.out.clear();
        self.policy.decide(req.snapshot, &mut self.out);
        let mut raw = String::from("{\"order\":[");
        for (i, d) in self.out.iter().enumerate() {
            if i > 0 {
                raw.push(',');
            }
            match d {
                Decision::Start { task, node } => {
                    let _ = write!(raw, "{{\"task\":{},\"node\":{}}}", task.0, node.0);
                }
                _ => {}
            }
        }
        raw.push_str("]}");
        Ok(Proposal {
            raw,
            model: self.name.clone(),
            tokens: None,
        })
    }

    fn feedback(&mut self, outcome: &Outcome) {
        self.policy.feedback(outcome);
    }
}
