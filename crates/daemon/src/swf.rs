//! Export feedback records as a Standard Workload Format (SWF 2.2) trace, so
//! the simulator and the learning module replay real node history.
//!
//! Field mapping (18 fields, `-1` = unknown):
//! 1 task id · 2 submit, s since the first exported submit · 3 wait s (start −
//! submit) · 4 run s, **rounded up** (a task that ran at all counts ≥ 1 s) ·
//! 5 and 8 processors = ⌈millicores / 1000⌉ · 6 average CPU time per processor, s ·
//! 7 peak memory KB per processor · 9 the user's estimate s · 10 requested
//! memory KB per processor · 11 status: 1 completed, 0 failed / signaled /
//! OOM-killed / lost, 5 cancelled · 12 uid · 17 first dependency.
//! Tasks that never started get wait, run and allocated processors `-1`
//! (SWF readers skip them).

use std::fmt::Write as _;

use llmchain_core::ExitStatus;

use crate::protocol::HistoryRecord;

fn procs(cpu_millis: u64) -> u64 {
    cpu_millis.div_ceil(1000).max(1)
}

/// Render `records` (ascending id) as SWF text with a header naming `max_procs`.
pub fn write(records: &[HistoryRecord], max_procs: u64, host: &str) -> String {
    let mut s = String::with_capacity(256 + records.len() * 80);
    let first = records.iter().map(|r| r.task.submit_us).min().unwrap_or(0);
    let _ = writeln!(s, "; Version: 2.2");
    let _ = writeln!(
        s,
        "; Computer: llmchain node {}",
        host.replace(char::is_whitespace, "_")
    );
    let _ = writeln!(s, "; Installation: llmchain daemon history export");
    let _ = writeln!(s, "; UnixStartTime: {}", first / 1_000_000);
    let _ = writeln!(s, "; MaxJobs: {}", records.len());
    let _ = writeln!(s, "; MaxRecords: {}", records.len());
    let _ = writeln!(s, "; MaxNodes: 1");
    let _ = writeln!(s, "; MaxProcs: {max_procs}");
    let _ = writeln!(
        s,
        "; Note: one processor = 1000 millicores; run times rounded up to whole seconds"
    );
    for r in records {
        let t = &r.task;
        let p = procs(t.cpu_millis);
        let submit = (t.submit_us.saturating_sub(first)) / 1_000_000;
        let started = t.start_us.is_some();
        let wait = t
            .start_us
            .map(|st| (st.saturating_sub(t.submit_us) as f64 / 1e6).round() as i64)
            .unwrap_or(-1);
        let run = if started {
            r.runtime_ms.div_ceil(1000).max(1) as i64
        } else {
            -1
        };
        let alloc = if started { p as i64 } else { -1 };
        let cpu = t
            .cpu_time_ms
            .map(|c| (c as f64 / 1000.0 / p as f64).round() as i64)
            .unwrap_or(-1);
        let used_mem = t.peak_mem_mib.map(|m| (m * 1024 / p) as i64).unwrap_or(-1);
        let req_time = t.estimate_ms.map(|e| e.div_ceil(1000) as i64).unwrap_or(-1);
        let req_mem = (t.mem_mib * 1024 / p) as i64;
        let status = match t.exit {
            Some(ExitStatus::Completed) => 1,
            Some(ExitStatus::Cancelled) => 5,
            _ => 0,
        };
        let prev = t.after.first().map(|d| *d as i64).unwrap_or(-1);
        let think = if prev >= 0 { 0 } else { -1 };
        let _ = writeln!(
            s,
            "{} {submit} {wait} {run} {alloc} {cpu} {used_mem} {p} {req_time} {req_mem} {status} {} -1 -1 -1 -1 {prev} {think}",
            t.id, t.uid
        );
    }
    s
}
