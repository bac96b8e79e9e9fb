//! `llmchain top`: a live view of node telemetry, the queue and running tasks
//! (plain ANSI redraw; `--once` prints one frame, `--json` one stats snapshot).

use std::time::Duration;

use anyhow::Result;
use llmchain_daemon::protocol::{ListRequest, StatsResponse, TaskInfo};

use super::node_client::{fmt_ms, parse_duration_ms, print_json, Conn};

/// Arguments of `llmchain top`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// Refresh interval.
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Print one frame and exit.
    #[arg(long)]
    pub once: bool,
}

fn frame(s: &StatsResponse, queued: &[TaskInfo]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let t = &s.node.telemetry;
    let f = |k: &str| t.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let _ = writeln!(
        o,
        "llmchain top — {}  up {}  policy {}  limits: {}",
        s.node.hostname,
        fmt_ms(s.uptime_ms),
        s.policy,
        s.node.enforcement
    );
    let _ = writeln!(
        o,
        "cpu {:5.1}%  load {:.2}  mem {}/{} MiB used   scheduled: cpu {}/{}m  mem {}/{} MiB",
        f("cpu_util") * 100.0,
        f("load1"),
        f("mem_used_mib") as u64,
        f("mem_total_mib") as u64,
        s.node.capacity.cpu_millis - s.node.free.cpu_millis,
        s.node.capacity.cpu_millis,
        s.node.capacity.mem_mib - s.node.free.mem_mib,
        s.node.capacity.mem_mib
    );
    let c = &s.counters;
    let _ = writeln!(
        o,
        "queue {} (+{} held)  running {}  finished {}   submits {}  starts {}  decision p50 {:.0}µs p99 {:.0}µs",
        s.queue.queued,
        s.queue.held,
        s.queue.running,
        s.queue.finished,
        c.submits,
        c.starts,
        s.decision_latency.p50_us,
        s.decision_latency.p99_us
    );
    let _ = writeln!(
        o,
        "\nRUNNING\n{:>6} {:>6} {:>7} {:>8} {:>9} {:>9} {:>8}  NAME",
        "ID", "UID", "CPU", "MEM", "ELAPSED", "CPU-TIME", "MEM-NOW"
    );
    for r in &s.running {
        let _ = writeln!(
            o,
            "{:>6} {:>6} {:>6}m {:>6}Mi {:>9} {:>9} {:>6}Mi  {}",
            r.id,
            r.uid,
            r.cpu_millis,
            r.mem_mib,
            fmt_ms(r.elapsed_ms),
            r.cpu_time_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
            r.mem_used_mib
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            r.name.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        o,
        "\nQUEUED (first 15)\n{:>6} {:>6} {:>7} {:>8}  NAME",
        "ID", "UID", "CPU", "MEM"
    );
    for q in queued
        .iter()
        .filter(|t| t.state == llmchain_daemon::protocol::TaskState::Queued)
        .take(15)
    {
        let _ = writeln!(
            o,
            "{:>6} {:>6} {:>6}m {:>6}Mi  {}",
            q.id,
            q.uid,
            q.cpu_millis,
            q.mem_mib,
            q.name.as_deref().unwrap_or("-")
        );
    }
    o
}

/// Show the live view.
pub fn run(args: Args) -> Result<()> {
    let interval = Duration::from_millis(parse_duration_ms(&args.interval)?.max(100));
    let mut client = args.conn.connect()?;
    if args.conn.json {
        return print_json(&client.stats(true)?);
    }
    loop {
        let s = client.stats(true)?;
        let q = client.list(ListRequest {
            all: false,
            limit: Some(200),
            uid: None,
        })?;
        let text = frame(&s, &q);
        if args.once {
            print!("{text}");
            return Ok(());
        }
        // Clear screen, home cursor, draw.
        print!("\x1b[2J\x1b[H{text}");
        use std::io::Write;
        std::io::stdout().flush()?;
        std::thread::sleep(interval);
    }
}
