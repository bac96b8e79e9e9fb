//! Explanations: "why is task X not running?" from a snapshot and the
//! kernel's audit records — blocked by which resource on which node, which
//! tasks are ahead of it in the current order, and what the model last said
//! about it. Also [`CaptureAt`], a policy wrapper that keeps the state at a
//! chosen point of a simulation so the CLI can explain it afterwards.

use std::fmt;

use llmchain_core::{
    Decision, Dim, NodeId, Outcome, Policy, PolicyStats, Rejection, Resources, Snapshot, TaskId,
    Time, Validator,
};
use serde::{Deserialize, Serialize};

use crate::audit::DecisionRecord;
use crate::kernel::Kernel;
use crate::owned::OwnedSnapshot;

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting to start.
    Waiting,
    /// Running on a node since a time.
    Running {
        /// The node.
        node: NodeId,
        /// Since.
        since: Time,
    },
    /// Neither waiting nor running: finished, not yet submitted, or unknown.
    NotInQueue,
}

/// One node's fit for the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFit {
    /// The node.
    pub node: NodeId,
    /// Free now.
    pub free: Resources,
    /// Capacity.
    pub capacity: Resources,
    /// Dimensions short now: (dimension, need, free).
    pub short: Vec<(Dim, u64, u64)>,
    /// Whether the task could ever fit there (request ≤ capacity).
    pub fits_ever: bool,
}

/// What the model last said about the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMention {
    /// Decision point of that answer.
    pub seq: u64,
    /// Its time.
    pub time: Time,
    /// The backend.
    pub model: String,
    /// Position in the model's plan (0 = first), if it was in it.
    pub position: Option<usize>,
    /// Reasons its elements about the task were dropped.
    pub dropped: Vec<String>,
    /// The answer's rationale.
    pub rationale: Option<String>,
}

/// The answer to "why is task X not running?".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The task.
    pub task: TaskId,
    /// At what time.
    pub now: Time,
    /// Its state.
    pub state: TaskState,
    /// Its request, when waiting.
    pub request: Option<Resources>,
    /// How it fits each node (when waiting).
    pub nodes: Vec<NodeFit>,
    /// Waiting tasks ahead of it in the current order.
    pub ahead: Vec<TaskId>,
    /// Which order `ahead` follows.
    pub order_source: String,
    /// The last model answer that mentioned it.
    pub model: Option<ModelMention>,
    /// The last model consultation at all (seq, fell back?, reason).
    pub last_consult: Option<(u64, bool, Option<String>)>,
    /// One-paragraph summary.
    pub summary: String,
}

/// Explain why `task` is (not) running in `snap`, using `audit` (oldest first).
///
/// "Ahead" follows the latest valid model plan when the task is in it (the
/// plan's still-waiting entries before it); otherwise submission order (task
/// ids), which is also the tie-break of every built-in ordering.
pub fn explain(task: TaskId, snap: &Snapshot<'_>, audit: &[DecisionRecord]) -> Explanation {
    let mut e = Explanation {
        task,
        now: snap.now,
        state: TaskState::NotInQueue,
        request: None,
        nodes: Vec::new(),
        ahead: Vec::new(),
        order_source: String::new(),
        model: None,
        last_consult: audit
            .iter()
            .rev()
            .find(|r| r.model.is_some())
            .map(|r| (r.seq, r.fallback, r.fallback_reason.clone())),
        summary: String::new(),
    };
    if let Some(r) = audit
        .iter()
        .rev()
        .find(|r| r.model.is_some() && r.mentions(task))
    {
        e.model = Some(ModelMention {
            seq: r.seq,
            time: r.time,
            model: r.model.clone().unwrap_or_default(),
            position: r.plan.iter().position(|t| *t == task),
            dropped: r
                .dropped
                .iter()
                .filter(|d| d.task == Some(task.0))
                .map(|d| d.reason.to_string())
                .collect(),
            rationale: r.rationale.clone(),
        });
    }
    if let Some(r) = snap.running.iter().find(|r| r.id == task) {
        e.state = TaskState::Running {
            node: r.node,
            since: r.start,
        };
        e.summary = format!("task {task} is running on {} since {}", r.node, r.start);
        return e;
    }
    let Some(t) = snap.waiting_task(task) else {
        e.summary = format!("task {task} is neither waiting nor running at {} (finished, not yet submitted, or unknown)", snap.now);
        return e;
    };
    e.state = TaskState::Waiting;
    e.request = Some(t.request);
    for n in snap.nodes {
        let short: Vec<_> = Dim::ALL
            .into_iter()
            .filter(|d| t.request.get(*d) > n.free.get(*d))
            .map(|d| (d, t.request.get(d), n.free.get(d)))
            .collect();
        e.nodes.push(NodeFit {
            node: n.id,
            free: n.free,
            capacity: n.capacity,
            short,
            fits_ever: t.request.fits_in(&n.capacity),
        });
    }
    // The current order: the latest plan containing the task, if it is the latest plan at all.
    let latest_plan = audit
        .iter()
        .rev()
        .find(|r| r.model.is_some() && !r.fallback && !r.plan.is_empty());
    match latest_plan {
        Some(r) if r.plan.contains(&task) => {
            e.ahead = r
                .plan
                .iter()
                .take_while(|x| **x != task)
                .filter(|x| snap.waiting_task(**x).is_some())
                .copied()
                .collect();
            e.order_source = format!(
                "the model's plan from decision point {} ({})",
                r.seq, r.time
            );
        }
        _ => {
            e.ahead = snap
                .waiting
                .iter()
                .take_while(|x| x.id != task)
                .map(|x| x.id)
                .collect();
            e.order_source = "submission order (no current model plan includes it)".into();
        }
    }
    let mut s = format!(
        "task {task} is waiting since {} (waited {}), needs {}. ",
        t.submit,
        t.wait(snap.now),
        t.request
    );
    if !e.nodes.iter().any(|n| n.fits_ever) {
        s.push_str("It can never run: its request exceeds every node's capacity. ");
    } else if let Some(n) = e.nodes.iter().find(|n| n.short.is_empty()) {
        s.push_str(&format!(
            "It fits on {} now, so it was not chosen at the last decision",
            n.node
        ));
        if !e.ahead.is_empty() {
            s.push_str(&format!(
                " ({} task(s) ahead of it in {})",
                e.ahead.len(),
                e.order_source
            ));
        }
        s.push_str(". ");
    } else {
        let parts: Vec<String> = e
            .nodes
            .iter()
            .filter(|n| n.fits_ever)
            .map(|n| {
                let sh: Vec<String> = n
                    .short
                    .iter()
                    .map(|(d, need, free)| format!("{d} needs {need} {}, {free} free", d.unit()))
                    .collect();
                format!("{}: {}", n.node, sh.join(", "))
            })
            .collect();
        s.push_str(&format!("Blocked by resources — {}. ", parts.join("; ")));
        if !e.ahead.is_empty() {
            let show: Vec<String> = e.ahead.iter().take(10).map(|x| x.to_string()).collect();
            s.push_str(&format!(
                "{} task(s) ahead of it in {}: {}{}. ",
                e.ahead.len(),
                e.order_source,
                show.join(", "),
                if e.ahead.len() > 10 { ", ..." } else { "" }
            ));
        }
    }
    match &e.model {
        Some(m) => {
            s.push_str(&format!(
                "The model ({}) last mentioned it at decision point {} ({})",
                m.model, m.seq, m.time
            ));
            if let Some(p) = m.position {
                s.push_str(&format!(", placing it at position {}", p + 1));
            }
            if !m.dropped.is_empty() {
                s.push_str(&format!(", element dropped: {}", m.dropped.join("; ")));
            }
            if let Some(r) = &m.rationale {
                s.push_str(&format!(", rationale: {:?}", r));
            }
            s.push('.');
        }
        None => s.push_str("No model answer mentioned it."),
    }
    if let Some((seq, true, Some(reason))) = &e.last_consult {
        s.push_str(&format!(
            " The last model consultation (decision point {seq}) fell back: {reason}."
        ));
    }
    e.summary = s;
    e
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary)?;
        for n in &self.nodes {
            writeln!(
                f,
                "  {}: free {} of {}{}",
                n.node,
                n.free,
                n.capacity,
                if !n.fits_ever {
                    " (never fits)"
                } else if n.short.is_empty() {
                    " (fits now)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// When [`CaptureAt`] takes its picture.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// The last decision point at or before this time.
    Time(Time),
    /// After this many decision points.
    Decisions(u64),
}

/// What [`CaptureAt`] kept: the state right after the last decision point
/// at or before the chosen moment (its accepted starts applied) and the audit
/// records up to then.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// The state.
    pub snapshot: OwnedSnapshot,
    /// The kernel's audit records up to then.
    pub audit: Vec<DecisionRecord>,
    /// Decision points seen up to then.
    pub decision_points: u64,
}

/// Wraps a [`Kernel`] and captures the state at a chosen moment; everything
/// else is passed through, so the run is the same as without the wrapper.
pub struct CaptureAt {
    inner: Kernel,
    at: At,
    points: u64,
    captured: Option<Captured>,
    done: bool,
    validator: Validator,
}

impl CaptureAt {
    /// Wrap `inner`.
    pub fn new(inner: Kernel, at: At) -> Self {
        CaptureAt {
            inner,
            at,
            points: 0,
            captured: None,
            done: false,
            validator: Validator::new(),
        }
    }

    /// The capture, if the moment was reached.
    pub fn captured(&self) -> Option<&Captured> {
        self.captured.as_ref()
    }

    /// The wrapped kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.inner
    }
}

impl Policy for CaptureAt {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        let in_window = !self.done
            && match self.at {
                At::Time(t) => snap.now <= t,
                At::Decisions(n) => self.points < n,
            };
        if !self.done && !in_window {
            self.done = true;
        }
        let before = out.len();
        self.inner.decide(snap, out);
        self.points += 1;
        if in_window {
            let mut o = OwnedSnapshot::of(snap);
            let verdict = self.validator.check(snap, &out[before..]);
            o.apply(&verdict.accepted);
            self.captured = Some(Captured {
                snapshot: o,
                audit: self.inner.audit(),
                decision_points: self.points,
            });
        }
    }

    fn feedback(&mut self, outcome: &Outcome) {
        if !self.done {
            if let Some(c) = self.captured.as_mut() {
                // A completion before the moment: reflect it in the captured state.
                if let At::Time(t) = self.at {
                    if outcome.end <= t {
                        if let Some(i) =
                            c.snapshot.running.iter().position(|r| r.id == outcome.task)
                        {
                            let r = c.snapshot.running.remove(i);
                            if let Some(n) = c.snapshot.nodes.get_mut(r.node.0 as usize) {
                                n.free += r.request;
                            }
                        }
                    }
                }
            }
        }
        self.inner.feedback(outcome);
    }

    fn rejected(&mut self, rejections: &[Rejection]) {
        self.inner.rejected(rejections);
    }

    fn stats(&self) -> PolicyStats {
        self.inner.stats()
    }
}
