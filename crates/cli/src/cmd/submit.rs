//! `llmchain submit`: queue a command on the node daemon.

use std::collections::BTreeMap;

use anyhow::Result;
use llmchain_daemon::protocol::SubmitRequest;

use super::node_client::{parse_cpu_millis, parse_duration_ms, parse_size_mib, print_json, Conn};
use super::UsageError;

/// Arguments of `llmchain submit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// CPUs (cores, e.g. 2 or 0.5, or millicores like 500m); enforced as a CPU quota.
    #[arg(long, default_value = "1")]
    pub cpu: String,
    /// Memory limit (e.g. 512M, 1G); exceeding it gets the task OOM-killed.
    #[arg(long, default_value = "512M")]
    pub mem: String,
    /// Runtime estimate (e.g. 90s, 10m); helps SJF and backfilling policies.
    #[arg(long, value_name = "DURATION")]
    pub estimate: Option<String>,
    /// Task name shown in listings.
    #[arg(long)]
    pub name: Option<String>,
    /// Free-form label (project, experiment).
    #[arg(long)]
    pub label: Option<String>,
    /// Priority hint (higher = sooner; policies may ignore it).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    /// Start only after task ID completed successfully (repeatable).
    #[arg(long, value_name = "ID")]
    pub after: Vec<u64>,
    /// Set an environment variable (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Do not pass this shell's environment (only --env values and PATH).
    #[arg(long)]
    pub clean_env: bool,
    /// Working directory (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<std::path::PathBuf>,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Submit.
pub fn run(args: Args) -> Result<()> {
    let mut env: BTreeMap<String, String> = if args.clean_env {
        std::env::vars().filter(|(k, _)| k == "PATH").collect()
    } else {
        std::env::vars().collect()
    };
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--env {kv:?} is not K=V")))?;
        env.insert(k.to_string(), v.to_string());
    }
    let cwd = match args.cwd {
        Some(d) => std::path::absolute(d)?,
        None => std::env::current_dir()?,
    };
    let req = SubmitRequest {
        argv: args.command,
        cwd: Some(cwd.to_string_lossy().into_owned()),
        env,
        cpu_millis: parse_cpu_millis(&args.cpu)?,
        mem_mib: parse_size_mib(&args.mem)?,
        estimate_ms: args
            .estimate
            .as_deref()
            .map(parse_duration_ms)
            .transpose()?,
        priority: args.priority,
        name: args.name,
        label: args.label,
        after: args.after,
    };
    let id = args.conn.connect()?.submit(req)?;
    if args.conn.json {
        print_json(&serde_json::json!({ "id": id }))
    } else {
        println!("{id}");
        Ok(())
    }
}
