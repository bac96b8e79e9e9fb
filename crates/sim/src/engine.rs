//! The discrete-event engine: [`run`] one policy over one [`Workload`].
//!
//! # Event order
//! Arrivals are read in `TaskId` order from the workload (sorted by submit
//! time); completions sit in a binary heap keyed by `(time, sequence)`, the
//! sequence number counting starts, so equal-time completions are handled in
//! the order their tasks started. The engine advances to the earliest pending
//! timestamp `t` and then, in this order:
//! 1. processes every completion due at `t` (frees the node, calls
//!    [`Policy::feedback`]),
//! 2. enqueues every arrival with submit time `t`,
//! 3. asks the policy to decide **once** (if any task waits): proposals go
//!    through [`Validator`]; accepted ones start at `t` in proposal order,
//!    rejected ones are counted and handed to [`Policy::rejected`].
//!
//! Batching same-time events into one decision point is equivalent to
//! deciding after each of them for a policy that proposes everything it wants
//! started now, and is faster. A task with zero run time completes at its own
//! start time, which gives one more decision point at that timestamp.
//!
//! When no event remains, the run ends; tasks still waiting are reported as
//! never started (the engine never spins on a policy that starts nothing).
//!
//! # Cost
//! Per decision point: the policy's cost, plus removing the k started tasks
//! from the waiting list in O(k log queue + min(front part, back part)) — a
//! started prefix (FCFS, a backfilling head) only moves an index. Per event:
//! O(log running) for the heap. No allocation per event: all buffers are reused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use llmchain_core::{
    Decision, Dur, ExitStatus, NodeId, NodeState, Outcome, Policy, Resources, RunningTask,
    Snapshot, TaskId, Time, Validator, Verdict, WaitingTask,
};
use serde::{Deserialize, Serialize};

use crate::result::{compute_metrics, downsample, record, Counters};
use crate::{RunResult, SimError, Workload};

/// Simulation options. Defaults: estimates as given, no utilisation series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Show policies each task's actual run time as its estimate (a
    /// "perfect estimates" protocol; results are labelled).
    pub perfect_estimates: bool,
    /// Record cluster utilisation over time in [`RunResult::utilisation_series`].
    pub utilisation_series: bool,
    /// At most this many points in the utilisation series (default 2,000).
    pub max_series_points: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            perfect_estimates: false,
            utilisation_series: false,
            max_series_points: 2000,
        }
    }
}

const WAITING: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const NOT_RUNNING: u32 = u32::MAX;

/// Remove the tasks just started from the waiting list `wbuf[*head..]`,
/// keeping it sorted, at cost O(k log L + k² + min(distance from the front to
/// the last removed task, distance from the first removed task to the back)):
/// the cheaper side is moved over the removed tasks, segment by segment
/// (removing a prefix, as FCFS does, only advances `head`). The dead prefix
/// is dropped once it is at least half the buffer, so that costs O(1)
/// amortised. `pos` is scratch space.
fn remove_started(
    wbuf: &mut Vec<WaitingTask>,
    head: &mut usize,
    started: &[Decision],
    pos: &mut Vec<usize>,
) {
    let h = *head;
    let live = &wbuf[h..];
    pos.clear();
    pos.extend(started.iter().filter_map(|d| {
        let p = live.binary_search_by_key(&d.task(), |w| w.id).ok()?;
        Some(h + p)
    }));
    if pos.is_empty() {
        return;
    }
    pos.sort_unstable();
    pos.dedup();
    let (k, len) = (pos.len(), wbuf.len());
    if pos[k - 1] - h < len - pos[0] {
        // Walking the removed tasks from the last one down, the gap they
        // leave, `pos[i..]`, sits at `pos[i]..pos[i] + (k - i)`; rotating the
        // segment in front of it past it moves the gap down to the next one.
        // It ends at the head, which moves past it.
        for i in (0..k).rev() {
            let g = k - i;
            let seg_start = if i == 0 { h } else { pos[i - 1] + 1 };
            wbuf[seg_start..pos[i] + g].rotate_right(g);
        }
        *head = h + k;
    } else {
        // The mirror image: the gap `pos[..=i]` sits just before
        // `pos[i] + 1` and moves up behind each segment; it ends at the back.
        for i in 0..k {
            let g = i + 1;
            let seg_end = if i + 1 < k { pos[i + 1] } else { len };
            wbuf[pos[i] + 1 - g..seg_end].rotate_left(g);
        }
        wbuf.truncate(len - k);
    }
    if *head == wbuf.len() {
        wbuf.clear();
        *head = 0;
    } else if *head >= 64 && *head * 2 >= wbuf.len() {
        wbuf.drain(..*head);
        *head = 0;
    }
}

/// Simulate `policy` on `workload`. Deterministic: same inputs → identical result.
///
/// Fails only if the workload breaks its invariants (see [`Workload::check`]).
pub fn run<P: Policy + ?Sized>(
    workload: &Workload,
    policy: &mut P,
    config: &SimConfig,
) -> Result<RunResult, SimError> {
    workload.check()?;
    let tasks = &workload.tasks;
    let n = tasks.len();
    let mut nodes: Vec<NodeState> = workload
        .cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, s)| NodeState {
            id: NodeId(i as u32),
            capacity: s.capacity,
            free: s.capacity,
        })
        .collect();
    let capacity = workload.cluster.total();
    let estimate_of = |i: usize| {
        if config.perfect_estimates {
            tasks[i].runtime
        } else {
            tasks[i].estimate
        }
    };

    let mut state = vec![0u8; n];
    let mut start = vec![Time::ZERO; n];
    let mut node_of = vec![NodeId(0); n];
    let mut run_pos = vec![NOT_RUNNING; n];
    // Waiting tasks live in `wbuf[head..]`, sorted by id (see `remove_started`).
    let mut wbuf: Vec<WaitingTask> = Vec::new();
    let mut head = 0usize;
    let mut running: Vec<RunningTask> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(Time, u64, u32)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut next_arrival = 0usize;
    let mut proposals: Vec<Decision> = Vec::new();
    let mut started_pos: Vec<usize> = Vec::new();
    let mut verdict = Verdict::default();
    let mut validator = Validator::new();
    let mut c = Counters::default();
    let mut used = Resources::ZERO;
    let mut series: Vec<(Time, Resources)> = Vec::new();
    let mut end_of = vec![Time::ZERO; n];

    loop {
        let t_arr = tasks.get(next_arrival).map(|t| t.submit);
        let t_done = heap.peek().map(|Reverse((t, _, _))| *t);
        let now = match (t_arr, t_done) {
            (Some(a), Some(d)) => a.min(d),
            (Some(a), None) => a,
            (None, Some(d)) => d,
            (None, None) => break,
        };

        // 1. Completions due now, in (time, seq) order.
        while let Some(&Reverse((t, _, idx))) = heap.peek() {
            if t != now {
                break;
            }
            heap.pop();
            let i = idx as usize;
            let p = run_pos[i] as usize;
            let r = running.swap_remove(p);
            if p < running.len() {
                run_pos[running[p].id.0 as usize] = p as u32;
            }
            run_pos[i] = NOT_RUNNING;
            nodes[r.node.0 as usize].free += r.request;
            used -= r.request;
            state[i] = DONE;
            end_of[i] = now;
            c.events += 1;
            let t = &tasks[i];
            policy.feedback(&Outcome {
                task: t.id,
                node: r.node,
                user: t.user,
                request: t.request,
                estimate: estimate_of(i),
                submit: t.submit,
                start: r.start,
                end: now,
                status: ExitStatus::Completed,
            });
        }

        // 2. Arrivals at now, in id order (keeps `waiting` sorted by id).
        while let Some(t) = tasks.get(next_arrival) {
            if t.submit != now {
                break;
            }
            wbuf.push(WaitingTask {
                id: t.id,
                submit: t.submit,
                request: t.request,
                estimate: estimate_of(next_arrival),
                user: t.user,
                priority: t.priority,
            });
            state[next_arrival] = WAITING;
            next_arrival += 1;
            c.events += 1;
        }

        // 3. One decision.
        if head < wbuf.len() {
            proposals.clear();
            let snap = Snapshot::new(now, &nodes, &wbuf[head..], &running);
            policy.decide(&snap, &mut proposals);
            c.decision_points += 1;
            if !proposals.is_empty() {
                validator.check_into(&snap, &proposals, &mut verdict);
                if !verdict.rejected.is_empty() {
                    c.rejected += verdict.rejected.len() as u64;
                    tracing::debug!(policy = policy.name(), now = %now, rejected = verdict.rejected.len(), "proposals rejected");
                    policy.rejected(&verdict.rejected);
                }
                for d in &verdict.accepted {
                    let Decision::Start { task, node } = *d else {
                        continue;
                    };
                    let i = task.0 as usize;
                    let t = &tasks[i];
                    let runtime = t.runtime.unwrap_or(Dur::ZERO);
                    nodes[node.0 as usize].free -= t.request;
                    used += t.request;
                    state[i] = RUNNING;
                    start[i] = now;
                    node_of[i] = node;
                    run_pos[i] = running.len() as u32;
                    running.push(RunningTask {
                        id: task,
                        node,
                        request: t.request,
                        start: now,
                        expected_end: estimate_of(i).map(|e| now + e),
                        user: t.user,
                    });
                    heap.push(Reverse((now + runtime, seq, task.0 as u32)));
                    seq += 1;
                    c.decisions += 1;
                }
                if !verdict.accepted.is_empty() {
                    remove_started(&mut wbuf, &mut head, &verdict.accepted, &mut started_pos);
                }
            }
        }
        if config.utilisation_series && series.last().map_or(true, |(_, u)| *u != used) {
            series.push((now, used));
        }
    }

    let records = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if state[i] == DONE {
                record(t, Some(start[i]), Some(end_of[i]), Some(node_of[i]))
            } else {
                record(t, None, None, None)
            }
        })
        .collect::<Vec<_>>();
    debug_assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.id == TaskId(i as u64)));
    let metrics = compute_metrics(&records, &workload.cluster, c);
    if metrics.never_started > 0 {
        tracing::warn!(
            policy = policy.name(),
            workload = %workload.meta.label,
            never_started = metrics.never_started,
            "run ended with tasks the policy never started"
        );
    }
    let utilisation_series = config.utilisation_series.then(|| {
        let end = series.last().map_or(Time::ZERO, |(t, _)| *t);
        downsample(&series, end, capacity, config.max_series_points)
    });
    let (perfect_estimates, estimates_note) = if config.perfect_estimates {
        (
            true,
            Some(
                "protocol: actual run times shown as estimates (SimConfig::perfect_estimates)"
                    .to_string(),
            ),
        )
    } else if workload.meta.perfect_estimates {
        (
            true,
            Some(format!(
                "source: every estimate equals the actual run time ({})",
                workload.meta.source
            )),
        )
    } else {
        (false, None)
    };
    Ok(RunResult {
        policy: policy.name().to_string(),
        workload: workload.meta.label.clone(),
        source: workload.meta.source.clone(),
        window: workload.meta.window,
        perfect_estimates,
        estimates_note,
        tasks: records,
        metrics,
        policy_stats: policy.stats(),
        utilisation_series,
    })
}

#[cfg(test)]
mod tests {
    use llmchain_core::{NodeId, Resources, TaskId};
    use proptest::prelude::*;

    use super::*;

    fn wt(id: u64) -> WaitingTask {
        WaitingTask {
            id: TaskId(id),
            submit: Time::ZERO,
            request: Resources::ZERO,
            estimate: None,
            user: 0,
            priority: 0,
        }
    }

    proptest! {
        /// `remove_started` leaves exactly the still-waiting tasks, in id order.
        #[test]
        fn remove_started_matches_retain(
            rounds in prop::collection::vec((1usize..200, prop::collection::vec(any::<prop::sample::Index>(), 0..20)), 1..20)
        ) {
            let mut state = vec![0u8; 5000];
            let (mut wbuf, mut head, mut next) = (Vec::new(), 0usize, 0u64);
            let mut model: Vec<u64> = Vec::new();
            for (arrivals, picks) in rounds {
                for _ in 0..arrivals {
                    wbuf.push(wt(next));
                    model.push(next);
                    state[next as usize] = WAITING;
                    next += 1;
                }
                let live: Vec<u64> = wbuf[head..].iter().map(|w| w.id.0).collect();
                prop_assert_eq!(&live, &model);
                let mut started: Vec<Decision> = Vec::new();
                for p in picks {
                    let id = live[p.index(live.len())];
                    if state[id as usize] == WAITING {
                        state[id as usize] = RUNNING;
                        started.push(Decision::start(TaskId(id), NodeId(0)));
                    }
                }
                model.retain(|id| state[*id as usize] == WAITING);
                remove_started(&mut wbuf, &mut head, &started, &mut Vec::new());
                let live: Vec<u64> = wbuf[head..].iter().map(|w| w.id.0).collect();
                prop_assert_eq!(&live, &model);
            }
        }
    }
}
