//! Audit records: one [`DecisionRecord`] per decision point at which the
//! kernel consulted its model or proposed anything — what it saw (time,
//! queue length, prompt hash), what the model said (bounded raw output,
//! rationale), what was dropped, rejected and accepted and why, and whether
//! and why it fell back.

use llmchain_core::{Decision, Rejection, TaskId, Time};
use serde::{Deserialize, Serialize};

use crate::decode::Dropped;

/// One decision point as the kernel handled it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Decision point number (1-based, counts every call of `decide`).
    pub seq: u64,
    /// Driver time (simulated or real) of the snapshot.
    pub time: Time,
    /// Wall-clock time, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Waiting tasks in the snapshot.
    pub waiting: usize,
    /// Backend consulted at this point, if any.
    pub model: Option<String>,
    /// Model name the backend reported, if it differs.
    pub model_reported: Option<String>,
    /// Hash of the prompt sent (16 hex digits), when a prompt was encoded.
    pub prompt_hash: Option<String>,
    /// Latency of the whole decision, µs.
    pub latency_us: u64,
    /// Latency of the model call, µs.
    pub model_latency_us: Option<u64>,
    /// The raw answer, at most [`crate::decode::MAX_RAW_STORED`] bytes.
    pub raw_output: Option<String>,
    /// Whether `raw_output` was cut.
    pub raw_truncated: bool,
    /// The model's rationale, if it gave one.
    pub rationale: Option<String>,
    /// Order mode: the valid plan taken from this answer, in the model's order.
    pub plan: Vec<TaskId>,
    /// Choose mode: the policy chosen.
    pub choice: Option<String>,
    /// Elements of the answer dropped before validation, with reasons.
    pub dropped: Vec<Dropped>,
    /// Who made the proposals: `model`, `plan` (an earlier model answer), `fast` (the fast/fallback policy), or a mix joined by `+`.
    pub source: String,
    /// Proposals sent to the validator, in order.
    pub proposed: Vec<Decision>,
    /// Proposals the validator accepted (returned to the driver).
    pub accepted: Vec<Decision>,
    /// Proposals the validator refused, with reasons.
    pub rejected: Vec<Rejection>,
    /// Whether the kernel fell back to its fast policy because the model failed.
    pub fallback: bool,
    /// Why it fell back.
    pub fallback_reason: Option<String>,
}

impl DecisionRecord {
    /// Whether `task` is mentioned in this record's answer (plan or dropped elements).
    pub fn mentions(&self, task: TaskId) -> bool {
        self.plan.contains(&task) || self.dropped.iter().any(|d| d.task == Some(task.0))
    }
}
