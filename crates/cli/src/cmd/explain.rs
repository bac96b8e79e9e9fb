//! `llmchain explain ID`: ask the node daemon why a task is pending — short
//! resources, unmet dependencies, the tasks ahead of it in the order of the
//! policy in use, and what the policy (a kernel's model) said about it (the
//! simulator-side explanation of kernel decisions is a separate mode).

use anyhow::Result;

use super::node_client::{print_json, Conn};

/// Arguments of `llmchain explain` (daemon mode).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub conn: Conn,
    /// The task id.
    pub id: u64,
}

/// Explain.
pub fn run(args: Args) -> Result<()> {
    let e = args.conn.connect()?.explain(args.id)?;
    if args.conn.json {
        return print_json(&e);
    }
    println!("{}", e.summary);
    for b in &e.blocked_by {
        println!(
            "  short of {}: needs {} {}, {} free of {}",
            b.dim, b.need, b.unit, b.free, b.capacity
        );
    }
    if !e.unmet_deps.is_empty() {
        println!("  waiting for tasks {:?}", e.unmet_deps);
    }
    if e.ahead_count > 0 {
        let ids: Vec<String> = e.ahead.iter().map(|a| a.id.to_string()).collect();
        let more = if e.ahead_count as usize > e.ahead.len() {
            ", ..."
        } else {
            ""
        };
        println!(
            "  ahead of it in the policy's order ({}): {}{more}",
            e.ahead_count,
            ids.join(", ")
        );
    }
    if !e.order.is_empty() {
        println!("  order: {}", e.order);
    }
    if let Some(r) = &e.policy_remark {
        println!("  the policy said: {r}");
    }
    if let Some(r) = &e.last_rejection {
        println!("  last refused proposal: {r}");
    }
    println!("  policy: {}", e.policy);
    Ok(())
}
