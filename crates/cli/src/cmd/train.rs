//! `llmchain train`: train a model of the learning module and save it in the
//! registry (`models/<name>/`: card.json, weights.safetensors, curve.csv/svg).
//!
//! * `llmchain train sched-lm [--config FILE] [--out DIR] [--seed S] [--mode M]` — the
//!   scheduling LM (see `llmchain_learn::lm::train` for the objective and teacher).
//! * `llmchain train runtime [--out DIR]` — the runtime predictor study
//!   (HPC2N excerpt and NASA traces) and the shipped `runtime-hpc2n` model.
//! * `llmchain train auto [--config FILE] [--out DIR] [--seed S]` — the
//!   `kernel:auto` policy selector (`llmchain_learn::auto`), evaluated after training.

use std::path::PathBuf;

use anyhow::{Context, Result};
use llmchain_learn::{train_sched_lm_with, TrainConfig};

/// Arguments of `llmchain train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to train: `sched-lm`, `runtime` or `auto` (the kernel:auto policy selector).
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

    /// sched-lm: override the configuration's mode — the start semantics the
    /// model is trained for: easy, greedy, strict (this simulator's
    /// scheduler), or commit-easy, commit (RLScheduler's; use the model as
    /// `lm:NAME+commit-easy`).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,

    /// Machine-readable output: the metrics as JSON on stdout, no progress bars
    /// (bars are also hidden when stderr is not a terminal).
    #[arg(long)]
    pub json: bool,
}

/// The training configuration in `path` (JSON), or the defaults.
fn read_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> Result<T> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// The output directory (`--out`, else `models/<name>`), announced on stderr.
fn announce_out(out: Option<PathBuf>, name: &str, seed: u64) -> PathBuf {
    let out = out.unwrap_or_else(|| PathBuf::from("models").join(name));
    eprintln!("training {name} (seed {seed}) into {} ...", out.display());
    out
}

/// Run `llmchain train`.
pub fn run(args: Args) -> Result<()> {
    match args.what.as_str() {
        "sched-lm" => {
            let mut cfg: TrainConfig = read_config(args.config.as_deref())?;
            if let Some(s) = args.seed {
                cfg.seed = s;
            }
            if let Some(m) = args.mode {
                cfg.mode = m;
            }
            let out = announce_out(args.out, &cfg.name, cfg.seed);
            let mut bars = super::bars::Bars::new(args.json);
            let t = train_sched_lm_with(&cfg, Some(&out), &mut bars)
                .context("training the scheduling LM")?;
            drop(bars);
            println!("{}", serde_json::to_string_pretty(&t.card.metrics)?);
            if args.json {
                return Ok(());
            }
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
        "auto" => {
            // The kernel:auto policy selector (llmchain_learn::auto).
            let mut cfg: llmchain_learn::auto::AutoTrainConfig =
                read_config(args.config.as_deref())?;
            if let Some(s) = args.seed {
                cfg.seed = s;
            }
            let out = announce_out(args.out, &cfg.name, cfg.seed);
            let t = llmchain_learn::auto::train_auto(&cfg, Some(&out), &|m| eprintln!("  {m}"))
                .context("training the policy selector")?;
            if let Some(e) = &t.eval {
                print!("{}", llmchain_learn::auto::format_eval(e));
            }
            println!(
                "saved {} ({} training windows, {:.0} s)",
                out.display(),
                t.samples.len(),
                t.model.card.train_seconds
            );
        }
        other => {
            return Err(super::UsageError(format!(
                "unknown model kind `{other}` (valid: sched-lm, runtime, auto)"
            ))
            .into())
        }
    }
    Ok(())
}
