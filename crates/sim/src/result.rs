//! Run results: per-task records, metric summaries, counters, and the
//! optional utilisation-over-time series. Everything here is `Serialize` and
//! deterministic (ordered containers only, no wall-clock values), so two runs
//! with the same inputs serialise to identical JSON.

use std::collections::BTreeMap;

use llmchain_core::metrics::{jain, Summary, TaskMetrics};
use llmchain_core::{
    Cluster, Dim, ExitStatus, NodeId, Outcome, PolicyStats, Resources, TaskId, TaskSpec, Time,
    UserId, NDIMS,
};
use serde::{Deserialize, Serialize};

use crate::Window;

/// What happened to one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Id within the run (submission order).
    pub id: TaskId,
    /// Id in the workload's source (SWF job number, task-list id, seed-example index).
    pub source_id: u64,
    /// Submitting user.
    pub user: UserId,
    /// What it held while running.
    pub request: Resources,
    /// Submitted at.
    pub submit: Time,
    /// Started at; `None` if it never started.
    pub start: Option<Time>,
    /// Ended at; `None` if it never started.
    pub end: Option<Time>,
    /// Where it ran; `None` if it never started.
    pub node: Option<NodeId>,
}

impl TaskRecord {
    /// The task's [`Outcome`], when it ran.
    pub fn outcome(&self) -> Option<Outcome> {
        Some(Outcome {
            task: self.id,
            node: self.node?,
            user: self.user,
            request: self.request,
            estimate: None,
            submit: self.submit,
            start: self.start?,
            end: self.end?,
            status: ExitStatus::Completed,
        })
    }
}

/// A value per resource dimension.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerResource {
    /// CPU.
    pub cpu: f64,
    /// Memory.
    pub mem: f64,
    /// GPUs.
    pub gpu: f64,
}

impl PerResource {
    /// From an array in [`Dim`] slot order.
    pub fn from_array(a: [f64; NDIMS]) -> Self {
        PerResource {
            cpu: a[Dim::Cpu.index()],
            mem: a[Dim::Mem.index()],
            gpu: a[Dim::Gpu.index()],
        }
    }

    /// The value for one dimension.
    pub fn get(&self, d: Dim) -> f64 {
        match d {
            Dim::Cpu => self.cpu,
            Dim::Mem => self.mem,
            Dim::Gpu => self.gpu,
        }
    }
}

/// One point of the utilisation-over-time series.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UtilPoint {
    /// Seconds since the workload's epoch (start of the interval).
    pub t: f64,
    /// Fraction of the cluster's total capacity in use (0 where capacity is 0).
    pub util: PerResource,
}

/// Metrics of one run. Times are seconds; slowdowns are ratios. Task metrics
/// cover tasks that ran; never-started tasks are only counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Tasks in the workload.
    pub tasks: usize,
    /// Tasks that ran to completion.
    pub completed: usize,
    /// Tasks still waiting when the run ended (the policy never started them).
    pub never_started: usize,
    /// start − submit.
    pub wait: Summary,
    /// end − submit.
    pub turnaround: Summary,
    /// turnaround / run.
    pub slowdown: Summary,
    /// max(1, turnaround / max(run, 10 s)).
    pub bounded_slowdown: Summary,
    /// Last end − first submit, seconds.
    pub makespan: f64,
    /// Longest wait, seconds (= `wait.max`).
    pub max_wait: f64,
    /// Σ request·run / (cluster capacity · makespan), per resource.
    pub utilisation: PerResource,
    /// Jain's index over users' mean bounded slowdown.
    pub jain_fairness: f64,
    /// Users that ran at least one task.
    pub users: usize,
    /// Accepted (executed) decisions.
    pub decisions: u64,
    /// Proposals the validator rejected (never executed).
    pub rejected: u64,
    /// Times the policy was asked to decide.
    pub decision_points: u64,
    /// Events processed (arrivals + completions).
    pub events: u64,
}

/// Everything about one run of one policy on one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The policy's name.
    pub policy: String,
    /// The workload's label (`lublin_256#3`, `seed-example`, ...).
    pub workload: String,
    /// The workload's source spec.
    pub source: String,
    /// Which window of the parent workload this was, for sampled sequences.
    pub window: Option<Window>,
    /// True when policies saw actual run times as estimates for every task.
    pub perfect_estimates: bool,
    /// Why estimates were perfect (protocol or source), when they were.
    pub estimates_note: Option<String>,
    /// Per-task records, by id.
    pub tasks: Vec<TaskRecord>,
    /// Summaries and counters.
    pub metrics: RunMetrics,
    /// The policy's own counters.
    pub policy_stats: PolicyStats,
    /// Cluster utilisation over time (only with `SimConfig::utilisation_series`).
    pub utilisation_series: Option<Vec<UtilPoint>>,
}

/// Counters the engine hands to [`compute_metrics`].
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Counters {
    pub decisions: u64,
    pub rejected: u64,
    pub decision_points: u64,
    pub events: u64,
}

/// Compute [`RunMetrics`] from task records.
pub fn metrics_of(records: &[TaskRecord], cluster: &Cluster) -> RunMetrics {
    compute_metrics(records, cluster, Counters::default())
}

pub(crate) fn compute_metrics(
    records: &[TaskRecord],
    cluster: &Cluster,
    c: Counters,
) -> RunMetrics {
    let n = records.len();
    let mut wait = Vec::with_capacity(n);
    let mut tat = Vec::with_capacity(n);
    let mut sld = Vec::with_capacity(n);
    let mut bsld = Vec::with_capacity(n);
    let mut per_user: BTreeMap<UserId, (f64, u64)> = BTreeMap::new();
    let mut area = [0f64; NDIMS];
    let first_submit = records.iter().map(|r| r.submit).min().unwrap_or(Time::ZERO);
    let mut last_end = first_submit;
    for r in records {
        let Some(o) = r.outcome() else { continue };
        let m = TaskMetrics::of(&o);
        wait.push(m.wait);
        tat.push(m.turnaround);
        sld.push(m.slowdown);
        bsld.push(m.bounded_slowdown);
        let e = per_user.entry(r.user).or_default();
        e.0 += m.bounded_slowdown;
        e.1 += 1;
        let run = o.runtime().0 as f64;
        for (d, a) in area.iter_mut().enumerate() {
            *a += r.request.0[d] as f64 * run;
        }
        last_end = last_end.max(o.end);
    }
    let completed = wait.len();
    let makespan_ms = last_end.saturating_since(first_submit).0 as f64;
    let cap = cluster.total();
    let mut util = [0f64; NDIMS];
    for d in 0..NDIMS {
        if cap.0[d] > 0 && makespan_ms > 0.0 {
            util[d] = area[d] / (cap.0[d] as f64 * makespan_ms);
        }
    }
    let user_means: Vec<f64> = per_user.values().map(|(s, k)| s / *k as f64).collect();
    let wait = summary(&mut wait);
    RunMetrics {
        tasks: n,
        completed,
        never_started: n - completed,
        max_wait: wait.max,
        wait,
        turnaround: summary(&mut tat),
        slowdown: summary(&mut sld),
        bounded_slowdown: summary(&mut bsld),
        makespan: makespan_ms / 1000.0,
        utilisation: PerResource::from_array(util),
        jain_fairness: jain(&user_means),
        users: user_means.len(),
        decisions: c.decisions,
        rejected: c.rejected,
        decision_points: c.decision_points,
        events: c.events,
    }
}

/// The same figures as [`Summary::of`] (nearest-rank percentiles, DESIGN.md
/// metrics) in O(n) by selection instead of a full sort; `values` is permuted.
/// The mean is summed in input order, so it can differ from `Summary::of`'s
/// in the last bits, but is the same on every run.
pub fn summary(values: &mut [f64]) -> Summary {
    let n = values.len();
    if n == 0 {
        return Summary::default();
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let rank = |p: f64| (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
    let mut pick = |p: f64| *values.select_nth_unstable_by(rank(p), f64::total_cmp).1;
    // Highest rank first: each selection leaves the lower ones in the left part.
    let max = pick(100.0);
    let p99 = pick(99.0);
    let p95 = pick(95.0);
    let p50 = pick(50.0);
    Summary {
        n,
        mean,
        p50,
        p95,
        p99,
        max,
    }
}

/// Build a task record for `t` from the engine's per-task arrays.
pub(crate) fn record(
    t: &TaskSpec,
    start: Option<Time>,
    end: Option<Time>,
    node: Option<NodeId>,
) -> TaskRecord {
    TaskRecord {
        id: t.id,
        source_id: t.source_id,
        user: t.user,
        request: t.request,
        submit: t.submit,
        start,
        end,
        node,
    }
}

/// Downsample a step series `(time, used)` to at most `max` points: the
/// horizon is cut into `max` equal bins and each point is the time-weighted
/// mean utilisation over its bin. Series with ≤ `max` points are kept as is.
pub(crate) fn downsample(
    raw: &[(Time, Resources)],
    end: Time,
    cap: Resources,
    max: usize,
) -> Vec<UtilPoint> {
    let frac = |u: &Resources| PerResource::from_array(u.fractions_of(&cap));
    if raw.len() <= max || max == 0 {
        return raw
            .iter()
            .map(|(t, u)| UtilPoint {
                t: t.as_secs_f64(),
                util: frac(u),
            })
            .collect();
    }
    let t0 = raw[0].0 .0 as f64;
    let span = (end.0 as f64 - t0).max(1.0);
    let width = span / max as f64;
    let mut acc = vec![[0f64; NDIMS]; max];
    for (i, (t, u)) in raw.iter().enumerate() {
        let a = t.0 as f64;
        let b = raw.get(i + 1).map_or(end.0 as f64, |n| n.0 .0 as f64);
        let f = u.fractions_of(&cap);
        if b <= a {
            continue;
        }
        // Spread [a, b) over the bins it overlaps.
        let first = (((a - t0) / width) as usize).min(max - 1);
        let last = (((b - t0) / width) as usize).min(max - 1);
        for (bin, slot) in acc.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = t0 + bin as f64 * width;
            let hi = if bin == max - 1 {
                f64::INFINITY
            } else {
                lo + width
            };
            let overlap = b.min(hi) - a.max(lo);
            if overlap > 0.0 {
                for d in 0..NDIMS {
                    slot[d] += f[d] * overlap;
                }
            }
        }
    }
    acc.iter()
        .enumerate()
        .map(|(i, a)| {
            let mut m = [0f64; NDIMS];
            for d in 0..NDIMS {
                m[d] = a[d] / width;
            }
            UtilPoint {
                t: (t0 + i as f64 * width) / 1000.0,
                util: PerResource::from_array(m),
            }
        })
        .collect()
}

/// Mean over several runs (sequences) of the same policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The policy's name.
    pub policy: String,
    /// The parent workload's label (the runs' labels without `#i`).
    pub workload: String,
    /// Number of runs averaged.
    pub runs: usize,
    /// True if any run had perfect estimates.
    pub perfect_estimates: bool,
    /// Every `f64` field (including each [`Summary`] field) is the mean over
    /// runs; integer counters (`tasks`, `completed`, `never_started`, `users`,
    /// `decisions`, `rejected`, `decision_points`, `events`, `Summary::n`) are
    /// totals over runs.
    pub metrics: RunMetrics,
    /// Policy counters summed over runs; latencies averaged over runs that report them.
    pub policy_stats: PolicyStats,
}

/// Average several runs' metrics (see [`Aggregate::metrics`]). `None` for no runs.
pub fn aggregate(runs: &[RunResult]) -> Option<Aggregate> {
    let first = runs.first()?;
    let k = runs.len() as f64;
    let mean = |f: &dyn Fn(&RunMetrics) -> f64| runs.iter().map(|r| f(&r.metrics)).sum::<f64>() / k;
    let sum = |f: &dyn Fn(&RunMetrics) -> u64| runs.iter().map(|r| f(&r.metrics)).sum::<u64>();
    let summary = |f: &dyn Fn(&RunMetrics) -> &Summary| Summary {
        n: runs.iter().map(|r| f(&r.metrics).n).sum(),
        mean: mean(&|m| f(m).mean),
        p50: mean(&|m| f(m).p50),
        p95: mean(&|m| f(m).p95),
        p99: mean(&|m| f(m).p99),
        max: mean(&|m| f(m).max),
    };
    let metrics = RunMetrics {
        tasks: sum(&|m| m.tasks as u64) as usize,
        completed: sum(&|m| m.completed as u64) as usize,
        never_started: sum(&|m| m.never_started as u64) as usize,
        wait: summary(&|m| &m.wait),
        turnaround: summary(&|m| &m.turnaround),
        slowdown: summary(&|m| &m.slowdown),
        bounded_slowdown: summary(&|m| &m.bounded_slowdown),
        makespan: mean(&|m| m.makespan),
        max_wait: mean(&|m| m.max_wait),
        utilisation: PerResource {
            cpu: mean(&|m| m.utilisation.cpu),
            mem: mean(&|m| m.utilisation.mem),
            gpu: mean(&|m| m.utilisation.gpu),
        },
        jain_fairness: mean(&|m| m.jain_fairness),
        users: sum(&|m| m.users as u64) as usize,
        decisions: sum(&|m| m.decisions),
        rejected: sum(&|m| m.rejected),
        decision_points: sum(&|m| m.decision_points),
        events: sum(&|m| m.events),
    };
    let lat = |f: &dyn Fn(&PolicyStats) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(|r| f(&r.policy_stats)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let policy_stats = PolicyStats {
        model_calls: runs.iter().map(|r| r.policy_stats.model_calls).sum(),
        fallbacks: runs.iter().map(|r| r.policy_stats.fallbacks).sum(),
        decision_points: runs.iter().map(|r| r.policy_stats.decision_points).sum(),
        proposals_dropped: runs.iter().map(|r| r.policy_stats.proposals_dropped).sum(),
        latency_mean_us: lat(&|s| s.latency_mean_us),
        latency_p99_us: lat(&|s| s.latency_p99_us),
    };
    let workload = match first.workload.rsplit_once('#') {
        Some((parent, i)) if i.chars().all(|c| c.is_ascii_digit()) => parent.to_string(),
        _ => first.workload.clone(),
    };
    Some(Aggregate {
        policy: first.policy.clone(),
        workload,
        runs: runs.len(),
        perfect_estimates: runs.iter().any(|r| r.perfect_estimates),
        metrics,
        policy_stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, user: UserId, cpus: u64, submit: u64, start: u64, end: u64) -> TaskRecord {
        TaskRecord {
            id: TaskId(id),
            source_id: id,
            user,
            request: Resources::cpus(cpus, 0),
            submit: Time::from_secs(submit),
            start: Some(Time::from_secs(start)),
            end: Some(Time::from_secs(end)),
            node: Some(NodeId(0)),
        }
    }

    #[test]
    fn metrics_by_hand() {
        // 2-CPU node. A: 2 CPUs 0→10; B: 1 CPU submitted 0, runs 10→30 (wait 10);
        // C: user 2, 1 CPU submitted 5, never started.
        let mut recs = vec![rec(0, 1, 2, 0, 0, 10), rec(1, 1, 1, 0, 10, 30)];
        recs.push(TaskRecord {
            start: None,
            end: None,
            node: None,
            ..rec(2, 2, 1, 5, 0, 0)
        });
        let m = metrics_of(&recs, &Cluster::single(Resources::cpus(2, 0)));
        assert_eq!((m.tasks, m.completed, m.never_started), (3, 2, 1));
        assert_eq!((m.wait.mean, m.max_wait, m.makespan), (5.0, 10.0, 30.0));
        // turnaround 10 and 30; slowdown 1 and 1.5; bsld max(1, 10/10)=1 and 30/20 = 1.5
        assert_eq!(
            (m.turnaround.mean, m.slowdown.mean, m.bounded_slowdown.mean),
            (20.0, 1.25, 1.25)
        );
        // area = 2·10 + 1·20 = 40 CPU·s over 2 CPUs × 30 s
        assert!((m.utilisation.cpu - 40.0 / 60.0).abs() < 1e-12);
        assert_eq!((m.utilisation.mem, m.users, m.jain_fairness), (0.0, 1, 1.0));
    }

    #[test]
    fn summary_matches_core_definition() {
        let mut x = 0x2545f4914f6cdd1du64;
        for n in [1usize, 2, 3, 7, 100, 1001] {
            let mut v: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 10_000) as f64 / 7.0
                })
                .collect();
            let want = Summary::of(&mut v.clone());
            let got = summary(&mut v);
            assert_eq!(
                (got.n, got.p50, got.p95, got.p99, got.max),
                (want.n, want.p50, want.p95, want.p99, want.max)
            );
            assert!(
                (got.mean - want.mean).abs() <= 1e-9 * want.mean.abs().max(1.0),
                "{got:?} {want:?}"
            );
        }
    }

    #[test]
    fn downsample_keeps_time_weighted_mean() {
        let cap = Resources::cpus(4, 0);
        let raw: Vec<(Time, Resources)> = (0..10_000)
            .map(|i| {
                (
                    Time::from_secs(i),
                    Resources::cpus(if i % 2 == 0 { 4 } else { 0 }, 0),
                )
            })
            .collect();
        let pts = downsample(&raw, Time::from_secs(10_000), cap, 100);
        assert_eq!(pts.len(), 100);
        for p in &pts {
            assert!((p.util.cpu - 0.5).abs() < 1e-9, "{p:?}");
        }
        assert_eq!(downsample(&raw[..5], Time::from_secs(5), cap, 100).len(), 5);
    }
}
