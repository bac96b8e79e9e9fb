//! Persistent state in SQLite (WAL mode): tables `tasks`, `transitions`,
//! `decisions`, `outcomes`, `meta` and `schema_version`.
//!
//! All writes go through one writer thread ([`Writer`]) that applies every
//! operation queued since its last commit in **one transaction** (group
//! commit), then acknowledges them. A submit handler waits for that
//! acknowledgement before it answers, so an accepted task is durable before
//! the client learns its id, while concurrent (or pipelined) submits share one
//! fsync.
//!
//! With [`Durability::Full`] only batches that someone waits for (a submit, a
//! flush) are committed with `synchronous=FULL`; batches of fire-and-forget
//! writes (state transitions, decisions, outcomes) are committed with
//! `synchronous=NORMAL`, i.e. without an fsync of their own. The WAL is
//! append-only, so the next FULL commit's fsync makes them durable too, and
//! they never delay a submit's commit with an extra fsync. Nothing that was
//! acknowledged to a client depends on them (recovery handles a transition
//! lost to a power cut: see the crate docs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use llmchain_core::ExitStatus;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::config::Durability;
use crate::error::DaemonError;
use crate::protocol::{TaskInfo, TaskState};

/// The schema version this build writes. Older files are migrated on open
/// (none exist yet: version 1 is the first); newer files are refused.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = r#"
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    uid INTEGER NOT NULL,
    name TEXT,
    label TEXT,
    argv TEXT NOT NULL,
    cwd TEXT NOT NULL,
    env TEXT NOT NULL,
    cpu_millis INTEGER NOT NULL,
    mem_mib INTEGER NOT NULL,
    estimate_ms INTEGER,
    priority INTEGER NOT NULL,
    after TEXT NOT NULL,
    state TEXT NOT NULL,
    exit TEXT,
    reason TEXT,
    submit_us INTEGER NOT NULL,
    start_us INTEGER,
    end_us INTEGER,
    pid INTEGER
);
CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX transitions_task ON transitions(task_id);
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    policy TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    reason TEXT,
    latency_us INTEGER NOT NULL
);
CREATE TABLE outcomes (
    task_id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    exit_code INTEGER,
    signal INTEGER,
    oom INTEGER NOT NULL,
    start_us INTEGER,
    end_us INTEGER NOT NULL,
    runtime_ms INTEGER NOT NULL,
    cpu_time_ms INTEGER,
    peak_mem_mib INTEGER,
    reason TEXT
);
"#;

/// A task as stored: its public info plus its environment.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// Everything shown to clients.
    pub info: TaskInfo,
    /// The environment it runs with.
    pub env: BTreeMap<String, String>,
}

/// One write.
#[derive(Debug)]
pub enum Op {
    /// A newly accepted task.
    Insert(Box<TaskRow>),
    /// A state change; the task row's state-dependent columns are updated too.
    Transition {
        /// Task.
        id: u64,
        /// When, µs since the Unix epoch.
        at_us: u64,
        /// Old state (`None` at acceptance).
        from: Option<TaskState>,
        /// New state.
        to: TaskState,
        /// Why, when there is more to say.
        reason: Option<String>,
        /// Start time (for `running`).
        start_us: Option<u64>,
        /// Pid (for `running`).
        pid: Option<u32>,
        /// Exit status (for `finished`).
        exit: Option<ExitStatus>,
        /// End time (for `finished`).
        end_us: Option<u64>,
    },
    /// One proposal and the validator's verdict.
    Decision {
        /// When.
        at_us: u64,
        /// Policy name.
        policy: String,
        /// Task proposed.
        task: u64,
        /// Accepted by the validator.
        accepted: bool,
        /// Rejection reason.
        reason: Option<String>,
        /// Decision-point latency, µs.
        latency_us: u64,
    },
    /// A finished task's feedback record.
    Outcome(Box<OutcomeRow>),
    /// A key/value setting (e.g. the policy spec).
    Meta(String, String),
}

/// The `outcomes` row of a finished task.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeRow {
    /// Task.
    pub task: u64,
    /// How it ended.
    pub status: ExitStatus,
    /// Whether the kernel OOM-killed it.
    pub oom: bool,
    /// Start, µs (absent when it never started).
    pub start_us: Option<u64>,
    /// End, µs.
    pub end_us: u64,
    /// CPU time, ms.
    pub cpu_time_ms: Option<u64>,
    /// Peak memory, MiB.
    pub peak_mem_mib: Option<u64>,
    /// Reason text.
    pub reason: Option<String>,
}

type Ack = oneshot::Sender<Result<(), String>>;

/// Sends writes to the writer thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<(Op, Option<Ack>)>,
}

impl Writer {
    /// Queue a write without waiting for it.
    pub fn send(&self, op: Op) {
        if self.tx.send((op, None)).is_err() {
            tracing::error!("state writer has stopped; a write was dropped");
        }
    }

    /// Queue a write; the receiver resolves once it is committed.
    pub fn send_acked(&self, op: Op) -> oneshot::Receiver<Result<(), String>> {
        let (ack, rx) = oneshot::channel();
        if let Err(mpsc::SendError((_, Some(ack)))) = self.tx.send((op, Some(ack))) {
            let _ = ack.send(Err("state writer has stopped".into()));
        }
        rx
    }

    /// Block until everything queued so far is committed.
    pub fn flush_blocking(&self) -> Result<(), String> {
        let rx = self.send_acked(Op::Meta("last_flush".into(), "".into()));
        rx.blocking_recv()
            .map_err(|_| "state writer has stopped".to_string())?
    }
}

/// What was on disk at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every task, ascending id.
    pub tasks: Vec<TaskRow>,
    /// Stored settings.
    pub meta: BTreeMap<String, String>,
}

/// The database path inside a state directory.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.sqlite")
}

fn sql_err<'a>(path: &'a Path, what: &'static str) -> impl Fn(rusqlite::Error) -> DaemonError + 'a {
    move |e| DaemonError::Db {
        path: path.to_path_buf(),
        what,
        detail: e.to_string(),
    }
}

/// Open (creating or migrating) the state database.
pub fn open(path: &Path, durability: Durability) -> Result<Connection, DaemonError> {
    let e = sql_err(path, "open state database");
    let conn = Connection::open(path).map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(&e)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err(path, "enable WAL"))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(sql_err(path, "set synchronous"))?;
    let has_version: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_err(path, "read schema"))?
        > 0;
    if !has_version {
        let e = sql_err(path, "create schema");
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} INSERT INTO schema_version VALUES ({SCHEMA_VERSION}); COMMIT;"
        ))
        .map_err(&e)?;
    }
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .map_err(sql_err(path, "read schema_version"))?;
    match version {
        SCHEMA_VERSION => {}
        v if v > SCHEMA_VERSION => {
            return Err(DaemonError::SchemaTooNew {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        v => {
            // Migrations from older versions go here, one step at a time.
            return Err(DaemonError::SchemaTooNew {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
    }
    Ok(conn)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    id: u64,
    column: &'static str,
    text: &str,
) -> Result<T, DaemonError> {
    serde_json::from_str(text).map_err(|e| DaemonError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("task {id}: column {column}: {e}: {text:?}"),
    })
}

/// Read every task and setting.
pub fn load(conn: &Connection, path: &Path) -> Result<Loaded, DaemonError> {
    let e = sql_err(path, "read tasks");
    let mut stmt = conn
        .prepare(
            "SELECT t.id, t.uid, t.name, t.label, t.argv, t.cwd, t.env, t.cpu_millis, t.mem_mib, t.estimate_ms,
                    t.priority, t.after, t.state, t.exit, t.reason, t.submit_us, t.start_us, t.end_us, t.pid,
                    o.cpu_time_ms, o.peak_mem_mib
             FROM tasks t LEFT JOIN outcomes o ON o.task_id = t.id ORDER BY t.id",
        )
        .map_err(&e)?;
    type Raw = (
        (
            i64,
            i64,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            i64,
            i64,
            Option<i64>,
        ),
        (
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        ),
        (Option<i64>, Option<i64>),
    );
    let rows = stmt
        .query_map([], |r| {
            Ok::<Raw, rusqlite::Error>((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ),
                (
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                    r.get(15)?,
                    r.get(16)?,
                    r.get(17)?,
                    r.get(18)?,
                ),
                (r.get(19)?, r.get(20)?),
            ))
        })
        .map_err(&e)?;
    let mut tasks = Vec::new();
    for row in rows {
        let (
            (id, uid, name, label, argv, cwd, env, cpu, mem, est),
            (prio, after, state, exit, reason, sub, st, en, pid),
            (cpu_t, peak),
        ) = row.map_err(&e)?;
        let id = id as u64;
        let state = match state.as_str() {
            "queued" => TaskState::Queued,
            "running" => TaskState::Running,
            "finished" => TaskState::Finished,
            other => {
                return Err(DaemonError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("task {id}: column state: unknown state {other:?}"),
                })
            }
        };
        let exit: Option<ExitStatus> = match exit {
            Some(t) => Some(parse_json(path, id, "exit", &t)?),
            None => None,
        };
        tasks.push(TaskRow {
            info: TaskInfo {
                id,
                uid: uid as u32,
                name,
                label,
                argv: parse_json(path, id, "argv", &argv)?,
                cwd,
                cpu_millis: cpu as u64,
                mem_mib: mem as u64,
                estimate_ms: est.map(|v| v as u64),
                priority: prio as i32,
                after: parse_json(path, id, "after", &after)?,
                state,
                exit,
                reason,
                submit_us: sub as u64,
                start_us: st.map(|v| v as u64),
                end_us: en.map(|v| v as u64),
                pid: pid.map(|v| v as u32),
                cpu_time_ms: cpu_t.map(|v| v as u64),
                peak_mem_mib: peak.map(|v| v as u64),
            },
            env: parse_json(path, id, "env", &env)?,
        });
    }
    let mut meta = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta")
        .map_err(sql_err(path, "read meta"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql_err(path, "read meta"))?;
    for row in rows {
        let (k, v) = row.map_err(sql_err(path, "read meta"))?;
        meta.insert(k, v);
    }
    Ok(Loaded { tasks, meta })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn opt_i(v: Option<u64>) -> Option<i64> {
    v.map(|v| v as i64)
}

fn apply(conn: &mut Connection, ops: &[(Op, Option<Ack>)]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (op, _) in ops {
        match op {
            Op::Insert(row) => {
                let t = &row.info;
                tx.prepare_cached(
                    "INSERT INTO tasks (id, uid, name, label, argv, cwd, env, cpu_millis, mem_mib, estimate_ms, priority,
                                        after, state, exit, reason, submit_us, start_us, end_us, pid)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                )?
                .execute(params![
                    t.id as i64,
                    t.uid,
                    t.name,
                    t.label,
                    json(&t.argv),
                    t.cwd,
                    json(&row.env),
                    t.cpu_millis as i64,
                    t.mem_mib as i64,
                    opt_i(t.estimate_ms),
                    t.priority,
                    json(&t.after),
                    t.state.as_str(),
                    t.exit.as_ref().map(json),
                    t.reason,
                    t.submit_us as i64,
                    opt_i(t.start_us),
                    opt_i(t.end_us),
                    t.pid,
                ])?;
                tx.prepare_cached(
                    "INSERT INTO transitions (task_id, at_us, from_state, to_state, reason) VALUES (?1, ?2, NULL, ?3, ?4)",
                )?
                .execute(params![t.id as i64, t.submit_us as i64, t.state.as_str(), t.reason])?;
            }
            Op::Transition {
                id,
                at_us,
                from,
                to,
                reason,
                start_us,
                pid,
                exit,
                end_us,
            } => {
                tx.prepare_cached(
                    "UPDATE tasks SET state = ?2, reason = coalesce(?3, reason), start_us = coalesce(?4, start_us),
                                      pid = coalesce(?5, pid), exit = coalesce(?6, exit), end_us = coalesce(?7, end_us)
                     WHERE id = ?1",
                )?
                .execute(params![
                    *id as i64,
                    to.as_str(),
                    reason,
                    opt_i(*start_us),
                    pid,
                    exit.as_ref().map(json),
                    opt_i(*end_us)
                ])?;
                tx.prepare_cached(
                    "INSERT INTO transitions (task_id, at_us, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![*id as i64, *at_us as i64, from.map(|s| s.as_str()), to.as_str(), reason])?;
            }
            Op::Decision {
                at_us,
                policy,
                task,
                accepted,
                reason,
                latency_us,
            } => {
                tx.prepare_cached(
                    "INSERT INTO decisions (at_us, policy, task_id, accepted, reason, latency_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![*at_us as i64, policy, *task as i64, *accepted, reason, *latency_us as i64])?;
            }
            Op::Outcome(o) => {
                let (code, signal) = match o.status {
                    ExitStatus::Failed { code } => (Some(code), None),
                    ExitStatus::Signaled { signal } => (None, Some(signal)),
                    ExitStatus::Completed => (Some(0), None),
                    _ => (None, None),
                };
                let runtime = match o.start_us {
                    Some(s) => o.end_us.saturating_sub(s) / 1000,
                    None => 0,
                };
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO outcomes (task_id, status, exit_code, signal, oom, start_us, end_us, runtime_ms,
                                                      cpu_time_ms, peak_mem_mib, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    o.task as i64,
                    json(&o.status),
                    code,
                    signal,
                    o.oom,
                    opt_i(o.start_us),
                    o.end_us as i64,
                    runtime as i64,
                    opt_i(o.cpu_time_ms),
                    opt_i(o.peak_mem_mib),
                    o.reason,
                ])?;
            }
            Op::Meta(k, v) => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![k, v])?;
            }
        }
    }
    tx.commit()
}

/// Start the writer thread on an open connection (every batch committed with
/// the connection's own `synchronous` setting; no commit callback).
pub fn spawn_writer(
    conn: Connection,
    path: PathBuf,
) -> Result<(Writer, std::thread::JoinHandle<()>), DaemonError> {
    spawn_writer_with(conn, path, None, |_| {})
}

/// Start the writer thread on an open connection.
///
/// * `durability`: with `Some(Full)`, batches without an acknowledged write are
///   committed with `synchronous=NORMAL` (see the module docs); `None` leaves
///   the connection's setting alone.
/// * `on_commit` is called on the writer thread after each successful commit
///   with the task rows inserted by it (possibly empty: then it is not called),
///   right after the acknowledgements are sent — the daemon uses it to hand
///   new tasks to the scheduler without a detour through the submit handler.
pub fn spawn_writer_with(
    mut conn: Connection,
    path: PathBuf,
    durability: Option<Durability>,
    mut on_commit: impl FnMut(Vec<TaskRow>) + Send + 'static,
) -> Result<(Writer, std::thread::JoinHandle<()>), DaemonError> {
    let (tx, rx) = mpsc::channel::<(Op, Option<Ack>)>();
    let join = std::thread::Builder::new()
        .name("llmchain-db".into())
        .spawn(move || {
            let relax = durability == Some(Durability::Full);
            let mut full = true;
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < 8192 {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                if relax {
                    let want_full = batch.iter().any(|(_, ack)| ack.is_some());
                    if want_full != full {
                        let mode = if want_full { "FULL" } else { "NORMAL" };
                        match conn.pragma_update(None, "synchronous", mode) {
                            Ok(()) => full = want_full,
                            Err(e) => tracing::error!("cannot set synchronous={mode}: {e}"),
                        }
                    }
                }
                let res = apply(&mut conn, &batch)
                    .map_err(|e| format!("cannot commit to {}: {e}", path.display()));
                if let Err(e) = &res {
                    tracing::error!("{e}");
                }
                let mut inserted = Vec::new();
                for (op, ack) in batch {
                    if let Some(ack) = ack {
                        let _ = ack.send(res.clone());
                    }
                    if let (Op::Insert(row), Ok(())) = (op, &res) {
                        inserted.push(*row);
                    }
                }
                if !inserted.is_empty() {
                    on_commit(inserted);
                }
            }
        })
        .map_err(|e| DaemonError::Io {
            what: "start the state writer thread",
            path: PathBuf::new(),
            source: e,
        })?;
    Ok((Writer { tx }, join))
}

/// Highest task id stored, if any (used with [`load`] at start).
pub fn max_id(conn: &Connection, path: &Path) -> Result<Option<u64>, DaemonError> {
    conn.query_row("SELECT max(id) FROM tasks", [], |r| {
        r.get::<_, Option<i64>>(0)
    })
    .optional()
    .map(|v| v.flatten().map(|v| v as u64))
    .map_err(sql_err(path, "read max id"))
}
