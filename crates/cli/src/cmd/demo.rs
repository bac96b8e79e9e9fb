//! `llmchain demo`: the design text's worked example. One node with 8 CPUs
//! and 16 memory units, 10 random tasks (CPU 1–4, memory 1–8, duration
//! 10–30 s). Each policy produces a schedule (task indices in start order);
//! the validator checks every start against capacity; the demo prints the
//! tasks, each schedule, per-task start/end and the total time.

use std::path::PathBuf;

use anyhow::Result;
use llmchain_sim::seed_example::{self, MEM_UNIT_MIB};
use llmchain_sim::{RunResult, SimConfig};
use serde::Serialize;

use super::{policies, table::Table};

/// Arguments of `llmchain demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed for the 10 random tasks.
    #[arg(long, short = 's', default_value_t = 7)]
    pub seed: u64,

    /// Policies to compare (comma-separated; see `llmchain sim --help`). Default: the
    /// LLM kernel with SmolLM2 when fetched (else the builtin kernel), then the heuristics.
    #[arg(long, short = 'p', value_name = "LIST")]
    pub policy: Option<String>,

    /// Also write the tasks and schedules as JSON to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Heuristics the kernel is compared with. The kernel itself is always first:
/// `kernel:smollm2,q8` when the SmolLM2 weights have been fetched, else the
/// builtin kernel (see [`SMOLLM2_SPEC`] and [`run`]).
const DEFAULT_POLICIES: &str = "kernel,fcfs,sjf,sjf+easy,f1+easy,tetris,packer,bestfit,drf,random";

/// The LLM kernel spec the demo uses when the SmolLM2 weights are present.
const SMOLLM2_SPEC: &str = "kernel:smollm2,q8,every=1,deadline=30000";

#[derive(Serialize)]
struct DemoTask {
    index: u64,
    cpus: f64,
    mem_units: f64,
    duration_s: f64,
}

#[derive(Serialize)]
struct DemoSchedule<'a> {
    policy: &'a str,
    /// Task indices in start order (ties by index).
    schedule: Vec<u64>,
    /// Per task index: (start, end) in seconds.
    times: Vec<(f64, f64)>,
    total_time_s: f64,
    mean_bounded_slowdown: f64,
    rejected_proposals: u64,
}

/// Run the demo.
pub fn run(args: Args) -> Result<()> {
    let specs = match &args.policy {
        Some(list) => policies::split_specs(list),
        None => {
            let mut v = policies::split_specs(DEFAULT_POLICIES);
            if llmchain_kernel::backend::gguf::smollm2_path(true).exists() {
                println!("kernel: in-process SmolLM2-135M-Instruct (Q8_0), constrained to waiting task ids");
                v.insert(0, SMOLLM2_SPEC.to_string());
            } else {
                println!(
                    "kernel: SmolLM2 weights not found ({}); using the builtin kernel. To use the LLM: {}",
                    llmchain_kernel::backend::gguf::smollm2_path(true).display(),
                    llmchain_gguf::FETCH_HINT
                );
            }
            v
        }
    };
    policies::check_all(&specs, args.seed)?;
    if specs.iter().any(|s| {
        let s = s.trim().to_ascii_lowercase();
        s == "kernel" || s.starts_with("kernel:builtin")
    }) {
        println!("kernel: {}", llmchain_kernel::describe_builtin());
    }
    let w = seed_example::generate(args.seed)?;

    println!("LLMChain demo: the worked example (seed {})", args.seed);
    println!(
        "cluster: 1 node, {} CPUs, {} memory units (1 unit = {} MiB)\n",
        seed_example::CPUS,
        seed_example::MEM_UNITS,
        MEM_UNIT_MIB
    );
    let tasks: Vec<DemoTask> = w
        .tasks
        .iter()
        .map(|t| DemoTask {
            index: t.source_id,
            cpus: t.request.cpu_milli() as f64 / 1000.0,
            mem_units: t.request.mem_mib() as f64 / MEM_UNIT_MIB as f64,
            duration_s: t.runtime.map_or(0.0, |d| d.as_secs_f64()),
        })
        .collect();
    let mut t = Table::new(&["task", "cpu", "mem", "duration s"]);
    for d in &tasks {
        t.row(vec![
            d.index.to_string(),
            fmt_num(d.cpus),
            fmt_num(d.mem_units),
            fmt_num(d.duration_s),
        ]);
    }
    println!("tasks:\n{}", t.render());

    let mut runs: Vec<RunResult> = Vec::new();
    for spec in &specs {
        let mut policy = policies::build(spec, args.seed)?;
        runs.push(llmchain_sim::run(&w, &mut policy, &SimConfig::default())?);
    }
    let schedules: Vec<DemoSchedule<'_>> = runs.iter().map(schedule_of).collect();

    let mut t = Table::new(&[
        "policy",
        "schedule (task indices in start order)",
        "total time s",
        "mean bsld",
        "rejected",
    ]);
    for s in &schedules {
        t.row(vec![
            s.policy.to_string(),
            format!("{:?}", s.schedule),
            fmt_num(s.total_time_s),
            format!("{:.2}", s.mean_bounded_slowdown),
            s.rejected_proposals.to_string(),
        ]);
    }
    println!(
        "schedules (every start passed the validator):\n{}",
        t.render()
    );

    let mut header = vec!["task".to_string()];
    header.extend(schedules.iter().map(|s| s.policy.to_string()));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header_refs);
    for (i, task) in tasks.iter().enumerate() {
        let mut row = vec![task.index.to_string()];
        row.extend(
            schedules
                .iter()
                .map(|s| format!("{}–{}", fmt_num(s.times[i].0), fmt_num(s.times[i].1))),
        );
        t.row(row);
    }
    println!("per-task start–end (seconds):\n{}", t.render());

    if let Some(best) = schedules.iter().min_by(|a, b| {
        a.total_time_s
            .total_cmp(&b.total_time_s)
            .then(a.mean_bounded_slowdown.total_cmp(&b.mean_bounded_slowdown))
    }) {
        println!(
            "best: {} finishes all {} tasks in {} s (schedule {:?})",
            best.policy,
            tasks.len(),
            fmt_num(best.total_time_s),
            best.schedule
        );
    }
    if let Some(path) = &args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            seed: u64,
            tasks: &'a [DemoTask],
            schedules: &'a [DemoSchedule<'a>],
        }
        let text = serde_json::to_string_pretty(&Out {
            seed: args.seed,
            tasks: &tasks,
            schedules: &schedules,
        })?;
        super::write_output(path, &text)?;
    }
    Ok(())
}

fn schedule_of(r: &RunResult) -> DemoSchedule<'_> {
    let mut order: Vec<(u64, u64)> = r
        .tasks
        .iter()
        .map(|t| (t.start.map_or(u64::MAX, |s| s.0), t.source_id))
        .collect();
    order.sort_unstable();
    DemoSchedule {
        policy: &r.policy,
        schedule: order.into_iter().map(|(_, i)| i).collect(),
        times: r
            .tasks
            .iter()
            .map(|t| {
                (
                    t.start.map_or(f64::NAN, |s| s.as_secs_f64()),
                    t.end.map_or(f64::NAN, |e| e.as_secs_f64()),
                )
            })
            .collect(),
        total_time_s: r.metrics.makespan,
        mean_bounded_slowdown: r.metrics.bounded_slowdown.mean,
        rejected_proposals: r.metrics.rejected,
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
