//! `llmchain cancel`: cancel a queued or running task.

use anyhow::Result;

use super::node_client::{print_json, state_word, Conn};

/// Arguments of `llmchain cancel`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// The task id.
    pub id: u64,
}

/// Cancel.
pub fn run(args: Args) -> Result<()> {
    let t = args.conn.connect()?.cancel(args.id)?;
    if args.conn.json {
        print_json(&t)
    } else {
        let what = if t.state == llmchain_daemon::protocol::TaskState::Running {
            "killing".into()
        } else {
            state_word(&t)
        };
        println!("task {} {what}", t.id);
        Ok(())
    }
}
