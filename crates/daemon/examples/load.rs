//! The daemon's load benchmark: starts a daemon in-process on a temp dir and
//! measures submit throughput (1 and 4 clients, each either one request at a
//! time or pipelined with 64 submits in flight), submit-to-start latency with
//! a free slot, 500 × `true` through a 2-slot node, and responsiveness with
//! 10,000 queued tasks. Prints one JSON object.
//!
//! ```text
//! cargo run --release -p llmchain-daemon --example load [-- normal] [-- --quick] [-- --latency-only]
//! ```
//! `normal` selects `--durability normal` (default: full); `--quick` uses
//! smaller counts; `--latency-only` skips the throughput and 10k-queue parts.

use std::time::{Duration, Instant};

use llmchain_core::metrics::Summary;
use llmchain_daemon::protocol::{ListRequest, SubmitRequest};
use llmchain_daemon::{Client, Config, Durability, Shutdown};
use serde_json::json;

fn task(argv: &[&str], cpu: u64) -> SubmitRequest {
    let mut r = SubmitRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cpu_millis: cpu,
        mem_mib: 64,
        ..Default::default()
    };
    r.env.insert("PATH".into(), "/usr/bin:/bin".into());
    r
}

struct Bench {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<llmchain_daemon::Result<()>>>,
}

impl Bench {
    fn start(durability: Durability, cpu: u64) -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Config::in_dir(dir.path());
        c.capacity = Some((cpu, 16384));
        c.durability = durability;
        c.cgroup_parent = format!("llmchain-bench-{}", std::process::id());
        let socket = c.socket.clone();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let thread = Some(std::thread::spawn(move || llmchain_daemon::run(c, s)));
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Bench {
            _dir: dir,
            socket,
            shutdown,
            thread,
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect")
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ms(v: &mut [f64]) -> serde_json::Value {
    let s = Summary::of(v);
    json!({ "n": s.n, "p50_ms": s.p50, "p99_ms": s.p99, "max_ms": s.max, "mean_ms": s.mean })
}

/// Submits in flight per client in the pipelined runs.
const DEPTH: usize = 64;

/// Submit `n` queued tasks from `clients` threads, each with up to `depth`
/// submits in flight (1 = one at a time); tasks cannot start (a blocker holds the node).
fn throughput(durability: Durability, clients: usize, n: usize, depth: usize) -> f64 {
    let b = Bench::start(durability, 1000);
    let mut c = b.client();
    c.submit(task(&["sleep", "1000"], 1000)).unwrap();
    if let Some(w) = std::env::var("LOAD_WARMUP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        for r in c
            .submit_pipelined((0..w).map(|_| task(&["true"], 1000)), DEPTH)
            .unwrap()
        {
            r.unwrap();
        }
    }
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            let sock = b.socket.clone();
            s.spawn(move || {
                let mut c = Client::connect(&sock).unwrap();
                if depth <= 1 {
                    for _ in 0..n / clients {
                        c.submit(task(&["true"], 1000)).unwrap();
                    }
                } else {
                    let reqs = (0..n / clients).map(|_| task(&["true"], 1000));
                    for r in c.submit_pipelined(reqs, depth).unwrap() {
                        r.unwrap();
                    }
                }
            });
        }
    });
    (n / clients * clients) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let durability = if args.iter().any(|a| a == "normal") {
        Durability::Normal
    } else {
        Durability::Full
    };
    let quick = args.iter().any(|a| a == "--quick");
    let only_latency = args.iter().any(|a| a == "--latency-only");
    let n = if quick { 1000 } else { 4000 };

    let (one, four, one_p, four_p) = if only_latency {
        (0.0, 0.0, 0.0, 0.0)
    } else {
        (
            throughput(durability, 1, n, 1),
            throughput(durability, 4, n, 1),
            throughput(durability, 1, n, DEPTH),
            throughput(durability, 4, n, DEPTH),
        )
    };

    // Submit-to-start with a free slot: one task at a time, daemon-recorded times.
    let b = Bench::start(durability, 2000);
    let mut c = b.client();
    let mut daemon_side = Vec::new();
    let mut client_side = Vec::new();
    for _ in 0..(if quick { 50 } else { 200 }) {
        let sent = llmchain_daemon::state::now_us();
        let id = c.submit(task(&["true"], 1000)).unwrap();
        let t = c.wait(id, None).unwrap();
        let start = t.start_us.expect("started");
        daemon_side.push(start.saturating_sub(t.submit_us) as f64 / 1000.0);
        client_side.push(start.saturating_sub(sent) as f64 / 1000.0);
    }

    // 500 × true through 2 slots (1000m each on 2000m).
    let t0 = Instant::now();
    let ids: Vec<u64> = (0..500)
        .map(|_| c.submit(task(&["true"], 1000)).unwrap())
        .collect();
    for id in &ids {
        c.wait(*id, None).unwrap();
    }
    let wall_500 = t0.elapsed().as_secs_f64();
    drop(c);
    drop(b);
    if only_latency {
        let out = json!({
            "durability": format!("{durability:?}").to_lowercase(),
            "submit_to_start_ms": { "daemon_side": ms(&mut daemon_side), "client_send_to_start": ms(&mut client_side) },
            "true_500_on_2_slots_wall_s": wall_500,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return;
    }

    // 10,000 queued: responsiveness of status, list and stats.
    let b = Bench::start(durability, 1000);
    let mut c = b.client();
    c.submit(task(&["sleep", "1000"], 1000)).unwrap();
    let queued = if quick { 2000 } else { 10_000 };
    std::thread::scope(|s| {
        for _ in 0..4 {
            let sock = b.socket.clone();
            s.spawn(move || {
                let mut c = Client::connect(&sock).unwrap();
                for _ in 0..queued / 4 {
                    c.submit(task(&["true"], 1000)).unwrap();
                }
            });
        }
    });
    let mut status = Vec::new();
    let mut stats = Vec::new();
    let mut submit = Vec::new();
    for i in 0..200u64 {
        let t = Instant::now();
        c.status(1 + (i * 37) % queued as u64).unwrap();
        status.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        c.stats(false).unwrap();
        stats.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        c.submit(task(&["true"], 1000)).unwrap();
        submit.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    let listed = c
        .list(ListRequest {
            all: false,
            limit: Some(1000),
            uid: None,
        })
        .unwrap()
        .len();
    let list_ms = t.elapsed().as_secs_f64() * 1000.0;
    let s = c.stats(false).unwrap();

    let out = json!({
        "durability": format!("{durability:?}").to_lowercase(),
        "submit_throughput_per_s": {
            "clients_1": one.round(), "clients_4": four.round(),
            "clients_1_pipelined": one_p.round(), "clients_4_pipelined": four_p.round(),
            "pipeline_depth": DEPTH, "tasks": n,
        },
        "submit_to_start_ms": { "daemon_side": ms(&mut daemon_side), "client_send_to_start": ms(&mut client_side) },
        "true_500_on_2_slots_wall_s": wall_500,
        "queued_10k": {
            "queued": s.queue.queued,
            "status_latency": ms(&mut status),
            "stats_latency": ms(&mut stats),
            "submit_latency": ms(&mut submit),
            "list_1000_ms": list_ms,
            "listed": listed,
            "decision_latency_us": { "p50": s.decision_latency.p50_us, "p99": s.decision_latency.p99_us },
        },
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
