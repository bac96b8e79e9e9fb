//! LLMChain's node layer: the hardware abstraction layer (HAL) and the executor
//! that runs real task processes under enforced limits.
//!
//! # Hardware abstraction
//! [`discover`] reads the machine once (CPUs this process may use via
//! `sched_getaffinity`, memory from `/proc/meminfo` capped by our own cgroup
//! limit, GPUs via `nvidia-smi` when installed); [`capacity`] turns it into the
//! core [`llmchain_core::Resources`] for a `NodeState`. A [`TelemetrySampler`]
//! samples machine utilisation from `/proc/stat` deltas, memory, load and PSI
//! (`/proc/pressure`); [`Probe::usage`] gives per-task CPU time and memory from
//! the task's cgroup; [`snapshot_text`] renders all of it compactly for the
//! kernel's LLM encoder.
//!
//! # Executor modes
//! [`Executor::new`] picks one [`CgroupMode`] at start and logs it:
//!
//! * **cgroup v2** (most current distributions): when the unified hierarchy can
//!   delegate `cpu` and `memory` to us. The executor enables `cpu memory pids` in
//!   its own cgroup's `cgroup.subtree_control` (moving itself into a
//!   `<parent>.daemon` leaf if its cgroup holds processes, as the "no internal
//!   processes" rule requires), creates `<own cgroup>/<cgroup_parent>/task-<id>`
//!   per task and writes `cpu.max`, `memory.max`, `memory.swap.max = 0` and
//!   `memory.oom.group = 1` (where present) and `pids.max`. OOM kills come from
//!   `memory.events` (`oom_kill`), CPU time from `cpu.stat`, peak memory from
//!   `memory.peak`; the tree is killed atomically with `cgroup.kill`.
//!   Under systemd, run the daemon with `Delegate=yes`.
//! * **cgroup v1** (per-controller hierarchies, as on the project's test machines):
//!   one task directory in each of the `cpu`, `memory`, and (when mounted)
//!   `cpuacct`, `pids`, `freezer` hierarchies: `cpu.cfs_quota_us` /
//!   `cpu.cfs_period_us`, `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`
//!   (no swap), `pids.max`. OOM kills from the `oom_kill` counter of
//!   `memory.oom_control` (or `memory.failcnt > 0` on kernels without it), peak from
//!   `memory.max_usage_in_bytes`, CPU time from `cpuacct.usage`. Tree kill: freeze,
//!   SIGKILL every pid in `cgroup.procs`, thaw.
//! * **None** (neither writable; e.g. an unprivileged container): memory via
//!   `RLIMIT_DATA` (per process, so a tree can exceed it), CPU via affinity to
//!   ⌈cpu⌉ least-loaded cores, tree kill via the task's process group (processes
//!   that start their own session escape), no OOM detection. Logged at `warn`.
//!
//! In v2 with some controller missing (for example, a cgroup2 mount whose
//! controllers are all bound to v1 hierarchies), limits for the missing controllers
//! use the fallbacks above; [`CgroupMode::enforces_cpu`] and
//! [`CgroupMode::enforces_memory`] say which apply.
//!
//! # Process lifecycle
//! [`Executor::spawn`] forks; the child starts a new session (it becomes its
//! process-group leader), writes `0` into each task `cgroup.procs` through
//! descriptors the parent opened (so it is inside its cgroups before `exec` —
//! nothing it forks can escape), applies fallback limits and credentials, then
//! `exec`s with stdin from `/dev/null` and stdout/stderr to files.
//! [`Handle::wait`] blocks in `waitid(WNOWAIT)`, kills what is left of the tree
//! while the main pid is still reserved, reaps it with `wait4`, reads the cgroup
//! figures, and removes the task's cgroups (retrying while processes drain).
//! A [`Killer`] may be used from any thread at any time, before or after exit.
//!
//! # Restart after a crash
//! Task cgroups are named `task-<id>` under the configured parent, so a restarted
//! daemon finds what its predecessor left: [`Executor::cleanup_stale`] removes
//! empty leftovers and lists the populated ones (or kills them, with `kill`);
//! [`Executor::adopt`] takes over one that still runs (its exit code is then
//! unknown: it reports [`llmchain_core::ExitStatus::Lost`] unless killed or
//! OOM-killed). Without cgroups nothing can be found again.
//!
//! # Fairness against other load
//! Each task's CPU weight (`cpu.shares` / `cpu.weight`) is proportional to its
//! request; the whole parent cgroup keeps the kernel's default weight unless
//! [`ExecutorConfig::parent_cpu_shares`] is set, so on a contended machine all
//! tasks together compete like one ordinary process.
//!
//! # Threads and notification
//! Everything is blocking and thread-safe: share the [`Executor`] across threads;
//! run each [`Handle::wait`] on its own thread (or [`Handle::wait_in_thread`] with a
//! callback that sends the report on a channel); that is the exit notification.
//! The executor waits for *its own* children by pid: do not reap with
//! `waitpid(-1, ...)` elsewhere in the same process.
//!
//! ```no_run
//! use llmchain_core::{Resources, TaskId};
//! use llmchain_node::{Executor, ExecutorConfig, LaunchSpec};
//!
//! let exec = Executor::new(ExecutorConfig::default())?;
//! let mut spec = LaunchSpec::new(TaskId(1), vec!["sleep".into(), "1".into()]);
//! spec.limits = Resources::new(500, 64); // half a core, 64 MiB
//! spec.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
//! let handle = exec.spawn(&spec)?;
//! let killer = handle.killer(); // cancel from another thread with killer.kill()
//! let report = handle.wait()?;
//! println!("{:?} after {:?}, cpu {:?}", report.status, report.wall, report.cpu_time);
//! # Ok::<(), llmchain_node::NodeError>(())
//! ```

mod cgroup;
mod error;
mod executor;
mod hal;
#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "other.rs")]
mod platform;

pub use cgroup::{cpu_quota_us, cpu_shares, cpu_weight, CPU_PERIOD_US};
pub use error::NodeError;
pub use executor::{
    CgroupMode, Executor, ExecutorConfig, ExitReport, Handle, Killer, LaunchSpec, ModeKind, Probe,
    StaleReport, StaleTask, TaskUsage,
};
pub use hal::{
    capacity, discover, discover_gpus, node_state, parse_meminfo, parse_nvidia_smi,
    parse_proc_stat, parse_psi, read_psi, snapshot_text, CpuTimes, GpuInfo, MachineInfo, MemInfo,
    Psi, PsiLine, PsiResource, Telemetry, TelemetrySampler,
};
