//! `llmchain train`: train a model of the learning module and save it in the
//! registry (`models/<name>/`: card.json, weights.safetensors, curve.csv/svg).
//!
//! * `llmchain train sched-lm [--config FILE] [--out DIR] [--seed S]` — the
//!   scheduling LM (see `llmchain_learn::lm::train` for the objective and teacher).
//! * `llmchain train runtime [--out DIR]` — the runtime predictor study
//!   (HPC2N excerpt and NASA traces) and the shipped `runtime-hpc2n` model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use llmchain_learn::{train_sched_lm, TrainConfig};

/// Arguments of `llmchain train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to train: `sched-lm` or `runtime`.
    #[arg(value_name = "WHAT")]
    pub what: String,

    /// Training configuration (JSON, `TrainConfig`); defaults when absent.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output directory (sched-lm: the model directory; runtime: the registry root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Override the configuration's seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Run `llmchain train`.
pub fn run(args: Args) -> Result<()> {
    match args.what.as_str() {
        "sched-lm" => {
            let mut cfg: TrainConfig = match &args.config {
                Some(p) => serde_json::from_str(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("parsing {}", p.display()))?,
                None => TrainConfig::default(),
            };
            if let Some(s) = args.seed {
                cfg.seed = s;
            }
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from("models").join(&cfg.name));
            eprintln!(
                "training {} (seed {}) into {} ...",
                cfg.name,
                cfg.seed,
                out.display()
            );
            let t = train_sched_lm(&cfg, Some(&out)).context("training the scheduling LM")?;
            println!("{}", serde_json::to_string_pretty(&t.card.metrics)?);
            println!(
                "saved {} ({:.0} s); loss curve in {}",
                out.display(),
                t.card.train_seconds,
                out.join("curve.csv").display()
            );
        }
        "runtime" => {
            let out = args.out.unwrap_or_else(|| PathBuf::from("models"));
            let studies = llmchain_learn::runtime::report_runtime_predictor(Some(&out))
                .context("runtime predictor study")?;
            println!("{}", serde_json::to_string_pretty(&studies)?);
        }
        other => {
            return Err(super::UsageError(format!(
                "unknown model kind `{other}` (valid: sched-lm, runtime)"
            ))
            .into())
        }
    }
    Ok(())
}
