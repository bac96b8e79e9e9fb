//! Decision time of the baseline policies on a 128-job queue: one 256-proc
//! node (SWF-like, CPU only) with ~20 running jobs, as the simulator sees it
//! on a busy trace. Run: `cargo bench -p llmchain-policy --bench decide`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use llmchain_core::{
    Dur, NodeId, NodeState, Resources, RunningTask, Snapshot, TaskId, Time, WaitingTask,
};
use llmchain_policy::{build, BuildCtx};

/// Deterministic pseudo-random numbers (SplitMix64) so the scene is fixed.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// 256 procs; 20 running jobs holding 240 of them; 128 waiting jobs of 1–64
/// procs with estimates of 1 min – 10 h (a few without estimates).
fn scene() -> (Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>) {
    let mut rng = Rng(42);
    let now = Time::from_secs(100_000);
    let cap = Resources::cpus(256, 0);
    let mut running = Vec::new();
    let mut used = 0;
    for i in 0..20 {
        let procs = 12;
        used += procs;
        running.push(RunningTask {
            id: TaskId(10_000 + i),
            node: NodeId(0),
            request: Resources::cpus(procs, 0),
            start: Time::from_secs(90_000 + rng.next(10_000)),
            expected_end: Some(Time::from_secs(100_000 + 60 + rng.next(36_000))),
            user: rng.next(16) as u32,
        });
    }
    let nodes = vec![NodeState {
        id: NodeId(0),
        capacity: cap,
        free: Resources::cpus(256 - used, 0),
    }];
    let mut submit = 50_000;
    let waiting = (0..128)
        .map(|i| {
            submit += rng.next(300);
            WaitingTask {
                id: TaskId(i),
                submit: Time::from_secs(submit),
                request: Resources::cpus(1 + rng.next(64), 0),
                estimate: if i % 16 == 15 {
                    None
                } else {
                    Some(Dur::from_secs(60 + rng.next(36_000)))
                },
                user: rng.next(16) as u32,
                priority: 0,
            }
        })
        .collect();
    let _ = now;
    (nodes, waiting, running)
}

fn bench(c: &mut Criterion) {
    let (nodes, waiting, running) = scene();
    let snap = Snapshot::new(Time::from_secs(100_000), &nodes, &waiting, &running);
    let mut g = c.benchmark_group("decide_128_queue_256_procs_20_running");
    for spec in [
        "fcfs",
        "sjf",
        "fcfs+easy",
        "sjf+easy",
        "f1+easy",
        "wfp3+easy",
        "tetris",
        "packer",
        "drf",
        "fcfs+cons",
        "sjf+cons",
    ] {
        let mut p = build(spec, &BuildCtx::default()).unwrap();
        let mut out = Vec::with_capacity(128);
        g.bench_function(spec, |b| {
            b.iter(|| {
                out.clear();
                p.decide(black_box(&snap), &mut out);
                black_box(out.len())
            })
        });
    }
    // The same queue on a full node: nothing fits, nothing to order.
    let full = [NodeState {
        free: Resources::ZERO,
        ..nodes[0].clone()
    }];
    let snap = Snapshot::new(Time::from_secs(100_000), &full, &waiting, &running);
    for spec in ["sjf+easy", "fcfs+cons"] {
        let mut p = build(spec, &BuildCtx::default()).unwrap();
        let mut out = Vec::with_capacity(128);
        g.bench_function(format!("{spec}/nothing_fits"), |b| {
            b.iter(|| {
                out.clear();
                p.decide(black_box(&snap), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
