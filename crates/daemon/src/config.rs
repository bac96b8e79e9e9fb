//! The daemon's settings: one serde struct with documented defaults; the CLI
//! overrides fields from flags. Also the default socket and state paths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use llmchain_core::Policy;
use serde::{Deserialize, Serialize};

/// Who may connect to the Unix socket.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketAccess {
    /// Mode 0600 inside a 0700 directory: only the daemon's uid (and root) can connect. Default.
    #[default]
    Owner,
    /// Mode 0666 in a 0755 directory: every local user can connect; each task belongs to the
    /// uid that submitted it (peer credentials) and only that uid or root may cancel it, wait
    /// on it or read its logs. Use for a root daemon serving several users.
    AllUsers,
}

/// How durable a commit is.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: an accepted task survives power loss. Default.
    #[default]
    Full,
    /// `synchronous=NORMAL` (WAL): survives a daemon crash, may lose the last
    /// commits on power loss. Faster on slow disks.
    Normal,
}

/// Builds a policy from a spec string (`fcfs`, `sjf+easy`, `kernel:...`).
/// The default is [`default_policy_factory`]; the CLI routes `kernel:` specs elsewhere.
pub type PolicyFactory =
    Arc<dyn Fn(&str) -> Result<Box<dyn Policy + Send>, String> + Send + Sync + 'static>;

/// The default factory: `llmchain_policy::build` with seed 0.
pub fn default_policy_factory() -> PolicyFactory {
    Arc::new(|spec: &str| {
        llmchain_policy::build(spec, &llmchain_policy::BuildCtx { seed: 0 })
            .map_err(|e| e.to_string())
    })
}

/// Daemon settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Unix socket path. Default: [`default_socket_path`].
    pub socket: PathBuf,
    /// Who may connect to the socket. Default: owner only.
    #[serde(default)]
    pub socket_access: SocketAccess,
    /// State directory (SQLite database `state.sqlite`, task logs under `logs/`).
    /// Default: [`default_state_dir`].
    pub state_dir: PathBuf,
    /// Optional loopback HTTP listener (e.g. `127.0.0.1:8470`); needs `http_token`.
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Bearer token for HTTP (read from a file by the CLI). Required when `http` is set.
    #[serde(default, skip_serializing)]
    pub http_token: Option<String>,
    /// Initial policy spec when the state has none. Default `fcfs`.
    pub policy: String,
    /// Schedulable capacity override in (millicores, MiB); default: the machine's (node HAL).
    #[serde(default)]
    pub capacity: Option<(u64, u64)>,
    /// Name of the daemon's parent cgroup (task cgroups are `<parent>/task-<id>`).
    /// Two daemons on one machine need different names. Default `llmchain`.
    pub cgroup_parent: String,
    /// Commit durability. Default full.
    #[serde(default)]
    pub durability: Durability,
    /// Largest request frame, bytes. Default [`crate::frame::MAX_FRAME`].
    pub max_frame: usize,
    /// Install SIGINT/SIGTERM handlers that shut the daemon down (the CLI sets this).
    #[serde(default)]
    pub handle_signals: bool,
    /// Builds policies from specs.
    #[serde(skip, default = "default_policy_factory")]
    pub policy_factory: PolicyFactory,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("socket", &self.socket)
            .field("socket_access", &self.socket_access)
            .field("state_dir", &self.state_dir)
            .field("http", &self.http)
            .field(
                "http_token",
                &self.http_token.as_ref().map(|_| "<redacted>"),
            )
            .field("policy", &self.policy)
            .field("capacity", &self.capacity)
            .field("cgroup_parent", &self.cgroup_parent)
            .field("durability", &self.durability)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl Config {
    /// Defaults with the given state directory; the socket goes inside it
    /// unless changed (tests and benchmarks use this with a temp dir).
    pub fn in_dir(state_dir: &Path) -> Self {
        Config {
            socket: state_dir.join("llmchain.sock"),
            socket_access: SocketAccess::Owner,
            state_dir: state_dir.to_path_buf(),
            http: None,
            http_token: None,
            policy: "fcfs".into(),
            capacity: None,
            cgroup_parent: "llmchain".into(),
            durability: Durability::Full,
            max_frame: crate::frame::MAX_FRAME,
            handle_signals: false,
            policy_factory: default_policy_factory(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config::in_dir(&default_state_dir());
        c.socket = default_socket_path();
        c
    }
}

fn is_root() -> bool {
    // SAFETY-free: geteuid has no preconditions; libc call wrapped by nix-less helper.
    crate::sys::euid() == 0
}

/// `$LLMCHAIN_SOCKET`, else `$XDG_RUNTIME_DIR/llmchain/llmchain.sock`, else
/// `/run/llmchain/llmchain.sock` for root and `/tmp/llmchain-$UID/llmchain.sock` otherwise.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LLMCHAIN_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/run/llmchain/llmchain.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(d) => PathBuf::from(d).join("llmchain/llmchain.sock"),
        None => PathBuf::from(format!(
            "/tmp/llmchain-{}/llmchain.sock",
            crate::sys::euid()
        )),
    }
}

/// `$LLMCHAIN_STATE_DIR`, else `/var/lib/llmchain` for root, else
/// `$XDG_STATE_HOME/llmchain`, else `~/.local/state/llmchain`.
pub fn default_state_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LLMCHAIN_STATE_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/var/lib/llmchain");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(d).join("llmchain");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/llmchain")
}
