//! `llmchain history export --swf [FILE]`: the node's feedback records as an SWF
//! trace (or JSON), for the simulator and the learning module.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::node_client::{print_json, Conn};
use super::UsageError;

/// Arguments of `llmchain history`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with the history.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write every finished task with its request and outcome.
    Export {
        /// Write Standard Workload Format (18 fields, MaxProcs header).
        #[arg(long)]
        swf: bool,
        /// Output file (default: standard output).
        file: Option<PathBuf>,
    },
}

/// Export history.
pub fn run(args: Args) -> Result<()> {
    let Action::Export { swf, file } = args.action;
    if !swf && !args.conn.json {
        return Err(UsageError("choose a format: --swf or --json".into()).into());
    }
    let mut client = args.conn.connect()?;
    let records = client.history_all()?;
    if !swf {
        return print_json(&records);
    }
    let stats = client.stats(false)?;
    let max_procs = stats.node.capacity.cpu_millis.div_ceil(1000).max(1);
    let text = llmchain_daemon::swf::write(&records, max_procs, &stats.node.hostname);
    match file {
        Some(f) => {
            std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))?;
            eprintln!("wrote {} records to {}", records.len(), f.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
