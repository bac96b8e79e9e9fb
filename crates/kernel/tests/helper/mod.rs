//! Fixtures for the kernel tests: workloads, a capacity checker over run
//! records, a real llama.cpp server (PyPI `xllamacpp`) started per test, a
//! tiny random-weight GGUF writer (PyPI `gguf`), and a fake HTTP server for
//! error injection.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmchain_core::{Cluster, NDIMS};
use llmchain_sim::{load, run, sample, RunResult, SimConfig, Workload, WorkloadSpec};

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    crate_dir().join("../..")
}

/// The seed example workload.
pub fn seed_example(seed: u64) -> Workload {
    load(&WorkloadSpec::parse("seed-example").unwrap(), seed, false).unwrap()
}

/// `n` sequences of `len` jobs of the Lublin-1 trace (`data/traces/lublin_256.swf`).
pub fn lublin(n: usize, len: usize, seed: u64) -> Vec<Workload> {
    let path = root().join("data/traces/lublin_256.swf");
    let spec = WorkloadSpec::parse(&format!("swf:{}", path.display())).unwrap();
    let w = load(&spec, seed, false).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    sample(&w, n, len, seed).unwrap()
}

/// Simulate and check the result: every task completed, no proposal
/// rejected by the simulator's validator, and no node ever over capacity.
pub fn run_checked(w: &Workload, p: &mut dyn llmchain_core::Policy) -> RunResult {
    let r = run(w, p, &SimConfig::default()).unwrap();
    assert_eq!(
        r.metrics.completed,
        w.tasks.len(),
        "{}: not every task completed",
        r.policy
    );
    assert_eq!(
        r.metrics.rejected, 0,
        "{}: the simulator's validator rejected proposals",
        r.policy
    );
    check_capacity(&r, &w.cluster);
    r
}

/// Sweep the task records: at no instant does any node hold more than its capacity.
pub fn check_capacity(r: &RunResult, cluster: &Cluster) {
    let mut events: Vec<(u64, i32, usize, [u64; NDIMS])> = Vec::new();
    for t in &r.tasks {
        let (Some(s), Some(e), Some(n)) = (t.start, t.end, t.node) else {
            continue;
        };
        assert!(s >= t.submit, "task {} started before its submission", t.id);
        // Ends sort before starts at the same instant.
        events.push((s.0, 1, n.0 as usize, t.request.0));
        events.push((e.0, 0, n.0 as usize, t.request.0));
    }
    events.sort();
    let mut used = vec![[0u64; NDIMS]; cluster.nodes.len()];
    for (time, kind, n, req) in events {
        for d in 0..NDIMS {
            if kind == 1 {
                used[n][d] += req[d];
                assert!(
                    used[n][d] <= cluster.nodes[n].capacity.0[d],
                    "node {n} over capacity in dimension {d} at t={time} ms: {} > {}",
                    used[n][d],
                    cluster.nodes[n].capacity.0[d]
                );
            } else {
                used[n][d] -= req[d];
            }
        }
    }
}

/// Fail with a how-to message unless `python3` can import `modules`.
pub fn require_python(modules: &[&str]) {
    let code = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &code])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs python3 with the packages {modules:?}: run `pip install xllamacpp gguf numpy` (CI installs them in .ci/run)"
    );
}

/// Serialises the tests that run a language model (a llama.cpp server or
/// candle in process). Each wants every core: llama.cpp's worker threads spin
/// at barriers, so two models at once on a 2-core machine slow each other
/// down by an order of magnitude and turn their deadlines into flakes (a CI
/// run saw a tiny model take 10 s per answer while SmolLM2 ran beside it).
/// Hold the guard for the whole test.
pub fn model_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A failed test poisons the lock; the next one must still run.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write the tiny random-weight GGUF of tests/make_tiny_gguf.py into `dir`
/// (llama.cpp-loadable; see the script's docstring).
pub fn tiny_gguf(dir: &Path) -> PathBuf {
    require_python(&["gguf", "numpy"]);
    let out = dir.join("tiny.gguf");
    let script = crate_dir().join("tests/make_tiny_gguf.py");
    let st = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .arg("1")
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(st.success(), "{} failed", script.display());
    out
}

/// A free loopback port (bound and released; small race window accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real llama.cpp HTTP server (xllamacpp) serving one GGUF on loopback;
/// killed on drop.
pub struct LlamaServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
}

impl LlamaServer {
    /// Start serving `model`, waiting at most 120 s for readiness.
    pub fn start(model: &Path) -> LlamaServer {
        require_python(&["xllamacpp"]);
        let port = free_port();
        let script = crate_dir().join("tests/llama_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(model)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("READY") {
                    let _ = tx.send(());
                }
            }
        });
        let mut server = LlamaServer {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!(
                "llama.cpp server (xllamacpp) did not report READY within 120 s for {}",
                model.display()
            );
        }
        while Instant::now() < deadline {
            if http_get(port, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server.stop();
        panic!("llama.cpp server on port {port} never became healthy");
    }

    /// Kill the server now.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `path` on loopback `port`; the raw response, if any.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// POST a JSON body; the response body, if the status was 200.
pub fn http_post_json(port: u16, path: &str, body: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// What the fake server does with each request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 200 with a non-JSON body.
    GarbageBody,
    /// 200 with a well-formed completion whose content is this text.
    Content(String),
    /// This HTTP status with a short body.
    Status(u16),
    /// Wait this long, then answer `[0]`-style content.
    Slow(Duration),
    /// Close the connection without answering.
    Hangup,
}

/// **A fake, for error injection only**: a tiny loopback HTTP server that
/// answers every request with the configured [`Fault`] — garbage, HTTP
/// errors, slow or hung responses — things a real model server does rarely
/// and unpredictably. Real-server behaviour is tested with [`LlamaServer`].
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Requests received.
    pub requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl FakeServer {
    /// Start answering with `fault`.
    pub fn start(fault: Fault) -> FakeServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let fault = fault.clone();
                let r3 = r2.clone();
                std::thread::spawn(move || {
                    if read_request(&mut c).is_none() {
                        return;
                    }
                    r3.fetch_add(1, Ordering::SeqCst);
                    let content = |text: &str| {
                        serde_json::json!({"choices":[{"message":{"role":"assistant","content":text}}],"model":"fake"}).to_string()
                    };
                    let (status, body) = match fault {
                        Fault::GarbageBody => (200, "<html>this is not json".to_string()),
                        Fault::Content(t) => (200, content(&t)),
                        Fault::Status(s) => (s, "{\"error\":\"injected\"}".to_string()),
                        Fault::Slow(d) => {
                            std::thread::sleep(d);
                            (200, content("[0]"))
                        }
                        Fault::Hangup => return,
                    };
                    let _ = write!(
                        c,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            stop,
            port,
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(c: &mut TcpStream) -> Option<()> {
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(c.try_clone().ok()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(())
}
