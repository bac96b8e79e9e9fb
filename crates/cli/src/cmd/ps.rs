//! `llmchain ps`: list the node daemon's tasks.

use anyhow::Result;
use llmchain_daemon::protocol::ListRequest;

use super::node_client::{fmt_ms, now_us, print_json, state_word, Conn};

/// Arguments of `llmchain ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// Include finished tasks.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// At most this many (the newest).
    #[arg(long, short = 'n', default_value_t = 200)]
    pub limit: u32,
}

/// List tasks.
pub fn run(args: Args) -> Result<()> {
    let tasks = args.conn.connect()?.list(ListRequest {
        all: args.all,
        limit: Some(args.limit),
        uid: None,
    })?;
    if args.conn.json {
        return print_json(&tasks);
    }
    println!(
        "{:>6}  {:<12} {:>6} {:>7} {:>8} {:>9}  {:<16} COMMAND",
        "ID", "STATE", "UID", "CPU", "MEM", "TIME", "NAME"
    );
    let now = now_us();
    for t in tasks {
        let time = match (t.start_us, t.end_us) {
            (Some(s), Some(e)) => fmt_ms(e.saturating_sub(s) / 1000),
            (Some(s), None) => fmt_ms(now.saturating_sub(s) / 1000),
            _ => format!("-{}", fmt_ms(now.saturating_sub(t.submit_us) / 1000)),
        };
        let mut cmd = t.argv.join(" ");
        if cmd.chars().count() > 60 {
            cmd = cmd.chars().take(57).collect::<String>() + "...";
        }
        println!(
            "{:>6}  {:<12} {:>6} {:>6}m {:>6}Mi {:>9}  {:<16} {}",
            t.id,
            state_word(&t),
            t.uid,
            t.cpu_millis,
            t.mem_mib,
            time,
            t.name
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(16)
                .collect::<String>(),
            cmd
        );
    }
    Ok(())
}
