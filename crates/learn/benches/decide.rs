//! Decision latency of the scheduling LM on a 128-task queue (target p99 ≤ 100 µs):
//! the model's scores alone and a full EASY decision. Uses the shipped model
//! `models/sched-lm` (fails with a message when it is missing), and prints
//! p50/p99 over 20,000 timed decisions after criterion's figures.

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use llmchain_core::{
    Dur, NodeId, NodeState, Policy, Resources, RunningTask, Snapshot, TaskId, Time, WaitingTask,
};
use llmchain_learn::lm::{Encoded, Encoder, Scratch};
use llmchain_learn::{models_dir, SchedLm};
use llmchain_policy::Mode;

fn queue() -> (Vec<NodeState>, Vec<WaitingTask>, Vec<RunningTask>) {
    let nodes = vec![NodeState {
        id: NodeId(0),
        capacity: Resources::cpus(256, 0),
        free: Resources::cpus(12, 0),
    }];
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
    let mut enc = Encoder::new(true);
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
    // CPU time of this thread (Linux), so a busy shared machine does not
    // inflate the figure: mean over 20,000 decisions.
    let cpu_ns = || -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    if let Some(c0) = cpu_ns() {
        for _ in 0..20_000 {
            d.clear();
            p.decide(&snap, &mut d);
        }
        if let Some(c1) = cpu_ns() {
            println!(
                "sched_lm_easy_decide_128 mean CPU time per decision: {:.1} us",
                (c1 - c0) as f64 / 20_000.0 / 1000.0
            );
        }
    }
    // Cost of the scores alone by network size (random weights), CPU time.
    if std::env::var_os("SHAPES").is_some() {
        for (d, h, l) in [
            (16, 32, 4),
            (16, 16, 4),
            (16, 8, 4),
            (8, 16, 4),
            (12, 24, 4),
            (16, 32, 2),
        ] {
            let shape = llmchain_learn::lm::LmShape {
                d,
                latents: l,
                ffn: h,
                max_queue: 128,
            };
            let m = llmchain_learn::lm::model::LmModel::new(shape.clone(), 1).unwrap();
            let w =
                llmchain_learn::lm::LmWeights::from_map(shape, &m.weight_map().unwrap()).unwrap();
            enc.encode(&snap, 128, &mut e);
            let c0 = cpu_ns().unwrap_or(0);
            for _ in 0..5000 {
                w.scores(&e, &mut s, &mut out);
            }
            let c1 = cpu_ns().unwrap_or(0);
            let c2 = cpu_ns().unwrap_or(0);
            for _ in 0..5000 {
                enc.encode(&snap, 128, &mut e);
            }
            let c3 = cpu_ns().unwrap_or(0);
            println!(
                "d={d} ffn={h} latents={l}: scores {:.1} us, encode {:.1} us (CPU)",
                (c1 - c0) as f64 / 5e6,
                (c3 - c2) as f64 / 5e6
            );
        }
    }
    // Percentiles of single decisions (wall clock). On a shared machine a
    // decision is sometimes descheduled mid-way; the thread's timeslice count
    // (third field of /proc/thread-self/schedstat) tells which, so the
    // figures are given over all decisions and over those that ran without
    // losing the CPU.
    let slices = || -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    };
    let mut times = Vec::with_capacity(20_000);
    let mut alone = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        d.clear();
        let s0 = slices();
        let t = Instant::now();
        p.decide(&snap, &mut d);
        let us = t.elapsed().as_nanos() as f64 / 1000.0;
        times.push(us);
        if s0.is_some() && slices() == s0 {
            alone.push(us);
        }
    }
    let pct = |v: &mut Vec<f64>, q: usize| {
        v.sort_by(f64::total_cmp);
        v[(v.len() * q / 100).min(v.len() - 1)]
    };
    println!(
        "sched_lm_easy_decide_128 single decisions: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        pct(&mut times, 50),
        pct(&mut times, 99),
        times[times.len() - 1]
    );
    if !alone.is_empty() {
        println!(
            "sched_lm_easy_decide_128 decisions not descheduled ({} of {}): p50 {:.1} us, p99 {:.1} us",
            alone.len(),
            times.len(),
            pct(&mut alone, 50),
            pct(&mut alone, 99)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
