//! The [`Kernel`]: observe → predict → decide → validate → act → feedback,
//! as a [`Policy`] any driver calls (the simulator now; the node daemon and
//! the Slurm driver later).
//!
//! # Two timescales
//! A fast policy (`fallback`, default the trained scheduling LM with EASY
//! backfilling, `lm:sched-lm+easy`) can make every decision in
//! microseconds. The slow backend (a language model, or any policy) is
//! consulted at a decision point when every one of these holds: a backend is
//! configured, some waiting task fits now, and either [`KernelConfig::every`]
//! decision points passed since the last consultation or the waiting set
//! changed by more than [`KernelConfig::requery_change`] since then.
//!
//! * `mode=order`: the answer is a queue order (a *plan*). At this and later
//!   decision points the kernel starts the plan's head while it fits, then —
//!   with [`KernelConfig::fill`] — lets the fast policy fill and backfill
//!   the rest on the residual state.
//! * `mode=choose`: the answer picks one of [`KernelConfig::choices`] (policy
//!   specs), which then makes the decisions until the next consultation.
//!
//! A model call never outlives [`KernelConfig::deadline`] (HTTP backends run
//! on a worker thread; in-process generation checks the deadline between
//! tokens). On timeout, error, or an answer with nothing valid in it the
//! kernel falls back to the fast policy for that decision point and records
//! why. Whatever the source, every proposal passes [`Validator`] before it
//! is returned; only accepted ones leave the kernel.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use llmchain_core::{
    Decision, Dur, NodeId, Outcome, Policy, PolicyStats, Rejection, Snapshot, TaskId, Validator,
};

use crate::audit::DecisionRecord;
use crate::backend::{Backend, ProposalRequest, TextRequest};
use crate::decode::{self, bound, MAX_RAW_STORED};
use crate::encode::{self, EncodeConfig, Question, TaskText, TaskTexts};
use crate::error::KernelError;
use crate::owned::OwnedSnapshot;
use crate::predict::Predictor;

/// What the slow model's answer does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlowMode {
    /// Order the queue directly.
    Order,
    /// Choose the fast policy among [`KernelConfig::choices`].
    Choose,
}

/// Kernel settings; see the module docs for how they interact.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelConfig {
    /// Consult the backend every K eligible decision points (≥ 1). Default 1.
    pub every: u32,
    /// Also consult when this fraction of the waiting set changed since the
    /// last consultation (symmetric difference / size then). Default 0.5.
    pub requery_change: f64,
    /// Longest wait for one model answer. Default 2 s.
    pub deadline: Duration,
    /// Fast / fallback policy spec. Default [`crate::BUILTIN_POLICY`] (the trained scheduling LM + EASY).
    pub fallback: String,
    /// What the model's answer does. Default [`SlowMode::Order`].
    pub mode: SlowMode,
    /// Choose mode: the policy specs offered. Default `fcfs+easy`, `sjf+easy`, `f1+easy`, `tetris`.
    pub choices: Vec<String>,
    /// Order mode: let the fast policy fill after the plan's head. Default true.
    pub fill: bool,
    /// Prompt size limits.
    pub encode: EncodeConfig,
    /// Order mode: at most this many ids in one answer (the plan's length). Default 8.
    pub max_plan: usize,
    /// Tokens a model may generate per answer. Default 192.
    pub max_tokens: u32,
    /// Audit records kept (oldest dropped first). Default 100 000.
    pub audit_cap: usize,
    /// Seed for policies that draw random numbers.
    pub seed: u64,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            every: 1,
            requery_change: 0.5,
            deadline: Duration::from_secs(2),
            fallback: crate::spec::BUILTIN_POLICY.into(),
            mode: SlowMode::Order,
            choices: ["fcfs+easy", "sjf+easy", "f1+easy", "tetris"]
                .map(String::from)
                .to_vec(),
            fill: true,
            encode: EncodeConfig::default(),
            max_plan: 8,
            max_tokens: 192,
            audit_cap: 100_000,
            seed: 0,
        }
    }
}

/// Counters beyond [`PolicyStats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelStats {
    /// The [`PolicyStats`] view.
    pub policy: PolicyStats,
    /// Proposals the validator refused (should stay 0: the kernel pre-checks).
    pub validator_rejected: u64,
    /// Starts returned to the driver.
    pub accepted: u64,
    /// Model call latency p50, µs.
    pub model_latency_p50_us: Option<f64>,
    /// Model call latency p99, µs.
    pub model_latency_p99_us: Option<f64>,
    /// Decision latency p50, µs.
    pub latency_p50_us: Option<f64>,
    /// Audit records evicted because of [`KernelConfig::audit_cap`].
    pub audit_evicted: u64,
}

/// The decision kernel. Build one with [`crate::build_kernel`] or [`Kernel::new`].
pub struct Kernel {
    name: String,
    cfg: KernelConfig,
    backend: Option<Box<dyn Backend>>,
    fast: Box<dyn Policy + Send>,
    choices: Vec<Box<dyn Policy + Send>>,
    chosen: Option<usize>,
    predictor: Option<Box<dyn Predictor>>,
    texts: TaskTexts,
    validator: Validator,
    plan: Vec<(TaskId, Option<NodeId>)>,
    last_ids: Vec<TaskId>,
    since_consult: u32,
    model_calls: u64,
    fallbacks: u64,
    decision_points: u64,
    dropped: u64,
    validator_rejected: u64,
    accepted: u64,
    latencies: Vec<u64>,
    model_latencies: Vec<u64>,
    audit: VecDeque<DecisionRecord>,
    audit_evicted: u64,
    proposals: Vec<Decision>,
}

fn build_policy(
    spec: &str,
    what: &'static str,
    seed: u64,
) -> Result<Box<dyn Policy + Send>, KernelError> {
    crate::spec::build_plain(spec, what, seed)
}

impl Kernel {
    /// A kernel with `cfg` and an optional slow backend (without one it is its fast policy, audited).
    pub fn new(cfg: KernelConfig, backend: Option<Box<dyn Backend>>) -> Result<Self, KernelError> {
        let fast = build_policy(&cfg.fallback, "fallback", cfg.seed)?;
        let choices = if cfg.mode == SlowMode::Choose {
            if cfg.choices.is_empty() {
                return Err(KernelError::BadSpec {
                    spec: String::new(),
                    reason: "mode=choose needs at least one choice".into(),
                    valid: crate::spec::VALID_FORMS.into(),
                });
            }
            cfg.choices
                .iter()
                .map(|c| build_policy(c, "choices", cfg.seed))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let name = match &backend {
            Some(b) => format!("kernel:{}", b.name()),
            None => format!("kernel:{}", fast.name()),
        };
        Ok(Kernel {
            name,
            since_consult: cfg.every.max(1),
            cfg,
            backend,
            fast,
            choices,
            chosen: None,
            predictor: None,
            texts: TaskTexts::new(),
            validator: Validator::new(),
            plan: Vec::new(),
            last_ids: Vec::new(),
            model_calls: 0,
            fallbacks: 0,
            decision_points: 0,
            dropped: 0,
            validator_rejected: 0,
            accepted: 0,
            latencies: Vec::new(),
            model_latencies: Vec::new(),
            audit: VecDeque::new(),
            audit_evicted: 0,
            proposals: Vec::new(),
        })
    }

    /// Set the name shown in tables.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Configure a run-time predictor.
    pub fn with_predictor(mut self, p: Box<dyn Predictor>) -> Self {
        self.predictor = Some(p);
        self
    }

    /// Attach untrusted text (name, command, user label) to a task; shown,
    /// sanitised, in prompts. Forgotten when the task ends.
    pub fn set_task_text(&mut self, task: TaskId, text: TaskText) {
        self.texts.insert(task, text);
    }

    /// The configuration.
    pub fn config(&self) -> &KernelConfig {
        &self.cfg
    }

    /// The audit records kept, oldest first.
    pub fn audit(&self) -> Vec<DecisionRecord> {
        self.audit.iter().cloned().collect()
    }

    /// The audit records kept, borrowed.
    pub fn audit_iter(&self) -> impl Iterator<Item = &DecisionRecord> {
        self.audit.iter()
    }

    /// The current plan (order mode): task ids still to start in the model's order.
    pub fn plan(&self) -> Vec<TaskId> {
        self.plan.iter().map(|p| p.0).collect()
    }

    /// Detailed counters.
    pub fn kernel_stats(&self) -> KernelStats {
        let p = |v: &[u64], q: f64| {
            if v.is_empty() {
                return None;
            }
            let mut s: Vec<f64> = v.iter().map(|x| *x as f64).collect();
            s.sort_by(f64::total_cmp);
            Some(llmchain_core::metrics::percentile_sorted(&s, q))
        };
        let mean = if self.latencies.is_empty() {
            None
        } else {
            Some(self.latencies.iter().sum::<u64>() as f64 / self.latencies.len() as f64)
        };
        KernelStats {
            policy: PolicyStats {
                model_calls: self.model_calls,
                fallbacks: self.fallbacks,
                decision_points: self.decision_points,
                proposals_dropped: self.dropped,
                latency_mean_us: mean,
                latency_p99_us: p(&self.latencies, 99.0),
            },
            validator_rejected: self.validator_rejected,
            accepted: self.accepted,
            model_latency_p50_us: p(&self.model_latencies, 50.0),
            model_latency_p99_us: p(&self.model_latencies, 99.0),
            latency_p50_us: p(&self.latencies, 50.0),
            audit_evicted: self.audit_evicted,
        }
    }

    /// Latency of each model call so far, µs.
    pub fn model_latencies_us(&self) -> &[u64] {
        &self.model_latencies
    }

    /// With a predictor: its estimates into `preds` (one per waiting task) and
    /// a copy of `snap` whose missing estimates are filled from them; `None`
    /// without a predictor.
    fn predicted(
        &mut self,
        snap: &Snapshot<'_>,
        preds: &mut Vec<Option<Dur>>,
    ) -> Option<OwnedSnapshot> {
        let p = self.predictor.as_mut()?;
        p.predict(snap, preds);
        preds.resize(snap.waiting.len(), None);
        let mut o = OwnedSnapshot::of(snap);
        for (t, p) in o.waiting.iter_mut().zip(preds.iter()) {
            t.estimate = t.estimate.or(*p);
        }
        Some(o)
    }

    fn should_consult(&self, snap: &Snapshot<'_>) -> bool {
        if self.backend.is_none() {
            return false;
        }
        if self.since_consult >= self.cfg.every.max(1) {
            return true;
        }
        // Symmetric difference of two sorted id lists.
        let (a, b) = (&self.last_ids, snap.waiting);
        let (mut i, mut j, mut diff) = (0, 0, 0usize);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j].id) {
                std::cmp::Ordering::Less => {
                    diff += 1;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    diff += 1;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
            }
        }
        diff += (a.len() - i) + (b.len() - j);
        diff as f64 > self.cfg.requery_change * a.len().max(1) as f64
    }

    /// Ask the backend; update the plan or choice; fill `rec`. Returns the
    /// fallback reason on failure.
    fn consult(
        &mut self,
        snap: &Snapshot<'_>,
        preds: Option<&[Option<Dur>]>,
        rec: &mut DecisionRecord,
    ) -> Result<(), String> {
        let Some(backend) = self.backend.as_mut() else {
            return Err("no backend".into());
        };
        let question = match self.cfg.mode {
            SlowMode::Order => Question::Order {
                max_items: self.cfg.max_plan.max(1),
            },
            SlowMode::Choose => Question::Choose {
                choices: self.cfg.choices.clone(),
            },
        };
        let start = Instant::now();
        let deadline = start + self.cfg.deadline;
        let mut text = TextRequest {
            system: String::new(),
            user: String::new(),
            question: question.clone(),
            allowed_ids: Vec::new(),
            max_items: 1,
            schema: serde_json::Value::Null,
            grammar: String::new(),
            max_tokens: self.cfg.max_tokens,
            deadline,
            deadline_ms: self.cfg.deadline.as_millis() as u64,
        };
        if backend.needs_prompt() {
            let prompt = encode::encode(snap, &self.texts, preds, &self.cfg.encode, &question);
            rec.prompt_hash = Some(prompt.hash_hex());
            match &question {
                Question::Order { .. } => {
                    text.max_items = prompt.shown_ids.len().min(self.cfg.max_plan).max(1);
                    text.schema = encode::order_schema(&prompt.shown_ids, text.max_items);
                    text.grammar = encode::order_grammar(&prompt.shown_ids, text.max_items);
                    text.allowed_ids = prompt.shown_ids;
                }
                Question::Choose { choices } => {
                    text.max_items = 1;
                    text.schema = encode::choose_schema(choices.len());
                    text.grammar = encode::choose_grammar(choices.len());
                    text.allowed_ids = (0..choices.len() as u64).collect();
                }
            }
            text.system = prompt.system;
            text.user = prompt.user;
        } else {
            text.allowed_ids = snap.waiting.iter().map(|t| t.id.0).collect();
            text.max_items = text.allowed_ids.len().max(1);
        }
        rec.model = Some(backend.name().to_string());
        self.model_calls += 1;
        self.since_consult = 0;
        self.last_ids.clear();
        self.last_ids.extend(snap.waiting.iter().map(|t| t.id));
        let result = backend.propose(&ProposalRequest {
            snapshot: snap,
            text: &text,
        });
        let us = start.elapsed().as_micros() as u64;
        self.model_latencies.push(us);
        rec.model_latency_us = Some(us);
        let proposal = result.map_err(|e| e.to_string())?;
        if proposal.model != rec.model.as_deref().unwrap_or("") && !proposal.model.is_empty() {
            rec.model_reported = Some(proposal.model.clone());
        }
        let (raw, cut) = bound(&proposal.raw, MAX_RAW_STORED);
        rec.raw_output = Some(raw);
        rec.raw_truncated = cut;
        let parsed = decode::parse(&proposal.raw).map_err(|e| format!("invalid output: {e}"))?;
        rec.rationale = parsed.rationale.clone();
        match self.cfg.mode {
            SlowMode::Order => {
                let checked = decode::check(&parsed, snap);
                // The walk's "does not fit now" record is informational: the task stays in the plan.
                self.dropped += checked
                    .dropped
                    .iter()
                    .filter(|d| !matches!(d.reason, decode::DropReason::OverCapacity { .. }))
                    .count() as u64;
                rec.dropped = checked.dropped;
                rec.plan = checked.plan.iter().map(|p| p.0).collect();
                if parsed.items.is_empty() && parsed.dropped.is_empty() {
                    // An empty schedule: "start nothing now" is a valid answer.
                    self.plan.clear();
                    return Ok(());
                }
                if checked.plan.is_empty() {
                    self.plan.clear();
                    return Err("no valid task id in the answer".into());
                }
                self.plan = checked.plan;
                Ok(())
            }
            SlowMode::Choose => {
                self.dropped += parsed.dropped.len() as u64;
                rec.dropped = parsed.dropped.clone();
                let idx = match &parsed.pick {
                    Some(decode::Pick::Index(i)) => Some(*i),
                    Some(decode::Pick::Name(n)) => {
                        let n = n.trim().to_ascii_lowercase();
                        self.cfg
                            .choices
                            .iter()
                            .position(|c| *c == n)
                            .map(|i| i as u64)
                    }
                    None => parsed.items.first().map(|i| i.task),
                };
                match idx {
                    Some(i) if (i as usize) < self.choices.len() => {
                        self.chosen = Some(i as usize);
                        rec.choice = Some(self.cfg.choices[i as usize].clone());
                        Ok(())
                    }
                    _ => {
                        self.chosen = None;
                        Err(format!("invalid choice (valid: 0..{})", self.choices.len()))
                    }
                }
            }
        }
    }

    fn push_audit(&mut self, rec: DecisionRecord) {
        if self.cfg.audit_cap == 0 {
            return;
        }
        if self.audit.len() >= self.cfg.audit_cap {
            self.audit.pop_front();
            self.audit_evicted += 1;
        }
        self.audit.push_back(rec);
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Policy for Kernel {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        let t0 = Instant::now();
        self.decision_points += 1;
        self.plan.retain(|(id, _)| snap.waiting_task(*id).is_some());
        let anything_fits = snap
            .waiting
            .iter()
            .any(|t| snap.nodes.iter().any(|n| t.request.fits_in(&n.free)));
        if !anything_fits {
            self.latencies.push(t0.elapsed().as_micros() as u64);
            return;
        }
        self.since_consult = self.since_consult.saturating_add(1);
        let mut rec = DecisionRecord {
            seq: self.decision_points,
            time: snap.now,
            wall_ms: wall_ms(),
            waiting: snap.waiting.len(),
            ..Default::default()
        };

        // Predict: fill missing estimates for the policies, show predictions to the model.
        let mut preds: Vec<Option<Dur>> = Vec::new();
        let eff = self.predicted(snap, &mut preds);
        let view = eff.as_ref().map_or(*snap, |o| o.view());

        // Decide.
        let mut answered = false;
        if self.should_consult(snap) {
            let preds_ref = if self.predictor.is_some() {
                Some(preds.as_slice())
            } else {
                None
            };
            if let Err(reason) = self.consult(&view, preds_ref, &mut rec) {
                tracing::debug!(seq = rec.seq, %reason, "falling back to the fast policy");
                self.fallbacks += 1;
                self.plan.clear();
                rec.fallback = true;
                rec.fallback_reason = Some(reason);
            } else {
                answered = true;
            }
        }
        let mut proposals = std::mem::take(&mut self.proposals);
        proposals.clear();
        let mut sources: Vec<&str> = Vec::new();
        match self.cfg.mode {
            SlowMode::Order => {
                let (starts, _blocked) = decode::starts_in_order(&self.plan, &view);
                if !starts.is_empty() {
                    sources.push(if rec.model.is_some() && !rec.fallback {
                        "model"
                    } else {
                        "plan"
                    });
                }
                proposals.extend_from_slice(&starts);
                // The fast policy fills after the plan (fill=on), or decides
                // alone when there is no plan and the model did not just answer.
                if self.cfg.fill || (self.plan.is_empty() && !answered) {
                    let before = proposals.len();
                    if starts.is_empty() {
                        self.fast.decide(&view, &mut proposals);
                    } else {
                        let mut residual = eff.clone().unwrap_or_else(|| OwnedSnapshot::of(snap));
                        residual.apply(&starts);
                        self.fast.decide(&residual.view(), &mut proposals);
                    }
                    if proposals.len() > before {
                        sources.push("fast");
                    }
                }
            }
            SlowMode::Choose => match self.chosen {
                Some(i) => {
                    self.choices[i].decide(&view, &mut proposals);
                    sources.push("chosen");
                }
                None => {
                    self.fast.decide(&view, &mut proposals);
                    sources.push("fast");
                }
            },
        }

        // Validate against the driver's snapshot; return only accepted starts.
        let verdict = self.validator.check(snap, &proposals);
        if !verdict.rejected.is_empty() {
            tracing::warn!(
                rejected = verdict.rejected.len(),
                "validator refused kernel proposals"
            );
        }
        self.validator_rejected += verdict.rejected.len() as u64;
        self.accepted += verdict.accepted.len() as u64;
        out.extend_from_slice(&verdict.accepted);
        let us = t0.elapsed().as_micros() as u64;
        self.latencies.push(us);
        if rec.model.is_some() || !proposals.is_empty() {
            rec.latency_us = us;
            rec.source = sources.join("+");
            rec.proposed = proposals.clone();
            rec.accepted = verdict.accepted;
            rec.rejected = verdict.rejected;
            self.push_audit(rec);
        }
        self.proposals = proposals;
    }

    fn feedback(&mut self, outcome: &Outcome) {
        self.texts.remove(&outcome.task);
        self.fast.feedback(outcome);
        for c in &mut self.choices {
            c.feedback(outcome);
        }
        if let Some(b) = self.backend.as_mut() {
            b.feedback(outcome);
        }
        if let Some(p) = self.predictor.as_mut() {
            p.feedback(outcome);
        }
    }

    fn rejected(&mut self, rejections: &[Rejection]) {
        self.fast.rejected(rejections);
    }

    fn stats(&self) -> PolicyStats {
        self.kernel_stats().policy
    }

    /// Order mode: the still-waiting entries of the model's current plan, then
    /// the fast policy's order for the rest; choose mode: the chosen policy's
    /// order. Uses the predictor's estimates as `decide` does.
    fn queue_order(&mut self, snap: &Snapshot<'_>, out: &mut Vec<TaskId>) -> Option<String> {
        let eff = self.predicted(snap, &mut Vec::new());
        let view = eff.as_ref().map_or(*snap, |o| o.view());
        let last_model = self
            .audit
            .iter()
            .rev()
            .find(|r| r.model.is_some() && !r.fallback);
        if self.cfg.mode == SlowMode::Choose {
            if let (Some(i), Some(r)) = (self.chosen, last_model) {
                let how = self.choices[i].queue_order(&view, out)?;
                return Some(format!(
                    "`{}`, chosen by the model at decision point {}: {how}",
                    self.cfg.choices[i], r.seq
                ));
            }
            let how = self.fast.queue_order(&view, out)?;
            return Some(format!(
                "the fast policy `{}` (no current model choice): {how}",
                self.fast.name()
            ));
        }
        let plan: Vec<TaskId> = self
            .plan
            .iter()
            .map(|p| p.0)
            .filter(|id| view.waiting_task(*id).is_some())
            .collect();
        let mut rest = Vec::new();
        let fast_how = self.fast.queue_order(&view, &mut rest);
        if plan.is_empty() {
            out.extend(rest);
            return fast_how.map(|how| {
                format!(
                    "the fast policy `{}` (no current model plan): {how}",
                    self.fast.name()
                )
            });
        }
        out.extend_from_slice(&plan);
        let seq = last_model.map_or(0, |r| r.seq);
        match fast_how {
            Some(how) => {
                out.extend(rest.into_iter().filter(|id| !plan.contains(id)));
                Some(format!(
                    "the model's plan from decision point {seq} first ({} task(s)), then the fast policy `{}`: {how}",
                    plan.len(),
                    self.fast.name()
                ))
            }
            None => {
                out.extend(
                    view.waiting
                        .iter()
                        .map(|t| t.id)
                        .filter(|id| !plan.contains(id)),
                );
                Some(format!(
                    "the model's plan from decision point {seq} first ({} task(s)), then submission order",
                    plan.len()
                ))
            }
        }
    }

    /// The last model answer that placed or dropped `task` (with the model's
    /// rationale), else how the last consultation ended.
    fn remark(&self, task: TaskId) -> Option<String> {
        let cut = |s: &str| -> String {
            let mut t: String = s.chars().take(300).collect();
            if t.len() < s.len() {
                t.push_str("...");
            }
            t
        };
        if let Some(r) = self
            .audit
            .iter()
            .rev()
            .find(|r| r.model.is_some() && r.mentions(task))
        {
            let model = r.model.as_deref().unwrap_or("?");
            let mut s = match r.plan.iter().position(|t| *t == task) {
                Some(p) => format!(
                    "model `{model}` at decision point {} put it at position {} of {} in its plan",
                    r.seq,
                    p + 1,
                    r.plan.len()
                ),
                None => format!(
                    "model `{model}` at decision point {} named it, but the entry was dropped",
                    r.seq
                ),
            };
            let dropped: Vec<String> = r
                .dropped
                .iter()
                .filter(|d| d.task == Some(task.0))
                .map(|d| d.reason.to_string())
                .collect();
            if !dropped.is_empty() {
                s.push_str(&format!(" (dropped: {})", dropped.join("; ")));
            }
            if let Some(why) = &r.rationale {
                s.push_str(&format!("; its rationale: {:?}", cut(why)));
            }
            return Some(s);
        }
        let last = self.audit.iter().rev().find(|r| r.model.is_some())?;
        let model = last.model.as_deref().unwrap_or("?");
        Some(if last.fallback {
            format!(
                "the last consultation of model `{model}` (decision point {}) failed ({}); the fast policy `{}` decides",
                last.seq,
                last.fallback_reason.as_deref().unwrap_or("no reason recorded"),
                self.fast.name()
            )
        } else {
            format!(
                "model `{model}` did not mention it in its last answer (decision point {})",
                last.seq
            )
        })
    }
}
