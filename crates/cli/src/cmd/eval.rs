//! `llmchain eval`: evaluate baselines and trained models under the
//! RLScheduler protocol (N windows of L jobs from seeded random starts) and
//! print mean bounded slowdown per policy. Models are `lm:<name>[+mode]`
//! from the registry (`models/`, or `$LLMCHAIN_MODELS`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use llmchain_learn::eval::{eval_with, format_table, EvalConfig};

/// Arguments of `llmchain eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Workload spec: swf:PATH | deeprm:load=L[,jobs=N].
    #[arg(long, short = 'w', value_name = "SPEC")]
    pub workload: String,

    /// Comma-separated policies: baselines (sjf+easy, f1, ...) and models (lm:sched-lm+easy);
    /// SPEC+commit-easy / SPEC+commit run SPEC under RLScheduler's semantics
    /// (e.g. lm:sched-lm-commit+commit-easy).
    #[arg(
        long,
        short = 'p',
        value_name = "LIST",
        default_value = "sjf+easy,lm:sched-lm+easy,sjf,lm:sched-lm"
    )]
    pub policy: String,

    /// Windows (RLScheduler protocol: 10).
    #[arg(long, short = 'n', default_value_t = 10)]
    pub sequences: usize,

    /// Jobs per window (RLScheduler protocol: 1024).
    #[arg(long, short = 'l', default_value_t = 1024)]
    pub length: usize,

    /// Sampling seed.
    #[arg(long, short = 's', default_value_t = 1)]
    pub seed: u64,

    /// Registry root (default: the repository's `models/`).
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,

    /// Also write the report as JSON to FILE (`-` for stdout); hides the progress bar.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Run `llmchain eval`.
pub fn run(args: Args) -> Result<()> {
    let cfg = EvalConfig {
        workload: args.workload,
        sequences: args.sequences,
        length: args.length,
        seed: args.seed,
        policies: args
            .policy
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let root = args.models.unwrap_or_else(llmchain_learn::models_dir);
    // One bar step per (policy, window) run; hidden with --json or when
    // stderr is not a terminal.
    let mut bars = super::bars::Bars::new(args.json.is_some());
    let report = eval_with(&cfg, &root, &mut bars).context("evaluation")?;
    drop(bars);
    print!("{}", format_table(&report));
    if let Some(p) = args.json {
        super::write_output(&p, &serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
