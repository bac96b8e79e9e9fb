//! End-to-end test of the `llmchain` binary's node-daemon commands: a real
//! `llmchain daemon` on a temporary socket and state directory, driven by the
//! real client commands (`submit`, `ps`, `wait`, `logs`, `cancel`, `explain`,
//! `history export --swf`), plus the error when no daemon is running.
//!
//! Runs as any user: as root (CI) tasks get cgroup limits; elsewhere the daemon
//! falls back to rlimits and affinity, which these checks do not depend on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

/// A `llmchain daemon` child process on a temp dir; killed (SIGTERM, then
/// SIGKILL) when dropped.
struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    state: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(policy: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run/llmchain.sock");
        let state = dir.path().join("state");
        let child = StdCommand::new(assert_cmd::cargo::cargo_bin("llmchain"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state)
            .args(["--cpus", "2", "--mem", "4G", "--policy", policy])
            .arg("--cgroup-parent")
            .arg(format!("llmchain-clitest-{}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `llmchain daemon`");
        let mut d = Daemon {
            _dir: dir,
            socket,
            state,
            child: Some(child),
        };
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = d
                    .child
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("`llmchain daemon` exited early ({st}):\n{err}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "`llmchain daemon` did not open {} within 30 s",
                d.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// `llmchain <subcommand> --socket <ours> <rest>` (before the rest, so a
    /// command after `--` stays intact).
    fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("llmchain").unwrap();
        c.arg(args[0])
            .arg("--socket")
            .arg(&self.socket)
            .args(&args[1..]);
        c.timeout(Duration::from_secs(60));
        c
    }

    /// Run a client command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self
            .cli(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).expect("utf-8 output")
    }

    /// Run a client command with `--json` that must succeed; its parsed output.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// Submit and return the id printed.
    fn submit(&self, args: &[&str]) -> u64 {
        let mut a = vec!["submit"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("submit printed {out:?}, not an id"))
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let st = StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(st.success(), "kill -TERM {pid}");
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(st.success(), "daemon exit status after SIGTERM: {st}");
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "daemon ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = StdCommand::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|a| a["id"].as_u64().expect("id"))
        .collect()
}

fn task<'a>(v: &'a serde_json::Value, id: u64) -> &'a serde_json::Value {
    v.as_array()
        .expect("array")
        .iter()
        .find(|t| t["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("task {id} not listed in {v}"))
}

#[test]
fn commands_fail_clearly_when_no_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    for args in [
        vec!["ps"],
        vec!["submit", "--", "true"],
        vec!["wait", "1"],
        vec!["explain", "1"],
    ] {
        Command::cargo_bin("llmchain")
            .unwrap()
            .arg(args[0])
            .arg("--socket")
            .arg(&sock)
            .args(&args[1..])
            .assert()
            .code(1)
            .stderr(
                predicate::str::contains("is `llmchain daemon` running?")
                    .and(predicate::str::contains(sock.to_string_lossy().as_ref())),
            );
    }
}

#[test]
fn daemon_and_client_commands_end_to_end() {
    let d = Daemon::start("sjf+easy");
    let cwd = tempfile::tempdir().unwrap();
    let cwd_s = cwd.path().to_str().unwrap();

    // A task writing to both streams from its working directory.
    let hello = d.submit(&[
        "--cpu",
        "500m",
        "--mem",
        "64M",
        "--name",
        "hello",
        "--cwd",
        cwd_s,
        "--",
        "sh",
        "-c",
        "echo hello; pwd; echo oops >&2",
    ]);
    let out = d.ok(&["wait", &hello.to_string()]);
    assert!(out.contains("completed"), "{out}");
    assert_eq!(
        d.ok(&["logs", &hello.to_string()]),
        format!("hello\n{cwd_s}\n")
    );
    assert_eq!(d.ok(&["logs", &hello.to_string(), "--stderr"]), "oops\n");
    let t = d.json(&["wait", &hello.to_string()]);
    assert_eq!(t["exit"]["kind"], "completed", "{t}");
    assert_eq!(
        (t["cpu_millis"].as_u64(), t["mem_mib"].as_u64()),
        (Some(500), Some(64))
    );

    // A failing task: `wait` exits non-zero and says why.
    let bad = d.submit(&["--cpu", "1", "--mem", "64M", "--", "sh", "-c", "exit 3"]);
    d.cli(&["wait", &bad.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did not complete"))
        .stdout(predicate::str::contains("failed"));

    // A blocker holds both CPUs; two queued tasks whose estimates reverse their
    // submission order. SJF puts the later, shorter one first.
    let blocker = d.submit(&["--cpu", "2", "--mem", "64M", "--", "sleep", "300"]);
    let t0 = Instant::now();
    loop {
        let ps = d.json(&["ps"]);
        if task(&ps, blocker)["state"] == "running" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "blocker never started: {ps}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let long = d.submit(&[
        "--cpu",
        "1",
        "--mem",
        "64M",
        "--estimate",
        "10m",
        "--",
        "true",
    ]);
    let short = d.submit(&[
        "--cpu",
        "1",
        "--mem",
        "64M",
        "--estimate",
        "10s",
        "--",
        "true",
    ]);

    let ps = d.json(&["ps"]);
    assert_eq!(ids(&ps).len(), 3, "queued and running only: {ps}");
    assert_eq!(task(&ps, blocker)["state"], "running");
    assert_eq!(task(&ps, long)["state"], "queued");
    assert_eq!(task(&ps, short)["state"], "queued");
    let all = d.json(&["ps", "-a"]);
    assert!(
        ids(&all).contains(&hello) && ids(&all).contains(&bad),
        "{all}"
    );

    // explain follows the policy's order, not submission order.
    let ex = d.json(&["explain", &long.to_string()]);
    assert_eq!(ex["state"], "queued", "{ex}");
    assert_eq!(ids(&ex["ahead"]), vec![short], "{ex}");
    assert_eq!(ex["position"], 1, "{ex}");
    assert_eq!(ex["blocked_by"][0]["dim"], "cpu", "{ex}");
    assert!(ex["order"].as_str().unwrap().contains("sjf"), "{ex}");
    let text = d.ok(&["explain", &long.to_string()]);
    assert!(
        text.contains(&format!("task {long} is queued"))
            && text.contains("short of cpu")
            && text.contains(&format!("ahead of it in the policy's order (1): {short}")),
        "{text}"
    );
    let ex = d.json(&["explain", &short.to_string()]);
    assert_eq!(
        (ex["ahead_count"].as_u64(), ex["position"].as_u64()),
        (Some(0), Some(0)),
        "{ex}"
    );

    // Cancel a queued task: it never starts; `wait` reports it.
    let c = d.json(&["cancel", &long.to_string()]);
    assert_eq!(c["exit"]["kind"], "cancelled", "{c}");
    d.cli(&["wait", &long.to_string()])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("cancelled"));
    // Cancel the running blocker: the short task then starts and completes.
    d.ok(&["cancel", &blocker.to_string()]);
    d.ok(&["wait", &short.to_string()]);
    let out = d
        .cli(&["wait", &blocker.to_string(), "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let t: serde_json::Value = serde_json::from_slice(&out).expect("wait --json prints the task");
    assert_eq!(t["exit"]["kind"], "cancelled", "{t}");
    d.cli(&["cancel", &blocker.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already finished"));

    // Unknown ids and bad flags get clear errors.
    d.cli(&["wait", "999999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no task 999999"));
    d.cli(&["submit", "--cpu", "lots", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lots"));

    // Feedback records as SWF: one line per finished task, 18 fields each.
    let swf = d.state.join("node.swf");
    d.cli(&["history", "export", "--swf"])
        .arg(&swf)
        .assert()
        .success();
    let text = std::fs::read_to_string(&swf).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with(';')),
        "SWF header: {text}"
    );
    let records: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        records.len(),
        5,
        "hello, bad, blocker, long, short:\n{text}"
    );
    for r in &records {
        assert_eq!(r.len(), 18, "SWF record {r:?}");
    }
    // Ids and SWF status (1 completed, 0 failed, 5 cancelled); the task cancelled
    // while queued never ran (run time -1).
    let by_id = |id: u64| {
        records
            .iter()
            .find(|r| r[0] == id.to_string())
            .unwrap_or_else(|| panic!("task {id} missing from the SWF export:\n{text}"))
    };
    assert_eq!(by_id(hello)[10], "1", "{text}");
    assert_eq!(by_id(bad)[10], "0", "{text}");
    assert_eq!(by_id(blocker)[10], "5", "{text}");
    assert_eq!((by_id(long)[10], by_id(long)[3]), ("5", "-1"), "{text}");
    assert_eq!(by_id(short)[10], "1", "{text}");
    // The export is what the simulator reads.
    assert!(Path::new(&swf).metadata().unwrap().len() > 0);

    d.stop();
}
