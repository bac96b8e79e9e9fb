//! Task lists from JSON or CSV files (`tasks:FILE`), chosen by extension
//! (`.json`, else CSV).
//!
//! # Units (both formats)
//! `submit`, `runtime`, `estimate`: seconds (decimals allowed, rounded to ms);
//! `cpu`: cores (decimals allowed, rounded to millicores); `mem`: MiB;
//! `gpu`: devices. `id` is the task's source id (kept in reports; ids need not
//! be unique or sorted — tasks are ordered by submit time, ties by file order).
//! A missing `estimate` means "unknown" (policies see none); `runtime` is required.
//!
//! # JSON
//! ```json
//! {
//!   "cluster": { "nodes": [ { "name": "big", "cpu": 8, "mem": 16384, "gpu": 0, "count": 2 } ] },
//!   "tasks": [
//!     { "id": 1, "submit": 0, "cpu": 2, "mem": 1024, "runtime": 30, "estimate": 40, "user": 3 }
//!   ]
//! }
//! ```
//! Node fields `name`, `gpu` (default 0) and `count` (default 1; copies are
//! named `name-0`, `name-1`, ...) are optional. Task fields `estimate`, `user`,
//! `group`, `gpu`, `priority` and `name` are optional. Unknown fields are errors.
//!
//! # CSV
//! Lines starting with `#` before the header describe the cluster, one node
//! kind per line: `# node: cpu=8 mem=16384 [gpu=0] [count=1] [name=n]`.
//! The header must contain `id,submit,cpu,mem,runtime,estimate,user` (any
//! order; `estimate` and `user` cells may be empty; extra columns `gpu`,
//! `group`, `priority` are read when present, others ignored).
//! ```text
//! # node: cpu=8 mem=16384
//! id,submit,cpu,mem,runtime,estimate,user
//! 1,0,2,1024,30,40,3
//! 2,5,1,512,10,,3
//! ```

use std::path::Path;

use llmchain_core::{Cluster, Dur, NodeSpec, Resources, TaskId, TaskSpec, Time};
use serde::Deserialize;

use crate::{SimError, Workload, WorkloadMeta};

/// Columns a CSV task list must have.
pub const CSV_COLUMNS: [&str; 7] = ["id", "submit", "cpu", "mem", "runtime", "estimate", "user"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    cluster: JsonCluster,
    tasks: Vec<JsonTask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCluster {
    nodes: Vec<JsonNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonNode {
    name: Option<String>,
    cpu: f64,
    mem: f64,
    #[serde(default)]
    gpu: f64,
    count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTask {
    id: u64,
    submit: f64,
    cpu: f64,
    mem: f64,
    runtime: f64,
    estimate: Option<f64>,
    #[serde(default)]
    user: u32,
    #[serde(default)]
    group: u32,
    #[serde(default)]
    gpu: f64,
    #[serde(default)]
    priority: i32,
    name: Option<String>,
}

/// Read a task list; `.json` files as JSON, anything else as CSV.
pub fn read(path: &Path) -> Result<Workload, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        parse_json(&text, path)
    } else {
        parse_csv(&text, path)
    }
}

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, location: impl Into<String>, field: &str, reason: impl Into<String>) -> SimError {
        SimError::TaskList {
            path: self.path.to_path_buf(),
            location: location.into(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// A non-negative finite number scaled to integer units.
    fn scaled(&self, loc: &str, field: &str, v: f64, scale: f64) -> Result<u64, SimError> {
        if !v.is_finite() || v < 0.0 {
            return Err(self.err(loc, field, format!("{v} must be a non-negative number")));
        }
        let x = (v * scale).round();
        if x > 1e15 {
            return Err(self.err(loc, field, format!("{v} is too large")));
        }
        Ok(x as u64)
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &self,
        loc: &str,
        name: Option<String>,
        cpu: f64,
        mem: f64,
        gpu: f64,
        count: u32,
        out: &mut Vec<NodeSpec>,
    ) -> Result<(), SimError> {
        let cap = Resources::new(
            self.scaled(loc, "cpu", cpu, 1000.0)?,
            self.scaled(loc, "mem", mem, 1.0)?,
        )
        .with_gpus(self.scaled(loc, "gpu", gpu, 1.0)?);
        if cap.is_zero() {
            return Err(self.err(loc, "cpu", "a node needs some capacity"));
        }
        if count == 0 {
            return Err(self.err(loc, "count", "must be at least 1"));
        }
        let base = name.unwrap_or_else(|| format!("n{}", out.len()));
        for k in 0..count {
            let name = if count == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            out.push(NodeSpec {
                name,
                capacity: cap,
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn task(
        &self,
        loc: &str,
        id: u64,
        submit: f64,
        cpu: f64,
        mem: f64,
        gpu: f64,
        runtime: f64,
        estimate: Option<f64>,
    ) -> Result<TaskSpec, SimError> {
        let request = Resources::new(
            self.scaled(loc, "cpu", cpu, 1000.0)?,
            self.scaled(loc, "mem", mem, 1.0)?,
        )
        .with_gpus(self.scaled(loc, "gpu", gpu, 1.0)?);
        let runtime = Dur(self.scaled(loc, "runtime", runtime, 1000.0)?);
        let mut t = TaskSpec::new(
            0,
            Time(self.scaled(loc, "submit", submit, 1000.0)?),
            request,
            runtime,
        );
        t.id = TaskId(0);
        t.source_id = id;
        if let Some(e) = estimate {
            t.estimate = Some(Dur(self.scaled(loc, "estimate", e, 1000.0)?));
        }
        Ok(t)
    }
}

fn meta(path: &Path, kind: &str, tasks: &[TaskSpec]) -> WorkloadMeta {
    let missing = tasks.iter().filter(|t| t.estimate.is_none()).count();
    let mut notes = vec![format!("task list ({kind})")];
    if missing > 0 {
        notes.push(format!(
            "estimate missing for {missing} tasks: policies see no estimate for them"
        ));
    }
    WorkloadMeta {
        source: format!("tasks:{}", path.display()),
        label: path
            .file_stem()
            .map_or_else(|| "tasks".into(), |s| s.to_string_lossy().into_owned()),
        notes,
        ..Default::default()
    }
}

/// Parse a JSON task list; `path` is used in errors and metadata only.
pub fn parse_json(text: &str, path: &Path) -> Result<Workload, SimError> {
    let cx = Ctx { path };
    let file: JsonFile = serde_json::from_str(text).map_err(|e| {
        cx.err(
            format!("line {}, column {}", e.line(), e.column()),
            "-",
            e.to_string(),
        )
    })?;
    let mut nodes = Vec::new();
    for (i, n) in file.cluster.nodes.into_iter().enumerate() {
        cx.node(
            &format!("cluster.nodes[{i}]"),
            n.name,
            n.cpu,
            n.mem,
            n.gpu,
            n.count.unwrap_or(1),
            &mut nodes,
        )?;
    }
    if nodes.is_empty() {
        return Err(cx.err("cluster", "nodes", "the cluster needs at least one node"));
    }
    let mut tasks = Vec::with_capacity(file.tasks.len());
    for (i, t) in file.tasks.into_iter().enumerate() {
        let loc = format!("tasks[{i}]");
        let mut spec = cx.task(
            &loc, t.id, t.submit, t.cpu, t.mem, t.gpu, t.runtime, t.estimate,
        )?;
        spec.user = t.user;
        spec.group = t.group;
        spec.priority = t.priority;
        spec.name = t.name;
        tasks.push(spec);
    }
    let meta = meta(path, "json", &tasks);
    Workload::new(Cluster { nodes }, tasks, meta)
}

/// Parse a CSV task list; `path` is used in errors and metadata only.
pub fn parse_csv(text: &str, path: &Path) -> Result<Workload, SimError> {
    let cx = Ctx { path };
    let mut nodes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(c) = t.strip_prefix('#') else { break };
        let Some(spec) = c.trim().strip_prefix("node:") else {
            continue;
        };
        let loc = format!("line {}", i + 1);
        let (mut name, mut cpu, mut mem, mut gpu, mut count) = (None, None, None, 0.0, 1u32);
        for kv in spec.split_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| cx.err(&loc, kv, "expected key=value"))?;
            let num = || {
                v.parse::<f64>()
                    .map_err(|_| cx.err(&loc, k, format!("`{v}` is not a number")))
            };
            match k {
                "name" => name = Some(v.to_string()),
                "cpu" => cpu = Some(num()?),
                "mem" => mem = Some(num()?),
                "gpu" => gpu = num()?,
                "count" => {
                    count = v
                        .parse()
                        .map_err(|_| cx.err(&loc, k, format!("`{v}` is not a whole number")))?
                }
                _ => {
                    return Err(cx.err(
                        &loc,
                        k,
                        "unknown node key (known: name, cpu, mem, gpu, count)",
                    ))
                }
            }
        }
        let cpu = cpu.ok_or_else(|| cx.err(&loc, "cpu", "missing"))?;
        let mem = mem.ok_or_else(|| cx.err(&loc, "mem", "missing"))?;
        cx.node(&loc, name, cpu, mem, gpu, count, &mut nodes)?;
    }
    if nodes.is_empty() {
        return Err(cx.err(
            "line 1",
            "-",
            "a CSV task list needs its cluster first: add a line `# node: cpu=8 mem=16384`",
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| cx.err("header", "-", e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut idx = [0usize; 7];
    for (k, name) in CSV_COLUMNS.iter().enumerate() {
        idx[k] = col(name).ok_or_else(|| {
            cx.err(
                "header",
                name,
                format!(
                    "missing column; the header must have {}",
                    CSV_COLUMNS.join(",")
                ),
            )
        })?;
    }
    let (gpu_col, group_col, prio_col) = (col("gpu"), col("group"), col("priority"));
    let mut tasks = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            cx.err(format!("line {line}"), "-", e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let loc = format!("line {line} (row {})", row + 1);
        let cell = |c: usize| rec.get(c).unwrap_or("");
        let num = |c: usize, name: &str| -> Result<f64, SimError> {
            cell(c)
                .parse::<f64>()
                .map_err(|_| cx.err(&loc, name, format!("`{}` is not a number", cell(c))))
        };
        let opt = |c: Option<usize>, name: &str| -> Result<Option<f64>, SimError> {
            match c.map(cell) {
                None | Some("") => Ok(None),
                Some(_) => num(c.unwrap_or(0), name).map(Some),
            }
        };
        let id = cell(idx[0]).parse::<u64>().map_err(|_| {
            cx.err(
                &loc,
                "id",
                format!("`{}` is not a whole number", cell(idx[0])),
            )
        })?;
        let gpu = opt(gpu_col, "gpu")?.unwrap_or(0.0);
        let mut t = cx.task(
            &loc,
            id,
            num(idx[1], "submit")?,
            num(idx[2], "cpu")?,
            num(idx[3], "mem")?,
            gpu,
            num(idx[4], "runtime")?,
            opt(Some(idx[5]), "estimate")?,
        )?;
        let whole = |c: Option<usize>, name: &str| -> Result<u32, SimError> {
            match c.map(cell) {
                None | Some("") => Ok(0),
                Some(v) => v
                    .parse()
                    .map_err(|_| cx.err(&loc, name, format!("`{v}` is not a whole number"))),
            }
        };
        t.user = whole(Some(idx[6]), "user")?;
        t.group = whole(group_col, "group")?;
        t.priority = match prio_col.map(cell) {
            None | Some("") => 0,
            Some(v) => v
                .parse()
                .map_err(|_| cx.err(&loc, "priority", format!("`{v}` is not an integer")))?,
        };
        tasks.push(t);
    }
    let meta = meta(path, "csv", &tasks);
    Workload::new(Cluster { nodes }, tasks, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round() {
        let text = r#"{"cluster":{"nodes":[{"cpu":4,"mem":8192,"count":2,"name":"w"}]},
            "tasks":[{"id":9,"submit":1.5,"cpu":0.5,"mem":100,"runtime":10,"estimate":12,"user":3},
                     {"id":4,"submit":0,"cpu":4,"mem":8192,"runtime":1}]}"#;
        let w = parse_json(text, Path::new("t.json")).unwrap();
        assert_eq!(w.cluster.nodes.len(), 2);
        assert_eq!(w.cluster.nodes[1].name, "w-1");
        assert_eq!(w.tasks[0].source_id, 4);
        let t = &w.tasks[1];
        assert_eq!(
            (t.source_id, t.submit, t.request, t.user),
            (9, Time(1500), Resources::new(500, 100), 3)
        );
        assert_eq!(
            (t.runtime, t.estimate),
            (Some(Dur(10_000)), Some(Dur(12_000)))
        );
        assert_eq!(w.tasks[0].estimate, None);
        assert_eq!(w.meta.label, "t");
    }

    #[test]
    fn json_errors_name_place_and_field() {
        let bad_syntax = "{\"cluster\": {\"nodes\": []},\n \"tasks\": [ { \"id\": 1, } ] }";
        let msg = parse_json(bad_syntax, Path::new("t.json"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("t.json: line 2"), "{msg}");
        let neg = r#"{"cluster":{"nodes":[{"cpu":4,"mem":1}]},"tasks":[{"id":1,"submit":0,"cpu":1,"mem":1,"runtime":-3}]}"#;
        let msg = parse_json(neg, Path::new("t.json"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("tasks[0]") && msg.contains("`runtime`"),
            "{msg}"
        );
        let unknown = r#"{"cluster":{"nodes":[{"cpu":4,"mem":1}]},"tasks":[{"id":1,"submit":0,"cpu":1,"mem":1,"runtime":3,"colour":1}]}"#;
        let msg = parse_json(unknown, Path::new("t.json"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("colour"), "{msg}");
        let big = r#"{"cluster":{"nodes":[{"cpu":4,"mem":1}]},"tasks":[{"id":31,"submit":0,"cpu":5,"mem":1,"runtime":3}]}"#;
        let msg = parse_json(big, Path::new("t.json"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("task 31") && msg.contains("cpu"), "{msg}");
    }

    #[test]
    fn csv_round_and_errors() {
        let text = "# node: cpu=8 mem=16384\n# node: cpu=2 mem=10 count=2\nid,submit,cpu,mem,runtime,estimate,user\n1,0,2,1024,30,40,3\n2,5,1,512,10,,\n";
        let w = parse_csv(text, Path::new("t.csv")).unwrap();
        assert_eq!(w.cluster.nodes.len(), 3);
        assert_eq!(w.tasks[1].estimate, None);
        assert_eq!(
            (w.tasks[0].user, w.tasks[0].estimate),
            (3, Some(Dur::from_secs(40)))
        );
        let bad = "# node: cpu=8 mem=16384\nid,submit,cpu,mem,runtime,estimate,user\n1,0,2,1024,30,40,3\n2,x,1,512,10,,\n";
        let msg = parse_csv(bad, Path::new("t.csv")).unwrap_err().to_string();
        assert!(
            msg.contains("t.csv: line 4 (row 2): field `submit`"),
            "{msg}"
        );
        let msg = parse_csv("id,submit\n", Path::new("t.csv"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("# node:"), "{msg}");
        let msg = parse_csv(
            "# node: cpu=1 mem=1\nid,submit,cpu,mem,runtime,user\n",
            Path::new("t.csv"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("`estimate`") && msg.contains("missing column"),
            "{msg}"
        );
    }
}
