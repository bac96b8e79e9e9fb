//! Cgroup file handling for both hierarchies: mount and membership discovery
//! (`/proc/self/mountinfo`, `/proc/self/cgroup`), parent setup (v2 controller
//! delegation), per-task cgroup creation with limits, statistics (CPU time,
//! memory, OOM kills), whole-tree kill and removal.
//!
//! Everything here is plain file I/O on paths handed in by the caller, so the
//! file-writing logic is unit-tested against temporary directory trees; only the
//! signal delivery goes through [`crate::platform`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use llmchain_core::Resources;

use crate::{platform, CgroupMode, NodeError};

/// CFS period used for CPU quotas, in microseconds (the kernel default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Smallest quota the kernel accepts, in microseconds.
const MIN_QUOTA_US: u64 = 1_000;

/// One line of `/proc/self/mountinfo` that is a cgroup mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// Root of the mount within its hierarchy (4th field), e.g. `/` or `/docker/abc`.
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// `true` for `cgroup2`.
    pub v2: bool,
    /// v1 controllers bound to the hierarchy (from the super options), e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
}

/// Parse the cgroup mounts out of `/proc/self/mountinfo`.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let post: Vec<&str> = post.split_whitespace().collect();
        if pre.len() < 5 || post.is_empty() {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let controllers = if fstype == "cgroup" {
            post.get(2)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| {
                    matches!(
                        *o,
                        "cpu"
                            | "cpuacct"
                            | "cpuset"
                            | "memory"
                            | "pids"
                            | "freezer"
                            | "blkio"
                            | "devices"
                            | "hugetlb"
                    )
                })
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        out.push(CgroupMount {
            root: unescape(pre[3]),
            mount_point: PathBuf::from(unescape(pre[4])),
            v2: fstype == "cgroup2",
            controllers,
        });
    }
    out
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup memberships from `/proc/self/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The unified (`0::`) path, when present.
    pub v2: Option<String>,
    /// `(controller, path)` for every v1 hierarchy line.
    pub v1: Vec<(String, String)>,
}

impl Membership {
    fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_str())
    }
}

/// Parse `/proc/self/cgroup` (`hierarchy-id:controller-list:path` lines).
pub(crate) fn parse_proc_cgroup(text: &str) -> Membership {
    let mut m = Membership::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            m.v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',').filter(|c| !c.is_empty()) {
                m.v1.push((c.to_string(), path.to_string()));
            }
        }
    }
    m
}

/// Directory of `own` (a path from `/proc/self/cgroup`) inside `mount`.
fn own_dir(mount: &CgroupMount, own: &str) -> PathBuf {
    let rel = if mount.root != "/" {
        own.strip_prefix(mount.root.as_str()).unwrap_or(own)
    } else {
        own
    };
    mount.mount_point.join(rel.trim_start_matches('/'))
}

/// The system's cgroup layout as seen by this process.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub mounts: Vec<CgroupMount>,
    pub own: Membership,
}

impl Layout {
    /// Read `/proc/self/mountinfo` and `/proc/self/cgroup`; empty when unreadable (non-Linux).
    pub fn current() -> Layout {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cg = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Layout {
            mounts: parse_mountinfo(&mi),
            own: parse_proc_cgroup(&cg),
        }
    }

    /// Our own directory in the unified hierarchy — or, when an executor earlier
    /// in this process moved it into a `<parent>.daemon` leaf (see
    /// [`setup_v2_parent`]), that leaf's parent, so later executors share the
    /// delegated base instead of nesting under the leaf.
    pub fn v2_base(&self) -> Option<PathBuf> {
        let m = self.mounts.iter().find(|m| m.v2)?;
        let own = own_dir(m, self.own.v2.as_deref().unwrap_or("/"));
        let moved = own
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".daemon"));
        match own.parent() {
            Some(up) if moved && up.starts_with(&m.mount_point) => Some(up.to_path_buf()),
            _ => Some(own),
        }
    }

    /// Our own directory in the v1 hierarchy carrying `controller`.
    pub fn v1_base(&self, controller: &str) -> Option<PathBuf> {
        let m = self
            .mounts
            .iter()
            .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))?;
        Some(own_dir(m, self.own.v1_path(controller).unwrap_or("/")))
    }
}

/// This process's own cgroup memory limit in bytes, when one is set (v1 or v2).
pub(crate) fn own_memory_limit_bytes() -> Option<u64> {
    let l = Layout::current();
    let v = if let Some(b) = l.v1_base("memory") {
        read_trim(&b.join("memory.limit_in_bytes")).ok()?
    } else {
        read_trim(&l.v2_base()?.join("memory.max")).ok()?
    };
    v.parse::<u64>().ok().filter(|&b| b < (1 << 60))
}

pub(crate) fn read_trim(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map(|s| s.trim().to_string())
}

fn write(path: &Path, value: &str) -> Result<(), NodeError> {
    fs::write(path, value).map_err(|e| NodeError::io("write cgroup file", path, e))
}

fn mkdir_p(path: &Path) -> Result<(), NodeError> {
    fs::create_dir_all(path).map_err(|e| NodeError::io("create cgroup directory", path, e))
}

/// The controllers we delegate to task cgroups in v2.
pub(crate) const V2_WANTED: [&str; 3] = ["cpu", "memory", "pids"];

/// Prepare `base/parent` in a cgroup2 hierarchy: enable the wanted controllers in
/// `base` and `base/parent`, create the parent, and return the controllers that
/// task cgroups under it will have.
///
/// When `base` holds processes (our own, in a delegated service cgroup or a
/// container's namespaced root), enabling controllers fails ("no internal
/// processes": `EBUSY`, or `EOPNOTSUPP` when a threaded controller such as cpu is
/// already enabled there); then this process moves itself into the leaf
/// `base/<parent>.daemon` and retries. If other processes share `base`, that still
/// fails, and the error says what to do.
///
/// All controllers are enabled in one write, which the kernel vets as a whole:
/// one at a time, the threaded ones (cpu, pids) would be let through in a cgroup
/// that holds processes, turning it into a thread root where the domain ones
/// (memory) are then refused.
pub(crate) fn setup_v2_parent(
    base: &Path,
    parent: &str,
) -> Result<(PathBuf, Vec<String>), NodeError> {
    let avail = read_trim(&base.join("cgroup.controllers"))
        .map_err(|e| NodeError::io("read", base.join("cgroup.controllers"), e))?;
    let avail: Vec<&str> = avail.split_whitespace().collect();
    let want: Vec<&str> = V2_WANTED
        .iter()
        .copied()
        .filter(|c| avail.contains(c))
        .collect();
    let line: Vec<String> = want.iter().map(|c| format!("+{c}")).collect();
    let line = line.join(" ");
    let enable = |dir: &Path| -> Result<(), io::Error> {
        if want.is_empty() {
            return Ok(());
        }
        fs::write(dir.join("cgroup.subtree_control"), &line)
    };
    let internal_processes =
        |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EOPNOTSUPP));
    let ctl = base.join("cgroup.subtree_control");
    if let Err(e) = enable(base) {
        if !internal_processes(&e) {
            return Err(NodeError::io("enable controllers in", &ctl, e));
        }
        let leaf = base.join(format!("{parent}.daemon"));
        mkdir_p(&leaf)?;
        tracing::warn!(
            "cgroup v2: {} holds processes; moving this daemon into {} so controllers can be delegated",
            base.display(),
            leaf.display()
        );
        write(&leaf.join("cgroup.procs"), "0")?;
        enable(base).map_err(|e| {
            let detail = if internal_processes(&e) {
                format!(
                    "{} still holds other processes; run the daemon in a cgroup of its own with delegation \
                     (systemd: Delegate=yes) or move those processes out",
                    base.display()
                )
            } else {
                format!("cannot enable controllers in {}: {e}", ctl.display())
            };
            NodeError::ModeUnavailable { mode: "v2", detail }
        })?;
    }
    let dir = base.join(parent);
    mkdir_p(&dir)?;
    enable(&dir).map_err(|e| {
        NodeError::io(
            "enable controllers in",
            dir.join("cgroup.subtree_control"),
            e,
        )
    })?;
    let enabled = read_trim(&dir.join("cgroup.subtree_control")).unwrap_or_default();
    Ok((
        dir,
        enabled.split_whitespace().map(str::to_string).collect(),
    ))
}

/// Prepare the v1 parents: `<own dir in hierarchy>/parent` for every controller.
pub(crate) fn setup_v1_parent(layout: &Layout, parent: &str) -> Result<CgroupMode, NodeError> {
    let mk = |c: &str| -> Result<Option<PathBuf>, NodeError> {
        let Some(base) = layout.v1_base(c) else {
            return Ok(None);
        };
        let dir = base.join(parent);
        mkdir_p(&dir)?;
        Ok(Some(dir))
    };
    let missing = |c: &str| NodeError::ModeUnavailable {
        mode: "v1",
        detail: format!("no cgroup v1 {c} hierarchy is mounted"),
    };
    let cpu = mk("cpu")?.ok_or_else(|| missing("cpu"))?;
    let memory = mk("memory")?.ok_or_else(|| missing("memory"))?;
    Ok(CgroupMode::V1 {
        cpu,
        memory,
        cpuacct: mk("cpuacct")?,
        pids: mk("pids")?,
        freezer: mk("freezer")?,
    })
}

/// CPU quota in microseconds per [`CPU_PERIOD_US`] for `cpu_milli` millicores (0 = unlimited).
pub fn cpu_quota_us(cpu_milli: u64) -> Option<u64> {
    (cpu_milli > 0).then(|| (cpu_milli * CPU_PERIOD_US / 1000).max(MIN_QUOTA_US))
}

/// v1 `cpu.shares` for a request: 1024 per core, at least 2 (the convention Kubernetes uses),
/// so that under contention tasks share CPU in proportion to what they asked for.
pub fn cpu_shares(cpu_milli: u64) -> u64 {
    (cpu_milli * 1024 / 1000).clamp(2, 262_144)
}

/// v2 `cpu.weight` (1–10000) equivalent to [`cpu_shares`], by the kernel's own mapping.
pub fn cpu_weight(cpu_milli: u64) -> u64 {
    1 + (cpu_shares(cpu_milli) - 2) * 9999 / 262_142
}

/// One task's cgroup(s): a single directory in v2, one per hierarchy in v1.
#[derive(Clone, Debug)]
pub(crate) struct TaskCgroup {
    pub v2: bool,
    /// Distinct directories created for the task; `dirs[0]` is the primary one
    /// (v2 dir, or the v1 memory dir) whose `cgroup.procs` lists the tree.
    pub dirs: Vec<PathBuf>,
    cpu_dir: Option<PathBuf>,
    memory_dir: Option<PathBuf>,
    cpuacct_dir: Option<PathBuf>,
    pids_dir: Option<PathBuf>,
    freezer_dir: Option<PathBuf>,
}

/// What the kernel says about memory-limit hits in a task cgroup.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OomInfo {
    /// OOM kills inside the cgroup (`memory.events` / `memory.oom_control` `oom_kill`).
    pub oom_kill: Option<u64>,
    /// v1 `memory.failcnt`: times usage hit the limit.
    pub failcnt: Option<u64>,
}

impl OomInfo {
    /// Did the kernel OOM-kill something (or, where the counter is missing, did usage hit the limit)?
    pub fn oom_killed(&self) -> bool {
        match self.oom_kill {
            Some(n) => n > 0,
            None => self.failcnt.unwrap_or(0) > 0,
        }
    }
}

impl TaskCgroup {
    /// Names the task's cgroup directory: `task-<id>`.
    pub fn dir_name(task: llmchain_core::TaskId) -> String {
        format!("task-{}", task.0)
    }

    /// The directories this task's cgroup would have under `mode` (nothing is created).
    pub fn at(mode: &CgroupMode, name: &str) -> Option<TaskCgroup> {
        match mode {
            CgroupMode::V2 { root, .. } => {
                let d = root.join(name);
                Some(TaskCgroup {
                    v2: true,
                    dirs: vec![d.clone()],
                    cpu_dir: Some(d.clone()),
                    memory_dir: Some(d.clone()),
                    cpuacct_dir: Some(d.clone()),
                    pids_dir: Some(d.clone()),
                    freezer_dir: Some(d),
                })
            }
            CgroupMode::V1 {
                cpu,
                memory,
                cpuacct,
                pids,
                freezer,
            } => {
                let j = |p: &PathBuf| p.join(name);
                let memory_dir = j(memory);
                let mut dirs = vec![memory_dir.clone()];
                for d in [Some(cpu), cpuacct.as_ref(), pids.as_ref(), freezer.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    let d = j(d);
                    if !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
                Some(TaskCgroup {
                    v2: false,
                    dirs,
                    cpu_dir: Some(j(cpu)),
                    memory_dir: Some(memory_dir),
                    cpuacct_dir: cpuacct.as_ref().map(j),
                    pids_dir: pids.as_ref().map(j),
                    freezer_dir: freezer.as_ref().map(j),
                })
            }
            CgroupMode::None => None,
        }
    }

    /// Create the directories and write the limits. `controllers` is the v2 set
    /// enabled for task cgroups (ignored in v1). Removes what it created on error.
    pub fn create(
        &self,
        limits: &Resources,
        pids_max: Option<u64>,
        controllers: &[String],
        task: llmchain_core::TaskId,
    ) -> Result<(), NodeError> {
        let mut made: Vec<&PathBuf> = Vec::with_capacity(self.dirs.len());
        for d in &self.dirs {
            let mut r = fs::create_dir(d);
            if matches!(&r, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) {
                if self.procs_in(d).map(|p| !p.is_empty()).unwrap_or(false) {
                    for m in &made {
                        let _ = fs::remove_dir(m);
                    }
                    return Err(NodeError::AlreadyRunning {
                        task,
                        path: d.clone(),
                    });
                }
                tracing::warn!("replacing stale empty cgroup {}", d.display());
                let _ = fs::remove_dir(d);
                r = fs::create_dir(d);
            }
            if let Err(e) = r {
                for m in &made {
                    let _ = fs::remove_dir(m);
                }
                return Err(NodeError::io("create cgroup directory", d, e));
            }
            made.push(d);
        }
        let r = self.write_limits(limits, pids_max, controllers);
        if r.is_err() {
            self.remove(Duration::ZERO);
        }
        r
    }

    fn write_limits(
        &self,
        limits: &Resources,
        pids_max: Option<u64>,
        controllers: &[String],
    ) -> Result<(), NodeError> {
        let has = |c: &str| !self.v2 || controllers.iter().any(|x| x == c);
        let quota = cpu_quota_us(limits.cpu_milli());
        let mem_bytes = (limits.mem_mib() > 0).then(|| limits.mem_mib() * 1024 * 1024);
        if self.v2 {
            let d = &self.dirs[0];
            if let (Some(q), true) = (quota, has("cpu")) {
                write(&d.join("cpu.max"), &format!("{q} {CPU_PERIOD_US}"))?;
                write(
                    &d.join("cpu.weight"),
                    &cpu_weight(limits.cpu_milli()).to_string(),
                )?;
            }
            if let (Some(b), true) = (mem_bytes, has("memory")) {
                write(&d.join("memory.max"), &b.to_string())?;
                if d.join("memory.swap.max").exists() {
                    write(&d.join("memory.swap.max"), "0")?;
                }
                if d.join("memory.oom.group").exists() {
                    write(&d.join("memory.oom.group"), "1")?;
                }
            }
            if let (Some(n), true) = (pids_max, has("pids")) {
                write(&d.join("pids.max"), &n.to_string())?;
            }
        } else {
            if let (Some(q), Some(d)) = (quota, &self.cpu_dir) {
                write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
                write(
                    &d.join("cpu.shares"),
                    &cpu_shares(limits.cpu_milli()).to_string(),
                )?;
            }
            if let (Some(b), Some(d)) = (mem_bytes, &self.memory_dir) {
                write(&d.join("memory.limit_in_bytes"), &b.to_string())?;
                let memsw = d.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &b.to_string())?;
                }
                let swappiness = d.join("memory.swappiness");
                if swappiness.exists() {
                    // Best effort: the kernel refuses this under some parents; memsw already forbids swap.
                    let _ = fs::write(&swappiness, "0");
                }
            }
            if let (Some(n), Some(d)) = (pids_max, &self.pids_dir) {
                write(&d.join("pids.max"), &n.to_string())?;
            }
        }
        Ok(())
    }

    /// The files a new, still single-threaded child writes "0" into to join the cgroup(s):
    /// `cgroup.procs` in v2; in v1 the per-thread `tasks` file, because moving only the
    /// calling thread skips the global `cgroup_threadgroup_rwsem` write lock (an RCU
    /// grace period, milliseconds per hierarchy) that a `cgroup.procs` write takes.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let f = if self.v2 { "cgroup.procs" } else { "tasks" };
        self.dirs.iter().map(|d| d.join(f)).collect()
    }

    fn procs_in(&self, dir: &Path) -> io::Result<Vec<u32>> {
        let t = fs::read_to_string(dir.join("cgroup.procs"))?;
        Ok(t.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Pids currently in the task's cgroup (empty once it is gone).
    pub fn pids(&self) -> Vec<u32> {
        let mut all: Vec<u32> = Vec::new();
        for d in &self.dirs {
            for p in self.procs_in(d).unwrap_or_default() {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        all
    }

    /// Send `sig` to every process in the cgroup(s), freezing first where possible so
    /// nothing can fork in between. For SIGKILL on v2 uses `cgroup.kill` (atomic).
    pub fn signal_all(&self, sig: i32) {
        if self.v2 && sig == libc::SIGKILL {
            let k = self.dirs[0].join("cgroup.kill");
            if k.exists() && fs::write(&k, "1").is_ok() {
                return;
            }
        }
        let (freeze, thaw): (Option<(PathBuf, &str)>, Option<&str>) = if self.v2 {
            let f = self.dirs[0].join("cgroup.freeze");
            if f.exists() {
                (Some((f, "1")), Some("0"))
            } else {
                (None, None)
            }
        } else if let Some(d) = &self.freezer_dir {
            (Some((d.join("freezer.state"), "FROZEN")), Some("THAWED"))
        } else {
            (None, None)
        };
        let frozen = match &freeze {
            Some((f, v)) => fs::write(f, v).is_ok() && self.wait_frozen(f),
            None => false,
        };
        for _round in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in &pids {
                platform::kill_pid(*p, sig);
            }
            if sig != libc::SIGKILL || frozen {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let (Some((f, _)), Some(v)) = (&freeze, thaw) {
            let _ = fs::write(f, v);
        }
    }

    fn wait_frozen(&self, state_file: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let ok = if self.v2 {
                read_trim(&self.dirs[0].join("cgroup.events"))
                    .map(|t| t.lines().any(|l| l.trim() == "frozen 1"))
                    .unwrap_or(true)
            } else {
                read_trim(state_file)
                    .map(|s| s == "FROZEN")
                    .unwrap_or(false)
            };
            if ok {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kill everything in the cgroup and wait (up to `timeout`) until it is empty.
    pub fn kill_all(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pids().is_empty() {
                return true;
            }
            self.signal_all(libc::SIGKILL);
            if Instant::now() > deadline {
                return self.pids().is_empty();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// CPU time used by everything that ran in the cgroup.
    pub fn cpu_time(&self) -> Option<Duration> {
        if self.v2 {
            let t = read_trim(&self.dirs[0].join("cpu.stat")).ok()?;
            let us = kv(&t, "usage_usec")?;
            Some(Duration::from_micros(us))
        } else {
            let ns = read_trim(&self.cpuacct_dir.as_ref()?.join("cpuacct.usage"))
                .ok()?
                .parse::<u64>()
                .ok()?;
            Some(Duration::from_nanos(ns))
        }
    }

    /// Current memory use in MiB.
    pub fn mem_mib(&self) -> Option<u64> {
        let d = self.memory_dir.as_ref()?;
        let f = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        Some(read_trim(&d.join(f)).ok()?.parse::<u64>().ok()? / (1024 * 1024))
    }

    /// Peak memory use in MiB (v2 needs `memory.peak`, Linux ≥ 5.19).
    pub fn peak_mem_mib(&self) -> Option<u64> {
        let d = self.memory_dir.as_ref()?;
        let f = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let b = read_trim(&d.join(f)).ok()?.parse::<u64>().ok()?;
        Some(b.div_ceil(1024 * 1024))
    }

    /// OOM counters.
    pub fn oom(&self) -> OomInfo {
        let Some(d) = &self.memory_dir else {
            return OomInfo::default();
        };
        if self.v2 {
            OomInfo {
                oom_kill: read_trim(&d.join("memory.events"))
                    .ok()
                    .and_then(|t| kv(&t, "oom_kill")),
                failcnt: None,
            }
        } else {
            OomInfo {
                oom_kill: read_trim(&d.join("memory.oom_control"))
                    .ok()
                    .and_then(|t| kv(&t, "oom_kill")),
                failcnt: read_trim(&d.join("memory.failcnt"))
                    .ok()
                    .and_then(|t| t.parse().ok()),
            }
        }
    }

    /// Remove the directories, retrying for up to `timeout` while processes drain.
    /// Returns the directories that could not be removed.
    pub fn remove(&self, timeout: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        let mut left: Vec<PathBuf> = self.dirs.clone();
        loop {
            left.retain(|d| match fs::remove_dir(d) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(_) => true,
            });
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Value of `key` in a `key value` per line file (`cpu.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key)
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmchain_core::TaskId;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 31 0:40 /docker/abc /sys/fs/cgroup/blk\\040io rw - cgroup cgroup rw,blkio
";

    #[test]
    fn mountinfo_and_membership_parse() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 7, "{m:?}");
        assert_eq!(m[0].controllers, vec!["cpu"]);
        assert!(m[5].v2 && m[5].mount_point == Path::new("/sys/fs/cgroup/unified"));
        assert!(
            m[4].controllers.is_empty(),
            "name=systemd carries no controller"
        );
        assert_eq!(m[6].mount_point, Path::new("/sys/fs/cgroup/blk io"));
        let own = parse_proc_cgroup(
            "4:memory:/process_api/e0\n2:cpu,cpuacct:/x\n0::/user.slice/a.service\n",
        );
        assert_eq!(own.v2.as_deref(), Some("/user.slice/a.service"));
        assert_eq!(own.v1_path("cpuacct"), Some("/x"));
        let l = Layout { mounts: m, own };
        assert_eq!(
            l.v1_base("memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/e0")
        );
        assert_eq!(
            l.v2_base().unwrap(),
            Path::new("/sys/fs/cgroup/unified/user.slice/a.service")
        );
        let mb = CgroupMount {
            root: "/docker/abc".into(),
            mount_point: "/cg".into(),
            v2: false,
            controllers: vec![],
        };
        assert_eq!(own_dir(&mb, "/docker/abc/t1"), Path::new("/cg/t1"));
    }

    #[test]
    fn quota_and_kv() {
        assert_eq!(cpu_quota_us(500), Some(50_000));
        assert_eq!(cpu_quota_us(2000), Some(200_000));
        assert_eq!(cpu_quota_us(1), Some(MIN_QUOTA_US));
        assert_eq!(cpu_quota_us(0), None);
        assert_eq!(
            (cpu_shares(1000), cpu_shares(500), cpu_shares(1)),
            (1024, 512, 2)
        );
        assert_eq!(
            (cpu_weight(1000), cpu_weight(0), cpu_weight(256_000)),
            (39, 1, 10000)
        );
        assert_eq!(
            kv("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(
            kv(
                "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0",
                "oom_kill"
            ),
            Some(1)
        );
        assert_eq!(kv("usage_usec 120\n", "user_usec"), None);
    }

    /// The v2 file-writing logic, checked against a temporary directory tree that mimics a
    /// delegated cgroup2 subtree. Real v2 enforcement is tested by the node integration
    /// suite in a cgroup-v2-only VM (`tests/vm`), since the dev and CI machines bind the
    /// cpu/memory controllers to v1 hierarchies.
    #[test]
    fn v2_files_written_in_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        fs::write(base.join("cgroup.controllers"), "cpuset cpu io memory pids").unwrap();
        fs::write(base.join("cgroup.subtree_control"), "").unwrap();
        // A plain directory has no cgroup.controllers; seed the parent's so enabling works.
        fs::create_dir(base.join("llm")).unwrap();
        let (dir, _enabled) = setup_v2_parent(base, "llm").unwrap();
        assert_eq!(dir, base.join("llm"));
        // One write enables them all (the kernel vets them together).
        assert_eq!(
            fs::read_to_string(base.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        assert_eq!(
            fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        let mode = CgroupMode::V2 {
            root: dir.clone(),
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        };
        let cg = TaskCgroup::at(&mode, "task-3").unwrap();
        // memory.swap.max / memory.oom.group are written only where present: pre-create via a stale-free path.
        cg.create(
            &Resources::new(1500, 64),
            Some(100),
            &["cpu".into(), "memory".into(), "pids".into()],
            TaskId(3),
        )
        .unwrap();
        let d = dir.join("task-3");
        assert_eq!(
            fs::read_to_string(d.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(
            fs::read_to_string(d.join("cpu.weight")).unwrap(),
            cpu_weight(1500).to_string()
        );
        assert_eq!(
            fs::read_to_string(d.join("memory.max")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert_eq!(fs::read_to_string(d.join("pids.max")).unwrap(), "100");
        assert!(
            !d.join("memory.swap.max").exists(),
            "absent files are not created"
        );
        assert_eq!(cg.procs_files(), vec![d.join("cgroup.procs")]);
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n",
        )
        .unwrap();
        fs::write(
            d.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        )
        .unwrap();
        fs::write(d.join("memory.peak"), (65u64 << 20).to_string()).unwrap();
        assert!(cg.oom().oom_killed());
        assert_eq!(cg.cpu_time(), Some(Duration::from_millis(2500)));
        assert_eq!(cg.peak_mem_mib(), Some(65));
        // Without the memory controller delegated, no memory file is written.
        let cg2 = TaskCgroup::at(&mode, "task-4").unwrap();
        cg2.create(&Resources::new(500, 64), None, &["cpu".into()], TaskId(4))
            .unwrap();
        assert!(!dir.join("task-4/memory.max").exists());
        assert_eq!(
            fs::read_to_string(dir.join("task-4/cpu.max")).unwrap(),
            "50000 100000"
        );
    }

    #[test]
    fn v1_files_written_in_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |s: &str| tmp.path().join(s);
        for c in ["cpu", "memory", "cpuacct"] {
            fs::create_dir(p(c)).unwrap();
        }
        let mode = CgroupMode::V1 {
            cpu: p("cpu"),
            memory: p("memory"),
            cpuacct: Some(p("cpuacct")),
            pids: None,
            freezer: None,
        };
        let cg = TaskCgroup::at(&mode, "task-9").unwrap();
        assert_eq!(
            cg.dirs,
            vec![p("memory/task-9"), p("cpu/task-9"), p("cpuacct/task-9")]
        );
        cg.create(&Resources::new(500, 64), Some(10), &[], TaskId(9))
            .unwrap();
        assert_eq!(
            fs::read_to_string(p("cpu/task-9/cpu.cfs_quota_us")).unwrap(),
            "50000"
        );
        assert_eq!(
            fs::read_to_string(p("cpu/task-9/cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        assert_eq!(
            fs::read_to_string(p("cpu/task-9/cpu.shares")).unwrap(),
            "512"
        );
        assert_eq!(
            fs::read_to_string(p("memory/task-9/memory.limit_in_bytes")).unwrap(),
            (64u64 << 20).to_string()
        );
        fs::write(
            p("memory/task-9/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        fs::write(p("memory/task-9/memory.failcnt"), "12").unwrap();
        assert!(
            !cg.oom().oom_killed(),
            "the oom_kill counter wins over failcnt"
        );
        fs::write(
            p("memory/task-9/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        assert!(
            cg.oom().oom_killed(),
            "without the counter, failcnt > 0 counts"
        );
        fs::write(p("cpuacct/task-9/cpuacct.usage"), "1500000000").unwrap();
        assert_eq!(cg.cpu_time(), Some(Duration::from_millis(1500)));
        // A leftover empty directory is replaced; a populated one is refused.
        fs::write(p("memory/task-9/cgroup.procs"), "123\n").unwrap();
        let e = cg
            .create(&Resources::new(500, 64), None, &[], TaskId(9))
            .unwrap_err();
        assert!(matches!(e, NodeError::AlreadyRunning { .. }), "{e}");
    }
}
