//! Simulator throughput in events per second on the full `data/traces/lublin_256.swf`
//! trace (10,000 jobs, 20,000 events) with FCFS, FCFS+EASY and SJF+EASY.
//!
//! `cargo bench -p llmchain-sim --bench engine`. Target: ≥ 2 million events/s
//! on one core for FCFS+EASY.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use llmchain_sim::{run, swf, SimConfig, SwfOptions};

fn engine(c: &mut Criterion) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/traces/lublin_256.swf");
    let w = swf::read(&path, &SwfOptions::default()).unwrap_or_else(|e| {
        panic!("{e}: the trace ships in data/traces/ (see data/traces/SOURCES.md)")
    });
    let cfg = SimConfig::default();
    let mut g = c.benchmark_group("lublin_256_full");
    g.sample_size(20);
    for spec in ["fcfs", "fcfs+easy", "sjf+easy"] {
        let ctx = llmchain_policy::BuildCtx { seed: 1 };
        let events = run(&w, &mut llmchain_policy::build(spec, &ctx).unwrap(), &cfg)
            .unwrap()
            .metrics
            .events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(spec, |b| {
            b.iter(|| {
                let mut p = llmchain_policy::build(spec, &ctx).unwrap();
                run(&w, &mut p, &cfg).unwrap().metrics.events
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
