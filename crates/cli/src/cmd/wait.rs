//! `llmchain wait`: block until a task has finished; exit code 0 only when it completed.

use anyhow::Result;
use llmchain_core::ExitStatus;

use super::node_client::{parse_duration_ms, print_json, state_word, Conn};

/// Arguments of `llmchain wait`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// The task id.
    pub id: u64,
    /// Give up after this long (e.g. 30s) and print the task as it is.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// Wait.
pub fn run(args: Args) -> Result<()> {
    let timeout = args.timeout.as_deref().map(parse_duration_ms).transpose()?;
    let t = args.conn.connect()?.wait(args.id, timeout)?;
    if args.conn.json {
        print_json(&t)?;
    } else {
        println!(
            "task {} {}{}",
            t.id,
            state_word(&t),
            t.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    match t.exit {
        Some(ExitStatus::Completed) => Ok(()),
        None => anyhow::bail!("task {} has not finished yet ({})", t.id, t.state.as_str()),
        Some(_) => anyhow::bail!("task {} did not complete ({})", t.id, state_word(&t)),
    }
}
