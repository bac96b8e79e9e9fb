//! The executor: start a task's command in its own cgroup with its CPU quota and
//! memory limit, watch it, kill its whole tree, report how it ended, clean up.
//!
//! See the crate docs for the modes (cgroup v2, v1, rlimit fallback) and their guarantees.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use llmchain_core::{ExitStatus, Resources, TaskId};
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Layout, TaskCgroup};
use crate::{platform, NodeError};

/// How the executor confines tasks; chosen once by [`Executor::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CgroupMode {
    /// cgroup v2: task cgroups are created under `root` (our delegated subtree plus
    /// [`ExecutorConfig::cgroup_parent`]).
    V2 {
        /// Parent directory of the task cgroups.
        root: PathBuf,
        /// Controllers enabled for task cgroups (`cgroup.subtree_control` of `root`).
        /// Limits whose controller is missing fall back to rlimits / CPU affinity.
        controllers: Vec<String>,
    },
    /// cgroup v1: one parent directory per controller hierarchy (each already
    /// including [`ExecutorConfig::cgroup_parent`]).
    V1 {
        /// `cpu` hierarchy parent (CFS quota).
        cpu: PathBuf,
        /// `memory` hierarchy parent (limit, OOM counters, peak).
        memory: PathBuf,
        /// `cpuacct` hierarchy parent (CPU time), when mounted.
        cpuacct: Option<PathBuf>,
        /// `pids` hierarchy parent (process-count limit), when mounted.
        pids: Option<PathBuf>,
        /// `freezer` hierarchy parent (atomic tree kill), when mounted.
        freezer: Option<PathBuf>,
    },
    /// No usable cgroups: `RLIMIT_DATA` per process for memory, CPU affinity to
    /// ⌈cpu⌉ cores for CPU, process-group kill. Weaker; logged loudly at start.
    None,
}

impl CgroupMode {
    /// `"v2"`, `"v1"` or `"none"`.
    pub fn name(&self) -> &'static str {
        match self {
            CgroupMode::V2 { .. } => "v2",
            CgroupMode::V1 { .. } => "v1",
            CgroupMode::None => "none",
        }
    }

    /// Does this mode enforce memory limits through a cgroup?
    pub fn enforces_memory(&self) -> bool {
        match self {
            CgroupMode::V2 { controllers, .. } => controllers.iter().any(|c| c == "memory"),
            CgroupMode::V1 { .. } => true,
            CgroupMode::None => false,
        }
    }

    /// Does this mode enforce CPU quotas through a cgroup?
    pub fn enforces_cpu(&self) -> bool {
        match self {
            CgroupMode::V2 { controllers, .. } => controllers.iter().any(|c| c == "cpu"),
            CgroupMode::V1 { .. } => true,
            CgroupMode::None => false,
        }
    }
}

/// A mode to force instead of detecting one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeKind {
    /// Use the cgroup2 mount (fails if there is none or it is not writable). Controllers
    /// that cannot be delegated fall back to rlimits / affinity, with a warning.
    V2,
    /// Use the v1 `cpu` and `memory` hierarchies (fails if absent or not writable).
    V1,
    /// Use no cgroups at all.
    None,
}

/// Executor settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorConfig {
    /// Name of the parent cgroup created under this process's own cgroup in each
    /// hierarchy; task cgroups are `<parent>/task-<id>`. Relative, no `..`. Default `"llmchain"`.
    pub cgroup_parent: String,
    /// Where task logs go when a [`LaunchSpec`] names no stdout/stderr file
    /// (`<log_dir>/task-<id>.out` / `.err`). Default: `<temp dir>/llmchain-logs`.
    pub log_dir: PathBuf,
    /// Force a mode instead of detecting (tests, operators who know better). Default: detect.
    pub force_mode: Option<ModeKind>,
    /// `pids.max` for tasks that do not set [`LaunchSpec::pids_max`] (fork-bomb guard). Default 4096.
    pub default_pids_max: Option<u64>,
    /// CPU weight of the whole LLMChain parent cgroup against other processes on the machine,
    /// in v1 `cpu.shares` units (1024 = one ordinary process; v2 `cpu.weight` is derived by the
    /// kernel's mapping). By default (`None`) the parent keeps the kernel default, so *all*
    /// tasks together weigh as much as one unmanaged process when the machine is contended;
    /// set e.g. `cpus × 1024` on shared machines. Needs a cpu controller; ignored otherwise.
    pub parent_cpu_shares: Option<u64>,
    /// How long [`Handle::wait`] keeps retrying to kill leftovers and remove the task's
    /// cgroups after its main process exits. Default 2 s.
    pub cleanup_timeout: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            cgroup_parent: "llmchain".into(),
            log_dir: std::env::temp_dir().join("llmchain-logs"),
            force_mode: None,
            default_pids_max: Some(4096),
            parent_cpu_shares: None,
            cleanup_timeout: Duration::from_secs(2),
        }
    }
}

/// What to run for one task. Build with [`LaunchSpec::new`] and set fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchSpec {
    /// The task (names its cgroup `task-<id>`; must be unique among running tasks).
    pub task: TaskId,
    /// Program and arguments; `argv[0]` is looked up in `PATH` (the task's, if `env` sets one).
    pub argv: Vec<String>,
    /// Working directory; must exist and be enterable by the task's user (it is entered
    /// after the user switch). Default `/`.
    pub cwd: PathBuf,
    /// Environment. With `inherit_env == false` (default) this is the task's whole environment.
    pub env: Vec<(String, String)>,
    /// Start from the executor's own environment and add `env` on top.
    pub inherit_env: bool,
    /// CPU millicores → CFS quota (0 = unlimited); memory MiB → hard limit, no swap
    /// (0 = unlimited). GPUs are not enforced here; see [`LaunchSpec::gpus`].
    pub limits: Resources,
    /// stdout file (created/truncated, mode 0640). `None`: `<log_dir>/task-<id>.out`.
    pub stdout: Option<PathBuf>,
    /// stderr file; may equal `stdout` to interleave. `None`: `<log_dir>/task-<id>.err`.
    pub stderr: Option<PathBuf>,
    /// Run as this uid (the executor must be root). `None`: the executor's own uid.
    pub uid: Option<u32>,
    /// Primary gid with `uid`; `None`: the user's primary group from the user database.
    pub gid: Option<u32>,
    /// Process-count limit (`pids.max`); `None`: [`ExecutorConfig::default_pids_max`].
    pub pids_max: Option<u64>,
    /// GPU indices assigned by the caller; exported as `CUDA_VISIBLE_DEVICES` when non-empty.
    pub gpus: Vec<u32>,
}

impl LaunchSpec {
    /// A spec running `argv` for `task` in `/` with an empty environment and no limits.
    pub fn new(task: TaskId, argv: Vec<String>) -> Self {
        LaunchSpec {
            task,
            argv,
            cwd: PathBuf::from("/"),
            env: Vec::new(),
            inherit_env: false,
            limits: Resources::ZERO,
            stdout: None,
            stderr: None,
            uid: None,
            gid: None,
            pids_max: None,
            gpus: Vec::new(),
        }
    }
}

/// How a task ended, with its measured usage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitReport {
    /// Exit reason. Precedence: exit code 0 → `Completed`; else OOM kill recorded in the
    /// task's cgroup → `OomKilled`; else killed through a [`Killer`] → `Cancelled`;
    /// else `Failed { code }` or `Signaled { signal }`.
    pub status: ExitStatus,
    /// From spawn to the main process's exit.
    pub wall: Duration,
    /// CPU time of the whole tree (cgroup accounting), or of the main process and its
    /// reaped descendants (`wait4` rusage) when there is no CPU accounting cgroup.
    pub cpu_time: Duration,
    /// Peak memory of the whole tree (cgroup), or the largest process's max RSS
    /// (rusage) without a memory cgroup. `None` when neither is known.
    pub peak_mem_mib: Option<u64>,
    /// The main process's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed the main process, if any.
    pub signal: Option<i32>,
    /// OOM kills the kernel recorded in the task's cgroup (0 without a memory cgroup).
    pub oom_kills: u64,
    /// Whether a [`Killer`] was used on the task.
    pub killed: bool,
    /// Task cgroup directories that could not be removed (normally empty).
    pub cgroups_left: Vec<PathBuf>,
}

/// Live usage of one task (for telemetry and [`crate::snapshot_text`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    /// The task.
    pub task: TaskId,
    /// Its main process.
    pub pid: u32,
    /// CPU time so far (whole tree with a CPU accounting cgroup, else the main process).
    pub cpu_time: Duration,
    /// Current memory use, MiB.
    pub mem_mib: Option<u64>,
    /// Peak memory use so far, MiB (cgroup modes only).
    pub peak_mem_mib: Option<u64>,
}

/// Report of [`Executor::cleanup_stale`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaleReport {
    /// Task cgroup directories removed.
    pub removed: Vec<PathBuf>,
    /// Task cgroups that still held processes when found.
    pub survivors: Vec<StaleTask>,
}

/// A leftover task cgroup that still held processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StaleTask {
    /// The task id parsed from the directory name, when it has the `task-<id>` form.
    pub task: Option<TaskId>,
    /// The cgroup directory (the primary one: v2 dir or v1 memory dir).
    pub cgroup: PathBuf,
    /// Pids found in it.
    pub pids: Vec<u32>,
    /// Whether they were killed (and the cgroup removed).
    pub killed: bool,
}

/// Starts tasks. `Send + Sync`: share it (e.g. in an `Arc`) between threads.
#[derive(Debug)]
pub struct Executor {
    cfg: ExecutorConfig,
    mode: CgroupMode,
    cpuset: Vec<u32>,
    pinned: PinTable,
}

impl Executor {
    /// Detect (or force) the cgroup mode, prepare the parent cgroups, create the log dir.
    ///
    /// Detection order: cgroup v2 with `cpu` and `memory` delegable → v2; else v1 `cpu`
    /// and `memory` hierarchies writable → v1; else the rlimit/affinity fallback, with a
    /// `tracing::warn!` saying limits are weak. A forced mode that cannot be set up is an
    /// error ([`NodeError::ModeUnavailable`] or the I/O error).
    pub fn new(cfg: ExecutorConfig) -> Result<Executor, NodeError> {
        let p = &cfg.cgroup_parent;
        if p.is_empty()
            || p.starts_with('/')
            || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(NodeError::ModeUnavailable {
                mode: "any",
                detail: format!(
                    "cgroup_parent {p:?} must be a relative path without empty, '.' or '..' parts"
                ),
            });
        }
        fs::create_dir_all(&cfg.log_dir)
            .map_err(|e| NodeError::io("create log directory", &cfg.log_dir, e))?;
        let cpuset = platform::affinity()?;
        let mode = detect(&cfg)?;
        if let Some(shares) = cfg.parent_cpu_shares {
            let (file, value) = match &mode {
                CgroupMode::V1 { cpu, .. } => {
                    (Some(cpu.join("cpu.shares")), shares.clamp(2, 262_144))
                }
                CgroupMode::V2 { root, .. } if mode.enforces_cpu() => (
                    Some(root.join("cpu.weight")),
                    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142,
                ),
                _ => (None, 0),
            };
            if let Some(f) = file {
                fs::write(&f, value.to_string())
                    .map_err(|e| NodeError::io("set parent CPU weight in", &f, e))?;
            }
        }
        match &mode {
            CgroupMode::None => tracing::warn!(
                "NO CGROUPS: tasks are limited only by RLIMIT_DATA (per process) and CPU affinity; \
                 OOM kills are not detected and trees are killed by process group only"
            ),
            CgroupMode::V2 { root, controllers } => {
                let missing: Vec<&str> = cgroup::V2_WANTED
                    .iter()
                    .copied()
                    .filter(|c| !controllers.iter().any(|x| x == c))
                    .collect();
                if missing.is_empty() {
                    tracing::info!("cgroup v2 executor under {}", root.display());
                } else {
                    tracing::warn!(
                        "cgroup v2 executor under {} WITHOUT controllers {missing:?}: missing limits fall back \
                         to RLIMIT_DATA / CPU affinity",
                        root.display()
                    );
                }
            }
            CgroupMode::V1 { memory, .. } => {
                tracing::info!("cgroup v1 executor (memory parent {})", memory.display())
            }
        }
        let n = cpuset.len();
        Ok(Executor {
            cfg,
            mode,
            cpuset,
            pinned: Arc::new(Mutex::new(vec![0; n])),
        })
    }

    /// The mode in use.
    pub fn mode(&self) -> &CgroupMode {
        &self.mode
    }

    /// The configuration in use.
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Default stdout/stderr paths for a task: `<log_dir>/task-<id>.out` / `.err`.
    pub fn log_paths(&self, task: TaskId) -> (PathBuf, PathBuf) {
        let base = self.cfg.log_dir.join(format!("task-{}", task.0));
        (base.with_extension("out"), base.with_extension("err"))
    }

    /// Start a task. Returns once its program has been `exec`uted (or failed to).
    ///
    /// The child starts a new session (so it is its own process-group leader), joins
    /// the task cgroup(s) before `exec`, gets the fallback limits where the mode does
    /// not enforce them, switches user when asked, and runs with stdin from
    /// `/dev/null` and stdout/stderr to files.
    pub fn spawn(&self, spec: &LaunchSpec) -> Result<Handle, NodeError> {
        let task = spec.task;
        let invalid = |detail: String| NodeError::InvalidSpec { task, detail };
        let Some(program) = spec.argv.first() else {
            return Err(invalid("argv is empty".into()));
        };
        if let Some(a) = spec.argv.iter().find(|a| a.contains('\0')) {
            return Err(invalid(format!("argument {a:?} contains a NUL byte")));
        }
        if let Some((k, _)) = spec
            .env
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        {
            return Err(invalid(format!(
                "environment variable name {k:?} is empty or contains '=' or NUL"
            )));
        }
        if !spec.cwd.is_absolute() {
            return Err(invalid(format!(
                "working directory {} is not an absolute path",
                spec.cwd.display()
            )));
        }
        if !spec.cwd.is_dir() {
            return Err(invalid(format!(
                "working directory {} does not exist",
                spec.cwd.display()
            )));
        }
        let (gid, groups) = match spec.uid {
            Some(uid) => {
                let (pg, groups) = platform::user_groups(uid).unwrap_or_else(|e| {
                    tracing::warn!(
                        "task {task}: {e}; running with gid {} and no supplementary groups",
                        spec.gid.unwrap_or(uid)
                    );
                    (spec.gid.unwrap_or(uid), Vec::new())
                });
                (Some(spec.gid.unwrap_or(pg)), groups)
            }
            None => (None, Vec::new()),
        };

        let cg = TaskCgroup::at(&self.mode, &TaskCgroup::dir_name(task));
        if let Some(cg) = &cg {
            let controllers = match &self.mode {
                CgroupMode::V2 { controllers, .. } => controllers.as_slice(),
                _ => &[],
            };
            cg.create(
                &spec.limits,
                spec.pids_max.or(self.cfg.default_pids_max),
                controllers,
                task,
            )?;
        }
        // Logs are opened (truncated) only once the task's cgroup is ours, so a duplicate
        // spawn of a running task cannot clobber its logs.
        let (out, err, out_path, err_path) = match self.open_logs(spec, gid) {
            Ok(v) => v,
            Err(e) => {
                if let Some(cg) = &cg {
                    cg.remove(self.cfg.cleanup_timeout);
                }
                return Err(e);
            }
        };
        let rlimit_data = (!self.mode.enforces_memory() && spec.limits.mem_mib() > 0)
            .then(|| spec.limits.mem_mib() << 20);
        let pinned = (!self.mode.enforces_cpu() && spec.limits.cpu_milli() > 0)
            .then(|| self.pin(spec.limits.cpu_milli()));

        let mut cmd = Command::new(program);
        // The working directory is entered in the child after the user switch (see platform::spawn).
        cmd.args(&spec.argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if !spec.inherit_env {
            cmd.env_clear();
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if !spec.gpus.is_empty() {
            let list: Vec<String> = spec.gpus.iter().map(u32::to_string).collect();
            cmd.env("CUDA_VISIBLE_DEVICES", list.join(","));
        }
        let setup = platform::ChildSetup {
            procs: cg.as_ref().map(TaskCgroup::procs_files).unwrap_or_default(),
            rlimit_data,
            cpus: pinned
                .as_ref()
                .map(|idx| idx.iter().map(|&i| self.cpuset[i]).collect()),
            uid: spec.uid,
            gid,
            groups,
            cwd: Some(spec.cwd.clone()),
        };
        let started = Instant::now();
        let pid = match platform::spawn(&mut cmd, setup) {
            Ok(pid) => pid,
            Err(source) => {
                if let Some(cg) = &cg {
                    cg.remove(self.cfg.cleanup_timeout);
                }
                if let Some(idx) = &pinned {
                    self.unpin(idx);
                }
                return Err(NodeError::Spawn {
                    task,
                    program: program.clone(),
                    source,
                });
            }
        };
        tracing::debug!(%task, pid, mode = self.mode.name(), "task started");
        let shared = Arc::new(Shared {
            task,
            pid,
            cgroup: cg,
            state: Mutex::new(State::default()),
            adopted: false,
        });
        Ok(Handle {
            shared,
            waiter: Some(Waiter {
                started,
                cleanup_timeout: self.cfg.cleanup_timeout,
                pinned: pinned.map(|idx| (idx, Arc::clone(&self.pinned))),
            }),
            stdout: out_path,
            stderr: err_path,
        })
    }

    fn open_logs(
        &self,
        spec: &LaunchSpec,
        gid: Option<u32>,
    ) -> Result<(File, File, PathBuf, PathBuf), NodeError> {
        let task = spec.task;
        let (def_out, def_err) = self.log_paths(task);
        let out_path = spec.stdout.clone().unwrap_or(def_out);
        let err_path = spec.stderr.clone().unwrap_or(def_err);
        let out = open_log(&out_path)?;
        let err = if err_path == out_path {
            out.try_clone()
                .map_err(|e| NodeError::io("duplicate log file", &err_path, e))?
        } else {
            open_log(&err_path)?
        };

        if let Some(uid) = spec.uid {
            // Let the task's user read its own logs.
            for p in [&out_path, &err_path] {
                std::os::unix::fs::chown(p, Some(uid), gid)
                    .map_err(|e| NodeError::io("chown log file", p, e))?;
            }
        }

        Ok((out, err, out_path, err_path))
    }

    /// Choose ⌈cpu⌉ least-loaded CPUs (indices into `cpuset`) and count them as used.
    fn pin(&self, cpu_milli: u64) -> Vec<usize> {
        let want = (cpu_milli.div_ceil(1000) as usize).clamp(1, self.cpuset.len().max(1));
        let mut counts = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&i| (counts[i], i));
        order.truncate(want);
        for &i in &order {
            counts[i] += 1;
        }
        order
    }

    fn unpin(&self, idx: &[usize]) {
        unpin(&self.pinned, idx);
    }

    /// Remove leftover task cgroups (from a crashed daemon) under this executor's parent.
    ///
    /// Empty ones are removed. Populated ones are reported in
    /// [`StaleReport::survivors`]; with `kill` their processes are killed and the
    /// cgroups removed too; without `kill` they can be taken over with
    /// [`Executor::adopt`]. Without cgroups (mode `None`) there is nothing to find.
    pub fn cleanup_stale(&self, kill: bool) -> Result<StaleReport, NodeError> {
        let mut report = StaleReport::default();
        let primary = match &self.mode {
            CgroupMode::V2 { root, .. } => root.clone(),
            CgroupMode::V1 { memory, .. } => memory.clone(),
            CgroupMode::None => return Ok(report),
        };
        let mut names: Vec<String> = Vec::new();
        for parent in self.parent_dirs() {
            let rd = match fs::read_dir(&parent) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(NodeError::io("list cgroup directory", &parent, e)),
            };
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if name.starts_with("task-") && ent.path().is_dir() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names.sort();
        for name in names {
            let Some(cg) = TaskCgroup::at(&self.mode, &name) else {
                continue;
            };
            let pids = cg.pids();
            if !pids.is_empty() {
                let task = name
                    .strip_prefix("task-")
                    .and_then(|n| n.parse().ok())
                    .map(TaskId);
                let killed = kill && cg.kill_all(self.cfg.cleanup_timeout);
                tracing::warn!(cgroup = %primary.join(&name).display(), ?pids, killed, "stale task cgroup still had processes");
                report.survivors.push(StaleTask {
                    task,
                    cgroup: primary.join(&name),
                    pids,
                    killed,
                });
                if !killed {
                    continue;
                }
            }
            let existed: Vec<PathBuf> = cg.dirs.iter().filter(|d| d.is_dir()).cloned().collect();
            let left = cg.remove(self.cfg.cleanup_timeout);
            report
                .removed
                .extend(existed.into_iter().filter(|d| !left.contains(d)));
        }
        Ok(report)
    }

    /// Take over a task that still runs in its cgroup after a daemon restart (see
    /// [`Executor::cleanup_stale`] with `kill = false` for finding them). Returns `None`
    /// when the task has no populated cgroup (or there are no cgroups).
    ///
    /// The returned handle works like a spawned one, except: the main process is taken
    /// to be the session leader found in the cgroup (else the lowest pid); its end is
    /// noticed by polling the cgroup every 50 ms; its exit code is unknown, so a task
    /// that ends on its own reports [`ExitStatus::Lost`] (still `OomKilled` or
    /// `Cancelled` when those are known); `wall` counts from adoption; log paths are
    /// the executor's defaults.
    pub fn adopt(&self, task: TaskId) -> Result<Option<Handle>, NodeError> {
        let Some(cg) = TaskCgroup::at(&self.mode, &TaskCgroup::dir_name(task)) else {
            return Ok(None);
        };
        let mut pids = cg.pids();
        if pids.is_empty() {
            return Ok(None);
        }
        pids.sort_unstable();
        let pid = pids
            .iter()
            .copied()
            .find(|&p| platform::session_of(p) == Some(p))
            .unwrap_or(pids[0]);
        let (stdout, stderr) = self.log_paths(task);
        tracing::info!(%task, pid, "adopted a running task");
        let shared = Arc::new(Shared {
            task,
            pid,
            cgroup: Some(cg),
            state: Mutex::new(State::default()),
            adopted: true,
        });
        Ok(Some(Handle {
            shared,
            waiter: Some(Waiter {
                started: Instant::now(),
                cleanup_timeout: self.cfg.cleanup_timeout,
                pinned: None,
            }),
            stdout,
            stderr,
        }))
    }

    /// Remove this executor's (empty) parent cgroup directories, e.g. at shutdown.
    /// Fails if task cgroups still exist under them.
    pub fn remove_parent(&self) -> Result<(), NodeError> {
        for d in self.parent_dirs() {
            match fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::io("remove parent cgroup", &d, e)),
            }
        }
        Ok(())
    }

    fn parent_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        match &self.mode {
            CgroupMode::V2 { root, .. } => v.push(root.clone()),
            CgroupMode::V1 {
                cpu,
                memory,
                cpuacct,
                pids,
                freezer,
            } => {
                for d in [
                    Some(memory),
                    Some(cpu),
                    cpuacct.as_ref(),
                    pids.as_ref(),
                    freezer.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    if !v.contains(d) {
                        v.push(d.clone());
                    }
                }
            }
            CgroupMode::None => {}
        }
        v
    }
}

fn unpin(pinned: &Mutex<Vec<u32>>, idx: &[usize]) {
    let mut counts = pinned.lock().unwrap_or_else(|p| p.into_inner());
    for &i in idx {
        if let Some(c) = counts.get_mut(i) {
            *c = c.saturating_sub(1);
        }
    }
}

fn open_log(path: &Path) -> Result<File, NodeError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| NodeError::io("create log directory", dir, e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| NodeError::io("create log file", path, e))
}

fn detect(cfg: &ExecutorConfig) -> Result<CgroupMode, NodeError> {
    detect_in(cfg, &Layout::current())
}

fn detect_in(cfg: &ExecutorConfig, layout: &Layout) -> Result<CgroupMode, NodeError> {
    let parent = cfg.cgroup_parent.as_str();
    let try_v2 = || -> Result<CgroupMode, NodeError> {
        let base = layout.v2_base().ok_or_else(|| NodeError::ModeUnavailable {
            mode: "v2",
            detail: "no cgroup2 filesystem is mounted".into(),
        })?;
        let (root, controllers) = cgroup::setup_v2_parent(&base, parent)?;
        Ok(CgroupMode::V2 { root, controllers })
    };
    match cfg.force_mode {
        Some(ModeKind::V2) => try_v2(),
        Some(ModeKind::V1) => cgroup::setup_v1_parent(layout, parent),
        Some(ModeKind::None) => Ok(CgroupMode::None),
        None => {
            let v2_usable = layout.v2_base().is_some_and(|b| {
                let c = cgroup::read_trim(&b.join("cgroup.controllers")).unwrap_or_default();
                let c: Vec<&str> = c.split_whitespace().collect();
                c.contains(&"cpu") && c.contains(&"memory")
            });
            if v2_usable {
                match try_v2() {
                    Ok(m) if m.enforces_cpu() && m.enforces_memory() => return Ok(m),
                    Ok(m) => {
                        tracing::warn!("cgroup v2 set up without cpu+memory ({m:?}); trying v1")
                    }
                    Err(e) => tracing::warn!("cgroup v2 not usable: {e}; trying v1"),
                }
            }
            match cgroup::setup_v1_parent(layout, parent) {
                Ok(m) => Ok(m),
                Err(e) => {
                    tracing::warn!(
                        "cgroup v1 not usable: {e}; falling back to rlimits and CPU affinity"
                    );
                    Ok(CgroupMode::None)
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Set (under the lock) just before the main process is reaped; after that its pid
    /// may be reused, so killers must not signal it.
    reaped: bool,
    /// A killer was used.
    killed: bool,
}

#[derive(Debug)]
struct Shared {
    task: TaskId,
    pid: u32,
    cgroup: Option<TaskCgroup>,
    state: Mutex<State>,
    /// Found in its cgroup after a restart ([`Executor::adopt`]): not our child.
    adopted: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signal the whole tree. Holding the lock guarantees the main pid is not reaped meanwhile.
    fn signal_tree(&self, sig: i32, st: &State) {
        if let Some(cg) = &self.cgroup {
            cg.signal_all(sig);
        }
        if !st.reaped && !self.adopted {
            platform::kill_group(self.pid, sig);
            platform::kill_pid(self.pid, sig);
        }
    }

    fn usage(&self) -> TaskUsage {
        let (proc_cpu, proc_mem) = platform::proc_usage(self.pid).unwrap_or((Duration::ZERO, None));
        let (cpu_time, mem_mib, peak) = match &self.cgroup {
            Some(cg) => (
                cg.cpu_time().unwrap_or(proc_cpu),
                cg.mem_mib().or(proc_mem),
                cg.peak_mem_mib(),
            ),
            None => (proc_cpu, proc_mem, None),
        };
        TaskUsage {
            task: self.task,
            pid: self.pid,
            cpu_time,
            mem_mib,
            peak_mem_mib: peak,
        }
    }
}

/// Kills a task's whole process tree. `Clone + Send + Sync`; safe to use after the task ended.
#[derive(Clone, Debug)]
pub struct Killer {
    shared: Arc<Shared>,
}

impl Killer {
    /// SIGKILL everything in the task: `cgroup.kill` on v2; freeze + SIGKILL every pid in
    /// `cgroup.procs` + thaw on v1; the process group without cgroups. Marks the task
    /// as killed, so it reports [`ExitStatus::Cancelled`] unless it completed or was OOM-killed.
    pub fn kill(&self) {
        let mut st = self.shared.lock();
        st.killed = true;
        self.shared.signal_tree(libc::SIGKILL, &st);
    }

    /// Send `sig` (e.g. `libc::SIGTERM` for a graceful stop) to every process of the task.
    /// Marks the task as killed like [`Killer::kill`].
    pub fn signal(&self, sig: i32) {
        let mut st = self.shared.lock();
        st.killed = true;
        self.shared.signal_tree(sig, &st);
    }

    /// The task.
    pub fn task(&self) -> TaskId {
        self.shared.task
    }
}

/// Reads a running task's usage. `Clone + Send + Sync`.
#[derive(Clone, Debug)]
pub struct Probe {
    shared: Arc<Shared>,
}

impl Probe {
    /// Current usage (CPU time, memory, peak) from the task's cgroup or `/proc`.
    pub fn usage(&self) -> TaskUsage {
        self.shared.usage()
    }

    /// Pids in the task's tree right now (cgroup modes; just the main pid without cgroups
    /// while it runs).
    pub fn pids(&self) -> Vec<u32> {
        match &self.shared.cgroup {
            Some(cg) => cg.pids(),
            None if !self.shared.lock().reaped => vec![self.shared.pid],
            None => Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Waiter {
    started: Instant,
    cleanup_timeout: Duration,
    pinned: Option<(Vec<usize>, PinTable)>,
}

/// How often an adopted task's cgroup is checked for its main process.
const ADOPTED_POLL: Duration = Duration::from_millis(50);

/// Tasks pinned to each CPU of the executor's cpuset (fallback CPU limiting).
type PinTable = Arc<Mutex<Vec<u32>>>;

/// A running task. Call [`Handle::wait`] (blocking) exactly once, usually on its own
/// thread, or [`Handle::wait_in_thread`]. Dropping a handle without waiting hands the
/// wait to a detached thread, so the process is still reaped and its cgroup removed.
#[derive(Debug)]
pub struct Handle {
    shared: Arc<Shared>,
    waiter: Option<Waiter>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Handle {
    /// The task.
    pub fn task(&self) -> TaskId {
        self.shared.task
    }

    /// Pid of the task's main process (also its process-group and session id).
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The task's cgroup directories (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.shared
            .cgroup
            .as_ref()
            .map(|c| c.dirs.clone())
            .unwrap_or_default()
    }

    /// Where stdout goes.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// Where stderr goes.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// A killer for this task's tree.
    pub fn killer(&self) -> Killer {
        Killer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A usage reader for this task.
    pub fn probe(&self) -> Probe {
        Probe {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Block until the main process exits; then kill whatever is left of the tree
    /// (batch semantics: a task ends with its main process), collect the figures,
    /// and remove the task's cgroups.
    pub fn wait(mut self) -> Result<ExitReport, NodeError> {
        let w = self
            .waiter
            .take()
            .expect("waiter present until wait or drop");
        finish(&self.shared, w)
    }

    /// Run [`Handle::wait`] on a new thread and hand the result to `on_exit` there
    /// (e.g. send it on a channel to the daemon's event loop).
    pub fn wait_in_thread<F>(self, on_exit: F) -> std::io::Result<JoinHandle<()>>
    where
        F: FnOnce(TaskId, Result<ExitReport, NodeError>) + Send + 'static,
    {
        let task = self.task();
        std::thread::Builder::new()
            .name(format!("wait-task-{}", task.0))
            .spawn(move || on_exit(task, self.wait()))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            let shared = Arc::clone(&self.shared);
            let _ = std::thread::Builder::new()
                .name(format!("reap-task-{}", shared.task.0))
                .spawn(move || {
                    if let Err(e) = finish(&shared, w) {
                        tracing::warn!(
                            "task {}: reaping after its handle was dropped: {e}",
                            shared.task
                        );
                    }
                });
        }
    }
}

fn finish(shared: &Shared, w: Waiter) -> Result<ExitReport, NodeError> {
    let r = finish_inner(shared, &w);
    if let Some((idx, pinned)) = &w.pinned {
        unpin(pinned, idx);
    }
    r
}

fn finish_inner(shared: &Shared, w: &Waiter) -> Result<ExitReport, NodeError> {
    let pid = shared.pid;
    let res = match (&shared.cgroup, shared.adopted) {
        (Some(cg), true) => {
            // Not our child: poll until the main process has left its cgroup (exited).
            while cg.pids().contains(&pid) {
                std::thread::sleep(ADOPTED_POLL);
            }
            Ok(())
        }
        _ => platform::wait_exit(pid),
    };
    let wall = w.started.elapsed();
    // The main process is a zombie now: its pid (and process group id) cannot be reused,
    // so killing leftovers by group is safe. Then mark it reaped and reap it.
    let killed;
    {
        let mut st = shared.lock();
        if res.is_ok() {
            match &shared.cgroup {
                Some(cg) => {
                    cg.kill_all(w.cleanup_timeout);
                }
                None => platform::kill_group(pid, libc::SIGKILL),
            }
        }
        st.reaped = true;
        killed = st.killed;
    }
    if let Err(e) = res {
        if let Some(cg) = &shared.cgroup {
            cg.kill_all(w.cleanup_timeout);
            cg.remove(w.cleanup_timeout);
        }
        return Err(e);
    }
    let reaped = if shared.adopted {
        platform::Reaped {
            exit_code: None,
            signal: None,
            cpu_time: Duration::ZERO,
            maxrss_kib: 0,
        }
    } else {
        platform::reap(pid)?
    };
    let (cpu_time, peak, oom, left) = match &shared.cgroup {
        Some(cg) => {
            let oom = cg.oom();
            let cpu = cg.cpu_time().unwrap_or(reaped.cpu_time);
            let peak = cg.peak_mem_mib();
            let left = cg.remove(w.cleanup_timeout);
            if !left.is_empty() {
                tracing::warn!("task {}: cgroups not removed: {left:?}", shared.task);
            }
            (cpu, peak, oom, left)
        }
        None => (reaped.cpu_time, None, Default::default(), Vec::new()),
    };
    let peak = peak.or_else(|| (reaped.maxrss_kib > 0).then(|| reaped.maxrss_kib.div_ceil(1024)));
    let oom_killed = oom.oom_killed();
    let status = match (reaped.exit_code, reaped.signal) {
        (Some(0), _) => ExitStatus::Completed,
        _ if oom_killed => ExitStatus::OomKilled,
        _ if killed => ExitStatus::Cancelled,
        (Some(code), _) => ExitStatus::Failed { code },
        (None, Some(signal)) => ExitStatus::Signaled { signal },
        (None, None) => ExitStatus::Lost,
    };
    tracing::debug!(task = %shared.task, pid, ?status, ?wall, ?cpu_time, "task ended");
    Ok(ExitReport {
        status,
        wall,
        cpu_time,
        peak_mem_mib: peak,
        exit_code: reaped.exit_code,
        signal: reaped.signal,
        oom_kills: oom.oom_kill.unwrap_or(u64::from(oom_killed)),
        killed,
        cgroups_left: left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{parse_mountinfo, parse_proc_cgroup};

    /// Cgroup hierarchies that exist but cannot be written (here: under /proc, where
    /// even root cannot create directories) make auto-detection fall back to `None`,
    /// and a forced v1 mode fail with the path in the message.
    #[test]
    fn unwritable_hierarchies_fall_back_to_none() {
        let layout = Layout {
            mounts: parse_mountinfo(
                "1 0 0:1 / /proc/llmchain-no/cpu rw - cgroup cgroup rw,cpu\n\
                 2 0 0:2 / /proc/llmchain-no/memory rw - cgroup cgroup rw,memory\n\
                 3 0 0:3 / /proc/llmchain-no/unified rw - cgroup2 cgroup2 rw\n",
            ),
            own: parse_proc_cgroup("2:memory:/\n1:cpu:/\n0::/\n"),
        };
        let cfg = ExecutorConfig::default();
        assert_eq!(detect_in(&cfg, &layout).unwrap(), CgroupMode::None);
        let forced = ExecutorConfig {
            force_mode: Some(ModeKind::V1),
            ..cfg.clone()
        };
        let e = detect_in(&forced, &layout).unwrap_err().to_string();
        assert!(e.contains("/proc/llmchain-no/cpu/llmchain"), "{e}");
        let forced = ExecutorConfig {
            force_mode: Some(ModeKind::V2),
            ..cfg.clone()
        };
        assert!(detect_in(&forced, &layout).is_err());
        let none = Layout::default();
        let forced = ExecutorConfig {
            force_mode: Some(ModeKind::V1),
            ..cfg
        };
        let e = detect_in(&forced, &none).unwrap_err().to_string();
        assert!(e.contains("no cgroup v1 cpu hierarchy"), "{e}");
    }

    #[test]
    fn bad_cgroup_parent_is_refused() {
        for p in ["", "/abs", "a/../b", "a//b", "."] {
            let cfg = ExecutorConfig {
                cgroup_parent: p.into(),
                ..ExecutorConfig::default()
            };
            let e = Executor::new(cfg).unwrap_err().to_string();
            assert!(e.contains("cgroup_parent"), "{p:?}: {e}");
        }
    }
}
