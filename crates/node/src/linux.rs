//! Linux system calls behind safe functions: CPU affinity, spawning with a
//! race-free cgroup join, waiting without reaping, signals, user lookup.
//!
//! This is the only module that uses `unsafe`; every block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::NodeError;

/// CPUs this process may run on, ascending.
pub(crate) fn affinity() -> Result<Vec<u32>, NodeError> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set; the kernel writes at
    // most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(NodeError::Sys {
            what: "sched_getaffinity".into(),
            source: io::Error::last_os_error(),
        });
    }
    let n = libc::CPU_SETSIZE as usize;
    // SAFETY: index < CPU_SETSIZE, set is initialised.
    let cpus: Vec<u32> = (0..n)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .map(|c| c as u32)
        .collect();
    if cpus.is_empty() {
        return Err(NodeError::Sys {
            what: "sched_getaffinity (empty set)".into(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    Ok(cpus)
}

/// Send `sig` to one process; errors (already gone) are ignored.
pub(crate) fn kill_pid(pid: u32, sig: i32) {
    if pid == 0 || pid > i32::MAX as u32 {
        return;
    }
    // SAFETY: kill has no memory effects; pid > 0 targets exactly one process.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Send `sig` to a whole process group; errors (group gone) are ignored.
pub(crate) fn kill_group(pgid: u32, sig: i32) {
    if pgid <= 1 || pgid > i32::MAX as u32 {
        return;
    }
    // SAFETY: as kill_pid; a negative pid addresses the process group.
    unsafe { libc::kill(-(pgid as libc::pid_t), sig) };
}

/// What the child does between `fork` and `exec`, all async-signal-safe.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    /// `cgroup.procs` files to join (opened in the parent; the child writes "0").
    pub procs: Vec<PathBuf>,
    /// `RLIMIT_DATA` in bytes (fallback memory limit).
    pub rlimit_data: Option<u64>,
    /// CPUs to pin to (fallback CPU limit).
    pub cpus: Option<Vec<u32>>,
    /// Switch to this uid (and `gid`, `groups`) before exec.
    pub uid: Option<u32>,
    /// Primary group when `uid` is set.
    pub gid: Option<u32>,
    /// Supplementary groups when `uid` is set.
    pub groups: Vec<u32>,
    /// Working directory, entered after the credential switch (so it is checked as the user).
    pub cwd: Option<PathBuf>,
}

/// Spawn `cmd` in a new session, inside the given cgroups, with the fallback limits
/// and credentials applied in the child before `exec`. Returns the child's pid.
///
/// The cgroup join is race-free: the child moves itself (writes "0" to each
/// `cgroup.procs`, through descriptors the parent opened) before `exec`, so the
/// task's program and everything it forks start inside the cgroup.
pub(crate) fn spawn(cmd: &mut Command, setup: ChildSetup) -> io::Result<u32> {
    let mut files = Vec::with_capacity(setup.procs.len());
    for p in &setup.procs {
        let f = File::options()
            .write(true)
            .open(p)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display())))?;
        files.push(f);
    }
    let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let rlimit = setup.rlimit_data;
    // SAFETY: cpu_set_t is plain data; CPU_SET indices are bounded by CPU_SETSIZE.
    let cpuset: Option<libc::cpu_set_t> = setup.cpus.as_ref().map(|cpus| unsafe {
        let mut s: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus
            .iter()
            .filter(|&&c| (c as usize) < libc::CPU_SETSIZE as usize)
        {
            libc::CPU_SET(c as usize, &mut s);
        }
        s
    });
    let creds = setup
        .uid
        .map(|u| (u, setup.gid.unwrap_or(u), setup.groups.clone()));
    let cwd = match &setup.cwd {
        Some(p) => Some(CString::new(p.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "working directory contains a NUL byte",
            )
        })?),
        None => None,
    };
    // SAFETY: the closure runs in the forked child before exec. It only calls
    // async-signal-safe functions (setsid, write, setrlimit, sched_setaffinity,
    // setgroups, setgid, setuid, chdir) on data prepared before the fork, and allocates nothing
    // (io::Error::last_os_error does not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(bytes) = rlimit {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(set) = &cpuset {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some((uid, gid, groups)) = &creds {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(dir) = &cwd {
                if libc::chdir(dir.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The descriptors were CLOEXEC in the child; close the parent's copies now.
    drop(files);
    Ok(child.id())
}

/// Block until `pid` (our child) has exited, without reaping it: the pid stays
/// reserved (a zombie) so signals to it or its process group cannot hit a stranger.
pub(crate) fn wait_exit(pid: u32) -> Result<(), NodeError> {
    loop {
        // SAFETY: siginfo_t is plain data, zeroed is valid; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(NodeError::Sys {
                what: format!("waitid(pid {pid})"),
                source: e,
            });
        }
    }
}

/// How a reaped child ended, with its resource usage (and that of its reaped descendants).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Reaped {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_time: Duration,
    pub maxrss_kib: u64,
}

/// Reap `pid` (our child) with `wait4`.
pub(crate) fn reap(pid: u32) -> Result<Reaped, NodeError> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; wait4 writes status and rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
        if r == pid as libc::pid_t {
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            return Ok(Reaped {
                exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
                signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
                cpu_time: tv(ru.ru_utime) + tv(ru.ru_stime),
                maxrss_kib: ru.ru_maxrss.max(0) as u64,
            });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(NodeError::Sys {
                what: format!("wait4(pid {pid})"),
                source: e,
            });
        }
    }
}

/// Primary gid and supplementary groups of `uid` from the user database.
pub(crate) fn user_groups(uid: u32) -> Result<(u32, Vec<u32>), NodeError> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwuid_r writes into pwd and buf (len given) and
    // sets result to &pwd or null; strings in pwd point into buf, which outlives their use.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let r = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        let source = if r != 0 {
            io::Error::from_raw_os_error(r)
        } else {
            io::Error::from(io::ErrorKind::NotFound)
        };
        return Err(NodeError::Sys {
            what: format!("getpwuid_r(uid {uid}): no such user"),
            source,
        });
    }
    let gid = pwd.pw_gid;
    // SAFETY: pw_name is a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_owned();
    let mut n: libc::c_int = 64;
    let mut groups: Vec<libc::gid_t> = vec![0; n as usize];
    loop {
        // SAFETY: groups has room for n entries; getgrouplist updates n.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n as usize);
            return Ok((gid, groups));
        }
        if n as usize <= groups.len() {
            n = (groups.len() * 2) as libc::c_int;
        }
        groups.resize(n as usize, 0);
    }
}

/// Session id of a live process, from `/proc/<pid>/stat`.
pub(crate) fn session_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // rest[0] is field 3 (state); field 6 is the session id.
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// CPU time (user + system, of the process itself) and resident memory of a live process,
/// from `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub(crate) fn proc_usage(pid: u32) -> Option<(Duration, Option<u64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let cpu = Duration::from_millis(ticks * 1000 / hz);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
                .map(|k| k / 1024)
        });
    Some((cpu, rss))
}
