//! Run a test binary inside a small Linux virtual machine whose only cgroup
//! hierarchy is cgroup v2 with every controller available — the layout of most
//! user machines, which the dev and CI machines (cgroup v1 controllers) cannot
//! offer in place.
//!
//! The machine is QEMU (TCG emulation by default: nested KVM is not usable on
//! every host) booting Debian's stock kernel with an initramfs built here: a
//! static-or-dynamic busybox for the shell and tools, the payload binary, the
//! extra host programs a test needs, and every shared library `ldd` lists for
//! them (at their host paths, so `/tmp` is not mounted over: the initramfs root
//! is already a writable tmpfs). The init script brings up loopback, mounts
//! `/proc`, `/sys`, `/dev` and cgroup2 at
//! `/sys/fs/cgroup`, prints what it sees, and runs the payload as root twice,
//! printing its exit code after each run, then powers off:
//! - `root`: in the root cgroup (a machine without systemd, or a container's
//!   namespaced root);
//! - `delegated`: alone in `system.slice/llmchain.service` with cpu, memory and
//!   pids enabled above it — what systemd gives a unit with `Delegate=yes`, where
//!   the executor must move itself into a leaf before it can delegate controllers.
//!
//! What it needs (`.ci/run` installs all of it; see DEVELOPERS.md):
//! `qemu-system-x86_64` (Debian `qemu-system-x86`), `busybox` (Debian
//! `busybox-static`), and a kernel image at `$LLMCHAIN_VM_KERNEL` or
//! `~/.cache/llmchain/vm/vmlinuz` (`bash scripts/vm-kernel.sh` fetches Debian's).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The cgroup mode an executor should detect on the machine running this code,
/// judged from the mounts alone: `v2` when the cgroup2 mount offers the cpu and
/// memory controllers, else `v1` when both have a v1 hierarchy, else `none`.
pub fn machine_cgroup_mode() -> &'static str {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = |c: &str| {
        mi.lines().any(|l| {
            l.split_once(" - ").is_some_and(|(_, post)| {
                let p: Vec<&str> = post.split_whitespace().collect();
                p[0] == "cgroup" && p.get(2).is_some_and(|o| o.split(',').any(|x| x == c))
            })
        })
    };
    let v2_mount = mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
    });
    let v2_ctrls = v2_mount
        .map(|m| fs::read_to_string(m.join("cgroup.controllers")).unwrap_or_default())
        .unwrap_or_default();
    let has = |c: &str| v2_ctrls.split_whitespace().any(|x| x == c);
    if has("cpu") && has("memory") {
        "v2"
    } else if v1("cpu") && v1("memory") {
        "v1"
    } else {
        "none"
    }
}

/// What a run printed on the VM's console and how the payload ended.
pub struct VmRun {
    /// Everything the serial console printed (kernel messages, init, payload).
    pub console: String,
    /// Each run's name and the payload's exit code, as the init script reported
    /// them; runs the machine never got to (boot failure, timeout) are missing.
    pub exits: Vec<(String, i32)>,
}

impl VmRun {
    /// Assert that the VM offered cgroup2 cpu and memory controllers, that every
    /// test in `must_pass` passed in both runs (root and delegated) and that both
    /// runs exited 0; failures show the whole console. Prints the console.
    pub fn assert_both_runs_passed(&self, must_pass: &[&str]) {
        let console = &self.console;
        let show = || format!("--- VM console ---\n{console}\n--- end ---");
        assert!(
            console
                .lines()
                .find(|l| l.contains("vm: cgroup2 controllers:"))
                .is_some_and(|l| l.contains(" cpu ") && l.contains(" memory ")),
            "the VM has no cgroup2 cpu/memory controllers\n{}",
            show()
        );
        for t in must_pass {
            assert_eq!(
                console.matches(&format!("test {t} ... ok")).count(),
                2,
                "{t} did not pass in both runs under cgroup v2\n{}",
                show()
            );
        }
        assert_eq!(
            self.exits,
            [("root".to_string(), 0), ("delegated".to_string(), 0)],
            "the suite failed under cgroup v2\n{}",
            show()
        );
        eprintln!("{}", show());
    }
}

/// A located QEMU, kernel and busybox.
pub struct Vm {
    qemu: PathBuf,
    kernel: PathBuf,
    busybox: PathBuf,
    accel: String,
}

const HOW: &str = "install them with `apt-get install qemu-system-x86 busybox-static` and \
                   fetch a kernel with `bash scripts/vm-kernel.sh` (`.ci/run` does both)";

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Vm {
    /// Find QEMU, the kernel image and busybox, or say what is missing and how to get it.
    pub fn locate() -> Result<Vm, String> {
        let qemu = on_path("qemu-system-x86_64")
            .ok_or_else(|| format!("the cgroup v2 VM test needs qemu-system-x86_64: {HOW}"))?;
        let busybox = on_path("busybox")
            .ok_or_else(|| format!("the cgroup v2 VM test needs busybox: {HOW}"))?;
        let kernel = match std::env::var_os("LLMCHAIN_VM_KERNEL") {
            Some(k) => PathBuf::from(k),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                let cache = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(home).join(".cache"));
                cache.join("llmchain/vm/vmlinuz")
            }
        };
        if !kernel.is_file() {
            return Err(format!(
                "the cgroup v2 VM test needs a Linux kernel image at {} (or $LLMCHAIN_VM_KERNEL): {HOW}",
                kernel.display()
            ));
        }
        let accel = std::env::var("LLMCHAIN_VM_ACCEL").unwrap_or_else(|_| "tcg".into());
        Ok(Vm {
            qemu,
            kernel,
            busybox,
            accel,
        })
    }

    /// Boot the VM with `payload` (run with `args`) and the host programs in
    /// `extra` (placed at the same paths), wait at most `limit`.
    pub fn run(&self, payload: &Path, args: &[&str], extra: &[&str], limit: Duration) -> VmRun {
        let work = tempfile::tempdir().unwrap();
        let mut img = Cpio::default();
        img.program("bin/busybox", &self.busybox);
        img.program("payload/test", payload);
        for prog in extra {
            let p = Path::new(prog);
            img.program(rel(p), p);
        }
        for d in [
            "proc",
            "sys",
            "dev",
            "tmp",
            "root",
            "usr/bin",
            "usr/local/bin",
            "sbin",
        ] {
            img.dir(d);
        }
        // Accounts: root, and a second user for the tests about uids
        // (`llmchain-test`, as the daemon suite's `second_user` would create).
        img.data(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nllmchain-test:x:990:990::/nonexistent:/bin/false\n"
                .to_vec(),
            0o644,
        );
        img.data(
            "etc/group",
            b"root:x:0:\nllmchain-test:x:990:\n".to_vec(),
            0o644,
        );
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        img.data("init", init_script(&quoted.join(" ")).into_bytes(), 0o755);
        let initrd = work.path().join("initrd.cpio");
        fs::write(&initrd, img.finish()).unwrap();

        let console = work.path().join("console.log");
        let mut child = Command::new(&self.qemu)
            .args([
                "-accel",
                &self.accel,
                "-m",
                "1024",
                "-smp",
                "2",
                "-net",
                "none",
            ])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", "console=ttyS0 quiet loglevel=1 panic=-1 psi=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.qemu.display()));
        let end = Instant::now() + limit;
        let mut timed_out = false;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let mut console = fs::read_to_string(&console).unwrap_or_default();
        if timed_out {
            console.push_str(&format!("\n[host: killed the VM after {limit:?}]\n"));
        }
        if !out.status.success() || !out.stderr.is_empty() {
            console.push_str(&format!(
                "\n[host: qemu {}: {}]\n",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let exits = console
            .lines()
            .filter_map(|l| {
                let (run, code) = l
                    .trim()
                    .strip_prefix("LLMCHAIN-VM-EXIT ")?
                    .split_once(' ')?;
                Some((run.to_string(), code.trim().parse().ok()?))
            })
            .collect();
        VmRun { console, exits }
    }
}

/// The VM's `/init`: mount the basics, cgroup2 alone at `/sys/fs/cgroup`, run the
/// payload in `/tmp` in the root cgroup and again alone in a delegated service
/// cgroup, report the exit codes, power off.
fn init_script(args: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/bin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "vm: kernel $(uname -r), $(nproc) cpus"
echo "vm: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd /tmp
echo "vm: run root"
/payload/test {args}
echo "LLMCHAIN-VM-EXIT root $?"
svc=/sys/fs/cgroup/system.slice/llmchain.service
mkdir -p $svc
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
echo "+cpu +memory +pids" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
echo "vm: run delegated ($svc: $(cat $svc/cgroup.controllers))"
sh -c "echo \$\$ > $svc/cgroup.procs && exec /payload/test {args}"
echo "LLMCHAIN-VM-EXIT delegated $?"
sync
reboot -f
"#
    )
}

/// Path inside the image for a host path (no leading `/`).
fn rel(p: &Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_string()
}

/// The shared libraries (and the dynamic loader) `ldd` lists for `bin`; none for
/// a static binary.
fn shared_libs(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd (Debian libc-bin) on {}: {e}", bin.display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A `newc` cpio archive (the initramfs format) built in memory: directories are
/// added for every parent, files are copied with their content resolved (symlinks
/// followed), later entries for the same path replace earlier ones.
#[derive(Default)]
struct Cpio {
    entries: BTreeMap<String, (u32, Vec<u8>)>,
}

impl Cpio {
    fn dir(&mut self, path: &str) {
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            self.entries
                .entry(acc.clone())
                .or_insert((0o040_755, Vec::new()));
        }
    }

    fn data(&mut self, path: impl Into<String>, data: Vec<u8>, perm: u32) {
        let path = path.into();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path, (0o100_000 | perm, data));
    }

    fn file(&mut self, path: impl Into<String>, from: &Path, perm: u32) {
        let data = fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        self.data(path, data, perm);
    }

    /// A program (or data file) at `path`, plus the shared libraries `ldd`
    /// lists for it at their host paths.
    fn program(&mut self, path: impl Into<String>, from: &Path) {
        self.file(path, from, 0o755);
        for lib in shared_libs(from) {
            self.file(rel(&lib), &lib, 0o755);
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |name: &str, mode: u32, data: &[u8], ino: usize| {
            let header = format!(
                "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
            );
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        for (i, (name, (mode, data))) in self.entries.iter().enumerate() {
            put(name, *mode, data, i + 1);
        }
        put("TRAILER!!!", 0, &[], 0);
        out
    }
}
