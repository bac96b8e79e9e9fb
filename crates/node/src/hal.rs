//! Hardware abstraction: discover the machine (CPUs, cpuset, memory, GPUs), sample
//! machine telemetry (CPU utilisation from `/proc/stat` deltas, memory, load, PSI),
//! and render both as a compact text form for the kernel's LLM encoder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use llmchain_core::{NodeId, NodeState, Resources};
use serde::{Deserialize, Serialize};

use crate::executor::TaskUsage;
use crate::{cgroup, platform, NodeError};

/// One GPU as reported by `nvidia-smi`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Device index (what `CUDA_VISIBLE_DEVICES` takes).
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Device memory in MiB.
    pub mem_mib: u64,
    /// Device UUID.
    pub uuid: String,
}

/// What this machine offers to tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Host name (`/proc/sys/kernel/hostname`).
    pub hostname: String,
    /// Usable CPUs: the size of [`MachineInfo::cpuset`].
    pub cpus: u32,
    /// CPU numbers this process may run on (`sched_getaffinity`), ascending.
    pub cpuset: Vec<u32>,
    /// Usable memory in MiB: `MemTotal` from `/proc/meminfo`, lowered to this
    /// process's own cgroup memory limit when that is smaller.
    pub mem_mib: u64,
    /// GPUs found by `nvidia-smi` (empty when it is absent).
    pub gpus: Vec<GpuInfo>,
    /// CPU model name from `/proc/cpuinfo` (empty when unknown).
    pub cpu_model: String,
}

/// Discover this machine from `/proc`, `/sys`, `sched_getaffinity` and `nvidia-smi` when present.
///
/// Fails only when the essentials (CPU affinity, `/proc/meminfo`) cannot be read or parsed;
/// a missing or failing `nvidia-smi` yields no GPUs (failure is logged at `warn`).
pub fn discover() -> Result<MachineInfo, NodeError> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()));
    let cpuset = platform::affinity()?;
    let meminfo_path = Path::new("/proc/meminfo");
    let meminfo = read(meminfo_path)?;
    let mem = parse_meminfo(&meminfo).map_err(|d| NodeError::parse("meminfo", meminfo_path, d))?;
    let mut mem_mib = mem.total_kib / 1024;
    if let Some(limit) = cgroup::own_memory_limit_bytes() {
        mem_mib = mem_mib.min(limit / (1024 * 1024));
    }
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok(MachineInfo {
        hostname,
        cpus: cpuset.len() as u32,
        cpuset,
        mem_mib,
        gpus: discover_gpus(),
        cpu_model,
    })
}

/// GPUs from `nvidia-smi`, or none when it is not installed or fails (logged).
pub fn discover_gpus() -> Vec<GpuInfo> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total,uuid",
            "--format=csv,noheader,nounits",
        ])
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!("nvidia-smi could not run: {e}; assuming no GPUs");
            Vec::new()
        }
        Ok(o) if !o.status.success() => {
            tracing::warn!(
                "nvidia-smi failed ({}): {}; assuming no GPUs",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            Vec::new()
        }
        Ok(o) => match parse_nvidia_smi(&String::from_utf8_lossy(&o.stdout)) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("{e}; assuming no GPUs");
                Vec::new()
            }
        },
    }
}

/// Parse `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<GpuInfo>, NodeError> {
    let mut gpus = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |d: &str| {
            NodeError::parse(
                "GPU line",
                "nvidia-smi",
                format!("line {}: {d}: {line:?}", i + 1),
            )
        };
        if f.len() != 4 {
            return Err(bad("expected 4 comma-separated fields"));
        }
        gpus.push(GpuInfo {
            index: f[0].parse().map_err(|_| bad("index is not an integer"))?,
            name: f[1].to_string(),
            mem_mib: f[2]
                .parse()
                .map_err(|_| bad("memory.total is not an integer"))?,
            uuid: f[3].to_string(),
        });
    }
    Ok(gpus)
}

/// The machine's schedulable capacity in core units: CPUs × 1000 millicores, memory MiB, GPUs.
/// Use it for `llmchain_core::NodeState::capacity`.
pub fn capacity(info: &MachineInfo) -> Resources {
    Resources::cpus(u64::from(info.cpus), info.mem_mib).with_gpus(info.gpus.len() as u64)
}

/// This machine as the core model's [`NodeState`]: capacity from [`capacity`], and
/// free = capacity − `in_use` (what running tasks hold), saturating at zero.
pub fn node_state(id: NodeId, info: &MachineInfo, in_use: &Resources) -> NodeState {
    let cap = capacity(info);
    NodeState {
        id,
        capacity: cap,
        free: cap.saturating_sub(in_use),
    }
}

/// One line of a PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiLine {
    /// Percentage of the last 10 s some (or all) tasks were stalled.
    pub avg10: f64,
    /// Same over 60 s.
    pub avg60: f64,
    /// Same over 300 s.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// One PSI resource file (`/proc/pressure/cpu`, `memory` or `io`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiResource {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled (absent for CPU on older kernels).
    pub full: Option<PsiLine>,
}

/// Pressure stall information for the machine.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    /// CPU pressure.
    pub cpu: Option<PsiResource>,
    /// Memory pressure.
    pub memory: Option<PsiResource>,
    /// I/O pressure.
    pub io: Option<PsiResource>,
}

/// Parse the text of one PSI file. Errors name the line and the bad token.
pub fn parse_psi(text: &str) -> Result<PsiResource, String> {
    let mut some = None;
    let mut full = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut tok = line.split_whitespace();
        let kind = tok.next().unwrap_or("");
        let mut l = PsiLine::default();
        let mut seen = 0;
        for t in tok {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| format!("line {}: token {t:?} is not key=value", i + 1))?;
            let fv = || {
                v.parse::<f64>()
                    .map_err(|_| format!("line {}: {k}={v:?} is not a number", i + 1))
            };
            match k {
                "avg10" => l.avg10 = fv()?,
                "avg60" => l.avg60 = fv()?,
                "avg300" => l.avg300 = fv()?,
                "total" => {
                    l.total_us = v
                        .parse()
                        .map_err(|_| format!("line {}: total={v:?} is not an integer", i + 1))?
                }
                _ => continue,
            }
            seen += 1;
        }
        if seen != 4 {
            return Err(format!(
                "line {}: expected avg10, avg60, avg300 and total in {line:?}",
                i + 1
            ));
        }
        match kind {
            "some" => some = Some(l),
            "full" => full = Some(l),
            other => {
                return Err(format!(
                    "line {}: unknown kind {other:?} (expected some or full)",
                    i + 1
                ))
            }
        }
    }
    Ok(PsiResource {
        some: some.ok_or("no \"some\" line")?,
        full,
    })
}

/// Read `/proc/pressure/{cpu,memory,io}`; `None` when the kernel has no PSI.
/// Unparseable files are logged and left out.
pub fn read_psi() -> Option<Psi> {
    read_psi_from(Path::new("/proc/pressure"))
}

fn read_psi_from(dir: &Path) -> Option<Psi> {
    let one = |name: &str| -> Option<PsiResource> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).ok()?;
        match parse_psi(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("cannot parse {}: {e}", path.display());
                None
            }
        }
    };
    let psi = Psi {
        cpu: one("cpu"),
        memory: one("memory"),
        io: one("io"),
    };
    (psi.cpu.is_some() || psi.memory.is_some() || psi.io.is_some()).then_some(psi)
}

/// Machine telemetry at one instant (utilisation over the interval since the previous sample).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Fraction (0–1) of all CPU time that was busy (not idle or iowait) since the previous sample.
    pub cpu_util: f64,
    /// The interval `cpu_util` covers.
    pub interval: Duration,
    /// One-minute load average.
    pub load1: f64,
    /// `MemTotal - MemAvailable`, MiB.
    pub mem_used_mib: u64,
    /// `MemAvailable`, MiB.
    pub mem_available_mib: u64,
    /// `MemTotal`, MiB.
    pub mem_total_mib: u64,
    /// Pressure stall information, when the kernel has it.
    pub psi: Option<Psi>,
}

/// Aggregate CPU jiffies from the first line of `/proc/stat`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// All jiffies.
    pub total: u64,
    /// Idle + iowait jiffies.
    pub idle: u64,
}

/// Parse the aggregate `cpu` line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no aggregate \"cpu \" line")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| format!("field {t:?} is not an integer in {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    if v.len() < 4 {
        return Err(format!("expected at least 4 counters in {line:?}"));
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already counted in user/nice, so leave the last two out of the total.
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Ok(CpuTimes { total, idle })
}

/// Memory figures from `/proc/meminfo`, in KiB.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_kib: u64,
    /// `MemAvailable` (or `MemFree` on kernels without it).
    pub available_kib: u64,
}

/// Parse `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let field = |name: &str| -> Option<Result<u64, String>> {
        let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
        let v = line
            .split(':')
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        Some(
            v.parse::<u64>()
                .map_err(|_| format!("{name} value {v:?} is not an integer")),
        )
    };
    let total_kib = field("MemTotal").ok_or("no MemTotal line")??;
    let available_kib = match field("MemAvailable").or_else(|| field("MemFree")) {
        Some(v) => v?,
        None => return Err("no MemAvailable or MemFree line".into()),
    };
    Ok(MemInfo {
        total_kib,
        available_kib,
    })
}

/// Samples machine telemetry; keeps the previous `/proc/stat` reading for utilisation deltas.
#[derive(Debug)]
pub struct TelemetrySampler {
    prev: Option<(CpuTimes, Instant)>,
    proc_dir: PathBuf,
}

impl Default for TelemetrySampler {
    fn default() -> Self {
        Self::new()
    }
}

impl TelemetrySampler {
    /// A sampler reading `/proc`; takes a first `/proc/stat` reading now so the
    /// first [`sample`](Self::sample) already reports utilisation since creation.
    pub fn new() -> Self {
        let mut s = TelemetrySampler {
            prev: None,
            proc_dir: PathBuf::from("/proc"),
        };
        s.prev = s.read_cpu().map(|c| (c, Instant::now()));
        s
    }

    fn read_cpu(&self) -> Option<CpuTimes> {
        let path = self.proc_dir.join("stat");
        let text = std::fs::read_to_string(&path).ok()?;
        match parse_proc_stat(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("cannot parse {}: {e}", path.display());
                None
            }
        }
    }

    /// Take a sample. Never fails: unreadable sources give zeros / `None` (logged at `warn`).
    pub fn sample(&mut self) -> Telemetry {
        let now = Instant::now();
        let cur = self.read_cpu();
        let (cpu_util, interval) = match (self.prev, cur) {
            (Some((p, t)), Some(c)) => {
                let dt = c.total.saturating_sub(p.total);
                let di = c.idle.saturating_sub(p.idle);
                let util = if dt == 0 {
                    0.0
                } else {
                    (dt.saturating_sub(di)) as f64 / dt as f64
                };
                (util.clamp(0.0, 1.0), now - t)
            }
            _ => (0.0, Duration::ZERO),
        };
        if let Some(c) = cur {
            self.prev = Some((c, now));
        }
        let mem = std::fs::read_to_string(self.proc_dir.join("meminfo"))
            .map_err(|e| e.to_string())
            .and_then(|t| parse_meminfo(&t))
            .unwrap_or_else(|e| {
                tracing::warn!("cannot read meminfo: {e}");
                MemInfo::default()
            });
        let load1 = std::fs::read_to_string(self.proc_dir.join("loadavg"))
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        Telemetry {
            cpu_util,
            interval,
            load1,
            mem_used_mib: mem.total_kib.saturating_sub(mem.available_kib) / 1024,
            mem_available_mib: mem.available_kib / 1024,
            mem_total_mib: mem.total_kib / 1024,
            psi: read_psi_from(&self.proc_dir.join("pressure")),
        }
    }
}

/// A compact, line-oriented `key=value` text form of the node for the kernel's LLM encoder.
///
/// ```text
/// node host=vm cpus=2 mem_mib=24105 gpus=0
/// load cpu_util=0.35 load1=0.80 mem_used_mib=690 mem_avail_mib=23414 psi_cpu=1.21 psi_mem=0.00 psi_mem_full=0.00 psi_io=0.00
/// task id=7 pid=4242 cpu_s=1.50 mem_mib=12 peak_mib=20
/// ```
/// PSI figures are `avg10` percentages; they are left out when the kernel has no PSI.
/// Tasks appear in the order given.
pub fn snapshot_text(info: &MachineInfo, t: &Telemetry, tasks: &[TaskUsage]) -> String {
    let mut s = String::with_capacity(160 + 48 * tasks.len());
    let _ = writeln!(
        s,
        "node host={} cpus={} mem_mib={} gpus={}",
        info.hostname.replace(char::is_whitespace, "_"),
        info.cpus,
        info.mem_mib,
        info.gpus.len()
    );
    let _ = write!(
        s,
        "load cpu_util={:.2} load1={:.2} mem_used_mib={} mem_avail_mib={}",
        t.cpu_util, t.load1, t.mem_used_mib, t.mem_available_mib
    );
    if let Some(p) = &t.psi {
        if let Some(c) = &p.cpu {
            let _ = write!(s, " psi_cpu={:.2}", c.some.avg10);
        }
        if let Some(m) = &p.memory {
            let _ = write!(s, " psi_mem={:.2}", m.some.avg10);
            if let Some(f) = &m.full {
                let _ = write!(s, " psi_mem_full={:.2}", f.avg10);
            }
        }
        if let Some(io) = &p.io {
            let _ = write!(s, " psi_io={:.2}", io.some.avg10);
        }
    }
    s.push('\n');
    for u in tasks {
        let _ = write!(
            s,
            "task id={} pid={} cpu_s={:.2}",
            u.task,
            u.pid,
            u.cpu_time.as_secs_f64()
        );
        if let Some(m) = u.mem_mib {
            let _ = write!(s, " mem_mib={m}");
        }
        if let Some(m) = u.peak_mem_mib {
            let _ = write!(s, " peak_mib={m}");
        }
        s.push('\n');
    }
    s
}

fn read(path: &Path) -> Result<String, NodeError> {
    std::fs::read_to_string(path).map_err(|e| NodeError::io("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_fixture_parses() {
        let r = parse_psi(
            "some avg10=1.21 avg60=0.80 avg300=0.94 total=6549951\nfull avg10=0.00 avg60=0.50 avg300=0.00 total=12\n",
        )
        .unwrap();
        assert_eq!(r.some.avg10, 1.21);
        assert_eq!(r.some.total_us, 6549951);
        assert_eq!(r.full.unwrap().avg60, 0.5);
        let cpu_only = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0").unwrap();
        assert!(cpu_only.full.is_none());
    }

    #[test]
    fn psi_errors_name_the_line() {
        let e = parse_psi("some avg10=x avg60=0 avg300=0 total=0").unwrap_err();
        assert!(e.contains("line 1") && e.contains("avg10"), "{e}");
        let e = parse_psi(
            "some avg10=0 avg60=0 avg300=0 total=0\nweird avg10=0 avg60=0 avg300=0 total=0",
        )
        .unwrap_err();
        assert!(e.contains("line 2") && e.contains("weird"), "{e}");
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some avg10=0").is_err());
    }

    #[test]
    fn proc_stat_and_meminfo_parse() {
        let c = parse_proc_stat("cpu  10 0 5 80 5 0 0 0 3 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            c,
            CpuTimes {
                total: 100,
                idle: 85
            }
        );
        assert!(parse_proc_stat("cpu0 1 2 3 4").is_err());
        assert!(parse_proc_stat("cpu  1 x 3 4")
            .unwrap_err()
            .contains("\"x\""));
        let m = parse_meminfo(
            "MemTotal:       24683568 kB\nMemFree: 1 kB\nMemAvailable:   23975744 kB\n",
        )
        .unwrap();
        assert_eq!(
            m,
            MemInfo {
                total_kib: 24683568,
                available_kib: 23975744
            }
        );
        assert!(parse_meminfo("MemFree: 1 kB").is_err());
        assert!(parse_meminfo("MemTotal: lots kB\nMemFree: 1 kB")
            .unwrap_err()
            .contains("MemTotal"));
    }

    #[test]
    fn nvidia_smi_output_parses() {
        let g = parse_nvidia_smi(
            "0, NVIDIA A100-SXM4-40GB, 40960, GPU-abc\n1, Tesla T4, 15360, GPU-def\n",
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].mem_mib, 15360);
        let e = parse_nvidia_smi("0, A100\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn capacity_and_text_form() {
        let info = MachineInfo {
            hostname: "my host".into(),
            cpus: 2,
            cpuset: vec![0, 1],
            mem_mib: 4096,
            gpus: vec![],
            cpu_model: String::new(),
        };
        assert_eq!(capacity(&info), Resources::cpus(2, 4096));
        let ns = node_state(NodeId(0), &info, &Resources::cpus(3, 1000));
        assert_eq!(ns.free, Resources::new(0, 3096));
        let t = Telemetry {
            cpu_util: 0.5,
            interval: Duration::from_secs(1),
            load1: 1.0,
            mem_used_mib: 100,
            mem_available_mib: 3996,
            mem_total_mib: 4096,
            psi: Some(Psi {
                cpu: Some(PsiResource::default()),
                memory: None,
                io: None,
            }),
        };
        let u = TaskUsage {
            task: llmchain_core::TaskId(7),
            pid: 42,
            cpu_time: Duration::from_millis(1500),
            mem_mib: Some(12),
            peak_mem_mib: None,
        };
        let s = snapshot_text(&info, &t, &[u]);
        assert_eq!(
            s,
            "node host=my_host cpus=2 mem_mib=4096 gpus=0\n\
             load cpu_util=0.50 load1=1.00 mem_used_mib=100 mem_avail_mib=3996 psi_cpu=0.00\n\
             task id=7 pid=42 cpu_s=1.50 mem_mib=12\n"
        );
    }

    proptest::proptest! {
        /// Kernel and tool text is parsed without panicking, whatever it contains.
        #[test]
        fn parsers_never_panic(text in "\\PC{0,200}", lines in proptest::collection::vec("[a-z0-9=:,. /()-]{0,40}", 0..6)) {
            let joined = lines.join("\n");
            for t in [&text, &joined] {
                let _ = parse_psi(t);
                let _ = parse_proc_stat(t);
                let _ = parse_meminfo(t);
                let _ = parse_nvidia_smi(t);
                let _ = crate::cgroup::parse_mountinfo(t);
                let _ = crate::cgroup::parse_proc_cgroup(t);
                let _ = crate::cgroup::kv(t, "oom_kill");
            }
        }
    }
}
