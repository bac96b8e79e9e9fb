//! Constrained schedule generation latency with the real SmolLM2-135M-Instruct, Q4_1 vs Q8_0,
//! for a 10-task and a 64-task queue: cold (no prefix reuse) and warm (the system prompt's KV
//! cache reused, the queue differing between calls, as in the kernel).
//! Needs the model: `llmchain model fetch smollm2 --q8`. Also prints tokens and tok/s per case.
//! `LLMCHAIN_BENCH_VARIANTS=Q8_0` runs one variant; `CANDLE_NUM_THREADS=1` avoids candle's
//! spinning thread pool on a machine shared with other work.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use llmchain_gguf::{
    requantize, smollm2_path, ChatMessage, GenerateConfig, Model, QuantType, ScheduleConstraint,
    Variant,
};

fn messages(ids: &[u64]) -> Vec<ChatMessage> {
    let mut queue = String::from(
        "Free: 8 CPUs, 16 GiB memory.\nWaiting tasks (id: cpus, memory GiB, minutes):\n",
    );
    for (k, id) in ids.iter().enumerate() {
        queue.push_str(&format!(
            "{id}: {}, {}, {}\n",
            1 + k % 4,
            1 + (k * 3) % 8,
            10 + (k * 7) % 20
        ));
    }
    queue.push_str("Which tasks should start now, in order?");
    vec![
        ChatMessage::system(
            "You are a cluster scheduler. Answer only with a JSON array of task ids to start now, \
             shortest first, for example [4,1,7].",
        ),
        ChatMessage::user(queue),
    ]
}

fn model_path(variant: Variant) -> std::path::PathBuf {
    let q4 = smollm2_path(Variant::Q4_1);
    assert!(
        q4.exists(),
        "SmolLM2 missing at {}: run `llmchain model fetch smollm2 --q8`",
        q4.display()
    );
    match variant {
        Variant::Q4_1 => q4,
        Variant::Q8_0 => {
            let q8 = smollm2_path(Variant::Q8_0);
            if !q8.exists() {
                requantize(&q4, &q8, QuantType::Q8_0).expect("re-quantising to Q8_0");
            }
            q8
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    // LLMCHAIN_BENCH_VARIANTS=Q8_0 limits the run (Q4_1 prefill is slow: candle has no SIMD
    // path for it).
    let wanted = std::env::var("LLMCHAIN_BENCH_VARIANTS").unwrap_or_else(|_| "Q4_1,Q8_0".into());
    for variant in [Variant::Q4_1, Variant::Q8_0] {
        if !wanted
            .split(',')
            .any(|w| w.trim().eq_ignore_ascii_case(&format!("{variant:?}")))
        {
            continue;
        }
        let mut model = Model::load(model_path(variant)).expect("loading SmolLM2");
        for n in [10u64, 64] {
            let a: Vec<u64> = (0..n).map(|i| 100 + 7 * i).collect();
            let b: Vec<u64> = (0..n).map(|i| 300 + 5 * i).collect();
            let pa = model.chat_tokens(&messages(&a)).unwrap();
            let pb = model.chat_tokens(&messages(&b)).unwrap();
            let max_tokens = 4 * n as usize + 8;
            for warm in [false, true] {
                let cfg = GenerateConfig {
                    max_tokens,
                    reuse_prefix: warm,
                    ..GenerateConfig::default()
                };
                let name = format!("{variant:?}/{}", if warm { "warm" } else { "cold" });
                // One reported run per case: tokens, time to first token, decode speed.
                let mut con = ScheduleConstraint::new(&a, a.len());
                model.generate(&pb, &cfg, None).ok();
                let g = model.generate(&pa, &cfg, Some(&mut con)).unwrap();
                eprintln!(
                    "{name}/{n} tasks: prompt {} tok (cached {}), out {} tok {:?}, ttft {:?}, total {:?}, decode {:.1} tok/s",
                    g.stats.prompt_tokens,
                    g.stats.cached_prompt_tokens,
                    g.stats.generated_tokens,
                    g.text,
                    g.stats.time_to_first_token,
                    g.stats.total,
                    g.stats.decode_tokens_per_second()
                );
                let mut flip = false;
                group.bench_with_input(BenchmarkId::new(name, n), &n, |bch, _| {
                    bch.iter(|| {
                        flip = !flip;
                        let (p, ids) = if flip { (&pa, &a) } else { (&pb, &b) };
                        let mut con = ScheduleConstraint::new(ids, ids.len());
                        model.generate(p, &cfg, Some(&mut con)).unwrap()
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
