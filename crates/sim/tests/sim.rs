//! Integration tests of the simulator: hand-computed golden schedules, the
//! real Lublin traces, bad input, determinism and safety properties, and a
//! 200k-job run.

mod helper {
    //! Fixtures: policies from the real policy crate, small workloads, and
    //! checks over task records.

    use std::path::PathBuf;

    use llmchain_core::{Cluster, Dur, Policy, Resources, TaskSpec, Time};
    use llmchain_sim::{RunResult, Workload, WorkloadMeta};

    /// A policy from `llmchain_policy::build`.
    pub fn policy(spec: &str) -> Box<dyn Policy + Send> {
        llmchain_policy::build(spec, &llmchain_policy::BuildCtx { seed: 1 }).unwrap()
    }

    /// `data/traces/NAME` at the repository root; fails with a hint when absent.
    pub fn trace(name: &str) -> PathBuf {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/traces")
            .join(name);
        assert!(
            p.exists(),
            "{} is missing: copy it from shared/traces/ (see data/traces/SOURCES.md)",
            p.display()
        );
        p
    }

    /// A task with whole CPUs, whole-second submit and run times, estimate = run time.
    pub fn task(source_id: u64, submit: u64, cpus: u64, run: u64) -> TaskSpec {
        let mut t = TaskSpec::new(
            source_id,
            Time::from_secs(submit),
            Resources::cpus(cpus, 0),
            Dur::from_secs(run),
        )
        .with_estimate(Dur::from_secs(run));
        t.source_id = source_id;
        t
    }

    /// A one-node workload.
    pub fn workload(cpus: u64, tasks: Vec<TaskSpec>) -> Workload {
        let meta = WorkloadMeta {
            source: "test".into(),
            label: "test".into(),
            ..Default::default()
        };
        Workload::new(Cluster::single(Resources::cpus(cpus, 0)), tasks, meta).unwrap()
    }

    /// (start, end) in seconds per task id; panics if a task did not run.
    pub fn schedule(r: &RunResult) -> Vec<(f64, f64)> {
        r.tasks
            .iter()
            .map(|t| (t.start.unwrap().as_secs_f64(), t.end.unwrap().as_secs_f64()))
            .collect()
    }

    /// Check from the task records alone that the run was sound: every task
    /// started once and ended once, after its submit, ran exactly its run
    /// time, on a real node, and no node was ever over-committed in any
    /// dimension (ends at time t free resources before starts at t use them).
    pub fn check_sound(w: &Workload, r: &RunResult) -> Result<(), String> {
        if r.tasks.len() != w.tasks.len() {
            return Err(format!(
                "{} records for {} tasks",
                r.tasks.len(),
                w.tasks.len()
            ));
        }
        let mut events: Vec<(Time, u8, usize, Resources)> = Vec::new();
        for (t, rec) in w.tasks.iter().zip(&r.tasks) {
            if rec.id != t.id || rec.source_id != t.source_id || rec.submit != t.submit {
                return Err(format!("record {:?} does not match task {:?}", rec, t.id));
            }
            let (Some(s), Some(e), Some(n)) = (rec.start, rec.end, rec.node) else {
                return Err(format!("task {} never ran", t.id));
            };
            if s < t.submit || e.saturating_since(s) != t.runtime.unwrap() || e < s {
                return Err(format!(
                    "task {} start {s} end {e} submit {} run {:?}",
                    t.id, t.submit, t.runtime
                ));
            }
            let node = n.0 as usize;
            if node >= w.cluster.nodes.len() {
                return Err(format!("task {} on missing node {n}", t.id));
            }
            events.push((s, 1, node, t.request));
            events.push((e, 0, node, t.request));
        }
        events.sort_by_key(|(t, kind, _, _)| (*t, *kind));
        // Signed sums: a zero-length task's end sorts before its own start.
        let mut used = vec![[0i64; llmchain_core::NDIMS]; w.cluster.nodes.len()];
        for (t, kind, node, req) in events {
            let sign = if kind == 0 { -1 } else { 1 };
            for (d, u) in used[node].iter_mut().enumerate() {
                *u += sign * req.0[d] as i64;
            }
            let cap = w.cluster.nodes[node].capacity;
            if kind == 1 && used[node].iter().zip(cap.0).any(|(u, c)| *u > c as i64) {
                return Err(format!(
                    "node {node} over-committed at {t}: {:?} used of {cap}",
                    used[node]
                ));
            }
        }
        Ok(())
    }
}

use helper::*;
use llmchain_core::{Cluster, Dur, NodeId, Resources, TaskSpec, Time};
use llmchain_sim::{
    aggregate, load, run, sample, swf, RunResult, SimConfig, SwfOptions, Workload, WorkloadMeta,
    WorkloadSpec,
};
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// ---------------------------------------------------------------------------
// Golden cases, worked out by hand.
//
// One node with 2 CPUs; all three jobs submitted at t = 0; estimates are exact.
//   J0: 1 CPU, 40 s      J1: 2 CPUs, 25 s      J2: 1 CPU, 5 s
// bsld = max(1, turnaround / max(run, 10 s)).
//
// FCFS (strict: the head blocks the queue):
//   t=0  J0 starts (1 CPU left); J1 needs 2 → blocks; J2 waits behind it.
//   t=40 J0 ends; J1 runs 40–65.   t=65 J2 runs 65–70.
//   J0: wait 0,  tat 40, sld 1,        bsld 1
//   J1: wait 40, tat 65, sld 65/25=2.6, bsld 2.6
//   J2: wait 65, tat 70, sld 70/5=14,  bsld 70/10=7
//   means: wait 105/3 = 35, sld 17.6/3, bsld 10.6/3; makespan 70.
//
// SJF (strict, by estimate: J2 5 s < J1 25 s < J0 40 s):
//   t=0  J2 starts (1 CPU left); J1 needs 2 → blocks (J0 behind it waits).
//   t=5  J2 ends; J1 runs 5–30 (both CPUs); J0 blocked.   t=30 J0 runs 30–70.
//   J2: wait 0,  tat 5,  sld 1,     bsld max(1, 5/10) = 1
//   J1: wait 5,  tat 30, sld 1.2,   bsld 1.2
//   J0: wait 30, tat 70, sld 1.75,  bsld 1.75
//   means: wait 35/3, sld 3.95/3, bsld 3.95/3; makespan 70.
//
// FCFS + EASY:
//   t=0  J0 starts; head J1 blocks and is reserved at the shadow time 40
//        (when J0 ends, 2 CPUs are free; no extra CPUs then). J2 fits now and
//        ends at 5 ≤ 40 → backfilled, runs 0–5.
//   t=40 J1 runs 40–65.
//   J0: wait 0,  tat 40, sld 1,   bsld 1
//   J2: wait 0,  tat 5,  sld 1,   bsld 1
//   J1: wait 40, tat 65, sld 2.6, bsld 2.6
//   means: wait 40/3, sld 4.6/3, bsld 4.6/3; makespan 65.
// ---------------------------------------------------------------------------

fn golden_workload() -> Workload {
    workload(
        2,
        vec![task(0, 0, 1, 40), task(1, 0, 2, 25), task(2, 0, 1, 5)],
    )
}

struct Golden {
    policy: &'static str,
    schedule: [(f64, f64); 3],
    waits: [f64; 3],
    slowdowns: [f64; 3],
    bslds: [f64; 3],
    makespan: f64,
}

fn check_golden(g: &Golden) {
    let w = golden_workload();
    let r = run(&w, &mut policy(g.policy), &SimConfig::default()).unwrap();
    assert_eq!(schedule(&r), g.schedule.to_vec(), "{}", g.policy);
    let m = &r.metrics;
    let mean = |v: [f64; 3]| v.iter().sum::<f64>() / 3.0;
    let max = |v: [f64; 3]| v.iter().cloned().fold(0.0, f64::max);
    assert!(
        close(m.wait.mean, mean(g.waits)) && close(m.max_wait, max(g.waits)),
        "{}: {:?}",
        g.policy,
        m.wait
    );
    assert!(
        close(m.slowdown.mean, mean(g.slowdowns)),
        "{}: {:?}",
        g.policy,
        m.slowdown
    );
    assert!(
        close(m.bounded_slowdown.mean, mean(g.bslds)),
        "{}: {:?}",
        g.policy,
        m.bounded_slowdown
    );
    assert!(close(m.bounded_slowdown.max, max(g.bslds)), "{}", g.policy);
    assert!(
        close(m.makespan, g.makespan),
        "{}: {}",
        g.policy,
        m.makespan
    );
    // 1·40 + 2·25 + 1·5 = 95 CPU·s over 2 CPUs × makespan.
    assert!(
        close(m.utilisation.cpu, 95.0 / (2.0 * g.makespan)),
        "{}",
        g.policy
    );
    assert_eq!(
        (m.completed, m.never_started, m.rejected, m.decisions),
        (3, 0, 0, 3)
    );
    assert!(r.perfect_estimates);
}

#[test]
fn golden_fcfs() {
    check_golden(&Golden {
        policy: "fcfs",
        schedule: [(0.0, 40.0), (40.0, 65.0), (65.0, 70.0)],
        waits: [0.0, 40.0, 65.0],
        slowdowns: [1.0, 2.6, 14.0],
        bslds: [1.0, 2.6, 7.0],
        makespan: 70.0,
    });
}

#[test]
fn golden_sjf() {
    check_golden(&Golden {
        policy: "sjf",
        schedule: [(30.0, 70.0), (5.0, 30.0), (0.0, 5.0)],
        waits: [30.0, 5.0, 0.0],
        slowdowns: [1.75, 1.2, 1.0],
        bslds: [1.75, 1.2, 1.0],
        makespan: 70.0,
    });
}

#[test]
fn golden_easy() {
    check_golden(&Golden {
        policy: "fcfs+easy",
        schedule: [(0.0, 40.0), (40.0, 65.0), (0.0, 5.0)],
        waits: [0.0, 40.0, 0.0],
        slowdowns: [1.0, 2.6, 1.0],
        bslds: [1.0, 2.6, 1.0],
        makespan: 65.0,
    });
}

// ---------------------------------------------------------------------------
// Engine behaviour.
// ---------------------------------------------------------------------------

/// A policy that proposes nonsense first, then FCFS: the nonsense is rejected,
/// counted, reported back and never executed.
struct Sloppy {
    inner: Box<dyn llmchain_core::Policy + Send>,
    told: usize,
}

impl llmchain_core::Policy for Sloppy {
    fn name(&self) -> &str {
        "sloppy"
    }
    fn decide(
        &mut self,
        snap: &llmchain_core::Snapshot<'_>,
        out: &mut Vec<llmchain_core::Decision>,
    ) {
        out.push(llmchain_core::Decision::start(
            llmchain_core::TaskId(999),
            NodeId(0),
        ));
        out.push(llmchain_core::Decision::start(
            snap.waiting[0].id,
            NodeId(5),
        ));
        self.inner.decide(snap, out);
    }
    fn rejected(&mut self, r: &[llmchain_core::Rejection]) {
        self.told += r.len();
    }
}

#[test]
fn rejected_proposals_are_counted_and_never_executed() {
    let w = golden_workload();
    let mut p = Sloppy {
        inner: policy("fcfs"),
        told: 0,
    };
    let r = run(&w, &mut p, &SimConfig::default()).unwrap();
    check_sound(&w, &r).unwrap();
    assert_eq!(r.metrics.rejected, 2 * r.metrics.decision_points);
    assert_eq!(p.told as u64, r.metrics.rejected);
    assert_eq!(r.metrics.decisions, 3);
}

/// Never starts anything: the run must end (no hang) with every task reported.
struct Idle;
impl llmchain_core::Policy for Idle {
    fn name(&self) -> &str {
        "idle"
    }
    fn decide(&mut self, _: &llmchain_core::Snapshot<'_>, _: &mut Vec<llmchain_core::Decision>) {}
}

#[test]
fn policy_that_starts_nothing_ends_the_run() {
    let w = golden_workload();
    let r = run(&w, &mut Idle, &SimConfig::default()).unwrap();
    assert_eq!(
        (
            r.metrics.never_started,
            r.metrics.completed,
            r.metrics.events
        ),
        (3, 0, 3)
    );
    assert!(r.tasks.iter().all(|t| t.start.is_none() && t.end.is_none()));
}

#[test]
fn estimates_hidden_unless_perfect_estimates() {
    // J0 claims 100 s but runs 10 s; J1 claims 1 s but runs 50 s.
    let mut t0 = task(0, 0, 1, 10);
    t0.estimate = Some(Dur::from_secs(100));
    let mut t1 = task(1, 0, 1, 50);
    t1.estimate = Some(Dur::from_secs(1));
    let blocker = task(2, 0, 1, 1000); // keeps one of 2 CPUs busy... submitted at 0 too
    let w = Workload::new(
        Cluster::single(Resources::cpus(1, 0)),
        vec![blocker, t0, t1],
        WorkloadMeta {
            source: "t".into(),
            label: "t".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!w.meta.perfect_estimates);
    // With user estimates SJF picks J1 (claims 1 s) before J0 after the blocker.
    let r = run(&w, &mut policy("sjf"), &SimConfig::default()).unwrap();
    assert!(!r.perfect_estimates);
    let s = schedule(&r);
    assert!(s[2].0 < s[1].0, "sjf on estimates: {s:?}");
    // With perfect estimates it picks J0 (really 10 s) first; labelled.
    let cfg = SimConfig {
        perfect_estimates: true,
        ..Default::default()
    };
    let r = run(&w, &mut policy("sjf"), &cfg).unwrap();
    assert!(r.perfect_estimates && r.estimates_note.as_deref().unwrap().contains("protocol"));
    let s = schedule(&r);
    assert!(s[1].0 < s[2].0, "sjf on actual run times: {s:?}");
}

#[test]
fn multi_node_placement_and_utilisation_series() {
    let tasks: Vec<TaskSpec> = (0..40)
        .map(|i| task(i, i * 3, 1 + i % 4, 10 + (i * 7) % 30))
        .collect();
    let meta = WorkloadMeta {
        source: "t".into(),
        label: "t".into(),
        ..Default::default()
    };
    let w = Workload::new(Cluster::uniform(3, Resources::cpus(4, 0)), tasks, meta).unwrap();
    let cfg = SimConfig {
        utilisation_series: true,
        max_series_points: 10,
        ..Default::default()
    };
    let r = run(&w, &mut policy("fcfs+easy"), &cfg).unwrap();
    check_sound(&w, &r).unwrap();
    let nodes: std::collections::BTreeSet<_> = r.tasks.iter().map(|t| t.node.unwrap()).collect();
    assert!(nodes.len() > 1, "only used {nodes:?}");
    let series = r.utilisation_series.as_ref().unwrap();
    assert!(!series.is_empty() && series.len() <= 10);
    assert!(series
        .iter()
        .all(|p| (0.0..=1.0 + 1e-9).contains(&p.util.cpu)));
    assert!(series.windows(2).all(|p| p[0].t < p[1].t));
}

// ---------------------------------------------------------------------------
// Property tests: soundness and determinism over random small workloads.
// ---------------------------------------------------------------------------

const POLICIES: &[&str] = &[
    "fcfs",
    "sjf",
    "fcfs+easy",
    "sjf+easy",
    "f1+cons",
    "tetris",
    "packer",
    "wfp3+greedy",
];

fn arb_workload() -> impl Strategy<Value = Workload> {
    let node = (1u64..=8, 1u64..=16);
    (
        prop::collection::vec(node, 1..=3),
        prop::collection::vec(
            (0u64..50, 1u64..=8, 1u64..=16, 0u64..40, 0u64..3, 0u64..60),
            1..40,
        ),
    )
        .prop_map(|(nodes, raw)| {
            let cluster = Cluster {
                nodes: nodes
                    .iter()
                    .enumerate()
                    .map(|(i, (c, m))| llmchain_core::NodeSpec {
                        name: format!("n{i}"),
                        capacity: Resources::cpus(*c, m * 512),
                    })
                    .collect(),
            };
            let max = cluster.max_node();
            let tasks = raw
                .into_iter()
                .enumerate()
                .map(|(i, (submit, cpu, mem, run, user, est))| {
                    // Clamp the request so it fits the biggest node in each dimension
                    // (tasks that fit no node are rejected at load, tested elsewhere).
                    let req = Resources::cpus(
                        cpu.min(max.cpu_milli() / 1000),
                        (mem * 512).min(max.mem_mib()),
                    );
                    let req = if cluster.can_ever_fit(&req) {
                        req
                    } else {
                        Resources::cpus(1, 0)
                    };
                    let mut t =
                        TaskSpec::new(i as u64, Time::from_secs(submit), req, Dur::from_secs(run));
                    t.estimate = Some(Dur::from_secs(est.max(1)));
                    t.user = user as u32;
                    t
                })
                .collect();
            Workload::new(
                cluster,
                tasks,
                WorkloadMeta {
                    source: "prop".into(),
                    label: "prop".into(),
                    ..Default::default()
                },
            )
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn runs_are_sound_and_deterministic(w in arb_workload(), pi in 0..POLICIES.len(), perfect in any::<bool>()) {
        let cfg = SimConfig { perfect_estimates: perfect, utilisation_series: true, ..Default::default() };
        let a = run(&w, &mut policy(POLICIES[pi]), &cfg).unwrap();
        if let Err(e) = check_sound(&w, &a) {
            return Err(TestCaseError::fail(format!("{}: {e}", POLICIES[pi])));
        }
        prop_assert_eq!(a.metrics.never_started, 0);
        prop_assert_eq!(a.metrics.events, 2 * w.len() as u64);
        let b = run(&w, &mut policy(POLICIES[pi]), &cfg).unwrap();
        prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }
}

// ---------------------------------------------------------------------------
// Real traces and the RLScheduler protocol.
// ---------------------------------------------------------------------------

#[test]
fn lublin_traces_load() {
    for name in ["lublin_256.swf", "lublin_256_new2"] {
        let w = swf::read(&trace(name), &SwfOptions::default()).unwrap();
        assert_eq!(w.len(), 10_000, "{name}");
        assert_eq!(w.cluster.nodes.len(), 1);
        assert_eq!(
            w.cluster.nodes[0].capacity,
            Resources::new(256_000, 0),
            "{name}: MaxNodes 256"
        );
        assert!(w.meta.skipped.is_empty(), "{name}: {:?}", w.meta.skipped);
        assert_eq!(w.meta.estimates_from_runtime, 10_000);
        assert!(w.meta.perfect_estimates);
        assert!(w.meta.notes.iter().any(
            |n| n == "requested time missing for 10000 jobs: used actual run time as estimate"
        ));
    }
    // First line of lublin_256.swf: `1 5094 -1 12072 16 -1 ...`.
    let w = swf::read(&trace("lublin_256.swf"), &SwfOptions::default()).unwrap();
    let t = &w.tasks[0];
    assert_eq!(
        (t.source_id, t.submit, t.request.cpu_milli()),
        (1, Time::from_secs(5094), 16_000)
    );
    assert_eq!(
        (t.runtime, t.estimate),
        (Some(Dur::from_secs(12072)), Some(Dur::from_secs(12072)))
    );
}

#[test]
fn other_shared_traces_load() {
    // HPC2N excerpt: MaxProcs 240, 25 jobs with run time 0 are skipped; requested times present.
    let w = swf::read(&trace("alea-hpc2n-excerpt.swf"), &SwfOptions::default()).unwrap();
    assert_eq!(
        (w.len(), w.cluster.nodes[0].capacity.cpu_milli()),
        (3170 - 25, 240_000)
    );
    assert_eq!(w.meta.skipped[swf::SKIP_RUNTIME], 25);
    assert!(!w.meta.perfect_estimates);
    // NASA iPSC, gzipped: MaxProcs 128; 173 jobs with run time <= 0.
    let w = swf::read(
        &trace("NASA-iPSC-1993-3.1-cln.swf.gz"),
        &SwfOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (w.len(), w.cluster.nodes[0].capacity.cpu_milli()),
        (18_239 - 173, 128_000)
    );
    assert_eq!(w.meta.skipped[swf::SKIP_RUNTIME], 173);
}

#[test]
fn swf_bad_input_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let good = "; MaxProcs: 4\n1 0 -1 10 2 -1 -1 -1 20 -1 1 1 1 -1 -1 -1 -1 -1\n";
    let bad = format!("{good}2 5 -1 10 2 -1 -1 -1 20 -1 1 1 1 -1 -1 -1 -1\n3 6 -1 10 x -1 -1 -1 20 -1 1 1 1 -1 -1 -1 -1 -1\n");
    let path = dir.path().join("bad.swf");
    std::fs::write(&path, &bad).unwrap();
    let msg = swf::read(&path, &SwfOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad.swf:3") && msg.contains("expected 18 fields, found 17"),
        "{msg}"
    );
    let w = swf::read(&path, &SwfOptions { lenient: true }).unwrap();
    assert_eq!((w.len(), w.meta.skipped[swf::SKIP_MALFORMED]), (1, 2));
    // The same through a spec, strict and lenient.
    let spec = WorkloadSpec::parse(&format!("swf:{}", path.display())).unwrap();
    assert!(load(&spec, 0, false).is_err());
    assert_eq!(load(&spec, 0, true).unwrap().len(), 1);

    // gzip: written here with flate2; detected by magic bytes.
    let gz = dir.path().join("t.swf.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut enc, good.repeat(3).as_bytes()).unwrap();
    enc.finish().unwrap();
    let w = swf::read(&gz, &SwfOptions::default()).unwrap();
    assert_eq!((w.len(), w.meta.label.as_str()), (3, "t"));
    assert_eq!(w.tasks[0].estimate, Some(Dur::from_secs(20)));

    let empty = dir.path().join("empty.swf");
    std::fs::write(&empty, "; MaxProcs: 4\n").unwrap();
    let msg = swf::read(&empty, &SwfOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("empty.swf") && msg.contains("no tasks"),
        "{msg}"
    );
    let msg = swf::read(&dir.path().join("absent.swf"), &SwfOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("absent.swf"), "{msg}");
}

fn protocol(spec: &str, seqs: &[Workload]) -> Vec<RunResult> {
    seqs.iter()
        .map(|w| run(w, &mut policy(spec), &SimConfig::default()).unwrap())
        .collect()
}

#[test]
fn lublin_protocol_is_deterministic_and_backfilling_helps() {
    let w = swf::read(&trace("lublin_256.swf"), &SwfOptions::default()).unwrap();
    let seqs = sample(&w, 3, 1024, 1).unwrap();
    let fcfs = protocol("fcfs", &seqs);
    let easy = protocol("fcfs+easy", &seqs);
    for (s, r) in seqs.iter().zip(&fcfs) {
        check_sound(s, r).unwrap();
    }
    let a = aggregate(&fcfs).unwrap();
    let b = aggregate(&easy).unwrap();
    assert_eq!((a.runs, a.workload.as_str()), (3, "lublin_256"));
    assert!(
        b.metrics.bounded_slowdown.mean <= a.metrics.bounded_slowdown.mean,
        "{} vs {}",
        b.metrics.bounded_slowdown.mean,
        a.metrics.bounded_slowdown.mean
    );
    let again = protocol("fcfs+easy", &sample(&w, 3, 1024, 1).unwrap());
    assert_eq!(
        serde_json::to_string(&easy).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

// ---------------------------------------------------------------------------
// Scale: a generated 200k-job workload in memory.
// ---------------------------------------------------------------------------

#[test]
fn handles_200k_jobs() {
    let spec = WorkloadSpec::parse("deeprm:load=0.5,jobs=200000").unwrap();
    let w = load(&spec, 7, false).unwrap();
    assert_eq!(w.len(), 200_000);
    let r = run(
        &w,
        &mut policy("fcfs+easy"),
        &SimConfig {
            utilisation_series: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.metrics.completed, r.metrics.events), (200_000, 400_000));
    assert!(r.utilisation_series.as_ref().unwrap().len() <= 2000);
    check_sound(&w, &r).unwrap();
}
