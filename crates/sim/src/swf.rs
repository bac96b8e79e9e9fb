//! Standard Workload Format (SWF) reader: `.swf` and `.swf.gz` traces.
//!
//! # Format
//! One job per line, 18 whitespace-separated numeric fields (extra trailing
//! columns are tolerated and ignored); lines starting with `;` are header
//! comments; blank lines are ignored. Fields are integers; a decimal value
//! (some traces write the average CPU time as `552.21`) is accepted and
//! rounded to the nearest integer. `-1` means "missing" in every field.
//!
//! # How a trace becomes a [`Workload`] (RLScheduler convention)
//! * Cluster: one node with `MaxProcs` processors (else `MaxNodes`; else, with a
//!   note, the largest job's processor count). One processor = 1000 millicores.
//! * Memory is **not modelled**: SWF memory fields (7 and 10) are per-processor
//!   KB, missing in most traces (both Lublin files) and ignored by the
//!   published protocols; tasks and the node have 0 MiB of memory.
//! * Processors: `max(allocated (5), requested (8))`, where a missing (`-1`)
//!   field does not count — so the requested count is used when the allocated
//!   one is missing and vice versa (RLScheduler takes the same maximum).
//! * Actual run time = field 4 (seconds). Estimate = requested time (field 9);
//!   when it is missing (≤ 0) the actual run time is used instead, counted in
//!   [`WorkloadMeta::estimates_from_runtime`] and noted.
//! * Skipped and counted in [`WorkloadMeta::skipped`]: run time ≤ 0 or missing,
//!   processors ≤ 0 or missing (both fields), submit time missing.
//! * Job status (field 11) is not used to filter: failed and cancelled jobs
//!   still occupied the machine.
//! * User (12) and group (13): missing becomes 0 ("unknown").
//! * A missing job number (1) becomes the 1-based line number, noted.
//!
//! Malformed lines (fewer than 18 fields, non-numeric text) are errors naming
//! the file, line and field; with [`SwfOptions::lenient`] they are skipped and
//! counted instead.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use llmchain_core::{Cluster, Dur, Resources, TaskSpec, Time};
use serde::{Deserialize, Serialize};

use crate::{SimError, Workload, WorkloadMeta};

/// The 18 SWF field names, 1-based order.
pub const FIELD_NAMES: [&str; 18] = [
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user id",
    "group id",
    "executable number",
    "queue number",
    "partition number",
    "preceding job number",
    "think time",
];

/// Skip reasons recorded in [`WorkloadMeta::skipped`].
pub const SKIP_RUNTIME: &str = "jobs with run time <= 0 or missing";
/// See [`SKIP_RUNTIME`].
pub const SKIP_PROCS: &str = "jobs with processors <= 0 or missing";
/// See [`SKIP_RUNTIME`].
pub const SKIP_SUBMIT: &str = "jobs with submit time missing";
/// See [`SKIP_RUNTIME`].
pub const SKIP_MALFORMED: &str = "malformed lines (lenient)";

/// Reader options.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwfOptions {
    /// Skip and count malformed lines instead of failing on the first one.
    pub lenient: bool,
}

/// One SWF record, all 18 fields as written (`-1` = missing; decimals rounded).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwfJob {
    /// 1: job number.
    pub job: i64,
    /// 2: submit time, seconds.
    pub submit: i64,
    /// 3: wait time, seconds.
    pub wait: i64,
    /// 4: run time, seconds.
    pub run: i64,
    /// 5: allocated processors.
    pub alloc_procs: i64,
    /// 6: average CPU time used, seconds.
    pub avg_cpu: i64,
    /// 7: used memory, KB per processor.
    pub used_mem: i64,
    /// 8: requested processors.
    pub req_procs: i64,
    /// 9: requested time, seconds.
    pub req_time: i64,
    /// 10: requested memory, KB per processor.
    pub req_mem: i64,
    /// 11: status (1 completed, 0 failed, 5 cancelled).
    pub status: i64,
    /// 12: user id.
    pub user: i64,
    /// 13: group id.
    pub group: i64,
    /// 14: executable (application) number.
    pub executable: i64,
    /// 15: queue number.
    pub queue: i64,
    /// 16: partition number.
    pub partition: i64,
    /// 17: preceding job number.
    pub preceding: i64,
    /// 18: think time from preceding job, seconds.
    pub think: i64,
}

impl SwfJob {
    /// Parse one data line. `Err((field index 0-based or None for the line, reason))`.
    pub fn parse_line(line: &str) -> Result<(SwfJob, usize), (Option<usize>, String)> {
        let mut v = [0i64; 18];
        let mut n = 0usize;
        for (i, tok) in line.split_whitespace().enumerate() {
            if i < 18 {
                v[i] = parse_num(tok).map_err(|r| (Some(i), r))?;
            }
            n = i + 1;
        }
        if n < 18 {
            return Err((None, format!("expected 18 fields, found {n}")));
        }
        let job = SwfJob {
            job: v[0],
            submit: v[1],
            wait: v[2],
            run: v[3],
            alloc_procs: v[4],
            avg_cpu: v[5],
            used_mem: v[6],
            req_procs: v[7],
            req_time: v[8],
            req_mem: v[9],
            status: v[10],
            user: v[11],
            group: v[12],
            executable: v[13],
            queue: v[14],
            partition: v[15],
            preceding: v[16],
            think: v[17],
        };
        Ok((job, n - 18))
    }

    /// Processors used by the simulator: max of allocated and requested, ignoring missing ones.
    pub fn procs(&self) -> i64 {
        self.alloc_procs.max(self.req_procs)
    }
}

fn parse_num(tok: &str) -> Result<i64, String> {
    if let Ok(v) = tok.parse::<i64>() {
        return Ok(v);
    }
    match tok.parse::<f64>() {
        Ok(f) if f.is_finite() && f.abs() < 9.0e15 => Ok(f.round() as i64),
        _ => Err(format!("`{tok}` is not a number")),
    }
}

/// Header values the reader uses.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwfHeader {
    /// `; MaxProcs: N`.
    pub max_procs: Option<u64>,
    /// `; MaxNodes: N`.
    pub max_nodes: Option<u64>,
}

/// The bytes of a trace file, gunzipped when it starts with gzip's magic bytes.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    Ok(out)
}

/// Read an `.swf` or `.swf.gz` file (gzip is detected by its magic bytes).
pub fn read(path: &Path, opts: &SwfOptions) -> Result<Workload, SimError> {
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_bytes(path).map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    parse_str(&text, path, opts)
}

/// Parse SWF text; `path` is used in errors and metadata only.
pub fn parse_str(text: &str, path: &Path, opts: &SwfOptions) -> Result<Workload, SimError> {
    let swf_err = |line: usize, field: String, reason: String| SimError::Swf {
        path: path.to_path_buf(),
        line,
        field,
        reason,
    };
    let mut header = SwfHeader::default();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut from_runtime = 0u64;
    let mut extra_cols = 0u64;
    let mut renumbered = 0u64;
    let mut max_job_procs = 0u64;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(h) = t.strip_prefix(';') {
            if let Some((key, val)) = h.split_once(':') {
                let key = key.trim();
                if key == "MaxProcs" || key == "MaxNodes" {
                    let val = val.trim();
                    let n = match val.parse::<i64>() {
                        Ok(n) => n,
                        Err(_) if opts.lenient => {
                            *skipped.entry(SKIP_MALFORMED.into()).or_default() += 1;
                            continue;
                        }
                        Err(_) => {
                            return Err(swf_err(
                                lineno,
                                format!("header {key}"),
                                format!("`{val}` is not a number"),
                            ))
                        }
                    };
                    let slot = if key == "MaxProcs" {
                        &mut header.max_procs
                    } else {
                        &mut header.max_nodes
                    };
                    *slot = (n > 0).then_some(n as u64);
                }
            }
            continue;
        }
        let (job, extra) = match SwfJob::parse_line(t) {
            Ok(j) => j,
            Err(_) if opts.lenient => {
                *skipped.entry(SKIP_MALFORMED.into()).or_default() += 1;
                continue;
            }
            Err((field, reason)) => {
                let field = match field {
                    Some(f) => format!("{} ({})", f + 1, FIELD_NAMES[f]),
                    None => "line".to_string(),
                };
                return Err(swf_err(lineno, field, reason));
            }
        };
        if extra > 0 {
            extra_cols += 1;
        }
        if job.submit < 0 {
            *skipped.entry(SKIP_SUBMIT.into()).or_default() += 1;
            continue;
        }
        if job.run <= 0 {
            *skipped.entry(SKIP_RUNTIME.into()).or_default() += 1;
            continue;
        }
        let procs = job.procs();
        if procs <= 0 {
            *skipped.entry(SKIP_PROCS.into()).or_default() += 1;
            continue;
        }
        max_job_procs = max_job_procs.max(procs as u64);
        let runtime = Dur::from_secs(job.run as u64);
        let estimate = if job.req_time > 0 {
            Dur::from_secs(job.req_time as u64)
        } else {
            from_runtime += 1;
            runtime
        };
        let source_id = if job.job >= 0 {
            job.job as u64
        } else {
            renumbered += 1;
            lineno as u64
        };
        let id_of = |v: i64| {
            if v >= 0 {
                v.min(u32::MAX as i64) as u32
            } else {
                0
            }
        };
        tasks.push(TaskSpec {
            id: llmchain_core::TaskId(0),
            source_id,
            submit: Time::from_secs(job.submit as u64),
            request: Resources::new(procs as u64 * 1000, 0),
            runtime: Some(runtime),
            estimate: Some(estimate),
            user: id_of(job.user),
            group: id_of(job.group),
            priority: 0,
            name: None,
        });
    }
    let mut notes = Vec::new();
    let procs = match (header.max_procs, header.max_nodes) {
        (Some(p), _) => p,
        (None, Some(n)) => n,
        (None, None) => {
            notes.push(format!(
                "header has neither MaxProcs nor MaxNodes: cluster sized to the largest job ({max_job_procs} processors)"
            ));
            max_job_procs
        }
    };
    if from_runtime > 0 {
        notes.push(format!(
            "requested time missing for {from_runtime} jobs: used actual run time as estimate"
        ));
    }
    if extra_cols > 0 {
        notes.push(format!(
            "{extra_cols} lines had more than 18 fields: extra columns ignored"
        ));
    }
    if renumbered > 0 {
        notes.push(format!(
            "{renumbered} jobs had no job number: used their line number as source id"
        ));
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "skipped {}",
            crate::workload::fmt_skipped(&skipped)
        ));
    }
    let label = path
        .file_name()
        .map(|f| {
            f.to_string_lossy()
                .trim_end_matches(".gz")
                .trim_end_matches(".swf")
                .to_string()
        })
        .unwrap_or_else(|| "swf".into());
    let meta = WorkloadMeta {
        source: format!("swf:{}", path.display()),
        label,
        notes,
        skipped,
        estimates_from_runtime: from_runtime,
        perfect_estimates: false,
        seed: None,
        window: None,
    };
    Workload::new(
        Cluster::single(Resources::new(procs * 1000, 0)),
        tasks,
        meta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, lenient: bool) -> Result<Workload, SimError> {
        parse_str(text, Path::new("t.swf"), &SwfOptions { lenient })
    }

    const HDR: &str = "; MaxNodes: 8\n; MaxProcs: 16\n";

    #[test]
    fn maps_fields_and_prefers_maxprocs() {
        let w = parse(
            &format!("{HDR}7 100 5 30 4 -1 -1 -1 60 -1 1 3 2 -1 -1 -1 -1 -1\n"),
            false,
        )
        .unwrap();
        assert_eq!(w.cluster.nodes[0].capacity, Resources::new(16_000, 0));
        let t = &w.tasks[0];
        assert_eq!(
            (t.source_id, t.submit, t.request.cpu_milli()),
            (7, Time::from_secs(100), 4000)
        );
        assert_eq!(
            (t.runtime, t.estimate, t.user, t.group),
            (Some(Dur::from_secs(30)), Some(Dur::from_secs(60)), 3, 2)
        );
        assert_eq!(w.meta.estimates_from_runtime, 0);
        assert!(!w.meta.perfect_estimates);
    }

    #[test]
    fn missing_fields_handled_explicitly() {
        let text = "; MaxNodes: 8\n\
            1 0 -1 10 -1 -1 -1 2 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n\
            2 0 -1 10 3 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n\
            3 0 -1 0 3 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n\
            4 0 -1 10 -1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n\
            5 -1 -1 10 1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n\
            -1 5 -1 10 1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1 99 98\n";
        let w = parse(text, false).unwrap();
        assert_eq!(w.cluster.nodes[0].capacity.cpu_milli(), 8000);
        let procs: Vec<u64> = w
            .tasks
            .iter()
            .map(|t| t.request.cpu_milli() / 1000)
            .collect();
        assert_eq!(procs, vec![2, 3, 1]);
        assert_eq!(w.tasks[2].source_id, 7, "missing job number → line number");
        assert_eq!(w.meta.skipped[SKIP_RUNTIME], 1);
        assert_eq!(w.meta.skipped[SKIP_PROCS], 1);
        assert_eq!(w.meta.skipped[SKIP_SUBMIT], 1);
        assert_eq!(w.meta.estimates_from_runtime, 3);
        assert!(w.meta.perfect_estimates);
        let notes = w.meta.notes.join("\n");
        assert!(
            notes.contains("requested time missing for 3 jobs: used actual run time as estimate"),
            "{notes}"
        );
        assert!(notes.contains("extra columns ignored"), "{notes}");
    }

    #[test]
    fn malformed_line_names_file_line_and_field() {
        let text = format!("{HDR}1 0 -1 10 1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n1 0 -1 ten 1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n");
        let msg = parse(&text, false).unwrap_err().to_string();
        assert!(
            msg.starts_with("t.swf:4: SWF field 4 (run time): `ten`"),
            "{msg}"
        );
        let msg = parse(&format!("{HDR}1 0 -1 10\n"), false)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("t.swf:3") && msg.contains("expected 18 fields, found 4"),
            "{msg}"
        );
        let w = parse(&text, true).unwrap();
        assert_eq!((w.len(), w.meta.skipped[SKIP_MALFORMED]), (1, 1));
    }

    #[test]
    fn decimals_are_rounded() {
        let w = parse(
            &format!("{HDR}1 0 -1 10 1 552.21 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n"),
            false,
        )
        .unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn empty_is_a_clear_error() {
        let msg = parse(HDR, false).unwrap_err().to_string();
        assert!(msg.contains("no tasks") && msg.contains("t.swf"), "{msg}");
        let msg = parse(
            &format!("{HDR}1 0 -1 0 1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("every job was skipped"), "{msg}");
    }

    #[test]
    fn oversized_job_is_rejected_with_its_id() {
        let msg = parse(
            &format!("{HDR}77 0 -1 10 17 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 -1\n"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("task 77") && msg.contains("17000") && msg.contains("16000"),
            "{msg}"
        );
    }
}
