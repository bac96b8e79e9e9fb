//! Decision latency of the scheduling LM on a 128-task queue (target p99 ≤ 100 µs):
//! the model's scores alone and a full EASY decision. Uses the shipped model
//! `models/sched-lm` (fails with a message when it is missing), and prints
//! p50/p99 over 20,000 timed decisions after criterion's figures.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use llmchain_core::{Dur, NodeId, NodeState, Policy, Resources, RunningTask, Snapshot, TaskId, Time, WaitingTask};
use llmchain_learn::lm::{Encoded, Encoder, Scratch};
use llmchain_learn::{models_dir, SchedLm};
use llmchain_policy::Mode;

fn queue() -> (Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>) {
    let nodes = vec![NodeState { id: NodeId(0), capacity: Resources::cpus(256, 0), free: Resources::cpus(12, 0) }];
    let waiting = (0..128u64)
        .map(|i| WaitingTask {
            id: TaskId(1000 + i),
            submit: Time::from_secs(i * 37),
            request: Resources::cpus(1 + (i * 7919) % 64, 0),
            estimate: Some(Dur::from_secs(60 + (i * 104_729) % 20_000)),
            user: (i % 9) as u32,
            priority: 0,
        })
        .collect();
    let running = (0..40u64)
        .map(|i| RunningTask {
            id: TaskId(i),
            node: NodeId(0),
            request: Resources::cpus(6 + i % 3, 0),
            start: Time::from_secs(i * 50),
            expected_end: Some(Time::from_secs(6000 + i * 311)),
            user: 0,
        })
        .collect();
    (nodes, waiting, running)
}

fn model() -> SchedLm {
    let dir = models_dir().join("sched-lm");
    SchedLm::load(&dir).unwrap_or_else(|e| {
        panic!("the shipped model is missing ({e}); train it with `cargo run --release -p llmchain-learn --example learn -- train models/sched-lm/train.json models/sched-lm`")
    })
}

fn bench(c: &mut Criterion) {
    let m = model();
    let (nodes, waiting, running) = queue();
    let snap = Snapshot::new(Time::from_secs(8000), &nodes, &waiting, &running);
    let mut enc = Encoder::default();
    let mut e = Encoded::default();
    let mut s = Scratch::default();
    let mut out = Vec::new();
    c.bench_function("sched_lm_scores_128", |b| {
        b.iter(|| {
            enc.encode(black_box(&snap), 128, &mut e);
            m.weights().scores(&e, &mut s, &mut out);
            black_box(out.len())
        })
    });
    let mut p = m.policy(Mode::Easy);
    let mut d = Vec::new();
    c.bench_function("sched_lm_easy_decide_128", |b| {
        b.iter(|| {
            d.clear();
            p.decide(black_box(&snap), &mut d);
            black_box(d.len())
        })
    });
    // Percentiles of single decisions.
    let mut times = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        d.clear();
        let t = Instant::now();
        p.decide(&snap, &mut d);
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "sched_lm_easy_decide_128 single decisions: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
