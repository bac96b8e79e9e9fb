//! Measures the figures the kernel issue asks for.
//!
//! ```text
//! # decision latency of one backend (kernel spec) for 10- and 64-task queues
//! cargo run --release -p llmchain-kernel --example figures -- latency 'kernel:smollm2' [TRIALS]
//! cargo run --release -p llmchain-kernel --example figures -- latency 'kernel:openai=http://127.0.0.1:8080,model=m,constrain=grammar'
//! # fallback rate and mean bounded slowdown on 2 x 256 jobs of Lublin-1 next to baselines
//! cargo run --release -p llmchain-kernel --example figures -- lublin 'kernel:smollm2,every=4' [SEQ] [LEN]
//! ```

use std::time::Instant;

use llmchain_core::{
    Dur, NodeId, NodeState, Policy, Resources, Snapshot, TaskId, Time, WaitingTask,
};
use llmchain_kernel::build_policy;
use rand::{Rng, SeedableRng};

fn queue(n: usize, seed: u64) -> (Vec<NodeState>, Vec<WaitingTask>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cap = Resources::cpus(256, 0);
    let nodes = vec![NodeState {
        id: NodeId(0),
        capacity: cap,
        free: Resources::cpus(rng.gen_range(16..128), 0),
    }];
    let waiting = (0..n as u64)
        .map(|i| WaitingTask {
            id: TaskId(100 + i * 3),
            submit: Time::from_secs(i * 7),
            request: Resources::cpus(rng.gen_range(1..64), 0),
            estimate: Some(Dur::from_secs(rng.gen_range(60..36_000))),
            user: rng.gen_range(0..8),
            priority: 0,
        })
        .collect();
    (nodes, waiting)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    llmchain_core::metrics::percentile_sorted(v, p)
}

fn latency(spec: &str, trials: usize) {
    for n in [10usize, 64] {
        let mut k = llmchain_kernel::build_kernel(&format!("{spec},every=1"), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ms = Vec::new();
        let mut fallbacks = 0;
        for t in 0..trials + 1 {
            let (nodes, waiting) = queue(n, t as u64);
            let snap = Snapshot::new(Time::from_secs(10_000 + t as u64), &nodes, &waiting, &[]);
            let mut out = Vec::new();
            let t0 = Instant::now();
            k.decide(&snap, &mut out);
            let dt = t0.elapsed().as_secs_f64() * 1000.0;
            if t > 0 {
                // The first call warms caches (prompt prefix); report it separately.
                ms.push(dt);
            } else {
                println!("{spec}: {n}-task queue: first call {dt:.1} ms");
            }
        }
        for r in k.audit() {
            if r.fallback {
                fallbacks += 1;
                eprintln!("  fallback: {:?}", r.fallback_reason);
            }
        }
        println!(
            "{spec}: {n}-task queue: decision latency p50 {:.1} ms, p99 {:.1} ms over {trials} calls ({fallbacks} fallbacks)",
            pct(&mut ms, 50.0),
            pct(&mut ms, 99.0)
        );
    }
}

fn lublin(spec: &str, seqs: usize, len: usize) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/traces/lublin_256.swf");
    let w = llmchain_sim::load(&llmchain_sim::WorkloadSpec::Swf { path: root }, 1, false).unwrap();
    let sequences = llmchain_sim::sample(&w, seqs, len, 1).unwrap();
    println!("| policy | mean bounded slowdown | model calls | fallbacks | fallback rate | dropped | mean latency µs | p99 latency µs | wall s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in ["fcfs", "sjf", "sjf+easy", spec] {
        let mut bsld = 0.0;
        let (mut calls, mut fb, mut dropped, mut mean, mut p99) = (0, 0, 0, 0.0f64, 0.0f64);
        let t0 = Instant::now();
        for s in &sequences {
            let mut pol = build_policy(p, 1).unwrap_or_else(|e| panic!("{e}"));
            let r = llmchain_sim::run(s, &mut pol, &llmchain_sim::SimConfig::default()).unwrap();
            assert_eq!(r.metrics.rejected, 0);
            bsld += r.metrics.bounded_slowdown.mean / sequences.len() as f64;
            let st = pol.stats();
            calls += st.model_calls;
            fb += st.fallbacks;
            dropped += st.proposals_dropped;
            mean = mean.max(st.latency_mean_us.unwrap_or(0.0));
            p99 = p99.max(st.latency_p99_us.unwrap_or(0.0));
        }
        let rate = if calls > 0 {
            fb as f64 / calls as f64
        } else {
            0.0
        };
        println!(
            "| {p} | {bsld:.2} | {calls} | {fb} | {rate:.3} | {dropped} | {mean:.0} | {p99:.0} | {:.1} |",
            t0.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency(&args[1], args.get(2).map_or(20, |s| s.parse().unwrap())),
        Some("lublin") => lublin(
            &args[1],
            args.get(2).map_or(2, |s| s.parse().unwrap()),
            args.get(3).map_or(256, |s| s.parse().unwrap()),
        ),
        _ => eprintln!("usage: figures latency SPEC [TRIALS] | figures lublin SPEC [SEQ] [LEN]"),
    }
}
