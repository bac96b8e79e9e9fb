//! LLMChain's node daemon: the application interface of one real node.
//!
//! Applications (the `llmchain` CLI, scripts over HTTP) submit tasks; the
//! daemon persists them in SQLite, lets a [`llmchain_core::Policy`] decide
//! which start — called exactly like the simulator calls it, through the
//! [`llmchain_core::Validator`] — runs them with `llmchain_node`'s
//! cgroup-enforced executor, and records every outcome as a feedback record.
//!
//! ```text
//!  client ──frame──► server (tokio) ──► handlers::dispatch ──► State (mutex)
//!                                              │ submit: queue row for the group commit
//!                                              ▼
//!            db writer thread ── commit (one fsync per batch) ──► ack to handler → reply
//!                                              │ Event::Admitted(rows)
//!                                              ▼
//!                      scheduler thread ◄── Event (Admitted | Wake | Exited | Explain | SetPolicy | Shutdown)
//!                         snapshot → decide → validate → spawn ──► wait thread per task
//!                                                                     └── Event::Exited
//! ```
//!
//! # Entry points
//! * [`run`] — start the daemon (blocking; tests run it on a thread with a temp dir).
//! * [`client::Client`] — the blocking client the CLI and tests use.
//! * [`protocol`] — the versioned `Request`/`Response` enums; [`frame`] — framing.
//!
//! # Locking rule
//! There is **one** state lock: `Shared::state` (a `std::sync::Mutex<State>`).
//! * It is taken at most once per request handler (twice for `submit`: once to
//!   validate, once to insert after the commit) and a bounded number of times
//!   per scheduler step (build snapshot; reserve accepted tasks; record each
//!   started task; record each exit).
//! * It is **never** held across an `.await`, while calling the policy, while
//!   spawning or killing processes, while reading cgroup files, or while
//!   waiting for the database. Database writes are queued to the writer
//!   thread while holding it (a channel send), never awaited under it.
//! * The telemetry sampler has its own mutex, never taken while the state lock is held.
//!   The event-sender mutex is a leaf lock (held only for one channel send).
//!
//! # Scheduling is event-driven
//! The scheduler thread blocks on its event channel and makes a decision point
//! after each batch of events: every submit, every exit, every cancel and every
//! policy change. There is no polling timer (log *following* polls its file).
//!
//! # Durability and recovery
//! A submit is answered only after its row is committed (WAL,
//! `synchronous=FULL` by default); concurrent submits share one commit.
//! State transitions after that are queued to the same writer without waiting.
//! On start after a crash:
//! * queued tasks are queued again;
//! * tasks recorded as running are marked `lost`: if their cgroup still holds
//!   processes they are killed first (reason says so), otherwise the reason
//!   says the process was gone — the daemon does not re-adopt processes;
//! * a task recorded as queued whose cgroup still holds processes (it was
//!   started in the instant before the crash, before its start was committed)
//!   is killed and marked `lost` too, so no task ever runs twice.
//!
//! Nothing accepted is dropped: every task ends `finished` with a status and,
//! where the daemon knows more, a reason.
//!
//! # Ownership
//! A task belongs to the uid that submitted it (Unix peer credentials). Only
//! that uid or root may cancel it, wait on it or read its logs; others see it
//! in listings without its command. HTTP callers act as the daemon's own uid.
//! A root daemon runs each task as its submitter's uid.

pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod frame;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod protocol;
mod sched;
pub mod server;
pub mod state;
pub mod swf;
mod sys;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use llmchain_core::{ExitStatus, Resources};
use llmchain_node::{Executor, ExecutorConfig};

pub use client::{Client, ClientError};
pub use config::{
    default_socket_path, default_state_dir, Config, Durability, PolicyFactory, SocketAccess,
};
pub use error::DaemonError;

use crate::db::Op;
use crate::protocol::TaskState;
use crate::state::{now_us, Event, Shared, State, Task};

/// Stops a running daemon from any thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered signal.
    pub fn new() -> Self {
        Shutdown {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Ask the daemon to stop (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether stop was asked.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Result of the daemon library.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> DaemonError + 'a {
    move |source| DaemonError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Run the daemon until `shutdown` is triggered (or SIGINT/SIGTERM with
/// [`Config::handle_signals`]). Blocks; builds its own tokio runtime.
pub fn run(config: Config, shutdown: Shutdown) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("llmchain-io")
        .enable_all()
        .build()
        .map_err(io("start the async runtime", std::path::Path::new("")))?;
    rt.block_on(run_async(config, shutdown))
}

async fn run_async(config: Config, shutdown: Shutdown) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if config.http.is_some() && config.http_token.as_deref().map_or(true, str::is_empty) {
        return Err(DaemonError::Config(
            "an HTTP listener needs a bearer token (http_token / --token-file)".into(),
        ));
    }
    let dir = config.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(io("create state directory", &dir))?;
    if config.socket_access == SocketAccess::Owner {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod state directory", &dir))?;
    } else {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io("chmod state directory", &dir))?;
    }
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(io("create log directory", &log_dir))?;
    if config.socket_access == SocketAccess::AllUsers {
        // Root-run daemons write logs for tasks running as other uids: the executor
        // opens the files before switching user, so the directory stays private.
        std::fs::set_permissions(&log_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod log directory", &log_dir))?;
    }

    // Claim the socket first: a second daemon on the same state must fail before touching anything.
    let listener = server::bind(&config.socket, config.socket_access)?;

    let db_path = db::db_path(&dir);
    let conn = db::open(&db_path, config.durability)?;
    let loaded = db::load(&conn, &db_path)?;
    let max_id = db::max_id(&conn, &db_path)?;
    // The scheduler's event channel exists before the writer: the writer hands
    // each commit's new tasks straight to the scheduler (`Event::Admitted`).
    let (tx, rx) = mpsc::channel();
    let (writer, writer_join) = {
        let tx = tx.clone();
        db::spawn_writer_with(
            conn,
            db_path.clone(),
            Some(config.durability),
            move |rows| {
                let _ = tx.send(Event::Admitted(rows));
            },
        )?
    };

    let executor = Executor::new(ExecutorConfig {
        cgroup_parent: config.cgroup_parent.clone(),
        log_dir: log_dir.clone(),
        ..ExecutorConfig::default()
    })?;
    tracing::info!(mode = executor.mode().name(), "executor ready");
    let stale = executor.cleanup_stale(true)?;
    let survivors: BTreeSet<u64> = stale
        .survivors
        .iter()
        .filter_map(|s| s.task.map(|t| t.0))
        .collect();

    let info = llmchain_node::discover()?;
    let capacity = match config.capacity {
        Some((cpu, mem)) => Resources::new(cpu, mem),
        None => llmchain_node::capacity(&info),
    };

    // Policy: the stored spec (set at run time) wins over the configured default.
    let stored = loaded.meta.get("policy").cloned();
    let (spec, policy) = match stored.as_deref().map(|s| ((config.policy_factory)(s), s)) {
        Some((Ok(p), s)) => (s.to_string(), p),
        other => {
            if let Some((Err(e), s)) = other {
                tracing::warn!(
                    "stored policy {s:?} cannot be built ({e}); using {:?}",
                    config.policy
                );
            }
            let p =
                (config.policy_factory)(&config.policy).map_err(|detail| DaemonError::Policy {
                    spec: config.policy.clone(),
                    detail,
                })?;
            (config.policy.clone(), p)
        }
    };
    let mut state = State::new(capacity, spec, policy.name().to_string());

    // Recovery.
    let mut lost = 0;
    for row in loaded.tasks {
        let id = row.info.id;
        let mut task = Task {
            row,
            killer: None,
            probe: None,
            cancel_requested: false,
            last_rejection: None,
        };
        let was = task.row.info.state;
        let reason = match was {
            TaskState::Finished => None,
            TaskState::Running if survivors.contains(&id) => {
                Some("the daemon stopped while the task ran; its leftover processes were killed at restart".to_string())
            }
            TaskState::Running => Some(match task.row.info.pid {
                Some(pid) if executor.mode().name() == "none" && sys::pid_alive(pid) => format!(
                    "the daemon stopped while the task ran; pid {pid} still exists but without cgroups it cannot be identified safely, so it was left alone"
                ),
                _ => "the daemon stopped while the task ran; its process was gone at restart".to_string(),
            }),
            TaskState::Queued if survivors.contains(&id) => Some(
                "the task was being started when the daemon stopped; its processes were killed at restart".to_string(),
            ),
            TaskState::Queued => None,
        };
        if let Some(reason) = reason {
            let end = now_us();
            let i = &mut task.row.info;
            i.state = TaskState::Finished;
            i.exit = Some(ExitStatus::Lost);
            i.reason = Some(reason.clone());
            i.end_us = Some(end);
            writer.send(Op::Transition {
                id,
                at_us: end,
                from: Some(was),
                to: TaskState::Finished,
                reason: Some(reason.clone()),
                start_us: None,
                pid: None,
                exit: Some(ExitStatus::Lost),
                end_us: Some(end),
            });
            writer.send(Op::Outcome(Box::new(db::OutcomeRow {
                task: id,
                status: ExitStatus::Lost,
                oom: false,
                start_us: i.start_us,
                end_us: end,
                cpu_time_ms: None,
                peak_mem_mib: None,
                reason: Some(reason),
            })));
            lost += 1;
        }
        if task.row.info.state == TaskState::Finished {
            state.finished += 1;
        }
        state.tasks.insert(id, task);
    }
    // Queue what was queued, ascending id (dependencies always have lower ids);
    // a task whose dependency ended badly (e.g. was just marked lost) is cancelled.
    let queued: Vec<u64> = state
        .tasks
        .values()
        .filter(|t| t.row.info.state == TaskState::Queued)
        .map(|t| t.id())
        .collect();
    for q in queued {
        if let Some((d, s)) = state.enqueue(q) {
            let reason = format!("dependency {d} ended {}", crate::state::status_name(&s));
            state.finish(
                &writer,
                q,
                ExitStatus::Cancelled,
                Some(reason),
                None,
                None,
                false,
            );
        }
    }
    tracing::info!(
        tasks = state.tasks.len(),
        queued = state.queued.len(),
        lost,
        "state loaded from {}",
        db_path.display()
    );
    if lost > 0 {
        tracing::warn!("{lost} task(s) were running when the daemon stopped and are marked lost");
    }

    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        writer: writer.clone(),
        events: Mutex::new(tx.clone()),
        finished_tx: tokio::sync::watch::channel(0).0,
        next_id: AtomicU64::new(max_id.map(|m| m + 1).unwrap_or(1)),
        started: Instant::now(),
        executor: Arc::new(executor),
        hostname: info.hostname.clone(),
        telemetry: Mutex::new(llmchain_node::TelemetrySampler::new()),
        log_dir,
        uid: sys::euid(),
        config,
    });
    let sched_join = {
        let shared = Arc::clone(&shared);
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("llmchain-sched".into())
            .spawn(move || sched::run(shared, rx, tx, policy))
            .map_err(io("start the scheduler thread", std::path::Path::new("")))?
    };

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(listener, Arc::clone(&shared)));
    if let (Some(addr), Some(token)) = (shared.config.http, shared.config.http_token.clone()) {
        let l = http::bind(addr).await?;
        tracing::info!(%addr, "HTTP listener ready");
        tasks.spawn(http::serve(l, Arc::clone(&shared), token));
    }
    tracing::info!(socket = %shared.config.socket.display(), "daemon ready");

    let signals = shared.config.handle_signals;
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = signal_wait(signals) => { tracing::info!("signal received; shutting down"); }
    }
    tasks.abort_all();
    let _ = std::fs::remove_file(&shared.config.socket);
    shared.send(Event::Shutdown);
    let _ = tokio::task::spawn_blocking(move || sched_join.join()).await;
    let flushed = tokio::task::spawn_blocking({
        let w = writer.clone();
        move || w.flush_blocking()
    })
    .await;
    if let Ok(Err(e)) = flushed {
        tracing::error!("final state flush failed: {e}");
    }
    let _ = shared.executor.remove_parent();
    // The writer thread ends when the last sender (held by lingering connection
    // tasks, cancelled with the runtime) is dropped; everything is committed already.
    drop(writer_join);
    Ok(())
}

async fn signal_wait(enabled: bool) {
    if !enabled {
        std::future::pending::<()>().await;
    }
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
        }
        _ => {
            tracing::warn!("cannot install signal handlers");
            std::future::pending::<()>().await;
        }
    }
}
