//! `llmchain daemon`: run the node daemon in the foreground (systemd runs it
//! like this; see docs/llmchain.service).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use llmchain_daemon::{Config, Durability, Shutdown, SocketAccess};

use super::node_client::{parse_cpu_millis, parse_size_mib};
use super::UsageError;

/// Arguments of `llmchain daemon`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Unix socket to listen on (default: $LLMCHAIN_SOCKET, $XDG_RUNTIME_DIR/llmchain/llmchain.sock,
    /// or /run/llmchain/llmchain.sock for root).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// State directory: SQLite database and task logs (default: $XDG_STATE_HOME/llmchain,
    /// or /var/lib/llmchain for root).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also serve the HTTP API on this loopback address, e.g. 127.0.0.1:8470.
    #[arg(long, value_name = "ADDR", requires = "token_file")]
    pub http: Option<SocketAddr>,
    /// File holding the HTTP bearer token (keep it mode 0600).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Initial scheduling policy (fcfs, sjf+easy, ...); a policy set at run time is remembered.
    #[arg(long, value_name = "SPEC", default_value = "fcfs")]
    pub policy: String,
    /// Let every local user connect (mode 0666 socket); tasks still belong to their submitter.
    #[arg(long)]
    pub all_users: bool,
    /// Schedulable CPUs (default: all usable CPUs), e.g. 2 or 1500m.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// Schedulable memory (default: the machine's), e.g. 8G.
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Commit durability: full (survives power loss; default) or normal (survives daemon crashes).
    #[arg(long, value_name = "MODE", default_value = "full")]
    pub durability: String,
    /// Parent cgroup name (two daemons on one machine need different ones).
    #[arg(long, value_name = "NAME", default_value = "llmchain")]
    pub cgroup_parent: String,
}

/// Run the daemon until SIGINT/SIGTERM.
pub fn run(args: Args) -> Result<()> {
    let mut c = Config::default();
    if let Some(d) = args.state_dir {
        c.state_dir = d;
    }
    if let Some(s) = args.socket {
        c.socket = s;
    }
    c.policy = args.policy;
    // Heuristic specs and `kernel...` specs alike: the daemon's policy can be the kernel.
    c.policy_factory = std::sync::Arc::new(|spec: &str| {
        llmchain_kernel::build_policy(spec, 0).map_err(|e| e.to_string())
    });
    c.cgroup_parent = args.cgroup_parent;
    c.handle_signals = true;
    if args.all_users {
        c.socket_access = SocketAccess::AllUsers;
    }
    c.durability = match args.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => {
            return Err(UsageError(format!(
                "--durability must be full or normal, not {other:?}"
            ))
            .into())
        }
    };
    if args.cpus.is_some() || args.mem.is_some() {
        let info = llmchain_node::discover().context("discovering the machine")?;
        let cap = llmchain_node::capacity(&info);
        let cpu = args
            .cpus
            .as_deref()
            .map(parse_cpu_millis)
            .transpose()?
            .unwrap_or(cap.cpu_milli());
        let mem = args
            .mem
            .as_deref()
            .map(parse_size_mib)
            .transpose()?
            .unwrap_or(cap.mem_mib());
        c.capacity = Some((cpu, mem));
    }
    if let Some(addr) = args.http {
        let f = args
            .token_file
            .as_ref()
            .expect("clap requires --token-file with --http");
        let token = std::fs::read_to_string(f)
            .with_context(|| format!("reading the HTTP token file {}", f.display()))?
            .trim()
            .to_string();
        if token.len() < 16 {
            return Err(UsageError(format!(
                "the token in {} is shorter than 16 characters",
                f.display()
            ))
            .into());
        }
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(f)
            .map(|m| m.mode() & 0o077 != 0)
            .unwrap_or(false)
        {
            tracing::warn!(
                "token file {} is readable by other users; chmod 600 it",
                f.display()
            );
        }
        c.http = Some(addr);
        c.http_token = Some(token);
    }
    eprintln!(
        "llmchain daemon: socket {} state {}",
        c.socket.display(),
        c.state_dir.display()
    );
    llmchain_daemon::run(c, Shutdown::new()).context("the daemon stopped with an error")
}
