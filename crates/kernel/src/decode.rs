//! Decision decoding: a model's raw answer → checked starts, with a recorded
//! reason for every element dropped.
//!
//! Accepted answers (strict JSON, optionally inside one Markdown code fence):
//! * an array of task ids: `[3, 5, 7]`;
//! * an array of items with a node: `[{"task": 3, "node": 0}, 5]`;
//! * an object `{"order": [...], "rationale": "..."}` (`reason` is accepted
//!   for `rationale`), and in choose mode `{"policy": 1}` or `{"policy": "sjf+easy"}`.
//!
//! [`parse`] checks the syntax; [`check`] checks the elements against a
//! snapshot: unknown id, duplicate, no such node and never-fits elements are
//! dropped with a [`DropReason`]; the remaining *plan* is walked in order and
//! tasks start while they fit ([`OverCapacity`](DropReason::OverCapacity) is
//! recorded for the first one that does not). The resulting starts still go
//! through [`llmchain_core::Validator`] in the kernel.

use llmchain_core::{Decision, Dim, NodeId, Snapshot, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DecodeError;

/// Bytes of raw output kept in an audit record.
pub const MAX_RAW_STORED: usize = 4096;
/// Bytes of raw output the decoder reads at most; longer answers are refused.
pub const MAX_PARSE_BYTES: usize = 64 * 1024;
/// Elements of an answer looked at; the rest are dropped as one record.
pub const MAX_ITEMS: usize = 1024;
/// Characters kept of a rationale.
pub const MAX_RATIONALE: usize = 512;

/// One element of a proposed order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The task id proposed.
    pub task: u64,
    /// The node proposed, if any.
    pub node: Option<u32>,
}

/// What a choose-mode answer named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pick {
    /// An index into the choices.
    Index(u64),
    /// A policy spec by name.
    Name(String),
}

/// A syntactically valid answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Proposed order (syntactically valid elements only).
    pub items: Vec<Item>,
    /// Choose mode: the pick, when the answer was an object with `policy`.
    pub pick: Option<Pick>,
    /// The model's rationale, bounded to [`MAX_RATIONALE`] characters.
    pub rationale: Option<String>,
    /// Elements dropped for their syntax.
    pub dropped: Vec<Dropped>,
}

/// Why one element was dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// Not a non-negative integer id nor a `{"task":..,"node":..}` object.
    NotATaskId,
    /// No waiting task has this id.
    UnknownTask,
    /// Already proposed earlier in the same answer.
    Duplicate,
    /// The node does not exist.
    NoSuchNode {
        /// The node named.
        node: u32,
    },
    /// The request exceeds the capacity of the node named (or of every node).
    NeverFits,
    /// Does not fit now given the earlier elements; kept in the plan for later.
    OverCapacity {
        /// The node it was checked against (the named one, or the first node).
        node: u32,
        /// First dimension short.
        dim: Dim,
        /// Needed there.
        need: u64,
        /// Free there.
        free: u64,
    },
    /// More than [`MAX_ITEMS`] elements.
    TooMany {
        /// How many were cut.
        count: usize,
    },
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DropReason::NotATaskId => f.write_str("not a task id"),
            DropReason::UnknownTask => f.write_str("unknown task (not waiting)"),
            DropReason::Duplicate => f.write_str("duplicate"),
            DropReason::NoSuchNode { node } => write!(f, "no such node n{node}"),
            DropReason::NeverFits => f.write_str("request exceeds node capacity"),
            DropReason::OverCapacity {
                node,
                dim,
                need,
                free,
            } => {
                write!(
                    f,
                    "does not fit now on n{node}: {dim} needs {need}, {free} free"
                )
            }
            DropReason::TooMany { count } => {
                write!(f, "{count} elements beyond the {MAX_ITEMS}-element limit")
            }
        }
    }
}

/// One dropped element.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The element as written (bounded to 64 characters).
    pub element: String,
    /// Its task id, when it had one.
    pub task: Option<u64>,
    /// Why.
    pub reason: DropReason,
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub fn bound(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

fn element_text(v: &Value) -> String {
    let s = v.to_string();
    let (b, cut) = bound(&s, 64);
    if cut {
        format!("{b}…")
    } else {
        b
    }
}

fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```") {
        // Drop the info string (e.g. `json`) up to the first newline.
        let body = rest.split_once('\n').map_or("", |(_, b)| b);
        return body.trim_end().strip_suffix("```").unwrap_or(body).trim();
    }
    t
}

/// Parse a raw answer strictly.
pub fn parse(raw: &str) -> Result<Parsed, DecodeError> {
    if raw.len() > MAX_PARSE_BYTES {
        return Err(DecodeError::TooLarge {
            len: raw.len(),
            max: MAX_PARSE_BYTES,
        });
    }
    let text = strip_fence(raw);
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| DecodeError::NotJson {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let mut out = Parsed::default();
    let arr = match v {
        Value::Array(a) => a,
        Value::Object(map) => {
            let mut order = None;
            for (k, val) in map {
                match k.as_str() {
                    "order" => match val {
                        Value::Array(a) => order = Some(a),
                        other => {
                            return Err(DecodeError::WrongShape(format!(
                                "`order` is {}",
                                kind(&other)
                            )))
                        }
                    },
                    "rationale" | "reason" => match val {
                        Value::String(s) => {
                            out.rationale = Some(s.chars().take(MAX_RATIONALE).collect())
                        }
                        Value::Null => {}
                        other => {
                            return Err(DecodeError::WrongShape(format!(
                                "`{k}` is {}",
                                kind(&other)
                            )))
                        }
                    },
                    "policy" => match val {
                        Value::Number(n) if n.as_u64().is_some() => {
                            out.pick = Some(Pick::Index(n.as_u64().unwrap_or(0)))
                        }
                        Value::String(s) => {
                            out.pick = Some(Pick::Name(s.chars().take(64).collect()))
                        }
                        other => {
                            return Err(DecodeError::WrongShape(format!(
                                "`policy` is {}",
                                kind(&other)
                            )))
                        }
                    },
                    _ => {
                        let (k, _) = bound(&k, 32);
                        return Err(DecodeError::WrongShape(format!("unexpected key `{k}`")));
                    }
                }
            }
            if order.is_none() && out.pick.is_none() {
                return Err(DecodeError::WrongShape(
                    "object without `order` or `policy`".into(),
                ));
            }
            order.unwrap_or_default()
        }
        other => {
            return Err(DecodeError::WrongShape(format!(
                "top level is {}",
                kind(&other)
            )))
        }
    };
    let n = arr.len();
    for v in arr.into_iter().take(MAX_ITEMS) {
        match item_of(&v) {
            Some(it) => out.items.push(it),
            None => out.dropped.push(Dropped {
                element: element_text(&v),
                task: None,
                reason: DropReason::NotATaskId,
            }),
        }
    }
    if n > MAX_ITEMS {
        out.dropped.push(Dropped {
            element: String::new(),
            task: None,
            reason: DropReason::TooMany {
                count: n - MAX_ITEMS,
            },
        });
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn item_of(v: &Value) -> Option<Item> {
    match v {
        Value::Number(n) => n.as_u64().map(|task| Item { task, node: None }),
        Value::Object(m) => {
            let mut task = None;
            let mut node = None;
            for (k, val) in m {
                match (k.as_str(), val) {
                    ("task" | "id", Value::Number(n)) => task = Some(n.as_u64()?),
                    ("node", Value::Number(n)) => node = Some(u32::try_from(n.as_u64()?).ok()?),
                    ("node", Value::Null) => {}
                    _ => return None,
                }
            }
            task.map(|task| Item { task, node })
        }
        _ => None,
    }
}

/// The result of checking a parsed order against a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Valid elements in the model's order (waiting, unique, can fit on their node).
    pub plan: Vec<(TaskId, Option<NodeId>)>,
    /// Starts now: the plan's head while it fits, each with its node.
    pub starts: Vec<Decision>,
    /// Elements dropped (syntax drops from [`Parsed`] included).
    pub dropped: Vec<Dropped>,
}

/// Check `parsed` against `snap`: see the module docs.
pub fn check(parsed: &Parsed, snap: &Snapshot<'_>) -> Checked {
    let mut out = Checked {
        dropped: parsed.dropped.clone(),
        ..Default::default()
    };
    let mut seen: Vec<u64> = Vec::new();
    for it in &parsed.items {
        let drop = |reason| Dropped {
            element: item_text(it),
            task: Some(it.task),
            reason,
        };
        let Some(t) = snap.waiting_task(TaskId(it.task)) else {
            out.dropped.push(drop(DropReason::UnknownTask));
            continue;
        };
        if seen.contains(&it.task) {
            out.dropped.push(drop(DropReason::Duplicate));
            continue;
        }
        let node = match it.node {
            Some(n) => match snap.nodes.get(n as usize) {
                None => {
                    out.dropped.push(drop(DropReason::NoSuchNode { node: n }));
                    continue;
                }
                Some(ns) if !t.request.fits_in(&ns.capacity) => {
                    out.dropped.push(drop(DropReason::NeverFits));
                    continue;
                }
                Some(_) => Some(NodeId(n)),
            },
            None => {
                if !snap.nodes.iter().any(|n| t.request.fits_in(&n.capacity)) {
                    out.dropped.push(drop(DropReason::NeverFits));
                    continue;
                }
                None
            }
        };
        seen.push(it.task);
        out.plan.push((t.id, node));
    }
    let (starts, blocked) = starts_in_order(&out.plan, snap);
    out.starts = starts;
    out.dropped.extend(blocked);
    out
}

fn item_text(it: &Item) -> String {
    match it.node {
        Some(n) => format!("{{\"task\":{},\"node\":{n}}}", it.task),
        None => it.task.to_string(),
    }
}

/// Start the head of `plan` while it fits (against the snapshot's free
/// resources minus earlier starts); return the starts and, when the walk
/// stopped at an element that does not fit, one [`DropReason::OverCapacity`]
/// record for it. Elements no longer waiting are skipped silently.
pub fn starts_in_order(
    plan: &[(TaskId, Option<NodeId>)],
    snap: &Snapshot<'_>,
) -> (Vec<Decision>, Option<Dropped>) {
    let mut free = snap.free_vec();
    let mut starts = Vec::new();
    for &(id, node) in plan {
        let Some(t) = snap.waiting_task(id) else {
            continue;
        };
        let target = match node {
            Some(n) => {
                Some(n).filter(|n| free.get(n.0 as usize).is_some_and(|f| t.request.fits_in(f)))
            }
            None => Snapshot::first_fit(&t.request, &free),
        };
        match target {
            Some(n) => {
                free[n.0 as usize] -= t.request;
                starts.push(Decision::start(id, n));
            }
            None => {
                let n = node
                    .map_or(0, |n| n.0 as usize)
                    .min(free.len().saturating_sub(1));
                let f = free.get(n).copied().unwrap_or_default();
                let dim = t.request.first_shortfall(&f).unwrap_or(Dim::Cpu);
                let dropped = Dropped {
                    element: id.0.to_string(),
                    task: Some(id.0),
                    reason: DropReason::OverCapacity {
                        node: n as u32,
                        dim,
                        need: t.request.get(dim),
                        free: f.get(dim),
                    },
                };
                return (starts, Some(dropped));
            }
        }
    }
    (starts, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmchain_core::{NodeState, Resources, Time, WaitingTask};

    fn w(id: u64, cpus: u64) -> WaitingTask {
        WaitingTask {
            id: TaskId(id),
            submit: Time::ZERO,
            request: Resources::cpus(cpus, 1),
            estimate: None,
            user: 0,
            priority: 0,
        }
    }

    fn check_str(raw: &str) -> Result<Checked, DecodeError> {
        let nodes = [NodeState {
            id: NodeId(0),
            capacity: Resources::cpus(8, 16),
            free: Resources::cpus(4, 16),
        }];
        let waiting = [w(1, 2), w(2, 2), w(3, 1), w(4, 9)];
        let snap = Snapshot::new(Time::ZERO, &nodes, &waiting, &[]);
        parse(raw).map(|p| check(&p, &snap))
    }

    fn reasons(c: &Checked) -> Vec<String> {
        c.dropped.iter().map(|d| d.reason.to_string()).collect()
    }

    #[test]
    fn array_of_ids() {
        let c = check_str("[2, 1, 3]").unwrap();
        assert_eq!(
            c.starts,
            vec![
                Decision::start(TaskId(2), NodeId(0)),
                Decision::start(TaskId(1), NodeId(0))
            ]
        );
        assert_eq!(c.plan.len(), 3);
        assert_eq!(
            reasons(&c),
            vec!["does not fit now on n0: cpu needs 1000, 0 free"]
        );
    }

    #[test]
    fn every_bad_element_has_a_reason() {
        let c = check_str(r#"{"order":[9, 1, 1, {"task":2,"node":5}, 4, "x", -1, 2.5, 3], "rationale":"short first"}"#).unwrap();
        assert_eq!(
            c.starts,
            vec![
                Decision::start(TaskId(1), NodeId(0)),
                Decision::start(TaskId(3), NodeId(0))
            ]
        );
        assert_eq!(
            reasons(&c),
            vec![
                "not a task id",
                "not a task id",
                "not a task id",
                "unknown task (not waiting)",
                "duplicate",
                "no such node n5",
                "request exceeds node capacity"
            ]
        );
    }

    #[test]
    fn fences_and_errors() {
        assert!(check_str("```json\n[3]\n```").is_ok());
        assert_eq!(check_str("  ").unwrap_err(), DecodeError::Empty);
        assert!(matches!(check_str("[3"), Err(DecodeError::NotJson { .. })));
        assert!(matches!(
            check_str("[3] trailing"),
            Err(DecodeError::NotJson { .. })
        ));
        assert!(matches!(
            check_str("{\"ordr\":[1]}"),
            Err(DecodeError::WrongShape(_))
        ));
        assert!(matches!(check_str("7"), Err(DecodeError::WrongShape(_))));
        let deep = "[".repeat(10_000);
        assert!(check_str(&deep).is_err());
        assert!(matches!(
            check_str(&" ".repeat(MAX_PARSE_BYTES + 1)),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn bound_respects_char_boundaries() {
        assert_eq!(bound("ééé", 3), ("é".to_string(), true));
        assert_eq!(bound("abc", 3), ("abc".to_string(), false));
    }
}
