//! `llmchain sim`: simulate policies over a workload and print a comparison
//! table (one row per policy, mean over sequences).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use llmchain_sim::{aggregate, Aggregate, RunResult, SimConfig, Workload, WorkloadSpec};
use serde::Serialize;

use super::{policies, table, UsageError};
use crate::plot;

/// Arguments of `llmchain sim`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = SIM_HELP)]
pub struct Args {
    /// Workload: swf:PATH | deeprm:load=L[,jobs=N] | seed-example | tasks:FILE (.json/.csv).
    #[arg(long, short = 'w', value_name = "SPEC")]
    pub workload: String,

    /// Comma-separated policies, e.g. fcfs,sjf,sjf+easy,tetris,kernel. `--help` lists names.
    #[arg(
        long,
        short = 'p',
        value_name = "LIST",
        default_value = "fcfs,sjf,fcfs+easy,sjf+easy"
    )]
    pub policy: String,

    /// Number of sequences sampled from the workload (RLScheduler protocol: 10).
    #[arg(long, short = 'n', value_name = "N", default_value_t = llmchain_sim::DEFAULT_SEQUENCES)]
    pub sequences: usize,

    /// Jobs per sequence (RLScheduler protocol: 1024). A workload with no more
    /// jobs than this runs whole, as one sequence.
    #[arg(long, short = 'l', value_name = "L", default_value_t = llmchain_sim::DEFAULT_LENGTH)]
    pub length: usize,

    /// Run the whole workload as one sequence instead of sampling.
    #[arg(long, conflicts_with_all = ["sequences", "length"])]
    pub full: bool,

    /// Seed for workload generation, sampling and random policies.
    #[arg(long, short = 's', default_value_t = 1)]
    pub seed: u64,

    /// Show policies the actual run times as estimates (results are labelled).
    #[arg(long)]
    pub perfect_estimates: bool,

    /// Skip malformed SWF lines (counted in the output) instead of failing.
    #[arg(long)]
    pub lenient: bool,

    /// Write the results as JSON to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Include every task's record in the JSON output (large).
    #[arg(long, requires = "json")]
    pub json_tasks: bool,

    /// Write SVG plots (bounded-slowdown CDF, utilisation over time) into DIR.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,

    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

const SIM_HELP: &str = "\
Policies: <ordering>[+<mode>] with orderings fcfs, sjf, wfp3, unicep, f1, packer, tetris, drf,
bestfit, random and modes strict (default for fcfs/sjf/wfp3/unicep/f1: the head blocks), greedy
(default for the packing orderings: start anything that fits), easy (EASY backfilling), cons
(conservative backfilling). Parameters: tetris:knob=0.5, random:seed=7.
Trained models: lm:NAME[+MODE] (models/NAME, e.g. lm:sched-lm+easy). Wrappers: SPEC+pred (runtime
estimates from the shipped predictor), SPEC+commit / SPEC+commit-easy (the RLScheduler simulator's
semantics over SPEC's order: commit to the first task until it starts; -easy backfills in FCFS
order what ends before it; lm:sched-lm-commit+commit-easy is the model trained for it). Kernels:
kernel, kernel:auto, kernel:smollm2,q8, kernel:openai=URL,...

Metrics are per task: wait = start - submit, turnaround = end - submit, slowdown = turnaround/run,
bounded slowdown = max(1, turnaround / max(run, 10 s)); each table cell is the mean over sequences.

Example (the RLScheduler protocol on Lublin-1):
  llmchain sim --workload swf:data/traces/lublin_256.swf \\
      --policy fcfs,sjf,f1,wfp3,unicep,fcfs+easy,sjf+easy,f1+easy --sequences 10 --length 1024 --seed 1";

/// The JSON document `--json` writes. Deterministic for the same inputs.
#[derive(Serialize)]
struct Report<'a> {
    workload: &'a str,
    source: &'a str,
    notes: &'a [String],
    skipped: &'a std::collections::BTreeMap<String, u64>,
    seed: u64,
    sequences: usize,
    length: usize,
    perfect_estimates: bool,
    policies: Vec<PolicyReport<'a>>,
}

#[derive(Serialize)]
struct PolicyReport<'a> {
    policy: &'a str,
    mean: &'a Aggregate,
    runs: Vec<RunView<'a>>,
}

#[derive(Serialize)]
struct RunView<'a> {
    workload: &'a str,
    window: Option<llmchain_sim::Window>,
    metrics: &'a llmchain_sim::RunMetrics,
    policy_stats: &'a llmchain_core::PolicyStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<&'a [llmchain_sim::TaskRecord]>,
}

/// Run the simulation.
pub fn run(args: Args) -> Result<()> {
    let spec = WorkloadSpec::parse(&args.workload).map_err(|e| UsageError(e.to_string()))?;
    let specs = policies::split_specs(&args.policy);
    policies::check_all(&specs, args.seed)?;
    if !args.full && (args.sequences == 0 || args.length == 0) {
        return Err(UsageError("--sequences and --length must be at least 1".into()).into());
    }
    let workload = llmchain_sim::load(&spec, args.seed, args.lenient)
        .with_context(|| format!("loading workload `{}`", args.workload))?;
    let sequences = if args.full || workload.len() <= args.length {
        vec![workload.clone()]
    } else {
        llmchain_sim::sample(&workload, args.sequences, args.length, args.seed)?
    };
    for note in &workload.meta.notes {
        eprintln!("note: {note}");
    }
    for s in &specs {
        let s = s.trim().to_ascii_lowercase();
        if s == "kernel" || s.starts_with("kernel:builtin") {
            eprintln!("note: {}", llmchain_kernel::describe_builtin());
            break;
        }
    }
    for (why, n) in &workload.meta.skipped {
        eprintln!("note: skipped {n} jobs: {why}");
    }
    let config = SimConfig {
        perfect_estimates: args.perfect_estimates,
        utilisation_series: args.plot.is_some(),
        ..SimConfig::default()
    };
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let results = run_all(&specs, &sequences, &config, args.seed, threads)?;

    let aggregates: Vec<Aggregate> = results
        .iter()
        .map(|runs| aggregate(runs).expect("at least one run"))
        .collect();
    print_table(
        &workload,
        &sequences,
        &aggregates,
        args.perfect_estimates || workload.meta.perfect_estimates,
    );

    if let Some(path) = &args.json {
        let report = Report {
            workload: &workload.meta.label,
            source: &workload.meta.source,
            notes: &workload.meta.notes,
            skipped: &workload.meta.skipped,
            seed: args.seed,
            sequences: sequences.len(),
            length: sequences.first().map_or(0, Workload::len),
            perfect_estimates: args.perfect_estimates || workload.meta.perfect_estimates,
            policies: results
                .iter()
                .zip(&aggregates)
                .map(|(runs, agg)| PolicyReport {
                    policy: &agg.policy,
                    mean: agg,
                    runs: runs
                        .iter()
                        .map(|r| RunView {
                            workload: &r.workload,
                            window: r.window,
                            metrics: &r.metrics,
                            policy_stats: &r.policy_stats,
                            tasks: args.json_tasks.then_some(r.tasks.as_slice()),
                        })
                        .collect(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&report)?;
        super::write_output(path, &text)?;
    }
    if let Some(dir) = &args.plot {
        let files = plot::write_all(dir, &results)?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// Run every (policy, sequence) pair on `threads` workers. The result is
/// indexed `[policy][sequence]` and does not depend on scheduling.
fn run_all(
    specs: &[String],
    sequences: &[Workload],
    config: &SimConfig,
    seed: u64,
    threads: usize,
) -> Result<Vec<Vec<RunResult>>> {
    let jobs: Vec<(usize, usize)> = (0..specs.len())
        .flat_map(|p| (0..sequences.len()).map(move |s| (p, s)))
        .collect();
    let progress = super::progress_bar(jobs.len() as u64, "simulating");
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<RunResult>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(p, s)) = jobs.get(i) else { break };
                let result = policies::build(&specs[p], seed).and_then(|mut policy| {
                    llmchain_sim::run(&sequences[s], &mut policy, config).with_context(|| {
                        format!("simulating `{}` on {}", specs[p], sequences[s].meta.label)
                    })
                });
                slots.lock().expect("no panics while holding the lock")[i] = Some(result);
                progress.inc(1);
            });
        }
    });
    progress.finish_and_clear();
    let mut flat = slots.into_inner().expect("workers done").into_iter();
    let mut out = Vec::with_capacity(specs.len());
    for _ in specs {
        let mut runs = Vec::with_capacity(sequences.len());
        for _ in sequences {
            runs.push(flat.next().flatten().expect("every job ran")?);
        }
        out.push(runs);
    }
    Ok(out)
}

fn print_table(workload: &Workload, sequences: &[Workload], aggs: &[Aggregate], perfect: bool) {
    println!(
        "workload {} ({} tasks, {} node{}), {} sequence{} of {} tasks{}",
        workload.meta.label,
        workload.len(),
        workload.cluster.nodes.len(),
        if workload.cluster.nodes.len() == 1 {
            ""
        } else {
            "s"
        },
        sequences.len(),
        if sequences.len() == 1 { "" } else { "s" },
        sequences.first().map_or(0, Workload::len),
        if perfect {
            " — PERFECT ESTIMATES (actual run times shown to policies)"
        } else {
            ""
        }
    );
    let mut t = table::Table::new(&[
        "policy",
        "bsld",
        "bsld p99",
        "wait s",
        "wait p99",
        "turnaround s",
        "slowdown",
        "makespan s",
        "util cpu",
        "util mem",
        "jain",
        "decisions",
        "rejected",
        "unstarted",
        "model calls",
        "lat mean µs",
        "lat p99 µs",
        "fallback %",
        "dropped",
    ]);
    for a in aggs {
        let m = &a.metrics;
        let s = &a.policy_stats;
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
        t.row(vec![
            a.policy.clone(),
            format!("{:.2}", m.bounded_slowdown.mean),
            format!("{:.1}", m.bounded_slowdown.p99),
            format!("{:.0}", m.wait.mean),
            format!("{:.0}", m.wait.p99),
            format!("{:.0}", m.turnaround.mean),
            format!("{:.2}", m.slowdown.mean),
            format!("{:.0}", m.makespan),
            format!("{:.3}", m.utilisation.cpu),
            format!("{:.3}", m.utilisation.mem),
            format!("{:.3}", m.jain_fairness),
            m.decisions.to_string(),
            m.rejected.to_string(),
            m.never_started.to_string(),
            if s.model_calls == 0 {
                "-".into()
            } else {
                s.model_calls.to_string()
            },
            opt(s.latency_mean_us),
            opt(s.latency_p99_us),
            if s.decision_points == 0 || s.model_calls == 0 {
                "-".into()
            } else {
                format!(
                    "{:.1}",
                    100.0 * s.fallbacks as f64 / s.decision_points as f64
                )
            },
            if s.model_calls == 0 {
                "-".into()
            } else {
                s.proposals_dropped.to_string()
            },
        ]);
    }
    print!("{}", t.render());
}
