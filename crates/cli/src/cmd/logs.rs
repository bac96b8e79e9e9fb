//! `llmchain logs`: print a task's output; `-f` follows it until the task ends.

use std::io::Write;

use anyhow::Result;
use llmchain_daemon::protocol::{LogChunk, LogStream, LogsRequest};

use super::node_client::Conn;

/// Arguments of `llmchain logs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// The task id.
    pub id: u64,
    /// Keep printing output until the task has finished.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Show standard error instead of standard output.
    #[arg(long)]
    pub stderr: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<u32>,
}

/// Print logs.
pub fn run(args: Args) -> Result<()> {
    let stream = if args.stderr {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    let mut client = args.conn.connect()?;
    let json = args.conn.json;
    let mut out = std::io::stdout().lock();
    let mut print = |c: &LogChunk| -> std::io::Result<()> {
        if json {
            writeln!(out, "{}", serde_json::to_string(c).unwrap_or_default())?;
        } else {
            out.write_all(c.data.as_bytes())?;
        }
        out.flush()
    };
    let mut offset = None;
    let mut tail = args.tail;
    loop {
        let req = LogsRequest {
            id: args.id,
            stream,
            offset,
            tail_lines: tail.take(),
            follow: args.follow,
        };
        let mut last = None;
        let mut failed = None;
        client.logs(req, |c| {
            if let Err(e) = print(c) {
                failed.get_or_insert(e);
            }
            last = Some((c.data.is_empty(), c.next_offset, c.eof));
        })?;
        if let Some(e) = failed {
            // A closed pipe (`llmchain logs 3 | head`) is not an error.
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        // Follow streams to the end in one request; otherwise chunks are read until no more data.
        match last {
            Some((empty, next, eof)) if !args.follow && !empty && !eof => offset = Some(next),
            _ => return Ok(()),
        }
    }
}
