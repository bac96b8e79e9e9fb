//! End-to-end tests of the node daemon: real processes, real cgroups, real
//! SQLite, real sockets. Run as root on Linux (CI does). The last test runs
//! this suite again inside a VM whose only hierarchy is cgroup v2.

#[path = "../../node/tests/vm/mod.rs"]
mod vm;

mod helper {
    //! Fixtures: in-process daemons on temp dirs, child-process daemons, waits with timeouts.

    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use llmchain_daemon::protocol::{SubmitRequest, TaskInfo};
    use llmchain_daemon::{Client, Config, Shutdown};

    static SEQ: AtomicU32 = AtomicU32::new(0);

    /// A cgroup parent name no other test (or test run) uses.
    pub fn unique_cgroup() -> String {
        format!(
            "llmchain-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// A daemon running on a thread of this test process.
    pub struct Daemon {
        pub dir: tempfile::TempDir,
        pub socket: PathBuf,
        shutdown: Shutdown,
        thread: Option<std::thread::JoinHandle<llmchain_daemon::Result<()>>>,
    }

    impl Daemon {
        /// Start with 2 CPUs / 4 GiB schedulable, FCFS, owner-only socket.
        pub fn start() -> Daemon {
            Self::start_with(|_| {})
        }

        /// Start after adjusting the config.
        pub fn start_with(f: impl FnOnce(&mut Config)) -> Daemon {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut c = Config::in_dir(dir.path());
            c.capacity = Some((2000, 4096));
            c.cgroup_parent = unique_cgroup();
            f(&mut c);
            let socket = c.socket.clone();
            let shutdown = Shutdown::new();
            let s = shutdown.clone();
            let thread = std::thread::spawn(move || llmchain_daemon::run(c, s));
            wait_for_socket(&socket, Duration::from_secs(20));
            Daemon {
                dir,
                socket,
                shutdown,
                thread: Some(thread),
            }
        }

        pub fn client(&self) -> Client {
            Client::connect(&self.socket).expect("connect to test daemon")
        }

        /// Stop and return the daemon's result.
        pub fn stop(mut self) -> llmchain_daemon::Result<()> {
            self.shutdown.trigger();
            self.thread
                .take()
                .expect("running")
                .join()
                .expect("daemon thread panicked")
        }
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Wait until something accepts connections on `path`.
    pub fn wait_for_socket(path: &Path, timeout: Duration) {
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(path).is_err() {
            assert!(
                t0.elapsed() < timeout,
                "daemon socket {} not ready after {timeout:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A submit with a sane PATH.
    pub fn task(argv: &[&str], cpu_millis: u64, mem_mib: u64) -> SubmitRequest {
        let mut r = SubmitRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cpu_millis,
            mem_mib,
            ..Default::default()
        };
        r.env.insert(
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
        );
        r
    }

    /// Poll `status` until `pred` holds.
    pub fn wait_until(
        c: &mut Client,
        id: u64,
        timeout: Duration,
        pred: impl Fn(&TaskInfo) -> bool,
    ) -> TaskInfo {
        let t0 = Instant::now();
        loop {
            let t = c.status(id).expect("status");
            if pred(&t) {
                return t;
            }
            assert!(
                t0.elapsed() < timeout,
                "task {id} did not reach the expected state in {timeout:?}: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The stand-alone daemon binary.
    pub fn daemond() -> &'static str {
        env!("CARGO_BIN_EXE_llmchain-daemond")
    }

    /// Start the daemon binary as a child process.
    pub fn spawn_child(state: &Path, cgroup: &str, extra: &[&str]) -> Child {
        let sock = state.join("llmchain.sock");
        let child = Command::new(daemond())
            .args(["serve", "--state-dir"])
            .arg(state)
            .args(["--capacity", "2000,4096", "--cgroup-parent", cgroup])
            .args(extra)
            .spawn()
            .expect("spawn llmchain-daemond");
        wait_for_socket(&sock, Duration::from_secs(20));
        child
    }

    /// Whether a process exists.
    pub fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
    }

    /// Ensure a second local user exists (create it with `useradd` if absent); returns (uid, gid).
    pub fn second_user() -> (u32, u32) {
        const NAME: &str = "llmchain-test";
        let lookup = || -> Option<(u32, u32)> {
            let out = Command::new("id").args(["-u", NAME]).output().ok()?;
            let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            let out = Command::new("id").args(["-g", NAME]).output().ok()?;
            let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            Some((uid, gid))
        };
        if let Some(ids) = lookup() {
            return ids;
        }
        let st = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME])
            .status()
            .expect("this test creates a second user with `useradd` (Debian package `passwd`); run it as root");
        assert!(
            st.success() || lookup().is_some(),
            "useradd {NAME} failed: {st}"
        );
        lookup().expect("second user exists after useradd")
    }
}

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use helper::*;
use llmchain_core::ExitStatus;
use llmchain_daemon::frame;
use llmchain_daemon::protocol::*;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn submit_wait_logs_cancel_end_to_end() {
    let d = Daemon::start();
    let mut c = d.client();

    // Output to both streams, exit 0.
    let id = c
        .submit(task(&["sh", "-c", "echo hello; echo oops >&2"], 500, 64))
        .unwrap();
    let t = c.wait(id, None).unwrap();
    assert_eq!(t.exit, Some(ExitStatus::Completed), "{t:?}");
    assert!(t.start_us.unwrap() >= t.submit_us && t.end_us.unwrap() >= t.start_us.unwrap());
    let mut out = String::new();
    c.logs(
        LogsRequest {
            id,
            stream: LogStream::Stdout,
            offset: None,
            tail_lines: None,
            follow: false,
        },
        |ch| {
            out.push_str(&ch.data);
            assert!(ch.eof);
        },
    )
    .unwrap();
    assert_eq!(out, "hello\n");
    let mut err = String::new();
    c.logs(
        LogsRequest {
            id,
            stream: LogStream::Stderr,
            offset: None,
            tail_lines: None,
            follow: false,
        },
        |ch| err.push_str(&ch.data),
    )
    .unwrap();
    assert_eq!(err, "oops\n");

    // A program that does not exist: failed (127) with the spawn error as reason.
    let bad = c.submit(task(&["/nonexistent/program"], 500, 64)).unwrap();
    let t = c.wait(bad, None).unwrap();
    assert_eq!(t.exit, Some(ExitStatus::Failed { code: 127 }), "{t:?}");
    assert!(
        t.reason
            .as_deref()
            .unwrap_or("")
            .contains("could not start"),
        "{t:?}"
    );

    // Non-zero exit.
    let f = c.submit(task(&["sh", "-c", "exit 3"], 500, 64)).unwrap();
    assert_eq!(
        c.wait(f, None).unwrap().exit,
        Some(ExitStatus::Failed { code: 3 })
    );

    // A dependent of a failed task is cancelled with a reason; a dependent of a completed one runs.
    let dep_ok = c
        .submit({
            let mut r = task(&["true"], 500, 64);
            r.after = vec![id];
            r
        })
        .unwrap();
    assert_eq!(
        c.wait(dep_ok, None).unwrap().exit,
        Some(ExitStatus::Completed)
    );
    let e = c
        .submit({
            let mut r = task(&["true"], 500, 64);
            r.after = vec![f];
            r
        })
        .unwrap_err();
    assert!(e.to_string().contains("dependency"), "{e}");

    // Follow: output written over time arrives in order and the stream ends.
    let fol = c
        .submit(task(&["sh", "-c", "echo a; sleep 0.3; echo b"], 500, 64))
        .unwrap();
    let mut followed = String::new();
    let mut c2 = d.client();
    c2.logs(
        LogsRequest {
            id: fol,
            stream: LogStream::Stdout,
            offset: None,
            tail_lines: None,
            follow: true,
        },
        |ch| followed.push_str(&ch.data),
    )
    .unwrap();
    assert_eq!(followed, "a\nb\n");

    // Cancel a running task: the whole tree dies, status cancelled.
    let run = c
        .submit(task(&["sh", "-c", "sleep 300 & sleep 300; wait"], 2000, 64))
        .unwrap();
    let t = wait_until(&mut c, run, LONG, |t| t.pid.is_some());
    let pid = t.pid.unwrap();
    // While it holds all CPUs, the next task waits; explain names the CPU shortfall.
    let q = c.submit(task(&["true"], 1000, 64)).unwrap();
    let ex = c.explain(q).unwrap();
    assert_eq!(ex.state, TaskState::Queued);
    assert_eq!(ex.blocked_by.len(), 1, "{ex:?}");
    assert_eq!(
        (
            ex.blocked_by[0].dim.as_str(),
            ex.blocked_by[0].need,
            ex.blocked_by[0].free
        ),
        ("cpu", 1000, 0)
    );
    assert!(ex.summary.contains("cpu"), "{}", ex.summary);
    // Cancel the queued one: it never runs.
    let ct = c.cancel(q).unwrap();
    assert_eq!(ct.exit, Some(ExitStatus::Cancelled));
    assert!(ct.start_us.is_none());
    c.cancel(run).unwrap();
    let t = c.wait(run, None).unwrap();
    assert_eq!(t.exit, Some(ExitStatus::Cancelled), "{t:?}");
    assert!(!alive(pid), "main process {pid} survived cancel");
    // Cancelling a finished task is refused with a reason.
    let e = c.cancel(run).unwrap_err();
    assert!(e.to_string().contains("already finished"), "{e}");

    // A task that can never fit is refused at submit.
    let e = c.submit(task(&["true"], 4000, 64)).unwrap_err();
    assert!(e.to_string().contains("could never start"), "{e}");
    // Unknown task.
    assert!(matches!(
        c.status(9999),
        Err(llmchain_daemon::ClientError::Daemon(ErrorResponse {
            code: ErrorCode::NotFound,
            ..
        }))
    ));

    // ps and stats see everything.
    let all = c
        .list(ListRequest {
            all: true,
            limit: None,
            uid: None,
        })
        .unwrap();
    assert!(all.len() >= 6);
    let s = c.stats(true).unwrap();
    assert_eq!(s.node.capacity.cpu_millis, 2000);
    assert_eq!(
        (s.counters.submits, s.counters.starts),
        (7, 5),
        "{:?}",
        s.counters
    );
    assert!(s.decision_latency.count > 0);
    // Policy get/set.
    assert_eq!(c.policy_get().unwrap().spec, "fcfs");
    assert_eq!(c.policy_set("sjf+easy").unwrap().spec, "sjf+easy");
    assert!(c.policy_set("no-such-policy").is_err());
    d.stop().unwrap();
}

#[test]
fn oom_task_is_reported_as_oom_while_others_keep_running() {
    let d = Daemon::start();
    let mut c = d.client();
    let steady = c
        .submit(task(&["sh", "-c", "sleep 4; echo done"], 500, 64))
        .unwrap();
    // `tail` keeps the current line in memory; /dev/zero has no newline: it grows
    // until the 32 MiB limit stops it.
    let hog = c.submit(task(&["tail", "/dev/zero"], 500, 32)).unwrap();
    let h = c.wait(hog, None).unwrap();
    assert_eq!(h.exit, Some(ExitStatus::OomKilled), "memory hog: {h:?}");
    // Enforced by the cgroup mode this machine offers (v1 on the host, v2 in the VM test).
    let st = c.stats(false).unwrap();
    assert_eq!(
        st.node.enforcement,
        vm::machine_cgroup_mode(),
        "{:?}",
        st.node
    );
    let s = c.status(steady).unwrap();
    assert_eq!(
        s.state,
        TaskState::Running,
        "the other task must still run when the hog dies: {s:?}"
    );
    let s = c.wait(steady, None).unwrap();
    assert_eq!(s.exit, Some(ExitStatus::Completed));
    let hist = c.history_all().unwrap();
    let rec = hist.iter().find(|r| r.task.id == hog).unwrap();
    assert!(rec.oom);
    d.stop().unwrap();
}

#[test]
fn malformed_oversized_and_truncated_frames_get_error_responses() {
    let d = Daemon::start();
    let read_resp = |s: &mut UnixStream| -> Response {
        let bytes = frame::read_frame(s, 1 << 24).expect("a response frame");
        serde_json::from_slice::<ResponseEnvelope>(&bytes)
            .expect("response envelope")
            .response
    };
    let code = |r: &Response| match r {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    };
    let mut s = UnixStream::connect(&d.socket).unwrap();
    // Not JSON: error, connection stays usable.
    s.write_all(&[0, 0, 0, 5]).unwrap();
    s.write_all(b"{nope").unwrap();
    assert_eq!(code(&read_resp(&mut s)), ErrorCode::BadFrame);
    // Wrong version.
    let v2 = br#"{"version":99,"request":{"type":"stats"}}"#;
    s.write_all(&(v2.len() as u32).to_be_bytes()).unwrap();
    s.write_all(v2).unwrap();
    assert_eq!(code(&read_resp(&mut s)), ErrorCode::VersionMismatch);
    // Unknown request type.
    let bad = br#"{"version":1,"request":{"type":"format_disk"}}"#;
    s.write_all(&(bad.len() as u32).to_be_bytes()).unwrap();
    s.write_all(bad).unwrap();
    assert_eq!(code(&read_resp(&mut s)), ErrorCode::BadRequest);
    // Still alive on the same connection.
    s.write_all(&frame::encode(&RequestEnvelope::new(Request::PolicyGet(
        PolicyGetRequest {},
    ))))
    .unwrap();
    assert!(matches!(read_resp(&mut s), Response::Policy(_)));
    // Oversized: refused from the length prefix alone.
    s.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    assert_eq!(code(&read_resp(&mut s)), ErrorCode::FrameTooLarge);

    // Truncated: a prefix announcing 100 bytes, 10 bytes, then end of input.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(b"{\"version\"").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let r = read_resp(&mut s);
    assert_eq!(code(&r), ErrorCode::BadFrame);
    assert!(format!("{r:?}").contains("truncated"), "{r:?}");
    // Truncated inside the length prefix.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&[0, 0]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(code(&read_resp(&mut s)), ErrorCode::BadFrame);

    // Random byte strings (seeded): whatever comes back, the daemon keeps serving.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 300) as usize;
        let mut bytes: Vec<u8> = (0..n)
            .map(|i| (x.rotate_left(i as u32 % 64) >> 11) as u8)
            .collect();
        if x % 3 == 0 && n >= 4 {
            // A plausible small length prefix, so the payload reaches the JSON parser.
            let len = (n - 4) as u32;
            bytes[..4].copy_from_slice(&len.to_be_bytes());
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let mut c = d.client();
    assert!(c.stats(false).is_ok(), "daemon must survive random input");
    d.stop().unwrap();
}

/// Send an HTTP/1.1 request to the loopback listener and return (status, body).
fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn http_needs_the_token_and_serves_requests_and_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token = "test-token-0123456789abcdef";
    let d = Daemon::start_with(|c| {
        c.http = Some(addr);
        c.http_token = Some(token.into());
    });
    // Wait until the HTTP side listens too.
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(t0.elapsed() < LONG, "HTTP listener not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http(addr, "GET", "/v1/stats", None, "").0, 401);
    assert_eq!(
        http(addr, "GET", "/v1/stats", Some("wrong-token"), "").0,
        401
    );
    assert_eq!(http(addr, "GET", "/metrics", None, "").0, 401);
    let (st, body) = http(addr, "GET", "/v1/stats", Some(token), "");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"type\":\"stats\""), "{body}");
    let (st, body) = http(
        addr,
        "POST",
        "/v1/tasks",
        Some(token),
        r#"{"argv":["sh","-c","echo via-http"],"cpu_millis":500,"mem_mib":64,"env":{"PATH":"/usr/bin:/bin"}}"#,
    );
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_u64().expect("id in submit response");
    let (st, body) = http(
        addr,
        "POST",
        &format!("/v1/tasks/{id}/wait"),
        Some(token),
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("completed"), "{body}");
    let (st, body) = http(
        addr,
        "GET",
        &format!("/v1/tasks/{id}/logs"),
        Some(token),
        "",
    );
    assert_eq!(st, 200);
    assert!(body.contains("via-http"), "{body}");
    assert_eq!(
        http(addr, "GET", "/v1/tasks/424242", Some(token), "").0,
        404
    );
    assert_eq!(
        http(addr, "POST", "/v1/tasks", Some(token), "{not json").0,
        400
    );
    // The generic envelope endpoint.
    let (st, body) = http(
        addr,
        "POST",
        "/v1/request",
        Some(token),
        r#"{"version":1,"request":{"type":"policy_get"}}"#,
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("fcfs"));
    let (st, body) = http(addr, "GET", "/metrics", Some(token), "");
    assert_eq!(st, 200);
    for m in [
        "llmchain_queue_length 0",
        "llmchain_submits_total 1",
        "llmchain_starts_total 1",
        "llmchain_completions_total{status=\"completed\"} 1",
        "llmchain_decision_latency_seconds_count",
    ] {
        assert!(body.contains(m), "metrics lack {m:?}:\n{body}");
    }
    d.stop().unwrap();
}

#[test]
fn another_uid_cannot_cancel_wait_on_or_read_logs_of_a_task() {
    let (uid, gid) = second_user();
    let d = Daemon::start_with(|c| c.socket_access = llmchain_daemon::SocketAccess::AllUsers);
    // The temp dir must be traversable for the other user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = d.client();
    let mine = c.submit(task(&["sleep", "30"], 500, 64)).unwrap();
    wait_until(&mut c, mine, LONG, |t| t.pid.is_some());
    let sock = d.socket.to_str().unwrap().to_string();
    let as_other = |json: String| -> (i32, String) {
        let out = Command::new("setpriv")
            .args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ])
            .arg(daemond())
            .args(["call", "--socket", &sock, &json])
            .output()
            .expect("setpriv (util-linux) runs the client as another uid");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    for req in [
        format!(r#"{{"version":1,"request":{{"type":"cancel","id":{mine}}}}}"#),
        format!(r#"{{"version":1,"request":{{"type":"wait","id":{mine},"timeout_ms":100}}}}"#),
        format!(r#"{{"version":1,"request":{{"type":"logs","id":{mine}}}}}"#),
        r#"{"version":1,"request":{"type":"policy_set","spec":"sjf"}}"#.to_string(),
    ] {
        let (code, out) = as_other(req.clone());
        assert_eq!(code, 3, "{req} as uid {uid}: {out}");
        assert!(out.contains("forbidden"), "{req}: {out}");
    }
    // Status is visible but without the command line.
    let (code, out) = as_other(format!(
        r#"{{"version":1,"request":{{"type":"status","id":{mine}}}}}"#
    ));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"argv\":[]") && !out.contains("sleep"),
        "{out}"
    );
    assert_eq!(
        c.status(mine).unwrap().state,
        TaskState::Running,
        "the task survived the other user's attempts"
    );

    // The other user's own task runs as that user, and the other user may wait on it.
    let (code, out) = as_other(
        r#"{"version":1,"request":{"type":"submit","argv":["id","-u"],"cpu_millis":500,"mem_mib":64,"env":{"PATH":"/usr/bin:/bin"}}}"#
            .into(),
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let theirs = v["response"]["id"].as_u64().unwrap();
    let (code, out) = as_other(format!(
        r#"{{"version":1,"request":{{"type":"wait","id":{theirs}}}}}"#
    ));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("completed"), "{out}");
    let mut logs = String::new();
    c.logs(
        LogsRequest {
            id: theirs,
            stream: LogStream::Stdout,
            offset: None,
            tail_lines: None,
            follow: false,
        },
        |ch| logs.push_str(&ch.data),
    )
    .unwrap();
    assert_eq!(
        logs.trim(),
        uid.to_string(),
        "the task must run as its submitter"
    );
    assert_eq!(c.status(theirs).unwrap().uid, uid);
    c.cancel(mine).unwrap();
    d.stop().unwrap();

    // With the default owner-only socket, the other uid cannot even connect.
    let d = Daemon::start();
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
        ])
        .arg(daemond())
        .args([
            "call",
            "--socket",
            d.socket.to_str().unwrap(),
            r#"{"version":1,"request":{"type":"stats"}}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `llmchain daemon` running?"));
    d.stop().unwrap();
}

#[test]
fn kill_9_of_the_daemon_then_restart_accounts_for_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sock = state.join("llmchain.sock");
    let cg = unique_cgroup();
    let mut child = spawn_child(&state, &cg, &[]);
    let mut c = llmchain_daemon::Client::connect(&sock).unwrap();
    // Finished before the crash.
    let done = c.submit(task(&["true"], 1000, 64)).unwrap();
    assert_eq!(
        c.wait(done, None).unwrap().exit,
        Some(ExitStatus::Completed)
    );
    // Two long runners fill both CPUs.
    let r1 = c.submit(task(&["sleep", "300"], 1000, 64)).unwrap();
    let r2 = c
        .submit(task(&["sh", "-c", "sleep 300 & sleep 300"], 1000, 64))
        .unwrap();
    let p1 = wait_until(&mut c, r1, LONG, |t| t.pid.is_some())
        .pid
        .unwrap();
    let p2 = wait_until(&mut c, r2, LONG, |t| t.pid.is_some())
        .pid
        .unwrap();
    // A concurrent client keeps submitting while the daemon is killed; every id it was
    // given must survive.
    let sock2 = sock.clone();
    let submitter = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(mut c) = llmchain_daemon::Client::connect(&sock2) else {
            return acked;
        };
        while let Ok(id) = c.submit(task(&["true"], 500, 64)) {
            acked.push(id);
            if acked.len() > 5000 {
                break;
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(300));
    let k = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let _ = child.wait();
    let acked = submitter.join().unwrap();
    assert!(
        !acked.is_empty(),
        "the submitter got no ids before the kill"
    );
    assert!(
        alive(p1),
        "tasks outlive a SIGKILLed daemon (their cgroups hold them)"
    );

    // Restart on the same state.
    let mut child = spawn_child(&state, &cg, &[]);
    let mut c = llmchain_daemon::Client::connect(&sock).unwrap();
    let all = c
        .list(ListRequest {
            all: true,
            limit: Some(100_000),
            uid: None,
        })
        .unwrap();
    let ids: std::collections::BTreeSet<u64> = all.iter().map(|t| t.id).collect();
    for id in [done, r1, r2].iter().chain(acked.iter()) {
        assert!(
            ids.contains(id),
            "accepted task {id} is missing after restart"
        );
    }
    assert_eq!(c.status(done).unwrap().exit, Some(ExitStatus::Completed));
    for r in [r1, r2] {
        let t = c.status(r).unwrap();
        assert_eq!(t.exit, Some(ExitStatus::Lost), "{t:?}");
        assert!(
            t.reason.as_deref().unwrap_or("").contains("daemon stopped"),
            "{t:?}"
        );
    }
    assert!(
        !alive(p1) && !alive(p2),
        "leftover processes of lost tasks are killed at restart"
    );
    // Every queued task resumes and finishes.
    for id in &acked {
        let t = c.wait(*id, None).unwrap();
        assert!(
            t.exit == Some(ExitStatus::Completed) || t.exit == Some(ExitStatus::Lost),
            "task {id}: {t:?}"
        );
        if t.exit == Some(ExitStatus::Lost) {
            assert!(t.reason.is_some(), "lost without a reason: {t:?}");
        }
    }
    let k = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let st = child.wait().unwrap();
    assert!(st.success(), "graceful stop: {st}");
}

#[test]
fn history_exports_swf_that_the_simulator_reads() {
    let d = Daemon::start();
    let mut c = d.client();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut r = task(&["sh", "-c", "sleep 0.2"], 1000 + 500 * (i % 2), 64);
        r.estimate_ms = Some(5_000);
        ids.push(c.submit(r).unwrap());
    }
    let never = c.submit(task(&["sleep", "100"], 2000, 64)).unwrap();
    for id in &ids {
        c.wait(*id, None).unwrap();
    }
    wait_until(&mut c, never, LONG, |t| t.pid.is_some());
    c.cancel(never).unwrap();
    c.wait(never, None).unwrap();
    let records = c.history_all().unwrap();
    assert_eq!(records.len(), 5);
    let text = llmchain_daemon::swf::write(&records, 2, "test-host");
    for line in text.lines().filter(|l| !l.starts_with(';')) {
        assert_eq!(line.split_whitespace().count(), 18, "{line}");
    }
    let w =
        llmchain_sim::swf::parse_str(&text, std::path::Path::new("node.swf"), &Default::default())
            .unwrap();
    assert_eq!(w.cluster.total().cpu_milli(), 2000, "MaxProcs header");
    assert_eq!(w.tasks.len(), 5, "every task that ran is a job");
    let procs: Vec<u64> = w.tasks.iter().map(|t| t.request.cpu_milli()).collect();
    assert_eq!(procs, vec![1000, 2000, 1000, 2000, 2000]);
    assert!(w
        .tasks
        .iter()
        .take(4)
        .all(|t| t.estimate == Some(llmchain_core::Dur::from_secs(5))));
    d.stop().unwrap();
}

#[test]
fn state_fixture_v1_loads_and_recovers() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1.sqlite");
    if std::env::var_os("LLMCHAIN_REGENERATE_FIXTURE").is_some() {
        fixture_gen::write(&fixture);
    }
    assert!(
        fixture.exists(),
        "{} is missing: regenerate it with `LLMCHAIN_REGENERATE_FIXTURE=1 cargo test -p llmchain-daemon --test daemon state_fixture`",
        fixture.display()
    );
    // Read-only check of the stored rows.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("state.sqlite");
    std::fs::copy(&fixture, &db).unwrap();
    let conn = llmchain_daemon::db::open(&db, llmchain_daemon::Durability::Full).unwrap();
    let loaded = llmchain_daemon::db::load(&conn, &db).unwrap();
    drop(conn);
    let states: Vec<(u64, TaskState)> = loaded
        .tasks
        .iter()
        .map(|t| (t.info.id, t.info.state))
        .collect();
    assert_eq!(states, fixture_gen::STATES.to_vec());
    assert_eq!(loaded.tasks[0].info.exit, Some(ExitStatus::Completed));
    assert_eq!(loaded.tasks[0].info.cpu_time_ms, Some(1200));
    assert_eq!(loaded.tasks[1].info.exit, Some(ExitStatus::OomKilled));
    assert_eq!(
        loaded.tasks[3].env.get("PATH").map(String::as_str),
        Some("/usr/bin:/bin")
    );
    assert_eq!(loaded.meta.get("policy").map(String::as_str), Some("fcfs"));

    // A daemon started on it recovers: running → lost, queued → runs.
    let d = Daemon::start_with(|c| {
        c.state_dir = tmp.path().to_path_buf();
        c.socket = tmp.path().join("llmchain.sock");
    });
    let mut c = d.client();
    let lost = c.status(3).unwrap();
    assert_eq!(lost.exit, Some(ExitStatus::Lost));
    assert!(lost.reason.unwrap().contains("process was gone"));
    assert_eq!(c.wait(4, None).unwrap().exit, Some(ExitStatus::Completed));
    let next = c.submit(task(&["true"], 500, 64)).unwrap();
    assert_eq!(next, 5, "ids continue after the stored ones");
    d.stop().unwrap();
}

mod fixture_gen {
    //! Writes `tests/fixtures/state-v1.sqlite` through the daemon's own writer
    //! (schema version 1): a completed task, an OOM-killed one, one that was
    //! running at the "crash", and one still queued.

    use std::collections::BTreeMap;
    use std::path::Path;

    use llmchain_core::ExitStatus;
    use llmchain_daemon::db::{self, Op, OutcomeRow, TaskRow};
    use llmchain_daemon::protocol::{TaskInfo, TaskState};

    pub const STATES: [(u64, TaskState); 4] = [
        (1, TaskState::Finished),
        (2, TaskState::Finished),
        (3, TaskState::Running),
        (4, TaskState::Queued),
    ];

    fn info(id: u64, argv: &[&str], state: TaskState) -> TaskInfo {
        TaskInfo {
            id,
            uid: 0,
            name: Some(format!("fixture-{id}")),
            label: None,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: "/".into(),
            cpu_millis: 1000,
            mem_mib: 64,
            estimate_ms: Some(10_000),
            priority: 0,
            after: vec![],
            state,
            exit: None,
            reason: None,
            submit_us: 1_700_000_000_000_000 + id * 1_000_000,
            start_us: None,
            end_us: None,
            pid: None,
            cpu_time_ms: None,
            peak_mem_mib: None,
        }
    }

    pub fn write(path: &Path) {
        let _ = std::fs::remove_file(path);
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let conn = db::open(path, llmchain_daemon::Durability::Full).unwrap();
        let (w, join) = db::spawn_writer(conn, path.to_path_buf()).unwrap();
        let env: BTreeMap<String, String> =
            [("PATH".to_string(), "/usr/bin:/bin".to_string())].into();
        for (id, argv) in [
            (1, vec!["true"]),
            (2, vec!["hog"]),
            (3, vec!["sleep", "99"]),
            (4, vec!["true"]),
        ] {
            w.send(Op::Insert(Box::new(TaskRow {
                info: info(id, &argv, TaskState::Queued),
                env: env.clone(),
            })));
        }
        let t = |id: u64, s: u64| 1_700_000_000_000_000 + id * 1_000_000 + s;
        for id in [1u64, 2, 3] {
            w.send(Op::Decision {
                at_us: t(id, 10),
                policy: "fcfs".into(),
                task: id,
                accepted: true,
                reason: None,
                latency_us: 12,
            });
            w.send(Op::Transition {
                id,
                at_us: t(id, 100),
                from: Some(TaskState::Queued),
                to: TaskState::Running,
                reason: None,
                start_us: Some(t(id, 100)),
                pid: Some(999_000 + id as u32),
                exit: None,
                end_us: None,
            });
        }
        for (id, status) in [(1u64, ExitStatus::Completed), (2, ExitStatus::OomKilled)] {
            w.send(Op::Transition {
                id,
                at_us: t(id, 2_000_000),
                from: Some(TaskState::Running),
                to: TaskState::Finished,
                reason: None,
                start_us: None,
                pid: None,
                exit: Some(status),
                end_us: Some(t(id, 2_000_000)),
            });
            w.send(Op::Outcome(Box::new(OutcomeRow {
                task: id,
                status,
                oom: status == ExitStatus::OomKilled,
                start_us: Some(t(id, 100)),
                end_us: t(id, 2_000_000),
                cpu_time_ms: Some(1200),
                peak_mem_mib: Some(40),
                reason: None,
            })));
        }
        w.send(Op::Meta("policy".into(), "fcfs".into()));
        w.flush_blocking().unwrap();
        // Closing the last connection folds the WAL into the main file: the fixture is one file.
        drop(w);
        join.join().unwrap();
        assert!(
            !Path::new(&format!("{}-wal", path.display())).exists(),
            "WAL left next to the fixture"
        );
    }
}

#[test]
fn dependency_chains_run_in_order_and_failures_cascade() {
    let d = Daemon::start();
    let mut c = d.client();
    let after = |argv: &[&str], deps: Vec<u64>| {
        let mut r = task(argv, 500, 64);
        r.after = deps;
        r
    };
    let a = c.submit(task(&["sleep", "0.4"], 500, 64)).unwrap();
    let b = c.submit(after(&["true"], vec![a])).unwrap();
    let cc = c.submit(after(&["true"], vec![a, b])).unwrap();
    let s = c.stats(false).unwrap();
    assert_eq!((s.queue.held, s.queue.running), (2, 1), "{:?}", s.queue);
    let ex = c.explain(cc).unwrap();
    assert_eq!(ex.unmet_deps, vec![a, b]);
    assert!(ex.summary.contains("dependencies"), "{}", ex.summary);
    let (ta, tb, tc) = (
        c.wait(a, None).unwrap(),
        c.wait(b, None).unwrap(),
        c.wait(cc, None).unwrap(),
    );
    assert!(tc.exit == Some(ExitStatus::Completed) && tb.exit == Some(ExitStatus::Completed));
    assert!(
        tb.start_us.unwrap() >= ta.end_us.unwrap() && tc.start_us.unwrap() >= tb.end_us.unwrap()
    );

    // A failure cancels the whole chain behind it, with reasons.
    let f = c
        .submit(task(&["sh", "-c", "sleep 0.2; exit 1"], 500, 64))
        .unwrap();
    let g = c.submit(after(&["true"], vec![f])).unwrap();
    let h = c.submit(after(&["true"], vec![g])).unwrap();
    let th = c.wait(h, None).unwrap();
    let tg = c.status(g).unwrap();
    assert_eq!(
        (tg.exit, th.exit),
        (Some(ExitStatus::Cancelled), Some(ExitStatus::Cancelled))
    );
    assert_eq!(
        tg.reason.as_deref(),
        Some(format!("dependency {f} ended failed").as_str())
    );
    assert_eq!(
        th.reason.as_deref(),
        Some(format!("dependency {g} ended cancelled").as_str())
    );
    assert!(tg.start_us.is_none() && th.start_us.is_none());
    let s = c.stats(false).unwrap();
    assert_eq!((s.queue.queued, s.queue.held, s.queue.running), (0, 0, 0));
    d.stop().unwrap();
}

#[test]
fn explain_follows_the_policy_order_not_submission_order() {
    // SJF with EASY: a blocker holds both CPUs; three queued tasks whose
    // estimates reverse their submission order.
    let d = Daemon::start_with(|c| c.policy = "sjf+easy".into());
    let mut c = d.client();
    let blocker = c.submit(task(&["sleep", "300"], 2000, 64)).unwrap();
    wait_until(&mut c, blocker, LONG, |t| t.pid.is_some());
    let est = |secs: u64| {
        let mut r = task(&["true"], 1000, 64);
        r.estimate_ms = Some(secs * 1000);
        r
    };
    let long = c.submit(est(600)).unwrap();
    let mid = c.submit(est(60)).unwrap();
    let short = c.submit(est(6)).unwrap();

    // The longest task was submitted first but is last in SJF's order.
    let ex = c.explain(long).unwrap();
    assert_eq!(ex.state, TaskState::Queued);
    let ahead: Vec<u64> = ex.ahead.iter().map(|a| a.id).collect();
    assert_eq!(ahead, vec![short, mid], "{ex:?}");
    assert_eq!((ex.ahead_count, ex.position), (2, Some(2)), "{ex:?}");
    assert!(
        ex.order.contains("sjf") && ex.order.contains("EASY"),
        "order description: {}",
        ex.order
    );
    assert!(
        ex.summary
            .contains("ahead of it in the order of policy `sjf+easy`"),
        "{}",
        ex.summary
    );
    // The shortest, submitted last, has nobody ahead of it — only the CPU shortfall.
    let ex = c.explain(short).unwrap();
    assert_eq!((ex.ahead_count, ex.position), (0, Some(0)), "{ex:?}");
    assert_eq!(ex.blocked_by.len(), 1, "{ex:?}");
    assert_eq!(ex.blocked_by[0].dim, "cpu");

    // Switching the policy switches the explanation: FCFS puts `long` first.
    c.policy_set("fcfs").unwrap();
    let ex = c.explain(long).unwrap();
    assert_eq!((ex.ahead_count, ex.position), (0, Some(0)), "{ex:?}");
    let ex = c.explain(short).unwrap();
    let ahead: Vec<u64> = ex.ahead.iter().map(|a| a.id).collect();
    assert_eq!(ahead, vec![long, mid], "{ex:?}");
    assert!(ex.order.contains("submission order"), "{}", ex.order);

    // A running task is explained as running, with no queue order.
    let ex = c.explain(blocker).unwrap();
    assert_eq!(ex.state, TaskState::Running);
    assert!(ex.order.is_empty() && ex.ahead.is_empty(), "{ex:?}");
    c.cancel(blocker).unwrap();
}

#[test]
fn pipelined_submits_share_commits_and_are_answered_in_order() {
    let d = Daemon::start();
    let mut c = d.client();
    let blocker = c.submit(task(&["sleep", "300"], 2000, 64)).unwrap();
    // 300 submits with 64 in flight, one of them invalid (cpu 0) in the middle.
    let reqs = (0..300).map(|i| {
        let mut r = task(&["true"], 1000, 64);
        if i == 150 {
            r.cpu_millis = 0;
        }
        r
    });
    let res = c.submit_pipelined(reqs, 64).unwrap();
    assert_eq!(res.len(), 300);
    let err = res[150].as_ref().unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid, "{err:?}");
    let ids: Vec<u64> = res
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 150)
        .map(|(_, r)| *r.as_ref().unwrap())
        .collect();
    // Ids follow the request order, and every answered task is visible at once.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        assert_eq!(c.status(*id).unwrap().state, TaskState::Queued);
    }
    let s = c.stats(false).unwrap();
    assert_eq!(s.queue.queued, 299, "{:?}", s.queue);
    // Durable: every answered id is in the database (read by a second connection).
    let path = llmchain_daemon::db::db_path(d.dir.path());
    let conn = llmchain_daemon::db::open(&path, llmchain_daemon::Durability::Full).unwrap();
    let stored: Vec<u64> = llmchain_daemon::db::load(&conn, &path)
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.info.id)
        .collect();
    for id in ids.iter().chain([&blocker]) {
        assert!(stored.contains(id), "task {id} answered but not stored");
    }
    c.cancel(blocker).unwrap();
}

/// The name of the test below, which the VM run skips (it would boot a VM in the VM).
const VM_TEST: &str = "the_daemon_suite_passes_under_real_cgroup_v2_in_a_vm";

/// The daemon on a cgroup-v2-only machine (see `crates/node/tests/vm`): this whole
/// test binary runs as root in a VM, once in the root cgroup and once alone in a
/// systemd-style delegated service cgroup — OOM kills reported, crash recovery after
/// `kill -9`, the state fixture, the second uid (the image's `/etc/passwd` has it;
/// host `setpriv` switches to it), every test.
#[test]
fn the_daemon_suite_passes_under_real_cgroup_v2_in_a_vm() {
    let vm = vm::Vm::locate().unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/state-v1.sqlite"
    );
    let run = vm.run(
        &exe,
        &["--test-threads=1", "--skip", VM_TEST],
        &[
            "/bin/sh",
            "/usr/bin/tail",
            "/usr/bin/sleep",
            "/usr/bin/true",
            "/usr/bin/kill",
            "/usr/bin/setpriv",
            daemond(),
            fixture,
        ],
        Duration::from_secs(900),
    );
    run.assert_both_runs_passed(&[
        "oom_task_is_reported_as_oom_while_others_keep_running",
        "kill_9_of_the_daemon_then_restart_accounts_for_every_task",
        "submit_wait_logs_cancel_end_to_end",
        "another_uid_cannot_cancel_wait_on_or_read_logs_of_a_task",
    ]);
}
