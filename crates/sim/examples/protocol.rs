//! The RLScheduler protocol from the command line: average bounded slowdown
//! per policy over N sampled sequences of L jobs.
//!
//! `cargo run --release -p llmchain-sim --example protocol -- [WORKLOAD] [POLICIES] [N] [L] [SEED]`
//! (defaults: `swf:data/traces/lublin_256.swf`, the eight baseline specs, 10, 1024, 1).
//!
//! Policies are `llmchain_policy::build` specs, or `rl:<fcfs|sjf|f1|wfp3|unicep>[+easy]`:
//! a re-implementation of the RLScheduler simulator's semantics for comparison
//! with its published tables — the scheduler **commits** to the best-scoring job
//! and waits until that job fits (new arrivals cannot overtake it); with `+easy`
//! it meanwhile backfills, in FCFS order, jobs that fit now and end (by their
//! estimate) strictly before the committed job's earliest start. F1 there sees
//! the trace's absolute submit times (the window's offset is added back).
//!
//! The library form of these semantics is `llmchain_policy::Committed`
//! (`SPEC+commit[-easy]` in every `--policy`), which works over any policy's
//! order; this example stays a separate, minimal re-implementation so each
//! cross-checks the other (`rl:sjf+easy` = `sjf+commit-easy` on Lublin-1).

use std::time::Instant;

use llmchain_core::{Decision, Policy, Resources, Snapshot, TaskId, Time, WaitingTask};
use llmchain_sim::{aggregate, load, run, sample, SimConfig, WorkloadSpec};

/// RLScheduler-style heuristic: commit to the best job, block until it fits.
struct RlCompat {
    name: String,
    score: String,
    easy: bool,
    /// Added to submit times for F1 (absolute trace time), seconds.
    offset_s: f64,
    committed: Option<TaskId>,
    planned: Vec<(Time, Resources)>,
}

impl RlCompat {
    fn score(&self, t: &WaitingTask, now: Time) -> f64 {
        let est = t.estimate.map_or(0.0, |e| e.as_secs_f64());
        let procs = t.request.cpu_milli() as f64 / 1000.0;
        let submit = t.submit.as_secs_f64();
        let wait = now.saturating_since(t.submit).as_secs_f64();
        match self.score.as_str() {
            "fcfs" => submit,
            "sjf" => est,
            "f1" => {
                let s = submit + self.offset_s;
                (if est > 0.0 { est } else { 0.1 }).log10() * procs
                    + 870.0 * (if s > 0.0 { s } else { 0.1 }).log10()
            }
            "wfp3" => -(wait / est).powi(3) * procs,
            "unicep" => -(wait + 1e-15) / ((procs + 1e-15).log2() * est),
            other => panic!("unknown rl score {other}"),
        }
    }
}

impl Policy for RlCompat {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, snap: &Snapshot<'_>, out: &mut Vec<Decision>) {
        let mut free = snap.free_vec();
        self.planned.clear();
        let proposed = |out: &Vec<Decision>, id: TaskId| out.iter().any(|d| d.task() == id);
        loop {
            let head = match self.committed.and_then(|id| snap.waiting_task(id)) {
                Some(t) if !proposed(out, t.id) => t,
                _ => {
                    let best =
                        snap.waiting
                            .iter()
                            .filter(|t| !proposed(out, t.id))
                            .min_by(|a, b| {
                                self.score(a, snap.now)
                                    .total_cmp(&self.score(b, snap.now))
                                    .then(a.id.cmp(&b.id))
                            });
                    match best {
                        Some(t) => t,
                        None => {
                            self.committed = None;
                            return;
                        }
                    }
                }
            };
            self.committed = Some(head.id);
            if let Some(n) = Snapshot::first_fit(&head.request, &free) {
                free[n.0 as usize] -= head.request;
                out.push(Decision::start(head.id, n));
                self.planned
                    .push((snap.now + head.estimate.unwrap_or_default(), head.request));
                self.committed = None;
                continue;
            }
            if self.easy {
                // Earliest start of the committed job from estimated ends (single node).
                let mut ends: Vec<(Time, Resources)> = snap
                    .running
                    .iter()
                    .map(|r| (r.expected_end.unwrap_or(snap.now), r.request))
                    .chain(self.planned.iter().copied())
                    .collect();
                ends.sort_by_key(|e| e.0);
                let mut avail = free[0];
                let mut shadow = snap.now;
                for (t, r) in ends {
                    avail += r;
                    shadow = t;
                    if head.request.fits_in(&avail) {
                        break;
                    }
                }
                for t in snap.waiting {
                    if t.id == head.id || proposed(out, t.id) {
                        continue;
                    }
                    if snap.now + t.estimate.unwrap_or_default() < shadow
                        && t.request.fits_in(&free[0])
                    {
                        free[0] -= t.request;
                        out.push(Decision::start(t.id, llmchain_core::NodeId(0)));
                    }
                }
            }
            return;
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let spec = WorkloadSpec::parse(&arg(0, &format!("swf:{root}/data/traces/lublin_256.swf")))?;
    let policies = arg(1, "fcfs,sjf,f1,wfp3,unicep,fcfs+easy,sjf+easy,f1+easy");
    let n: usize = arg(2, "10").parse()?;
    let len: usize = arg(3, "1024").parse()?;
    let seed: u64 = arg(4, "1").parse()?;
    let w = load(&spec, seed, false)?;
    let seqs = sample(&w, n, len, seed)?;
    println!(
        "{} ({} tasks), {n} x {len}, seed {seed}",
        w.meta.label,
        w.len()
    );
    println!(
        "{:<12} {:>12} {:>10} {:>10} {:>8} {:>10} {:>12}",
        "policy", "avg bsld", "avg wait", "p99 bsld", "util", "events", "events/s"
    );
    for p in policies.split(',') {
        let t0 = Instant::now();
        let mut runs = Vec::new();
        for s in &seqs {
            let mut pol: Box<dyn Policy> = match p.strip_prefix("rl:") {
                Some(rest) => {
                    let (score, easy) = match rest.strip_suffix("+easy") {
                        Some(sc) => (sc, true),
                        None => (rest, false),
                    };
                    Box::new(RlCompat {
                        name: p.to_string(),
                        score: score.to_string(),
                        easy,
                        offset_s: s.meta.window.map_or(0.0, |w| w.rebased_from.as_secs_f64()),
                        committed: None,
                        planned: Vec::new(),
                    })
                }
                None => llmchain_policy::build(p, &llmchain_policy::BuildCtx { seed })?,
            };
            runs.push(run(s, &mut pol, &SimConfig::default())?);
        }
        let secs = t0.elapsed().as_secs_f64();
        let a = aggregate(&runs).ok_or("no runs")?;
        let m = &a.metrics;
        println!(
            "{:<12} {:>12.2} {:>10.0} {:>10.1} {:>8.3} {:>10} {:>12.0}",
            a.policy,
            m.bounded_slowdown.mean,
            m.wait.mean,
            m.bounded_slowdown.p99,
            m.utilisation.cpu,
            m.events,
            m.events as f64 / secs
        );
    }
    Ok(())
}
