//! `llmchain explain --sim WORKLOAD --policy SPEC --at T|#N TASK`: simulate a
//! policy (any heuristic, or a `kernel...` spec) up to a moment, then explain
//! why a task is not running there — blocking resources per node, tasks ahead
//! of it, and what the kernel's model last said about it.

use anyhow::{Context, Result};
use llmchain_core::{Policy, TaskId, Time};
use llmchain_kernel::{build_kernel, explain, is_kernel_spec, At, CaptureAt};
use llmchain_sim::{load, run, SimConfig, WorkloadSpec};

use super::UsageError;

/// Arguments of the simulator-side `llmchain explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Workload spec (`seed-example`, `swf:PATH`, `deeprm:load=0.9`, `tasks:FILE`).
    #[arg(long)]
    pub sim: String,
    /// Policy spec: a heuristic (`sjf+easy`) or a kernel (`kernel`, `kernel:gguf=PATH`, ...).
    #[arg(long, default_value = "kernel")]
    pub policy: String,
    /// The moment: seconds of simulated time (`600`, `600s`) or a decision-point count (`#40`).
    #[arg(long)]
    pub at: String,
    /// Seed for generated workloads and random policies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The task id (its id within the run: submission order, from 0).
    pub task: u64,
}

/// Parse `--at`: `#N` decision points, else seconds (optional `s` suffix).
pub fn parse_at(s: &str) -> Result<At> {
    let s = s.trim();
    if let Some(n) = s.strip_prefix('#') {
        let n: u64 = n
            .parse()
            .map_err(|_| UsageError(format!("--at {s}: expected #N (decision points)")))?;
        return Ok(At::Decisions(n));
    }
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| {
            UsageError(format!(
                "--at {s}: expected seconds (e.g. 600) or #N decision points"
            ))
        })?;
    Ok(At::Time(Time((secs * 1000.0).round() as u64)))
}

/// Run it.
pub fn run_explain(args: Args) -> Result<()> {
    let at = parse_at(&args.at)?;
    let spec = WorkloadSpec::parse(&args.sim).map_err(|e| UsageError(e.to_string()))?;
    let workload =
        load(&spec, args.seed, false).with_context(|| format!("loading workload {}", args.sim))?;
    // A heuristic is run inside the kernel (policy backend, no fill), which
    // makes the same decisions and keeps an audit trail.
    let kspec = if is_kernel_spec(&args.policy) {
        args.policy.clone()
    } else {
        format!("kernel:policy={}", args.policy)
    };
    let kernel = build_kernel(&kspec, args.seed).map_err(|e| UsageError(e.to_string()))?;
    let mut capture = CaptureAt::new(kernel, at);
    run(&workload, &mut capture, &SimConfig::default()).context("simulating")?;
    let cap = capture.captured().ok_or_else(|| {
        UsageError(format!(
            "--at {}: the simulation has no decision point by then",
            args.at
        ))
    })?;
    let e = explain(TaskId(args.task), &cap.snapshot.view(), &cap.audit);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        println!(
            "at {} (after {} decision points), policy {}:",
            cap.snapshot.now,
            cap.decision_points,
            capture.kernel().name()
        );
        print!("{e}");
    }
    Ok(())
}
