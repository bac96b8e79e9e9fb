//! LLMChain's baseline scheduling policies, built from a spec string.
//!
//! A spec is `<ordering>[:key=value[,key=value]][+<mode>]`, case-insensitive:
//! `fcfs`, `sjf+easy`, `f1+cons`, `tetris:knob=0.3`, `random:seed=7+greedy`.
//!
//! * **Orderings** ([`order`]) say which task goes first: [`names`] lists
//!   them. Each is a documented scoring function with a total order
//!   (score, then submit time, then task id).
//! * **Modes** ([`Mode`]) say how the order becomes starts: `strict` (the
//!   default for fcfs, sjf, wfp3, unicep, f1), `greedy` (the default for
//!   packer, tetris, drf, bestfit, random), `easy` and `cons` backfilling.
//!
//! [`Policy::name`] returns the canonical spec (lower case, default mode and
//! default parameters omitted), and `build(p.name())` rebuilds the same policy.
//!
//! ```
//! use llmchain_core::*;
//! use llmchain_policy::{build, BuildCtx};
//!
//! let mut p = build("SJF+easy", &BuildCtx::default()).unwrap();
//! assert_eq!(p.name(), "sjf+easy");
//! let nodes = [NodeState { id: NodeId(0), capacity: Resources::cpus(4, 0), free: Resources::cpus(4, 0) }];
//! let waiting = [WaitingTask { id: TaskId(0), submit: Time::ZERO, request: Resources::cpus(2, 0),
//!                              estimate: Some(Dur::from_secs(60)), user: 0, priority: 0 }];
//! let mut out = Vec::new();
//! p.decide(&Snapshot::new(Time::ZERO, &nodes, &waiting, &[]), &mut out);
//! assert_eq!(out, vec![Decision::start(TaskId(0), NodeId(0))]);
//!
//! let err = build("fifo", &BuildCtx::default()).err().unwrap();
//! assert!(err.to_string().contains("fcfs, sjf"));
//! ```
//!
//! **Writing a new policy:** start from [`fcfs`] (the documented template),
//! or — for a new scoring rule — implement [`order::Ordering`] and wrap it in
//! a [`Scheduler`] to get every mode for free.
//!
//! # Guarantees
//! * **Deterministic**: the same snapshots in the same order give the same
//!   decisions (`random` draws from a SplitMix64 generator seeded by
//!   [`BuildCtx::seed`] or `random:seed=N`).
//! * **Total order**: score, then submit time, then task id.
//! * **Valid**: every proposal fits the node's free resources after the
//!   proposals before it, so the [`llmchain_core::Validator`] accepts all of
//!   them on a consistent snapshot (property-tested).
//! * **Estimates only**: policies read `estimate` and `expected_end`, never
//!   actual runtimes. A running task without an expected end, or past it, is
//!   assumed to end at `now + 1 ms` (see [`Scheduler`]).
//!
//! # Cost of one decision
//! Scratch buffers live in the policy, so a decision does not allocate once
//! they have grown. With `q` waiting and `r` running tasks, `k` starts and
//! `c` tasks that fit now, every mode first makes one O(q) pass that scores
//! the queue and sets the `c` fitting tasks apart (only they can start; see
//! [`Scheduler`]); then strict costs O(c·min(k+1, 16) + c log c only when
//! k > 16); greedy and EASY O(r log r + c log c); greedy for
//! Packer/Tetris/best-fit/DRF O(k·q·nodes); conservative O(q log q +
//! d·(r + d)) with d ≤ [`CONS_DEPTH`] reservations. FCFS skips scoring and,
//! on a queue in submission order, all sorting. When no waiting task fits
//! anywhere a decision is a single O(q) scan.

mod commit;
mod error;
pub mod fcfs;
mod mode;
pub mod order;
mod profile;
mod scheduler;

pub use commit::Committed;
pub use error::PolicyError;
pub use fcfs::Fcfs;
pub use mode::{Mode, CONS_DEPTH};
pub use scheduler::Scheduler;

use llmchain_core::Policy;
use order::{
    BestFitOrder, DrfOrder, F1Order, FcfsOrder, PackerOrder, RandomOrder, SjfOrder, TetrisOrder,
    UnicepOrder, Wfp3Order,
};

/// What [`build`] needs besides the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildCtx {
    /// Seed for policies that draw random numbers (`random`), unless the
    /// spec gives its own (`random:seed=N`). Default 0.
    pub seed: u64,
}

/// Every valid ordering name, for `--help` and error messages.
pub fn names() -> &'static [&'static str] {
    &[
        "fcfs", "sjf", "wfp3", "unicep", "f1", "packer", "tetris", "drf", "bestfit", "random",
    ]
}

/// One line describing an ordering or mode name (from [`names`] or
/// [`MODE_NAMES`]), for `--help`; `None` for unknown names.
pub fn describe(name: &str) -> Option<&'static str> {
    Some(match name {
        "fcfs" => "first come, first served (submit time, then id); default +strict",
        "sjf" => "shortest estimate first, unknown estimates last; default +strict",
        "wfp3" => "RLScheduler WFP3: -(wait/req)^3 * procs; default +strict",
        "unicep" => "RLScheduler UNICEP: -wait / (log2(procs) * req); default +strict",
        "f1" => "F1: log10(req) * procs + 870 * log10(submit); default +strict",
        "packer" => "highest alignment of demand with free resources first; default +greedy",
        "tetris" => "knob * alignment + (1 - knob) / estimate (knob=0.5); default +greedy",
        "drf" => "user with the lowest dominant share first, then FCFS; default +greedy",
        "bestfit" => {
            "task/node pair leaving the least normalised free space first; default +greedy"
        }
        "random" => "seeded random order (seed from --seed or random:seed=N); default +greedy",
        "strict" => "start in priority order; the first task that does not fit blocks the rest",
        "greedy" => "start every task that fits, in priority order",
        "easy" => "EASY backfilling: reserve for the first blocked task, backfill around it",
        "cons" => "conservative backfilling: reserve for every task, start only what is due now",
        _ => return None,
    })
}

/// The backfilling / start modes a spec may add after `+` besides the
/// default `strict` (which is also accepted: see [`MODE_NAMES`]).
pub const BACKFILL_NAMES: &[&str] = &["easy", "cons", "greedy"];

/// Every mode name accepted after `+`.
pub const MODE_NAMES: &[&str] = &["strict", "greedy", "easy", "cons"];

/// Every valid ordering, mode and parameter, as one line for messages.
pub fn valid_specs() -> String {
    format!(
        "orderings: {}; modes: {}; parameters: tetris:knob=<0..1>, random:seed=<u64>",
        names().join(", "),
        MODE_NAMES
            .iter()
            .map(|m| format!("+{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Build a policy from a spec such as `sjf+easy` or `tetris:knob=0.3`.
///
/// Errors name the spec and list the valid names, modes and parameters.
pub fn build(spec: &str, ctx: &BuildCtx) -> Result<Box<dyn Policy + Send>, PolicyError> {
    let lower = spec.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err(PolicyError::Empty {
            valid: valid_specs(),
        });
    }
    let (head, mode) = match lower.split_once('+') {
        None => (lower.as_str(), None),
        Some((h, m)) => {
            let m = m.trim();
            if m.contains('+') {
                return Err(PolicyError::Malformed {
                    spec: spec.into(),
                    reason: "more than one `+`".into(),
                });
            }
            let mode = Mode::parse(m).ok_or_else(|| PolicyError::UnknownMode {
                spec: spec.into(),
                mode: m.into(),
                valid: MODE_NAMES.join(", "),
            })?;
            (h, Some(mode))
        }
    };
    let (name, params) = match head.split_once(':') {
        None => (head, Vec::new()),
        Some((n, ps)) => {
            let mut v = Vec::new();
            for p in ps.split(',') {
                let Some((k, val)) = p.split_once('=') else {
                    return Err(PolicyError::Malformed {
                        spec: spec.into(),
                        reason: format!("parameter `{p}` is not key=value"),
                    });
                };
                v.push((k.trim(), val.trim()));
            }
            (n, v)
        }
    };
    let params_for = |ordering: &str, allowed: &[&str]| -> Result<(), PolicyError> {
        for (k, _) in &params {
            if !allowed.contains(k) {
                return Err(PolicyError::UnknownParam {
                    spec: spec.into(),
                    ordering: ordering.into(),
                    key: (*k).into(),
                    valid: if allowed.is_empty() {
                        "none".into()
                    } else {
                        allowed.join(", ")
                    },
                });
            }
        }
        Ok(())
    };
    let bad = |k: &str, v: &str, reason: &str| PolicyError::BadParam {
        spec: spec.into(),
        key: k.into(),
        value: v.into(),
        reason: reason.into(),
    };
    fn boxed<O: order::Ordering + 'static>(o: O, mode: Option<Mode>) -> Box<dyn Policy + Send> {
        let m = mode.unwrap_or_else(|| o.default_mode());
        Box::new(Scheduler::new(o, m))
    }
    let name = name.trim();
    let policy = match name {
        "fcfs" => {
            params_for(name, &[])?;
            match mode {
                None | Some(Mode::Strict) => Box::new(Fcfs::new()),
                m => boxed(FcfsOrder, m),
            }
        }
        "sjf" => {
            params_for(name, &[])?;
            boxed(SjfOrder, mode)
        }
        "wfp3" => {
            params_for(name, &[])?;
            boxed(Wfp3Order, mode)
        }
        "unicep" => {
            params_for(name, &[])?;
            boxed(UnicepOrder, mode)
        }
        "f1" => {
            params_for(name, &[])?;
            boxed(F1Order, mode)
        }
        "packer" => {
            params_for(name, &[])?;
            boxed(PackerOrder, mode)
        }
        "tetris" => {
            params_for(name, &["knob"])?;
            let mut o = TetrisOrder::default();
            for (k, v) in &params {
                let knob: f64 = v
                    .parse()
                    .map_err(|_| bad(k, v, "expected a number in [0, 1]"))?;
                if !(0.0..=1.0).contains(&knob) {
                    return Err(bad(k, v, "expected a number in [0, 1]"));
                }
                o.knob = knob;
            }
            boxed(o, mode)
        }
        "drf" => {
            params_for(name, &[])?;
            boxed(DrfOrder::default(), mode)
        }
        "bestfit" | "best-fit" => {
            params_for("bestfit", &[])?;
            boxed(BestFitOrder, mode)
        }
        "random" => {
            params_for(name, &["seed"])?;
            let mut o = RandomOrder::new(ctx.seed, false);
            for (k, v) in &params {
                let seed: u64 = v
                    .parse()
                    .map_err(|_| bad(k, v, "expected an unsigned 64-bit integer"))?;
                o = RandomOrder::new(seed, true);
            }
            boxed(o, mode)
        }
        _ => {
            return Err(PolicyError::Unknown {
                spec: spec.into(),
                valid: valid_specs(),
            })
        }
    };
    Ok(policy)
}

#[cfg(test)]
pub(crate) use testhelp::*;

#[cfg(test)]
mod testhelp {
    //! Helpers for the ordering tests: the priority order and scores an
    //! ordering gives a hand-made queue.
    use llmchain_core::{NodeState, RunningTask, Snapshot, Time, WaitingTask};

    use crate::order::{Ordering, PlanView};
    use crate::scheduler::{sort_keys, Key};

    fn free(nodes: &[NodeState]) -> Vec<llmchain_core::Resources> {
        nodes.iter().map(|n| n.free).collect()
    }

    /// Task ids in priority order at `now_s` seconds, nothing running.
    pub fn ordered_ids<O: Ordering>(
        o: O,
        nodes: &[NodeState],
        q: &[WaitingTask],
        now_s: u64,
    ) -> Vec<u64> {
        ordered_ids_with_running(o, nodes, q, &[], now_s)
    }

    /// Task ids in priority order at `now_s` seconds.
    pub fn ordered_ids_with_running<O: Ordering>(
        mut o: O,
        nodes: &[NodeState],
        q: &[WaitingTask],
        running: &[RunningTask],
        now_s: u64,
    ) -> Vec<u64> {
        let snap = Snapshot::new(Time::from_secs(now_s), nodes, q, running);
        o.prepare(&snap);
        let mut keys: Vec<Key> = Vec::new();
        sort_keys(&o, &snap, &free(nodes), &mut keys);
        keys.iter().map(|k| k.id.0).collect()
    }

    /// Scores in queue order at `now_s` seconds, nothing running.
    pub fn scores<O: Ordering>(
        o: O,
        nodes: &[NodeState],
        q: &[WaitingTask],
        now_s: u64,
    ) -> Vec<f64> {
        scores_with_running(o, nodes, q, &[], now_s)
    }

    /// Scores in queue order at `now_s` seconds.
    pub fn scores_with_running<O: Ordering>(
        mut o: O,
        nodes: &[NodeState],
        q: &[WaitingTask],
        running: &[RunningTask],
        now_s: u64,
    ) -> Vec<f64> {
        let snap = Snapshot::new(Time::from_secs(now_s), nodes, q, running);
        o.prepare(&snap);
        let f = free(nodes);
        let view = PlanView {
            snap: &snap,
            free: &f,
        };
        q.iter()
            .enumerate()
            .map(|(i, t)| o.score(&view, i, t))
            .collect()
    }
}
