//! Driver for the learning module's experiments until the `llmchain train` /
//! `llmchain eval` subcommands are wired:
//!
//! ```text
//! cargo run --release -p llmchain-learn --example learn -- runtime [OUT_DIR]
//! cargo run --release -p llmchain-learn --example learn -- train CONFIG.json OUT_DIR
//! cargo run --release -p llmchain-learn --example learn -- eval WORKLOAD POLICY[,POLICY...] [SEQS LEN SEED]
//! ```

use std::path::PathBuf;

use llmchain_learn::eval::{eval, format_table, EvalConfig};
use llmchain_learn::runtime::report_runtime_predictor;
use llmchain_learn::{models_dir, train_sched_lm, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("runtime") => {
            let out = args.get(1).map(PathBuf::from);
            let rep = report_runtime_predictor(out.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&rep)?);
        }
        Some("train") => {
            let cfg: TrainConfig = match args.get(1) {
                Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
                None => TrainConfig::default(),
            };
            let out = args.get(2).map(PathBuf::from);
            let t = train_sched_lm(&cfg, out.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&t.card.metrics)?);
        }
        Some("splits") => {
            let cfg: TrainConfig = match args.get(1) {
                Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
                None => TrainConfig::default(),
            };
            for spec in &cfg.sources {
                let w = llmchain_learn::lm::train::load_source(spec, cfg.seed)?;
                let s = llmchain_learn::lm::train::plan_splits(spec, &w, &cfg)?;
                let jobs = |v: &[(usize, usize)]| v.iter().map(|(a, b)| b - a).sum::<usize>();
                println!("{spec}: {} jobs; test {} windows; train {} windows ({} jobs); validation {} ({} jobs); disjoint {}",
                    s.n_jobs, s.test.len(), s.train.len(), jobs(&s.train), s.validation.len(), jobs(&s.validation), s.disjoint());
            }
        }
        Some("eval") => {
            let workload = args.get(1).ok_or("eval needs WORKLOAD")?.clone();
            let policies = args
                .get(2)
                .ok_or("eval needs POLICIES")?
                .split(',')
                .map(str::to_string)
                .collect();
            let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            let cfg = EvalConfig {
                workload,
                sequences: num(3, 10) as usize,
                length: num(4, 1024) as usize,
                seed: num(5, 1),
                policies,
            };
            let r = eval(&cfg, &models_dir())?;
            print!("{}", format_table(&r));
        }
        _ => {
            eprintln!("usage: learn runtime [OUT] | train [CONFIG.json [OUT_DIR]] | eval WORKLOAD POLICIES [SEQS LEN SEED]");
            std::process::exit(2);
        }
    }
    Ok(())
}

fn tracing_init() {
    // Minimal: print info events of this crate to stderr when LEARN_LOG is set.
    if std::env::var_os("LEARN_LOG").is_some() {
        struct L;
        impl tracing::Subscriber for L {
            fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
                m.level() <= &tracing::Level::INFO
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, e: &tracing::Event<'_>) {
                struct V(String);
                impl tracing::field::Visit for V {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                        self.0.push_str(&format!(" {}={:?}", f.name(), v));
                    }
                }
                let mut v = V(String::new());
                e.record(&mut v);
                eprintln!("[{}]{}", e.metadata().target(), v.0);
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        let _ = tracing::subscriber::set_global_default(L);
    }
}
