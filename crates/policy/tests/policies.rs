//! Integration tests over the public API: every spec builds and round-trips
//! its name; bad specs give errors listing the valid names; and on random
//! snapshots every policy's proposals all pass `llmchain_core::Validator`.

use llmchain_core::{
    Decision, Dur, NodeId, NodeState, Policy, Resources, RunningTask, Snapshot, TaskId, Time,
    Validator, WaitingTask,
};
use llmchain_policy::{
    build, names, BuildCtx, Fcfs, Mode, PolicyError, Scheduler, BACKFILL_NAMES, MODE_NAMES,
};
use proptest::prelude::*;

/// Every ordering in every mode, plus parameterised variants.
fn all_specs() -> Vec<String> {
    let mut v = Vec::new();
    for n in names() {
        v.push(n.to_string());
        for m in MODE_NAMES {
            v.push(format!("{n}+{m}"));
        }
    }
    v.extend([
        "tetris:knob=0.3".into(),
        "tetris:knob=1+easy".into(),
        "random:seed=9+cons".into(),
    ]);
    v
}

#[test]
fn every_spec_builds_and_round_trips_its_name() {
    let ctx = BuildCtx::default();
    for spec in all_specs() {
        let p = build(&spec, &ctx).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let name = p.name().to_string();
        let q = build(&name, &ctx).unwrap_or_else(|e| panic!("{spec} → {name}: {e}"));
        assert_eq!(q.name(), name, "{spec}");
        // Canonical names carry no default mode.
        assert!(
            !name.ends_with("+strict")
                || !["fcfs", "sjf", "wfp3", "unicep", "f1"]
                    .iter()
                    .any(|o| name.starts_with(o))
        );
    }
}

#[test]
fn canonical_names() {
    let ctx = BuildCtx::default();
    let check =
        |spec: &str, want: &str| assert_eq!(build(spec, &ctx).unwrap().name(), want, "{spec}");
    check("fcfs", "fcfs");
    check(" FCFS+strict ", "fcfs");
    check("sjf+easy", "sjf+easy");
    check("f1+conservative", "f1+cons");
    check("packer+greedy", "packer");
    check("packer+strict", "packer+strict");
    check("tetris", "tetris");
    check("tetris:knob=0.5", "tetris");
    check("tetris:knob=0.25", "tetris:knob=0.25");
    check("best-fit", "bestfit");
    check("random", "random");
    check("random:seed=3", "random:seed=3");
    check("fcfs+greedy", "fcfs+greedy");
    check("sjf + easy", "sjf+easy");
    assert!(BACKFILL_NAMES.iter().all(|m| MODE_NAMES.contains(m)));
}

#[test]
fn bad_specs_name_the_problem_and_list_valid_names() {
    let ctx = BuildCtx::default();
    let err = |s: &str| {
        build(s, &ctx)
            .err()
            .unwrap_or_else(|| panic!("{s} should fail"))
    };
    let e = err("fifo");
    assert!(
        matches!(&e, PolicyError::Unknown { spec, .. } if spec == "fifo"),
        "{e:?}"
    );
    let msg = e.to_string();
    for n in names() {
        assert!(msg.contains(n), "{msg} lacks {n}");
    }
    assert!(msg.contains("+easy") && msg.contains("+cons"), "{msg}");
    assert!(matches!(err("sjf+eazy"), PolicyError::UnknownMode { mode, .. } if mode == "eazy"));
    assert!(matches!(
        err("sjf+easy+cons"),
        PolicyError::Malformed { .. }
    ));
    assert!(matches!(err("sjf:knob=1"), PolicyError::UnknownParam { key, .. } if key == "knob"));
    assert!(matches!(err("tetris:knob=2"), PolicyError::BadParam { key, .. } if key == "knob"));
    assert!(matches!(err("tetris:knob=x"), PolicyError::BadParam { .. }));
    assert!(matches!(err("tetris:knob"), PolicyError::Malformed { .. }));
    assert!(matches!(
        err("random:seed=-1"),
        PolicyError::BadParam { .. }
    ));
    assert!(matches!(err("  "), PolicyError::Empty { .. }));
}

#[test]
fn random_is_seeded_from_ctx() {
    let nodes = [NodeState {
        id: NodeId(0),
        capacity: Resources::cpus(4, 0),
        free: Resources::cpus(4, 0),
    }];
    let waiting: Vec<_> = (0..30)
        .map(|i| WaitingTask {
            id: TaskId(i),
            submit: Time::ZERO,
            request: Resources::cpus(1, 0),
            estimate: None,
            user: 0,
            priority: 0,
        })
        .collect();
    let run = |seed| {
        let mut p = build("random", &BuildCtx { seed }).unwrap();
        let mut out = Vec::new();
        p.decide(&Snapshot::new(Time::ZERO, &nodes, &waiting, &[]), &mut out);
        out
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// A random snapshot: 1–3 nodes; running tasks carved out of capacity;
/// waiting tasks (some larger than any node, some without estimates).
#[derive(Debug, Clone)]
struct Scene {
    now: Time,
    nodes: Vec<NodeState>,
    waiting: Vec<WaitingTask>,
    running: Vec<RunningTask>,
}

impl Scene {
    fn snap(&self) -> Snapshot<'_> {
        Snapshot::new(self.now, &self.nodes, &self.waiting, &self.running)
    }
}

fn scene() -> impl Strategy<Value = Scene> {
    let node = (1u64..=16, 0u64..=64, 0u64..=2);
    let run = (
        0usize..3,
        1u64..=8,
        0u64..=16,
        0u64..=1,
        prop::option::of(0u64..200),
        0u32..4,
    );
    // Half the scenes are many small tasks, so strict starts more than its
    // selection limit and switches to sorting.
    let cpus = prop_oneof![1u64..=2, 1u64..=20];
    let wait = (
        0u64..100,
        cpus,
        0u64..=80,
        0u64..=2,
        prop::option::of(0u64..300),
        0u32..4,
    );
    (
        100u64..200,
        prop::collection::vec(node, 1..=3),
        prop::collection::vec(run, 0..12),
        prop::collection::vec(wait, 0..60),
    )
        .prop_map(|(now_s, nodes, runs, waits)| {
            let now = Time::from_secs(now_s);
            let mut ns: Vec<NodeState> = nodes
                .iter()
                .enumerate()
                .map(|(i, &(c, m, g))| {
                    let cap = Resources::cpus(c, m * 64).with_gpus(g);
                    NodeState {
                        id: NodeId(i as u32),
                        capacity: cap,
                        free: cap,
                    }
                })
                .collect();
            let mut running = Vec::new();
            for (k, &(n, c, m, g, end, user)) in runs.iter().enumerate() {
                let n = n % ns.len();
                let req = Resources::cpus(c, m * 64).with_gpus(g);
                if let Some(f) = ns[n].free.checked_sub(&req) {
                    ns[n].free = f;
                    running.push(RunningTask {
                        id: TaskId(1_000_000 + k as u64),
                        node: NodeId(n as u32),
                        request: req,
                        start: Time::ZERO,
                        expected_end: end
                            .map(|e| Time::from_secs(now_s + e).min(Time::from_secs(e * 2))),
                        user,
                    });
                }
            }
            let mut submits: Vec<_> = waits.iter().map(|w| w.0).collect();
            submits.sort();
            let waiting = waits
                .iter()
                .zip(submits)
                .enumerate()
                .map(|(i, (&(_, c, m, g, est, user), sub))| WaitingTask {
                    id: TaskId(i as u64),
                    submit: Time::from_secs(sub),
                    request: Resources::cpus(c, m * 64).with_gpus(g),
                    estimate: est.map(Dur::from_secs),
                    user,
                    priority: 0,
                })
                .collect();
            Scene {
                now,
                nodes: ns,
                waiting,
                running,
            }
        })
}

fn decide(p: &mut dyn Policy, snap: &Snapshot<'_>) -> Vec<Decision> {
    let mut out = Vec::new();
    p.decide(snap, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Policies must never propose something the validator rejects — in any
    /// mode, on any snapshot, including on repeated decisions (buffer reuse).
    #[test]
    fn every_policy_proposes_only_valid_starts(scene in scene(), scene2 in scene()) {
        let mut validator = Validator::new();
        for spec in all_specs() {
            let mut p = build(&spec, &BuildCtx { seed: 5 }).unwrap();
            for s in [&scene, &scene2, &scene] {
                let snap = s.snap();
                let out = decide(&mut *p, &snap);
                let v = validator.check(&snap, &out);
                prop_assert!(v.rejected.is_empty(), "{}: {:?}", spec, v.rejected);
            }
        }
    }

    /// Greedy leaves nothing startable behind; strict/EASY/cons start at
    /// least the strict prefix; EASY/cons start a subset of what greedy could.
    #[test]
    fn mode_relations(scene in scene()) {
        let snap = scene.snap();
        for o in names() {
            let mut g = build(&format!("{o}+greedy"), &BuildCtx::default()).unwrap();
            let gs = decide(&mut *g, &snap);
            let mut free: Vec<Resources> = scene.nodes.iter().map(|n| n.free).collect();
            for d in &gs {
                let Decision::Start { task, node } = d else { unreachable!() };
                let t = snap.waiting_task(*task).unwrap();
                free[node.0 as usize] = free[node.0 as usize].checked_sub(&t.request).unwrap();
            }
            for t in &scene.waiting {
                if gs.iter().all(|d| d.task() != t.id) {
                    prop_assert!(free.iter().all(|f| !t.request.fits_in(f)), "{}+greedy left {:?} startable", o, t.id);
                }
            }
            let mut s = build(&format!("{o}+strict"), &BuildCtx::default()).unwrap();
            let ss = decide(&mut *s, &snap);
            for m in ["easy", "cons"] {
                let mut b = build(&format!("{o}+{m}"), &BuildCtx::default()).unwrap();
                let bs = decide(&mut *b, &snap);
                prop_assert!(bs.len() >= ss.len() && bs[..ss.len()] == ss[..], "{}+{} {:?} vs strict {:?}", o, m, bs, ss);
            }
        }
    }

    /// The template `Fcfs` and the generic strict FCFS scheduler agree.
    #[test]
    fn template_matches_generic_fcfs(scene in scene()) {
        let snap = scene.snap();
        let a = decide(&mut Fcfs::new(), &snap);
        let b = decide(&mut Scheduler::new(llmchain_policy::order::FcfsOrder, Mode::Strict), &snap);
        prop_assert_eq!(a, b);
    }

    /// FCFS's `submit_order` shortcut (no scores, the queue walked as it is)
    /// decides exactly like scoring it, in every mode, on queues in and out
    /// of submission order, over repeated decisions.
    #[test]
    fn submit_order_shortcut_matches_scoring(
        scene in scene(),
        scene2 in scene(),
        reversed in any::<bool>(),
    ) {
        let mut scene2 = scene2;
        if reversed {
            // Submit times decreasing with id: not in submission order.
            let n = scene2.waiting.len() as u64;
            for t in &mut scene2.waiting {
                t.submit = Time::from_secs(n - t.id.0);
            }
        }
        for m in Mode::ALL {
            let mut a = Scheduler::new(llmchain_policy::order::FcfsOrder, m);
            let mut b = Scheduler::new(ScoredFcfs, m);
            for s in [&scene, &scene2, &scene] {
                let snap = s.snap();
                prop_assert_eq!(decide(&mut a, &snap), decide(&mut b, &snap), "{}", m);
            }
        }
    }
}

/// FCFS's score without the `submit_order` shortcut.
struct ScoredFcfs;

impl llmchain_policy::order::Ordering for ScoredFcfs {
    fn spec(&self) -> String {
        "scored-fcfs".into()
    }
    fn default_mode(&self) -> Mode {
        Mode::Strict
    }
    fn score(
        &self,
        view: &llmchain_policy::order::PlanView<'_, '_>,
        idx: usize,
        t: &WaitingTask,
    ) -> f64 {
        llmchain_policy::order::FcfsOrder.score(view, idx, t)
    }
}

/// Earliest time the head could start on some node, given the free resources
/// now and the expected releases `(node, at, res)`; `None` if never.
fn earliest_start(
    scene: &Scene,
    free: &[Resources],
    releases: &[(usize, Time, Resources)],
    req: &Resources,
) -> Option<Time> {
    let mut best: Option<Time> = None;
    for (n, f) in free.iter().enumerate().take(scene.nodes.len()) {
        if req.fits_in(f) {
            return Some(scene.now);
        }
        let mut rel: Vec<_> = releases.iter().filter(|r| r.0 == n).collect();
        rel.sort_by_key(|r| r.1);
        let mut avail = free[n];
        for r in rel {
            avail += r.2;
            if req.fits_in(&avail) {
                if best.map_or(true, |b| r.1 < b) {
                    best = Some(r.1);
                }
                break;
            }
        }
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// EASY's promise: backfilling never delays the head's reservation.
    /// The head is the first FCFS task that `fcfs+easy` did not start; its
    /// earliest start computed from the running tasks plus the strict prefix
    /// must not get later once the backfilled tasks are added (a backfilled
    /// task without an estimate is assumed never to end).
    #[test]
    fn easy_backfill_never_delays_the_head(scene in scene()) {
        let snap = scene.snap();
        let out = decide(&mut *build("fcfs+easy", &BuildCtx::default()).unwrap(), &snap);
        let started = |id: TaskId| out.iter().any(|d| d.task() == id);
        let can_ever = |t: &WaitingTask| scene.nodes.iter().any(|n| t.request.fits_in(&n.capacity));
        let Some(head) = scene.waiting.iter().find(|t| !started(t.id) && can_ever(t)) else { return Ok(()) };
        let now = scene.now;
        let rel_of = |end: Option<Time>| match end { Some(e) if e > now => e, _ => now + Dur(1) };
        let mut free: Vec<Resources> = scene.nodes.iter().map(|n| n.free).collect();
        let mut releases: Vec<_> = scene.running.iter()
            .map(|r| (r.node.0 as usize, rel_of(r.expected_end), r.request)).collect();
        // The strict prefix: starts of tasks before the head.
        let (prefix, backfill): (Vec<_>, Vec<_>) = out.iter().partition(|d| d.task() < head.id);
        for d in &prefix {
            let Decision::Start { task, node } = d else { unreachable!() };
            let t = snap.waiting_task(*task).unwrap();
            free[node.0 as usize] = free[node.0 as usize].checked_sub(&t.request).unwrap();
            releases.push((node.0 as usize, rel_of(t.estimate.map(|e| now + e)), t.request));
        }
        let before = earliest_start(&scene, &free, &releases, &head.request);
        for d in &backfill {
            let Decision::Start { task, node } = d else { unreachable!() };
            let t = snap.waiting_task(*task).unwrap();
            free[node.0 as usize] = free[node.0 as usize].checked_sub(&t.request).unwrap();
            if let Some(e) = t.estimate {
                releases.push((node.0 as usize, now + e, t.request));
            }
        }
        let after = earliest_start(&scene, &free, &releases, &head.request);
        prop_assert!(before.is_some(), "head {:?} has no reservation", head.id);
        prop_assert!(after.is_some() && after <= before,
            "backfill {:?} delayed head {:?}: {:?} → {:?}", backfill, head.id, before, after);
    }
}

#[test]
fn every_name_and_mode_is_described() {
    for n in names().iter().chain(MODE_NAMES) {
        assert!(llmchain_policy::describe(n).is_some(), "{n}");
    }
    assert_eq!(llmchain_policy::describe("nope"), None);
}

proptest! {
    /// `sjf` (strict) equals a naive reference: sort the whole queue by
    /// (estimate with unknown last, submit, id), start first-fit while the
    /// next task fits, skip tasks no node could ever hold.
    #[test]
    fn sjf_strict_matches_a_naive_reference(scene in scene()) {
        let snap = scene.snap();
        let got = decide(&mut *build("sjf", &BuildCtx::default()).unwrap(), &snap);
        let mut q: Vec<&WaitingTask> = scene.waiting.iter().collect();
        q.sort_by_key(|t| (t.estimate.is_none(), t.estimate.map(|e| e.0.max(1)), t.submit, t.id));
        let mut free: Vec<Resources> = scene.nodes.iter().map(|n| n.free).collect();
        let mut want = Vec::new();
        for t in q {
            if let Some(n) = free.iter().position(|f| t.request.fits_in(f)) {
                free[n] = free[n].checked_sub(&t.request).unwrap();
                want.push(Decision::start(t.id, NodeId(n as u32)));
            } else if scene.nodes.iter().any(|n| t.request.fits_in(&n.capacity)) {
                break;
            }
        }
        prop_assert_eq!(got, want);
    }
}
